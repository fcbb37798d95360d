"""``python -m benchmarks.time_to_picture``: how long until the finished picture, on this machine.

For each content/style pair and size, three runs, each in a fresh process:

* **plain**: today's single level at the size, 500 L-BFGS steps from white noise, no stopping
  rule (``pyramid=(), plateau_tol=0``). Its final total loss ``L_500`` defines "finished": the
  target is ``1.25 * L_500``;
* **default**: ``nst.transfer`` at the package's defaults (the coarse-to-fine schedule with its
  stopping rule), with the time estimate the command line prints before it starts;
* **naive**: the tutorial-style reference of :mod:`.naive` (the whole VGG-19 every step,
  ``torch.optim.LBFGS`` with clamping), stopped once it reaches the target or after a time cap.

The time to the picture is the wall time from the call (network build and targets included)
to the first step of the full-size level whose loss is within the target. The losses are all
taken on the full-size objective, so they compare. Writes ``time_to_picture.md`` (with
side-by-side pictures in ``images/``) and the raw ``time_to_picture.json``.

Examples::

    python -m benchmarks.time_to_picture                       # 3 pairs x 256, 512 px (~45 min)
    python -m benchmarks.time_to_picture --pairs 1 --sizes 512 --keep   # add a row to the report
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: (content, style, alpha/beta): the paper's Fig. 3 C at its own ratio, and two other pairs.
PAIRS: list[tuple[str, str, float]] = [
    ("tubingen", "starry_night", 8e-4),
    ("hopper", "mosaic", 1e-3),
    ("tubingen", "scream", 5e-3),
]
PLAIN_STEPS = 500
#: "Finished": a total loss within this factor of the plain run's final loss.
TARGET = 1.25
#: The naive reference stops after this many times the plain run's time to the target.
NAIVE_CAP = 1.0


# ---- one run, in a child process ----------------------------------------------------------------


def _run_nst(spec: dict[str, Any]) -> dict[str, Any]:
    import nst_utils as nst
    from nst_utils.engine import forecast

    content, style, size, ratio = spec["content"], spec["style"], spec["size"], spec["ratio"]
    if spec["row"] == "plain":  # the paper's schedule: white noise, one level, every step
        cfg = nst.PAPER.replace(size=size, ratio=ratio, steps=PLAIN_STEPS)
    else:
        cfg = nst.DEFAULT.replace(size=size, ratio=ratio)
    start = time.perf_counter()
    photo = nst.load_image(content, size)
    said = forecast(cfg, tuple(photo.shape[-2:]))
    estimate_seconds = time.perf_counter() - start  # the calibration, when not cached yet
    rows: list[tuple[float, int, float]] = []
    start = time.perf_counter()
    result = nst.transfer(photo, style, cfg, callbacks=[
        lambda info: rows.append((time.perf_counter() - start, info.level, info.total))])
    nst.save_image(result.image, spec["image"])
    return {"times": [r[0] for r in rows], "levels": [r[1] for r in rows], "losses": [r[2] for r in rows],
            "final_level": result.segments[-1].level, "seconds": time.perf_counter() - start,
            "estimate": said.seconds, "estimate_at_most": said.at_most, "estimate_overhead": estimate_seconds,
            "ran_levels": result.levels()}


def _run_naive(spec: dict[str, Any]) -> dict[str, Any]:
    import nst_utils as nst

    from . import naive

    cfg = nst.TransferConfig(size=spec["size"], ratio=spec["ratio"], device="cpu")
    start = time.perf_counter()
    content, style = nst.recipes.load_pair(spec["content"], spec["style"], cfg)
    model, content_losses, style_losses = naive.build_model(
        content, style, cfg.content_layers, cfg.style_layers, cfg.pooling)
    image = nst.initial_image(cfg.init, content=content, seed=cfg.seed)
    rows: list[tuple[float, float]] = []

    def record(_count: int, loss: float) -> bool:
        rows.append((time.perf_counter() - start, loss))
        return loss <= spec["target"] or rows[-1][0] > spec["cap_seconds"]

    final = naive.run_style_transfer(model, content_losses, style_losses, image, steps=10**6,
                                     content_weight=cfg.content_weight, style_weight=cfg.style_weight,
                                     on_evaluation=record)
    nst.save_image(final, spec["image"])
    return {"times": [r[0] for r in rows], "levels": [0] * len(rows), "losses": [r[1] for r in rows],
            "final_level": 0, "seconds": time.perf_counter() - start}


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.time_to_picture", "--child", json.dumps(spec)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{spec['row']} run failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return json.loads(lines[-1])


def time_to(run: dict[str, Any], target: float) -> float | None:
    """Seconds until the first step of the run's full-size level within ``target``, or None."""
    for t, level, loss in zip(run["times"], run["levels"], run["losses"]):
        if level == run["final_level"] and loss <= target:
            return t
    return None


# ---- the protocol and the report -------------------------------------------------------------


def measure(pairs: list[tuple[str, str, float]], sizes: list[int], out: Path) -> list[dict[str, Any]]:
    (out / "images").mkdir(parents=True, exist_ok=True)
    results = []
    for content, style, ratio in pairs:
        for size in sizes:
            name = f"{content}_{style}_{size}"
            base = {"content": content, "style": style, "size": size, "ratio": ratio}
            runs = {}
            for row in ("plain", "default"):
                runs[row] = _child({**base, "row": row, "image": str(out / "images" / f"{name}_{row}.png")})
                print(f"{name} {row}: {runs[row]['seconds']:.1f} s", file=sys.stderr)
            target = TARGET * runs["plain"]["losses"][-1]
            cap = NAIVE_CAP * (time_to(runs["plain"], target) or runs["plain"]["seconds"])
            runs["naive"] = _child({**base, "row": "naive", "target": target, "cap_seconds": cap,
                                    "image": str(out / "images" / f"{name}_naive.png")})
            results.append({**base, "target": target, "runs": runs})
            _side_by_side(out / "images", name)
    return results


