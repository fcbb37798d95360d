"""Keep freed memory in the process while an optimisation runs (glibc's malloc on Linux).

Each evaluation of the objective allocates the network's activations and their gradients,
hundreds of megabytes in tensors of up to tens of megabytes each, and frees them again.
glibc's malloc serves blocks that large with a fresh ``mmap`` and returns them with
``munmap``, so every evaluation faults in and zeroes all of that memory again, one page fault
per page, and spends a large share of its time in the kernel. With mmap
switched off for the run and trimming deferred, freed blocks stay in malloc's heap and later
evaluations reuse them: after the first few steps, no faults. (PyTorch's CPU tuning guides get
the same effect by preloading jemalloc or tcmalloc.) What it saves, and what it costs in peak
memory, is measured in the README ("Architecture") and ``benchmarks/results.md``.

The heap can fragment instead of settling. PyTorch asks for 64-byte aligned blocks, and glibc
serves an aligned request of n bytes only from a free chunk of n + 96 bytes or more, so the hole
a freed block leaves cannot take the next block of the same size unless it merges with a free
neighbour. An allocation that outlives the evaluation, placed right after a large block, stops
that merge; if that happens every evaluation, the heap grows by the block's size every
evaluation. Optimisation runs of this package settle (the free memory malloc holds grows a
little over the first steps, then stays flat), but a callback can allocate in that pattern. So
:meth:`KeptMemory.check`, called after each step (the run loop, :func:`nst_utils.loop.run`,
does it through :meth:`nst_utils.engine.Prepared.running`), falls back to glibc's defaults for
the rest of the run once the free memory held exceeds :data:`GROWTH_LIMIT` times what it was
after the first step plus :data:`GROWTH_MARGIN`: the run is then as fast as without this
module, never unbounded.

:func:`keep_freed_memory` does all this for the duration of a ``with`` block and then restores
glibc's defaults and hands the free memory back (``malloc_trim``), so a notebook's kernel does
not keep a run's peak once the run is over. It does nothing where the C library is not glibc
2.33 or newer (``mallinfo2``), and nothing when the environment tunes malloc (``MALLOC_*``
variables, ``GLIBC_TUNABLES``): then the user's settings stand.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

# mallopt parameters (malloc.h) and glibc's defaults for the two we change.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
NEVER_TRIM = -1  # mallopt(3): "Setting M_TRIM_THRESHOLD to -1 disables trimming completely."

#: Fall back to glibc's defaults once the free memory malloc holds exceeds
#: GROWTH_LIMIT * (free memory after the first step) + GROWTH_MARGIN bytes.
GROWTH_LIMIT = 2.0
GROWTH_MARGIN = 256 * 2**20


class _MallInfo2(ctypes.Structure):
    """``struct mallinfo2`` (glibc >= 2.33): every field is a size_t."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc with ``mallopt``, ``malloc_trim`` and ``mallinfo2``, else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    names = ("gnu_get_libc_version", "mallopt", "malloc_trim", "mallinfo2")
    if not all(hasattr(libc, name) for name in names):
        return None
    libc.mallinfo2.restype = _MallInfo2
    return libc


def user_tuned() -> bool:
    """Whether the environment tunes malloc itself (``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``,
    ``GLIBC_TUNABLES=glibc.malloc...``): then we leave malloc alone."""
    return any(name.startswith("MALLOC_") for name in os.environ) or "glibc.malloc" in os.environ.get(
        "GLIBC_TUNABLES", "")


def applies() -> bool:
    """Whether :func:`keep_freed_memory` changes anything in this process."""
    return _glibc() is not None and not user_tuned()


def free_bytes_held() -> int:
    """Bytes malloc holds free for reuse (``mallinfo2().fordblks``); 0 where it cannot tell."""
    libc = _glibc()
    return 0 if libc is None else int(libc.mallinfo2().fordblks)


def _keep(libc: ctypes.CDLL) -> None:
    libc.mallopt(M_MMAP_MAX, 0)  # large blocks come from the heap, where freed ones are reused
    libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)


def _restore(libc: ctypes.CDLL) -> None:
    libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
    libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
    libc.malloc_trim(0)  # give the free memory back to the system


class KeptMemory:
    """State of one :func:`keep_freed_memory` block; true while freed memory is being kept.

    ``applied``: whether the block changed malloc's settings at all; ``fell_back``: whether
    :meth:`check` found the heap growing and restored glibc's defaults early.
    """

    def __init__(self, libc: ctypes.CDLL | None) -> None:
        self._libc = libc
        self.applied = libc is not None
        self.fell_back = False
        self.limit: int | None = None  # bytes; set by the first check()
        if libc is not None:
            _keep(libc)

    def __bool__(self) -> bool:
        return self._libc is not None

    def check(self) -> None:
        """Call after each step: the first call sets the limit, a later one past it falls back."""
        if not self:
            return
        held = free_bytes_held()
        if self.limit is None:
            self.limit = int(GROWTH_LIMIT * held) + GROWTH_MARGIN
        elif held > self.limit:
            self.close()
            self.fell_back = True

    def close(self) -> None:
        """Restore glibc's defaults and trim, once."""
        if self._libc is not None:
            _restore(self._libc)
            self._libc = None


@contextmanager
def keep_freed_memory() -> Iterator[KeptMemory]:
    """Within the block, freed memory stays in the process for reuse (see the module's docstring).

    Yields a :class:`KeptMemory`: false when nothing was changed; call its ``check()`` after
    each step so a fragmenting heap falls back to glibc's defaults instead of growing.
    """
    kept = KeptMemory(_glibc() if applies() else None)
    try:
        yield kept
    finally:
        kept.close()
