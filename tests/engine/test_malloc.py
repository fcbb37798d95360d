"""nst_utils.engine.malloc: freed memory is reused within a run, a fragmenting heap falls back to
glibc's defaults instead of growing, and the process is left as it was. The run loop
(:func:`nst_utils.loop.run`) keeps freed memory and checks the heap after every step; the
optimiser on its own leaves malloc alone."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import rand

from nst_utils.config import PAPER
from nst_utils.engine import malloc
from nst_utils.images import resize
from nst_utils.optimize import optimize
from nst_utils.recipes import reconstruct_content

pytestmark = pytest.mark.skipif(not malloc.applies(), reason="needs glibc >= 2.33 and no MALLOC_* tuning")

MIB = 2**20
#: Tensor sizes (MiB) alive together in one simulated evaluation, like a 512 px run's activations.
ACTIVATIONS = (64, 64, 32, 16)


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _in_a_fresh_interpreter(script: str) -> dict:
    """Run ``script`` in a new Python process and return the JSON it prints."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _evaluation_faults() -> int:
    """Faults of one simulated evaluation: the activations allocated and touched, then all freed."""
    before = _minor_faults()
    activations = [torch.ones(mb * MIB // 4) for mb in ACTIVATIONS]
    del activations
    return _minor_faults() - before


def test_inside_a_run_evaluations_fault_in_little() -> None:
    """In this process, with whatever earlier tests left in its heap."""
    evaluation_pages = sum(ACTIVATIONS) * MIB // resource.getpagesize()
    with malloc.keep_freed_memory() as kept:
        assert kept and kept.applied
        faults = [_evaluation_faults() for _ in range(10)]
    assert not kept and not kept.fell_back
    # The first evaluations grow the heap; how many it takes depends on what the process
    # allocated before (a freed aligned block cannot take the next one of its size unless it
    # merges with a free neighbour): measured 1-4 evaluations' worth of 64 MB blocks in this test
    # suite, then none. With glibc's defaults each evaluation faults in its two 64 MB blocks
    # afresh: 10 x 2/3 of evaluation_pages.
    assert sum(faults) < 3 * evaluation_pages, faults
    assert sum(faults[-3:]) < evaluation_pages / 2, faults


# Before and after a run, glibc's defaults: whether a 64 MB block is faulted in afresh then
# depends on the heap (with defaults, a large enough resident free chunk is reused too), so this
# runs in a fresh interpreter, whose heap holds no such chunk.
_BEFORE_AND_AFTER = textwrap.dedent("""
    import json, resource, torch
    from nst_utils.engine import malloc
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def block_faults():
        torch.ones(64 * 2**20 // 4)  # allocated, touched, freed
        before = faults()
        torch.ones(64 * 2**20 // 4)
        return faults() - before
    out = dict(before=block_faults())
    with malloc.keep_freed_memory():
        out["inside"] = [block_faults() for _ in range(3)]
    out["after"] = block_faults()
    print(json.dumps(out))
""")


def test_large_blocks_are_faulted_in_afresh_except_during_a_run() -> None:
    faults = _in_a_fresh_interpreter(_BEFORE_AND_AFTER)
    # glibc maps a 64 MB block afresh each time: thousands of 4 KiB faults (or 2 MiB ones with THP).
    assert faults["before"] > 20, faults
    assert faults["inside"][-1] < 10, faults
    # Afterwards glibc's defaults are back, and the run's memory was handed back (trimmed).
    assert faults["after"] > 20, faults


# Run in a fresh interpreter, so the limit (set from the free memory held after the first step)
# does not depend on what earlier tests left in this process's heap. Real fragmentation (a
# small allocation that outlives the step, placed right after a large block) depends on where
# glibc happens to put things; a block larger than any before it grows the heap every time.
_GROWING_RUN = textwrap.dedent("""
    import json, os, torch
    from nst_utils.engine import malloc
    steps = []
    with malloc.keep_freed_memory() as kept:
        for step in range(1, 40):
            torch.ones(step * {step_mib} * 2**20 // 4)  # allocated, touched, freed into the heap
            held = malloc.free_bytes_held()
            kept.check()
            with open("/proc/self/statm") as statm:
                resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            steps.append(dict(held=held, resident=resident, fell_back=kept.fell_back))
            if sum(s["fell_back"] for s in steps) > 3:
                break
        limit, kept_at_end = kept.limit, bool(kept)
    print(json.dumps(dict(limit=limit, steps=steps, kept_at_end=kept_at_end)))
""")


def test_a_growing_heap_falls_back_instead_of_growing_further() -> None:
    step_mib = 64
    run = _in_a_fresh_interpreter(_GROWING_RUN.format(step_mib=step_mib))
    steps, limit = run["steps"], run["limit"]
    held = [s["held"] for s in steps]
    first_fallback = next(i for i, s in enumerate(steps) if s["fell_back"])
    assert first_fallback >= 2, steps  # the first check sets the limit
    # Kept while under the limit (and it did grow), fell back at the first step past it.
    assert held[first_fallback - 1] > held[0] + step_mib * MIB, held
    assert all(h <= limit for h in held[:first_fallback]) and held[first_fallback] > limit, (limit, held)
    # The fallback handed the free memory back, and with glibc's defaults the heap stopped growing.
    assert steps[first_fallback]["resident"] < steps[first_fallback - 1]["resident"] - step_mib * MIB, steps
    assert all(h <= held[first_fallback] for h in held[first_fallback:]), held
    assert not run["kept_at_end"]


def test_the_run_loop_checks_the_heap_after_every_step(monkeypatch: pytest.MonkeyPatch, photo) -> None:
    calls: list[int] = []
    monkeypatch.setattr(malloc.KeptMemory, "check", lambda self: calls.append(1))
    config = PAPER.replace(network_weights="random", device="cpu", optimizer="adam", steps=4)
    out = reconstruct_content(resize(photo, 32), "relu1_2", config=config)
    assert out.steps == 4 and len(calls) == 4


def test_plain_optimize_leaves_malloc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way into the module (settings, the state object, its check) is watched."""
    touched: list[str] = []
    real_init = malloc.KeptMemory.__init__

    def init(self, libc) -> None:
        touched.append("KeptMemory")
        real_init(self, libc)

    monkeypatch.setattr(malloc, "_glibc", lambda: touched.append("glibc"))  # None: nothing to change
    monkeypatch.setattr(malloc.KeptMemory, "__init__", init)
    monkeypatch.setattr(malloc.KeptMemory, "check", lambda self: touched.append("check"))

    def objective(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"content": ((x - 0.3) ** 2).sum()}

    out = optimize(objective, rand(1, 3, 8, 8), steps=4, optimizer="adam")
    assert out.steps == 4 and touched == []
    with malloc.keep_freed_memory() as kept:  # the watch itself works
        kept.check()
    assert touched == ["glibc", "KeptMemory", "check"]


def test_user_tuning_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    assert malloc.user_tuned() and not malloc.applies()
    with malloc.keep_freed_memory() as kept:
        assert not kept and not kept.applied
        kept.check()  # nothing to check
        assert not kept.fell_back
    monkeypatch.delenv("MALLOC_MMAP_MAX_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert malloc.user_tuned()
