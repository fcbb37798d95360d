"""nst_utils.allocator: freed memory is reused within a run, and the process is left as it was."""

from __future__ import annotations

import resource

import pytest
import torch

from nst_utils import allocator

pytestmark = pytest.mark.skipif(not allocator.applies(), reason="needs glibc and no MALLOC_* tuning")

MIB = 2**20


def _faults_of_a_fresh_block(megabytes: int = 64) -> int:
    """Minor page faults of allocating, touching and freeing a block, after doing it once already."""
    torch.ones(megabytes * MIB // 4)  # allocated, touched, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(megabytes * MIB // 4)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_outside_a_run_a_large_block_is_faulted_in_again() -> None:
    # glibc maps a 64 MB block afresh each time: thousands of 4 KiB faults (or 2 MiB ones with THP).
    assert _faults_of_a_fresh_block() > 20


def test_inside_a_run_a_freed_block_is_reused_without_faults() -> None:
    with allocator.keep_freed_memory() as applied:
        assert applied
        assert _faults_of_a_fresh_block() < 10
    # Afterwards glibc's defaults are back: large blocks are mapped afresh again.
    assert _faults_of_a_fresh_block() > 20


def test_user_tuning_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    assert allocator.user_tuned() and not allocator.applies()
    with allocator.keep_freed_memory() as applied:
        assert not applied
    monkeypatch.delenv("MALLOC_MMAP_MAX_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert allocator.user_tuned()
