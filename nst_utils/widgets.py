"""An interactive style-transfer panel: a thin ipywidgets shell over the config and the loop.

Every default comes from :mod:`nst_utils.config`; every computation (targets, objective,
optimisation, image conversion) is a call into the package. The panel only turns widget
values into a :class:`~nst_utils.config.TransferConfig` and shows what the loop reports.

"Adjust during a run": L-BFGS-B cannot take a changed objective in the middle of a run (its
curvature pairs describe the old one), so when the ratio, the layers, their weights or the
optimiser change, a step callback ends the current call of :func:`~nst_utils.optimize` and the
panel restarts it from the current image with a rebuilt objective, continuing the step count.
Each uninterrupted call is recorded as a :class:`Segment`. The step count is read from the
slider at every step, so it can be raised or lowered during a run.
"""

from __future__ import annotations

import functools
import io
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import torch
from PIL import Image, ImageOps
from torch import Tensor

from .callbacks import StopFlag
from .config import INITS, OPTIMIZERS, PAPER, PAPER_STYLE_LAYERS, RATIO_RANGE, TransferConfig
from .features import VGG19Features
from .images import ImageSource, save_image, to_pil
from .layers import LAYERS, deepest
from .optimize import OptimizeResult, StepInfo, optimize
from .recipes import (
    StyleTransferObjective,
    TransferResult,
    content_targets,
    initial_image,
    load_pair,
    make_extractor,
    resolve_device,
    style_targets,
)

#: Small previews are upscaled (nearest neighbour, so pixels stay visible) to about this side.
PREVIEW_PX = 256
_LABEL_WIDTH = "110px"


@dataclass
class Segment:
    """One uninterrupted call of :func:`~nst_utils.optimize` within a panel run."""

    first_step: int
    config: TransferConfig
    objective: StyleTransferObjective
    planned: int
    steps: int = 0
    evaluations: int = 0
    stopped: str | None = None


def _restart_key(cfg: TransferConfig) -> tuple:
    """The settings that define the objective (and the optimiser): a change restarts the loop."""
    return (cfg.ratio, cfg.style_weight, cfg.content_layers, cfg.style_layers,
            tuple(cfg.layer_weights().items()), cfg.tv_weight, cfg.optimizer)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def preview_png(image: Tensor) -> bytes:
    """PNG bytes of ``image``; images smaller than :data:`PREVIEW_PX` are upscaled (nearest)."""
    pil = to_pil(image)
    if max(pil.size) < PREVIEW_PX:
        pil = ImageOps.contain(pil, (PREVIEW_PX, PREVIEW_PX), Image.Resampling.NEAREST)
    return _png(pil)


