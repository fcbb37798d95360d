"""The markdown table: one row per (size, implementation, precision), then the machine and notes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MIB = 2**20


def _fmt(value: float | None, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def _quality(row: Mapping[str, Any]) -> str:
    if row.get("threshold") is None:
        return "–"
    t = row.get("time_to_quality_s")
    if t is None:
        return f"not reached in {row['steps_run']} steps"
    return f"{t:.1f}"


def table(rows: Sequence[Mapping[str, Any]], floors: Mapping[int, Mapping[str, float]]) -> str:
    """Rows of child results as a markdown table; ``floors[size][dtype]`` in s/evaluation.

    Every row of a size and dtype is held to the same floor, the network's analytic FLOPs
    (direct convolutions): the work both implementations are asked to do. A Winograd row does
    fewer multiplications than that count, so it may come out below 1.0x.
    """
    head = ("| size | implementation | precision | s/step (median) | s/eval (median) | evals/step | "
            "outside eval s/step (share) | floor s/eval | eval / floor | step / floor | peak memory MiB | "
            "time to quality s | loss at end |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        name = "naive reference" if row["impl"] != "nst" else (
            "nst_utils (Winograd)" if row.get("winograd") else "nst_utils (direct conv)")
        if row.get("optimizer") == "lbfgs-scipy":
            name += ", SciPy L-BFGS-B"
        if row.get("pyramid"):
            name += f", coarse-to-fine from {row['pyramid'][0]} px ({row['pyramid_steps']} steps)"
        if row.get("target"):
            name += f", timed to {row['target']}"
        floor = floors.get(row["size"], {}).get(row["dtype"])
        step, evaluation = row.get("s_per_step"), row.get("s_per_eval")
        lines.append(
            f"| {row['size']} | {name} | {row['precision']} ({row['dtype']}) | {_fmt(step, '.3f')} | "
            f"{_fmt(evaluation, '.3f')} | {row['evals_per_step']:.2f} | {_outside(row)} | "
            f"{_fmt(floor, '.3f')} | {_ratio(evaluation, floor)} | {_ratio(step, floor)} | "
            f"{row['peak_bytes'] / MIB:.0f} | {_quality(row)} | {_fmt(row.get('final_loss'), '.4g')} |"
        )
    return "\n".join(lines)


def _outside(row: Mapping[str, Any]) -> str:
    outside, step = row.get("s_outside_eval_per_step"), row.get("s_per_step")
    if outside is None or not step:
        return "–"
    return f"{outside:.3f} ({outside / step:.0%})"


def _ratio(value: float | None, floor: float | None) -> str:
    return f"{value / floor:.2f}x" if value and floor else "–"


def winograd_notes(rows: Sequence[Mapping[str, Any]], floors: Mapping[int, Mapping[str, float]]) -> list[str]:
    """For each Winograd row, its evaluation against the FLOPs Winograd actually executes."""
    notes = []
    for row in rows:
        floor = floors.get(row["size"], {}).get("float32 winograd")
        if row.get("winograd") and floor and row.get("s_per_eval") and not row.get("pyramid") \
                and not row.get("target"):
            notes.append(
                f"{row['size']} px, Winograd: the FLOPs it executes (transforms counted as dense "
                f"matrices) give a floor of {floor:.3f} s/eval; its evaluation is "
                f"{row['s_per_eval'] / floor:.2f}x that (the tile transforms are memory-bound)."
            )
    return notes


def document(rows: Sequence[Mapping[str, Any]], floors: Mapping[int, Mapping[str, float]],
             machine: Mapping[str, Any], throughput: Mapping[str, float], settings: Mapping[str, Any],
             notes: Sequence[str] = ()) -> str:
    """The whole ``results.md``: title, machine, settings, table, throughput, protocol notes."""
    bf16 = "yes" if machine.get("bf16_native") else "no (emulated: slower than float32)"
    where = machine.get("gpu") or machine["cpu"]
    parts = [
        "# nst_utils benchmark",
        "",
        (f"Machine: {where}; {machine['cores']} cores ({machine['torch_threads']} torch threads); "
        f"device {machine['device']}; torch {machine['torch']}; Python {machine['python']}; "
        f"native bfloat16: {bf16}; {machine['date']}; load average at start {machine['load_average']}."),
        "",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ".",
        "",
        table(rows, floors),
        "",
        "Throughput measured in this run (3x3 conv 256->256 at 128x128; 2048^2 matmul; smaller where "
        "bfloat16 is emulated), GFLOP/s: "
        + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in throughput.items()) + ".",
        "",
        "How to read it:",
        "",
        ("* s/step: median wall time of one optimiser step after the warm-up steps (an L-BFGS-B "
        "step of nst_utils is one iteration, evals/step evaluations; a step of the reference is one "
        "closure evaluation of torch.optim.LBFGS, which without line search is one iteration)."),
        ("* s/eval: median of 5 evaluations of the objective (forward + image gradient) timed on "
        "their own after the run; the step adds the optimiser's own work (scipy's L-BFGS-B update, "
        "single-threaded, grows with history x pixels; torch.optim.LBFGS's for the reference)."),
        ("* floor s/eval: analytic FLOPs of one forward + image-gradient backward through the layers "
        "used, direct 3x3 convolutions and Gram matrices (see benchmarks/flops.py), over the conv "
        "throughput above for the row's dtype: the same floor for every implementation at a size. "
        "Winograd F(4x4,3x3) multiplies less than that count, so a Winograd row can go below 1x."),
        ("* peak memory: peak resident memory of the row's own process less its file-backed pages "
        "(VmHWM - RssFile: Python, torch and the model included; shared-library pages left out, "
        "their count depends on the page cache); torch.cuda.max_memory_allocated on CUDA. "
        "Each row ran in a fresh process."),
        ("* time to quality: optimisation wall time (network and targets built beforehand) until "
        "nst_utils' float32 objective at full size is at or below the best value the reference "
        "reached in its first quality-steps steps; for a float32 run its own loss is that objective "
        "(tests/test_benchmarks.py checks the two implementations evaluate the same loss), other "
        "precisions are judged by a separate float32 evaluation left out of the clock."),
        ("* coarse-to-fine rows first optimise at half the size, then upsample and continue at full "
        "size; their clock includes the coarse level and its setup, their steps and losses are the "
        "full-size level's."),
        *[f"* {note}" for note in (*winograd_notes(rows, floors), *notes)],
        "",
    ]
    return "\n".join(parts)
