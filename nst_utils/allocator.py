"""Keep freed memory in the process while an optimisation runs (glibc's malloc on Linux).

Each evaluation of the objective allocates the network's activations and their gradients,
hundreds of megabytes in tensors of up to tens of megabytes each, and frees them again.
glibc's malloc serves blocks that large with a fresh ``mmap`` and returns them with
``munmap``, so every evaluation faults in and zeroes all of that memory again: measured on a
2-core CPU at 512 px, 180 000 - 470 000 page faults and 0.5 - 1.4 s of kernel time per
evaluation of 2.7 s (``benchmarks``). With mmap switched off for the run and trimming deferred,
freed blocks stay in malloc's heap and the next evaluation reuses them: no faults, 2.0 s.
(PyTorch's CPU tuning guides get the same effect by preloading jemalloc or tcmalloc.)

:func:`keep_freed_memory` does that for the duration of a ``with`` block and then restores
glibc's defaults and hands the free memory back (``malloc_trim``), so a notebook's kernel does
not keep a run's peak once the run is over. It does nothing where the C library is not glibc,
and nothing when the environment tunes malloc (``MALLOC_*`` variables, ``GLIBC_TUNABLES``):
then the user's settings stand.
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


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has ``gnu_get_libc_version`` and ``mallopt``), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return None
    return libc


def user_tuned() -> bool:
    """Whether the environment tunes malloc itself (``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_``,
    ``GLIBC_TUNABLES=glibc.malloc...``): then we leave malloc alone."""
    return any(name.startswith("MALLOC_") for name in os.environ) or "glibc.malloc" in os.environ.get(
        "GLIBC_TUNABLES", "")


def applies() -> bool:
    """Whether :func:`keep_freed_memory` changes anything in this process."""
    return _glibc() is not None and not user_tuned()


@contextmanager
def keep_freed_memory() -> Iterator[bool]:
    """Within the block, freed memory stays in the process for reuse; yields whether it applied."""
    if not applies():
        yield False
        return
    libc = _glibc()
    assert libc is not None  # applies() checked it
    libc.mallopt(M_MMAP_MAX, 0)  # large blocks come from the heap, where freed ones are reused
    libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)
    try:
        yield True
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)  # give the run's free memory back to the system