def loss_curve_png(history: Sequence[StepInfo], restarts: Iterable[int] = (), total: int | None = None) -> bytes:
    """PNG bytes of the weighted loss terms against the step (log scale); dotted lines mark restarts.

    Uses a bare :class:`matplotlib.figure.Figure` (Agg), never pyplot: this runs in a worker thread.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6, 2.7), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    terms = list(history[-1].losses) if history else []
    steps = [h.step for h in history]
    for term in terms:
        ax.plot(steps, [h.losses.get(term, math.nan) for h in history], label=term)
    for step in restarts:
        ax.axvline(step - 0.5, color="0.6", linestyle=":", linewidth=1)
    if history:
        ax.set_yscale("log")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlim(0, max(total or 1, steps[-1] if steps else 1))
    ax.set_xlabel("step", fontsize=9)
    ax.set_title("weighted loss terms" if history else "loss (press Run)", fontsize=9)
    ax.tick_params(labelsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _labelled(widget: widgets.Widget) -> widgets.Widget:
    widget.style.description_width = _LABEL_WIDTH
    return widget


class TransferPanel(widgets.VBox):
    """Controls for a style-transfer run, a live preview and loss curve, Run / Stop / Save.

    ``content`` and ``style`` are anything :func:`~nst_utils.load_image` accepts (a path, a PIL
    image, a sample name such as ``"hopper"`` or ``"mosaic"``) or ``(1, 3, H, W)`` tensors.
    ``config`` (default :data:`~nst_utils.PAPER`) sets the initial widget values and every
    setting that has no widget (pooling, weights, device, precision, seed, ...). The panel
    chooses one content layer; ``preview_every`` is how often (in steps) the preview redraws.
    """

    def __init__(
        self,
        content: ImageSource | Tensor,
        style: ImageSource | Tensor,
        *,
        config: TransferConfig | None = None,
        preview_every: int = 5,
        sizes: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        cfg = PAPER if config is None else config
        if preview_every < 1:
            raise ValueError(f"preview_every must be at least 1, got {preview_every}")
        self._base, self.preview_every = cfg, int(preview_every)
        self._content, self._style = content, style
        self.result: TransferResult | None = None
        self.segments: list[Segment] = []
        self.history: list[StepInfo] = []
        self._stop = StopFlag()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._extractors: dict[tuple, VGG19Features] = {}
        self._pairs: dict[tuple, tuple[Tensor, Tensor]] = {}
        self._note = ""
        self._syncing = False
        self._build_controls(cfg, sizes)
        self._build_outputs()
        super().__init__([self._layout()])
        self._show_initial(cfg)
        self._watch_settings()

    # ---- widgets -------------------------------------------------------------------------------

    def _build_controls(self, cfg: TransferConfig, sizes: Sequence[int]) -> None:
        lo, hi = (math.log10(r) for r in RATIO_RANGE)  # the log slider takes exponents
        self.ratio_slider = _labelled(widgets.FloatLogSlider(
            value=cfg.ratio, base=10, min=min(lo, math.log10(cfg.ratio)), max=max(hi, math.log10(cfg.ratio)),
            step=0.1, readout_format=".1e", description="α/β (ratio)", continuous_update=False))
        self.ratio_slider.add_class("nst-ratio")
        self.content_dropdown = _labelled(widgets.Dropdown(
            options=list(LAYERS), value=cfg.content_layers[0], description="content layer"))
        self.equal_weights = widgets.Checkbox(
            value=not cfg.style_layer_weights, description="equal weights w_l = 1/L", indent=False)
        self.style_checks: dict[str, widgets.Checkbox] = {}
        self.weight_fields: dict[str, widgets.FloatText] = {}
        weights = cfg.layer_weights()
        for name in dict.fromkeys([*PAPER_STYLE_LAYERS, *cfg.style_layers]):
            self.style_checks[name] = widgets.Checkbox(
                value=name in cfg.style_layers, description=name, indent=False,
                layout=widgets.Layout(width="90px"))
            self.weight_fields[name] = widgets.FloatText(
                value=weights.get(name, 0.0), step=0.05, layout=widgets.Layout(width="80px"))
        self.steps_slider = _labelled(widgets.IntSlider(
            value=cfg.steps, min=1, max=max(2 * PAPER.steps, cfg.steps), description="steps",
            continuous_update=False))
        self.optimizer_picker = _labelled(widgets.Dropdown(
            options=list(OPTIMIZERS), value=cfg.optimizer, description="optimiser"))
        self.init_picker = _labelled(widgets.Dropdown(
            options=list(INITS), value=cfg.init, description="initialisation"))
        self.size_picker = _labelled(widgets.Dropdown(
            options=sorted({int(s) for s in sizes} | {cfg.size}), value=cfg.size, description="size (px)"))
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.save_path = widgets.Text(value="transfer.png", layout=widgets.Layout(width="150px"))
        self.save_button = widgets.Button(description="Save", icon="save", disabled=True)
        self.run_button.add_class("nst-run")
        self.stop_button.add_class("nst-stop")
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.save_button.on_click(lambda _: self._save_clicked())
        self.equal_weights.observe(self._sync_weights, "value")
        for name in self.style_checks:
            self.style_checks[name].observe(self._sync_weights, "value")
            self.weight_fields[name].observe(self._weight_edited, "value")
        self._sync_weights()

    def _watch_settings(self) -> None:
        """Refresh the size and memory readout when a setting it depends on changes."""
        for widget in (self.size_picker, self.optimizer_picker, self.content_dropdown, *self.style_checks.values()):
            widget.observe(self._settings_changed, "value")

    def _build_outputs(self) -> None:
        self.preview = widgets.Image(format="png", layout=widgets.Layout(min_width="128px"))
        self.loss_plot = widgets.Image(format="png")
        self.status = widgets.Label(value="ready · press Run")
        self.info = widgets.Label()
        self.preview.add_class("nst-preview")
        self.loss_plot.add_class("nst-loss")
        self.status.add_class("nst-status")
        self.info.add_class("nst-info")

    def _layout(self) -> widgets.Widget:
        rows = [widgets.HBox([self.style_checks[n], self.weight_fields[n]]) for n in self.style_checks]
        controls = widgets.VBox([
            self.ratio_slider, self.content_dropdown,
            widgets.HTML("<b>style layers</b> and weights w<sub>l</sub>"), self.equal_weights, *rows,
            self.steps_slider, self.optimizer_picker, self.init_picker, self.size_picker,
            widgets.HBox([self.run_button, self.stop_button]),
            widgets.HBox([self.save_path, self.save_button]),
        ], layout=widgets.Layout(width="380px"))
        outputs = widgets.VBox([widgets.HBox([self.preview, self.loss_plot]), self.status, self.info])
        return widgets.HBox([controls, outputs])

    def _sync_weights(self, _change: Any = None) -> None:
        """Enable the weight fields of checked layers; with equal weights show the config's w_l."""
        for name, box in self.style_checks.items():
            self.weight_fields[name].disabled = not box.value
        if not self.equal_weights.value:
            return
        chosen = tuple(n for n, box in self.style_checks.items() if box.value)
        if not chosen:
            return
        shown = self._base.replace(style_layers=chosen, style_layer_weights=()).layer_weights()
        self._syncing = True
        try:
            for name, weight in shown.items():
                self.weight_fields[name].value = weight
        finally:
            self._syncing = False

    def _weight_edited(self, _change: Any) -> None:
        if not self._syncing:  # a user edit: the weights are no longer equal by construction
            self.equal_weights.value = False

    # ---- settings ------------------------------------------------------------------------------

    def config(self) -> TransferConfig:
        """The current widget settings as a (validated) config; raises ``ValueError`` if invalid."""
        chosen = tuple(n for n, box in self.style_checks.items() if box.value)
        weights = () if self.equal_weights.value else tuple(self.weight_fields[n].value for n in chosen)
        return self._base.replace(
            ratio=float(self.ratio_slider.value), content_layers=(self.content_dropdown.value,),
            style_layers=chosen, style_layer_weights=weights, steps=int(self.steps_slider.value),
            optimizer=self.optimizer_picker.value, init=self.init_picker.value, size=int(self.size_picker.value),
        )

    def _live_config(self, current: TransferConfig) -> TransferConfig:
        """The settings now; the running ones (with a note in the status) while they are invalid."""
        try:
            cfg = self.config()
        except ValueError as err:
            self._note = f" · ignored: {err}"
            return current
        self._note = ""
        # Size and initialisation only matter when a run starts: keep the running ones.
        return cfg.replace(size=current.size, init=current.init)

    # ---- package calls -------------------------------------------------------------------------

    def _extractor(self, cfg: TransferConfig, device: torch.device) -> VGG19Features:
        """Cached while weights, pooling, device, precision and algorithm stay the same and it reaches deep enough."""
        last = deepest([*cfg.content_layers, *cfg.style_layers])
        key = (cfg.weights, cfg.pooling, str(device), cfg.precision, cfg.conv_algorithm, cfg.seed)
        cached = self._extractors.get(key)
        if cached is None or last not in cached.layer_names:
            self._extractors = {key: make_extractor(  # one network at a time (memory)
                [last], weights=cfg.weights, pooling=cfg.pooling, device=device,
                precision=cfg.precision, seed=cfg.seed, conv_algorithm=cfg.conv_algorithm)}
        return self._extractors[key]

    def _images(self, cfg: TransferConfig, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (cfg.size, cfg.style_scale, str(device))
        if key not in self._pairs:
            self._pairs = {key: load_pair(self._content, self._style, cfg, device)}
        return self._pairs[key]

    def _objective(self, cfg: TransferConfig, device: torch.device, cache: dict[str, dict]) -> StyleTransferObjective:
        """The objective for ``cfg``; targets are computed once per layer and run (``cache``)."""
        extractor = self._extractor(cfg, device)
        content, style = self._images(cfg, device)
        for kind, make, image, layers in (("content", content_targets, content, cfg.content_layers),
                                          ("style", style_targets, style, cfg.style_layers)):
            missing = [n for n in layers if n not in cache[kind]]
            if missing:
                cache[kind].update(make(extractor, image, missing))
        return StyleTransferObjective(
            extractor,
            {n: cache["content"][n] for n in cfg.content_layers},
            {n: cache["style"][n] for n in cfg.style_layers},
            content_weight=cfg.content_weight, style_weight=cfg.style_weight,
            style_layer_weights=cfg.layer_weights(), tv_weight=cfg.tv_weight,
        )

    # ---- running -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start a run with the current settings in a background thread (the Run button)."""
        if not self._lock.acquire(blocking=False):
            return  # already running
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_in_background, name="TransferPanel", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the run to end after the current step; it keeps the best image so far (the Stop button)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> TransferResult | None:
        """Wait for a background run to end; returns :attr:`result`."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    @property
    def running(self) -> bool:
        """Whether a run (background or :meth:`run_sync`) is in progress."""
        return self._lock.locked()

    def run_sync(self) -> TransferResult:
        """Run the current settings to completion in the calling thread (tests, notebook checks)."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("a run is already in progress; press Stop or wait for it")
        try:
            self._stop.clear()
            return self._run()
        except Exception as err:
            self.status.value = f"error: {type(err).__name__}: {err}"
            raise
        finally:
            self._set_running(False)
            self._lock.release()

    def _run_in_background(self) -> None:
        try:
            self._run()
        except Exception as err:  # noqa: BLE001 (a worker thread must not raise into nowhere)
            self.status.value = f"error: {type(err).__name__}: {err}"
        finally:
            self._set_running(False)
            self._lock.release()

    def _set_running(self, running: bool) -> None:
        self.run_button.disabled = running
        self.stop_button.disabled = not running
        self.size_picker.disabled = self.init_picker.disabled = running
        self.save_button.disabled = running or self.result is None

    def _run(self) -> TransferResult:
        cfg = self.config()
        device = resolve_device(cfg.device)
        self._set_running(True)
        self.status.value = "starting …"
        content, style = self._images(cfg, device)
        self._show_info(cfg, device, content)
        self.segments, self.history, self._t0 = [], [], time.perf_counter()
        self._current = initial_image(cfg.init, content=content, style=style, seed=cfg.seed, device=device)
        cache: dict[str, dict] = {"content": {}, "style": {}}
        last: OptimizeResult | None = None
        while len(self.history) < self.steps_slider.value and not self._stop.is_set():
            cfg = self._live_config(cfg)
            last = self._run_segment(cfg, device, cache)
            if last.stopped == "interrupted":  # Ctrl-C (kernel interrupt) ends the run, not the segment
                break
            if last.stopped is None and last.steps < self.segments[-1].planned:
                break  # L-BFGS-B ended early (converged, or its line search failed): a restart won't help
        self.result = self._finish(cfg, last, content, style)
        self._show_final(self.result)
        return self.result

    def _run_segment(self, cfg: TransferConfig, device: torch.device, cache: dict[str, dict]) -> OptimizeResult:
        """One call of the loop from the current image, up to the step slider's count."""
        planned = self.steps_slider.value - len(self.history)
        segment = Segment(len(self.history) + 1, cfg, self._objective(cfg, device, cache), planned)
        self.segments.append(segment)
        out = optimize(
            segment.objective, self._current, steps=planned, optimizer=cfg.optimizer,
            lbfgs_history=cfg.lbfgs_history, adam_lr=cfg.adam_lr,
            callbacks=[functools.partial(self._on_step, segment), self._stop],
        )
        segment.steps, segment.evaluations, segment.stopped = out.steps, out.evaluations, out.stopped
        return out

    def _on_step(self, segment: Segment, info: StepInfo) -> bool:
        """Record the step (numbered across restarts), preview it, and decide whether to stop."""
        info = replace(info, step=segment.first_step + info.step - 1, elapsed=time.perf_counter() - self._t0)
        # The history keeps numbers only, as optimize()'s does: an image per step would hold
        # 3 MB per step at 512 px (1.5 GB over 500 steps).
        self.history.append(replace(info, image=None))
        self._current = info.image.detach().clone()  # Adam keeps updating its tensor in place
        total = self.steps_slider.value
        if info.step == 1 or info.step % self.preview_every == 0 or info.step >= total:
            self._show_progress(info, segment.config, total)
        if total <= info.step < segment.first_step + segment.planned - 1:
            return True  # the step slider was lowered below the segment's end
        return _restart_key(self._live_config(segment.config)) != _restart_key(segment.config)

    def _finish(
        self, cfg: TransferConfig, last: OptimizeResult | None, content: Tensor, style: Tensor
    ) -> TransferResult:
        steps = max(1, len(self.history))
        stopped = "callback" if self._stop.is_set() else None
        if last is not None and last.stopped == "interrupted":
            stopped = "interrupted"
        if last is None:  # stopped before the first step
            return TransferResult(image=self._current, history=[], best_total=math.inf, stopped=stopped,
                                  config=cfg.replace(steps=steps), content=content, style=style)
        return TransferResult(
            image=last.image, history=list(self.history), best_total=last.best_total, stopped=stopped,
            evaluations=sum(s.evaluations for s in self.segments),
            seconds=time.perf_counter() - self._t0, config=cfg.replace(steps=steps),
            content=content, style=style,
        )

    # ---- display -------------------------------------------------------------------------------

    def _show_initial(self, cfg: TransferConfig) -> None:
        content, _ = self._images(cfg, torch.device("cpu"))
        self.preview.value = preview_png(content)
        self.loss_plot.value = loss_curve_png([], total=cfg.steps)
        self._show_info(cfg, resolve_device(cfg.device), content)

    def _show_info(self, cfg: TransferConfig, device: torch.device, content: Tensor | None = None) -> None:
        """Device, size and (when the package can estimate it) peak memory; the exact size once loaded."""
        shape = None if content is None else (int(content.shape[-2]), int(content.shape[-1]))
        size = f"{cfg.size} px longest side" if shape is None else f"{shape[1]}×{shape[0]} px"
        text = f"device {device} · {size} · {cfg.weights} VGG-19, {cfg.pooling} pooling · {cfg.precision}"
        self.info.value = text + _memory_text(cfg, shape, device)

    def _settings_changed(self, _change: Any) -> None:
        if self.running:
            return  # the run shows its own size and device
        try:
            cfg = self.config()
        except ValueError:
            return
        self._show_info(cfg, resolve_device(cfg.device))

    def _readout(self, state: str, info: StepInfo, cfg: TransferConfig, total: int) -> str:
        terms = " · ".join(f"{name} {value:.3g}" for name, value in info.losses.items())
        return f"{state} · step {info.step}/{total} · α/β {cfg.ratio:.3g} · {terms} · {info.elapsed:.1f} s"

    def _show_progress(self, info: StepInfo, cfg: TransferConfig, total: int) -> None:
        self.preview.value = preview_png(info.image)
        restarts = [s.first_step for s in self.segments[1:]]
        self.loss_plot.value = loss_curve_png(self.history, restarts, total)
        self.status.value = self._readout("running", info, cfg, total) + self._note

    def _show_final(self, result: TransferResult) -> None:
        self.preview.value = preview_png(result.image)
        if not self.history:
            self.status.value = "stopped before the first step"
            return
        total = max(len(self.history), self.steps_slider.value)
        restarts = [s.first_step for s in self.segments[1:]]
        self.loss_plot.value = loss_curve_png(self.history, restarts, total)
        state = "stopped" if result.stopped else "done"
        self.status.value = self._readout(state, self.history[-1], result.config, total) + self._note

    # ---- saving --------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the last result as PNG, with its config (and the run's segments) as metadata."""
        if self.result is None:
            raise RuntimeError("nothing to save yet: press Run first")
        metadata: dict[str, Any] = self.result.config.to_dict()
        metadata["segments"] = [_segment_dict(s) for s in self.segments]
        return save_image(self.result.image, path, metadata=metadata)

    def _save_clicked(self) -> None:
        try:
            self.status.value = f"saved {self.save(self.save_path.value)}"
        except (OSError, ValueError, RuntimeError) as err:
            self.status.value = f"not saved: {err}"


def _segment_dict(segment: Segment) -> Mapping[str, Any]:
    cfg = segment.config
    return {"first_step": segment.first_step, "steps": segment.steps, "ratio": cfg.ratio,
            "content_layers": cfg.content_layers, "style_layer_weights": cfg.layer_weights(),
            "optimizer": cfg.optimizer}


def _memory_text(cfg: TransferConfig, shape: tuple[int, int] | None, device: torch.device) -> str:
    """`` · est. peak memory …`` when the package can estimate it (an optional module)."""
    try:
        from .memory import estimate_peak_memory  # type: ignore[import-not-found]
    except ImportError:
        return ""
    try:
        estimate = estimate_peak_memory(
            shape or cfg.size, content_layers=cfg.content_layers, style_layers=cfg.style_layers,
            optimizer=cfg.optimizer, lbfgs_history=cfg.lbfgs_history, precision=cfg.precision, device=device,
            conv_algorithm=cfg.conv_algorithm)
    except Exception:  # noqa: BLE001 (an optional readout must never break the panel)
        return ""
    if isinstance(estimate, (int, float)):
        return f" · est. peak memory {estimate / 2**20:.0f} MiB"
    return f" · est. peak memory {estimate}"
