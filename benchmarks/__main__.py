"""``python -m benchmarks``: nst_utils against the naive reference, one process per configuration.

Examples::

    python -m benchmarks                                   # 128, 256, 512 px; results.md
    python -m benchmarks --sizes 128,256 --steps 5 --quality-steps 50
    python -m benchmarks --quality-steps 300               # the full protocol (512 px: ~1 h on a laptop CPU)
    python -m benchmarks --memory-only --sizes 128,256,512,1024   # memory_calibration.json

Per size the parent runs the reference first (its best loss over ``--quality-steps`` steps is the
quality threshold), then ``nst_utils`` once per precision, each in a fresh process, and finally
writes the markdown table (and the raw JSON next to it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import nst_utils as nst
from nst_utils.config import CONV_ALGORITHMS, MIN_SIZE, OPTIMIZERS, PRECISIONS
from nst_utils.device import resolve_device
from nst_utils.engine import plan
from nst_utils.engine.hardware import native_bfloat16

from . import flops, machine, report
from .memory_calibration import CALIBRATION_FILE, calibrate, run_child, write_calibration

HERE = Path(__file__).resolve().parent


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes, got {text!r}") from None
    if not sizes or min(sizes) < 32:
        raise argparse.ArgumentTypeError("sizes must be at least 32 pixels")
    return sizes


def _precisions(text: str) -> list[str]:
    given = [p.strip() for p in text.split(",") if p.strip()]
    names = [nst.PAPER.precision if p == "default" else p for p in given]
    for name in names:
        if name not in PRECISIONS:
            raise argparse.ArgumentTypeError(
                f"unknown precision {name!r}; expected default or one of {', '.join(PRECISIONS)}")
    return list(dict.fromkeys(names))


def _conv_algorithms(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in CONV_ALGORITHMS:
            raise argparse.ArgumentTypeError(
                f"unknown conv algorithm {name!r}; expected one of {', '.join(CONV_ALGORITHMS)}")
    return list(dict.fromkeys(names))


def _optimizers(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in OPTIMIZERS:
            raise argparse.ArgumentTypeError(
                f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=_sizes, default=[128, 256, 512], help="image sides (128,256,512)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per run (%(default)s)")
    p.add_argument("--warmup", type=int, default=5,
                   help="first steps left out of the median: L-BFGS-B finds its scale, allocations settle "
                        "(%(default)s)")
    p.add_argument("--quality-steps", type=int, default=100,
                   help="reference steps that set the quality threshold; 0 skips it "
                        "(%(default)s; paper-like: 300)")
    p.add_argument("--quality-cap", type=float, default=2.0,
                   help="nst_utils gives up after this many times --quality-steps (%(default)s)")
    p.add_argument("--precisions", type=_precisions, default=_precisions("default,auto,float32"),
                   help="nst_utils precisions; 'default' is nst.PAPER's (default,auto,float32)")
    p.add_argument("--conv-algorithms", type=_conv_algorithms, default=_conv_algorithms("auto,direct"),
                   help="nst_utils convolution algorithms; direct shows what Winograd adds (auto,direct)")
    p.add_argument("--optimizers", type=_optimizers, default=_optimizers("lbfgs,lbfgs-scipy"),
                   help="nst_utils optimisers; the first runs every variant, the others the default one "
                        "(lbfgs,lbfgs-scipy)")
    p.add_argument("--pyramid-steps", type=int, default=100,
                   help="also run nst_utils coarse-to-fine: this many steps at half size first; 0: don't "
                        "(%(default)s)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--impl", default="naive,nst", help="implementations to run (naive,nst)")
    p.add_argument("--out", type=Path, default=HERE / "results.md", help="markdown output (%(default)s)")
    p.add_argument("--memory-only", action="store_true",
                   help=f"measure nst.transfer's peak memory per size and write {CALIBRATION_FILE.name}")
    p.add_argument("--timeout", type=float, default=None, help="seconds per child process")
    return p


def measure_throughput(device: torch.device) -> dict[str, float]:
    """Conv and matmul FLOP/s per dtype; emulated bfloat16 is measured small (it is slow)."""
    out = {}
    emulated = not native_bfloat16(device)
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        small = emulated and dtype == torch.bfloat16
        out[f"conv {name}"] = flops.conv_throughput(dtype, device, side=32 if small else 128)
        out[f"matmul {name}"] = flops.matmul_throughput(dtype, device, n=512 if small else 2048)
    return out


def floors_for(sizes: list[int], throughput: dict[str, float]) -> dict[int, dict[str, float]]:
    """``floors[size][key]`` in s/evaluation; key: the dtype, plus "float32 winograd"."""
    cfg = nst.PAPER
    out = {}
    for size in sizes:
        direct = flops.evaluation_flops((size, size), cfg.content_layers, cfg.style_layers)
        winograd = flops.evaluation_flops((size, size), cfg.content_layers, cfg.style_layers, winograd=True)
        out[size] = {dtype: direct / throughput[f"conv {dtype}"] for dtype in ("float32", "bfloat16")}
        out[size]["float32 winograd"] = winograd / throughput["conv float32"]
    return out


def run_benchmark(args: argparse.Namespace, device: torch.device) -> list[dict]:
    impls = {part.strip() for part in args.impl.split(",")}
    on_device = nst.PAPER.replace(device=device.type)
    # Precisions that resolve to the same dtype on this device run once, under the first name.
    runs: dict[str, str] = {}
    for precision in args.precisions:
        runs.setdefault(plan(on_device.replace(precision=precision)).precision, precision)
    rows = []
    for size in args.sizes:
        base = {"size": size, "steps": args.steps, "warmup": args.warmup, "device": device.type}
        threshold = None
        if "naive" in impls:
            row = run_child({**base, "impl": "naive", "quality_steps": args.quality_steps}, args.timeout)
            threshold = row["threshold"]
            rows.append(row)
            print(f"{size} px naive: {row['s_per_step']:.3f} s/step", file=sys.stderr)
        if "nst" in impls:
            seen: set[tuple[str, str]] = set()
            for precision in runs.values():
                for algorithm in args.conv_algorithms:
                    spec = {**base, "impl": "nst", "precision": precision, "conv_algorithm": algorithm,
                            "optimizer": args.optimizers[0], "threshold": threshold,
                            "max_steps": int(args.quality_cap * args.quality_steps)}
                    variant = (precision, plan(on_device.replace(precision=precision,
                                                                 conv_algorithm=algorithm)).conv_algorithm)
                    if variant in seen:
                        continue  # "auto" resolved to the same algorithm as one already run
                    seen.add(variant)
                    row = run_child(spec, args.timeout)
                    rows.append(row)
                    print(f"{size} px nst {precision} {algorithm}: {row['s_per_step']:.3f} s/step",
                          file=sys.stderr)
            for optimizer in args.optimizers[1:]:  # the other optimisers with the default settings
                spec = {**base, "impl": "nst", "precision": args.precisions[0], "conv_algorithm": "auto",
                        "optimizer": optimizer, "threshold": threshold,
                        "max_steps": int(args.quality_cap * args.quality_steps)}
                row = run_child(spec, args.timeout)
                rows.append(row)
                print(f"{size} px nst {optimizer}: {row['s_per_step']:.3f} s/step", file=sys.stderr)
            if args.pyramid_steps and size // 2 >= MIN_SIZE:
                # The default algorithm and precision, one coarse level at half the size.
                spec = {**base, "impl": "nst", "precision": args.precisions[0], "conv_algorithm": "auto",
                        "pyramid": [size // 2], "pyramid_steps": args.pyramid_steps, "threshold": threshold,
                        "max_steps": int(args.quality_cap * args.quality_steps)}
                pyramid = run_child(spec, args.timeout)
                rows.append(pyramid)
                print(f"{size} px nst coarse-to-fine: {pyramid['time_to_quality_s']} s to quality",
                      file=sys.stderr)
                # What coarse-to-fine buys: the plain run's time to the loss the pyramid ended with.
                spec = {**spec, "pyramid": [], "threshold": pyramid["best_loss"]}
                row = run_child(spec, args.timeout)
                rows.append({**row, "target": "the coarse-to-fine row's loss"})
                print(f"{size} px nst to that loss: {row['time_to_quality_s']} s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    info = machine.describe(device)
    if args.memory_only:
        rows = calibrate(args.sizes, device=device.type)
        write_calibration(rows, info)
        for row in rows:
            print(f"{row['size']:5d} px: measured {row['peak_bytes'] / 2**20:.0f} MiB, "
                  f"estimated {row['estimate_bytes'] / 2**20:.0f} MiB ({row['error']:+.1%})")
        return 0
    throughput = measure_throughput(device)
    rows = run_benchmark(args, device)
    settings = {"paper layers": f"content {', '.join(nst.PAPER.content_layers)}; style "
                f"{', '.join(nst.PAPER.style_layers)}", "timed steps": args.steps, "warm-up": args.warmup,
                "quality steps": args.quality_steps, "nst_utils cap": f"{args.quality_cap:g}x quality steps"}
    notes = [f"load average at the end {[round(x, 2) for x in __import__('os').getloadavg()]}"]
    text = report.document(rows, floors_for(args.sizes, throughput), info, throughput, settings, notes)
    print(text)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(
        json.dumps({"machine": info, "throughput": throughput, "settings": settings, "runs": rows}, indent=2)
        + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