def _side_by_side(folder: Path, name: str) -> None:
    """One JPEG of the three pictures side by side (the PNGs are removed: the report stays small)."""
    from PIL import Image

    rows = ("plain", "default", "naive")
    pictures = [Image.open(folder / f"{name}_{row}.png").convert("RGB") for row in rows]
    gap = 8
    width = sum(p.width for p in pictures) + gap * (len(pictures) - 1)
    sheet = Image.new("RGB", (width, max(p.height for p in pictures)), "white")
    x = 0
    for picture in pictures:
        sheet.paste(picture, (x, 0))
        x += picture.width + gap
    sheet.save(folder / f"{name}.jpg", quality=90)
    for row in rows:
        (folder / f"{name}_{row}.png").unlink()


def _intro(machine: dict[str, Any]) -> str:
    return (
        f"`python -m benchmarks.time_to_picture`, {machine.get('date', '?')}, on {machine.get('cpu', '?')} "
        f"({machine.get('torch_threads', '?')} threads). Finished = a total loss within {TARGET}x the "
        f"plain run's loss after {PLAIN_STEPS} steps at the same size; the time runs from the call (network "
        "and targets included) to the first full-size step within it. *plain*: one level, 500 steps from "
        "noise, no stopping rule (`nst.PAPER`); *default*: `nst.transfer` at the package's defaults "
        "(from the photograph, the stopping rule, coarse levels where the size calls for them); *naive*: the "
        f"tutorial-style reference, stopped at the target or after {NAIVE_CAP}x the plain run's time to it. "
        "*estimate*: what `nst transfer` prints before the default run starts; its error against that run's "
        "whole time."
    )


def _row(r: dict[str, Any], row: str) -> str:
    run = r["runs"][row]
    reached = time_to(run, r["target"])
    final_loss = run["losses"][-1] / r["runs"]["plain"]["losses"][-1]
    estimate = error = ""
    if "estimate" in run:
        estimate = f"{run['estimate']:.0f} s"
        error = f"{100 * (run['estimate'] / run['seconds'] - 1):+.0f} %"
    when = f"{reached:.1f} s" if reached is not None else f"not reached in {run['seconds']:.0f} s"
    cells = [f"{r['content']} x {r['style']}", str(r["size"]), row, when, str(len(run["times"])),
             f"{run['seconds']:.1f} s", f"{final_loss:.2f}", estimate, error]
    return "| " + " | ".join(cells) + " |"


def report(results: list[dict[str, Any]], startup: dict[str, float] | None, machine: dict[str, Any]) -> str:
    header = ["pair", "size", "run", "time to the picture", "steps", "whole run", "final loss / L_500",
              "estimate", "estimate error"]
    lines = ["# Time to the finished picture", "", _intro(machine), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [_row(r, row) for r in results for row in ("plain", "default", "naive")]
    if startup:
        lines += ["", (f"The command line without a run (median of 5 fresh processes): `nst --help` "
                       f"{startup['help']:.2f} s, a missing input file {startup['missing_file']:.2f} s.")]
    lines += ["", "Left to right: plain, default, naive.", ""]
    for r in results:
        name = f"{r['content']}_{r['style']}_{r['size']}"
        title = f"**{r['content']} x {r['style']}, {r['size']} px**"
        lines += [title, "", f"![{name}](images/{name}.jpg)", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.time_to_picture",
                                description=(__doc__ or "").split("\n")[0])
    named = "; ".join(f"{i + 1} {c} x {s}" for i, (c, s, _) in enumerate(PAIRS))
    p.add_argument("--pairs", default=",".join(str(i + 1) for i in range(len(PAIRS))),
                   help=f"which pairs, by number: {named}")
    p.add_argument("--sizes", default="256,512", help="longest sides, comma-separated (%(default)s)")
    p.add_argument("--out", type=Path, default=HERE, help="where the report goes (%(default)s)")
    p.add_argument("--keep", action="store_true", help="keep the other pairs' and sizes' earlier results")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(_run_naive(spec) if spec["row"] == "naive" else _run_nst(spec)))
        return 0
    import torch

    from .machine import describe
    from .startup import cli_startup_seconds

    pairs = [PAIRS[int(i) - 1] for i in args.pairs.split(",") if i.strip()]
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    machine = describe(torch.device("cpu"))
    startup = cli_startup_seconds()
    results = measure(pairs, sizes, args.out)
    raw = args.out / "time_to_picture.json"
    if args.keep and raw.exists():  # earlier pairs and sizes stay, measured ones are replaced
        measured = {(r["content"], r["style"], r["size"]) for r in results}
        results = [r for r in json.loads(raw.read_text())["results"]
                   if (r["content"], r["style"], r["size"]) not in measured] + results
    raw.write_text(json.dumps({"machine": machine, "startup": startup, "results": results}, indent=1))
    (args.out / "time_to_picture.md").write_text(report(results, startup, machine) + "\n")
    print(f"wrote {args.out / 'time_to_picture.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
