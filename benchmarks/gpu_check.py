"""What a GPU run of the package does, in one table (``benchmarks/gpu_check.sh`` runs it).

On a CUDA machine: 300 L-BFGS steps at 512 px in float32 and under bfloat16 autocast (s/step,
s/eval, loss), the memory estimate against ``torch.cuda.max_memory_allocated``, and the
interactive panel's run loop at 512 px with the ratio changed mid-run (it must restart from
the current image and keep going). Prints a markdown table; exits 1 when a check fails.

    python -m benchmarks.gpu_check [--steps 300] [--size 512] [--device cuda]

``--device cpu`` runs the same checks on the CPU (the tests do, at a tiny size, so the script
works the day a GPU is there); the memory columns then compare with peak private memory.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import nst_utils as nst
from nst_utils.engine.memory import estimate_peak_memory, peak_private_memory

CONTENT, STYLE = "tubingen", "starry_night"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak(device: str) -> int:
    return torch.cuda.max_memory_allocated() if device == "cuda" else peak_private_memory()


def _timed_eval(result: nst.RunResult, cfg: nst.TransferConfig, repeats: int = 5) -> float:
    """Median seconds of one evaluation (forward + image gradient) of the run's objective."""
    extractor = result.extractor
    objective = nst.MatchingObjective(
        extractor, nst.content_targets(extractor, result.content, cfg.content_layers),
        nst.style_targets(extractor, result.style, cfg.style_layers), content_weight=cfg.content_weight)
    times = []
    for _ in range(repeats):
        x = result.image.detach().clone().requires_grad_(True)
        _sync(cfg.device)
        start = time.perf_counter()
        sum(objective(x).values()).backward()
        _sync(cfg.device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def transfer_row(size: int, steps: int, precision: str, device: str) -> dict:
    cfg = nst.PAPER.replace(size=size, steps=steps, device=device, precision=precision)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    start = time.perf_counter()
    result = nst.transfer(CONTENT, STYLE, cfg)
    _sync(device)
    seconds = time.perf_counter() - start
    peak = _peak(device)
    estimate = estimate_peak_memory(cfg, tuple(result.image.shape[-2:]), result.machine)
    return {
        "check": f"transfer {size} px, {precision}", "steps": result.steps,
        "s/step": seconds / result.steps, "s/eval": _timed_eval(result, cfg),
        "evals/step": result.evaluations / result.steps, "loss": result.best_total,
        "peak MiB": peak / 2**20, "estimate MiB": estimate / 2**20,
        # On CUDA the estimate must bound the measured peak; the CPU's peak is the whole process's.
        "ok": result.steps == steps and (device != "cuda" or estimate >= peak),
    }


def panel_row(size: int, steps: int, device: str) -> dict:
    """The panel's loop (TransferPanel.run_sync) with α/β moved from 1e-3 to 1e-2 at one third."""
    from nst_utils.widgets import TransferPanel

    panel = TransferPanel(CONTENT, STYLE, config=nst.PAPER.replace(size=size, steps=steps, device=device),
                          sizes=(size,))
    change_at = steps // 3

    def move_slider(change) -> None:
        if change["new"].startswith(f"running · step {change_at}/"):
            panel.ratio_slider.value = 1e-2

    panel.status.observe(move_slider, "value")
    start = time.perf_counter()
    result = panel.run_sync()
    seconds = time.perf_counter() - start
    ok = (result.steps == steps and panel.restarts == [change_at + 1]
          and result.segments[-1].config.ratio == 1e-2)
    return {"check": f"panel {size} px, ratio 1e-3 -> 1e-2 at step {change_at}", "steps": result.steps,
            "s/step": seconds / result.steps, "evals/step": result.evaluations / result.steps,
            "loss": result.best_total, "ok": ok}


def controls_row(size: int, steps: int, device: str) -> dict:
    """Chapter 4's controls on the device: two styles split at 40 % (masks made on the host) with
    luminance-only transfer; the result must keep the photograph's chroma."""
    from nst_utils.color import rgb_to_yiq
    from nst_utils.masks import split_masks

    cfg = nst.PAPER.replace(size=size, steps=steps, device=device, preserve_color="luminance")
    photo = nst.load_image(CONTENT, size)
    _sync(device)
    start = time.perf_counter()
    result = nst.transfer(photo, ["scream", STYLE], cfg, masks=split_masks(tuple(photo.shape[-2:]), 0.4))
    _sync(device)
    seconds = time.perf_counter() - start
    chroma = (rgb_to_yiq(result.image.cpu())[:, 1:] - rgb_to_yiq(photo)[:, 1:]).abs().max().item()
    return {"check": f"two regions + luminance only {size} px", "steps": result.steps,
            "s/step": seconds / result.steps, "evals/step": result.evaluations / result.steps,
            "loss": result.best_total, "ok": result.steps == steps and chroma < 1e-3}


def table(rows: list[dict]) -> str:
    columns = ["check", "steps", "s/step", "s/eval", "evals/step", "loss", "peak MiB", "estimate MiB", "ok"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [row.get(c, "") for c in columns]
        lines.append("| " + " | ".join(f"{c:.4g}" if isinstance(c, float) else str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; nothing to check", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"device: {name} · torch {torch.__version__} · nst_utils {nst.__version__}")
    rows = [transfer_row(args.size, args.steps, p, args.device) for p in ("float32", "bfloat16")]
    rows.append(panel_row(args.size, min(args.steps, 90), args.device))
    rows.append(controls_row(args.size, min(args.steps, 90), args.device))
    print(table(rows))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
