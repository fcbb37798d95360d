"""Ready-made step callbacks for :func:`nst_utils.optimize` (the loop itself never prints)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from .optimize import StepInfo


class ProgressBar:
    """A tqdm progress bar showing the weighted loss terms; writes to stderr by default.

    The bar appears at the first step, so nothing is drawn when a run fails while loading.
    """

    def __init__(self, total: int, *, desc: str = "optimising", file: TextIO | None = None) -> None:
        self.total, self.desc, self.file = total, desc, file
        self.bar = None

    def __call__(self, info: StepInfo) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, file=self.file or sys.stderr, unit="step",
                            dynamic_ncols=True)
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in info.losses.items()}, refresh=False)
        self.bar.update(info.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class StopFlag:
    """Thread-safe stop request: ``flag.set()`` from anywhere (a Stop button); the run stops
    after the current step and returns its best image."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def __call__(self, info: StepInfo) -> bool:
        return self._event.is_set()


class Every:
    """Call ``fn(info)`` every ``n`` steps (and never more often): previews, checkpoints."""

    def __init__(self, n: int, fn) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.n, self.fn = n, fn

    def __call__(self, info: StepInfo) -> bool | None:
        if info.step % self.n == 0:
            return self.fn(info)
        return None
