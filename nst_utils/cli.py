"""Command line: ``nst transfer | content | style | samples`` (also ``python -m nst_utils``).

Exit status: 0 on success, 2 for bad input or usage (one line on stderr, no traceback, no
output file), 1 for a failure during the run, 130 when Ctrl-C stopped the optimisation (the
best image so far is still written).

Help, usage errors and unusable input files are answered at once: everything up to the run
needs only the standard library, the settings and PIL. PyTorch, which takes seconds to load,
is imported when a run starts (inside the functions that run it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Only modules that load without torch at the top (see the module docstring).
from .config import (
    COLOR_BASES,
    COLOR_METHODS,
    CONV_ALGORITHMS,
    DEFAULT,
    DEVICES,
    INITS,
    MASK_MODES,
    OPTIMIZERS,
    PADDINGS,
    POOLINGS,
    PRECISIONS,
    STYLE_SCALES,
    WEIGHT_SOURCES,
    TransferConfig,
)
from .image_files import ImageError, check_image_file, check_output_path
from .samples import SAMPLES, sample_name

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input or usage: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _number(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        wanted = "number >= 0" if allow_zero else "positive number"
        raise argparse.ArgumentTypeError(f"expected a {wanted}, got {text}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, allow_zero=False)


def _nonnegative_float(text: str) -> float:
    return _number(text, allow_zero=True)


def _layer_list(text: str) -> tuple[str, ...]:
    from .layers import check_layers

    try:
        layers = check_layers(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if not layers:
        raise argparse.ArgumentTypeError("expected at least one layer name")
    return layers


def _size_list(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(part) for part in text.split(",") if part.strip())


def _pyramid(text: str) -> tuple[int, ...] | str:
    """``auto`` (the default schedule), ``none`` (one level) or sizes such as ``128,256``."""
    if text.strip().lower() in ("auto", "none"):
        return "auto" if text.strip().lower() == "auto" else ()
    return _size_list(text)


def _fraction(text: str) -> float:
    value = _number(text, allow_zero=True)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def _weights_list(text: str) -> tuple[float, ...]:
    return tuple(_nonnegative_float(part) for part in text.split(",") if part.strip())


def _common(p: argparse.ArgumentParser, default_steps: int) -> None:
    p.add_argument("-o", "--output", required=True, type=Path, help="output PNG path")
    p.add_argument("--size", type=_positive_int, default=DEFAULT.size,
                   help="longest side in pixels (%(default)s)")
    p.add_argument("--steps", type=_positive_int, default=default_steps,
                   help="the most optimiser steps (of the last level with a pyramid) (%(default)s)")
    p.add_argument("--plateau-tol", type=_fraction, default=DEFAULT.plateau_tol,
                   help="stop a level once the loss improved by less than this (relative) over "
                        "--plateau-window steps; 0 runs every step (%(default)s)")
    p.add_argument("--plateau-window", type=_positive_int, default=DEFAULT.plateau_window,
                   help="steps over which --plateau-tol is judged (%(default)s)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULT.optimizer)
    p.add_argument("--history", type=_positive_int, default=DEFAULT.lbfgs_history, help="L-BFGS history")
    p.add_argument("--lr", type=_positive_float, default=DEFAULT.adam_lr, help="Adam learning rate")
    p.add_argument("--pooling", choices=POOLINGS, default=DEFAULT.pooling)
    p.add_argument("--padding", choices=PADDINGS, default=DEFAULT.padding,
                   help="border handling of the convolutions; circular gives textures that tile "
                        "(%(default)s)")
    p.add_argument("--network-weights", choices=WEIGHT_SOURCES, default=DEFAULT.network_weights,
                   help="where the network's weights come from: caffe (offline), torchvision (downloads "
                        "548 MB) or random (%(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT.seed)
    p.add_argument("--device", choices=DEVICES, default=DEFAULT.device)
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT.precision)
    p.add_argument("--conv-algorithm", choices=CONV_ALGORITHMS, default=DEFAULT.conv_algorithm,
                   help="auto: Winograd for the deep layers on a CPU in float32, else direct (%(default)s)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nst", description="Neural style transfer after Gatys, Ecker & Bethge (CVPR 2016).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("transfer", help="paint CONTENT in the style of STYLE")
    t.add_argument("content", help="content image: a path or a sample name (see 'nst samples')")
    t.add_argument("style", nargs="+", help="style image(s): paths or sample names; several are blended "
                   "(--style-blend) or given a region each (--mask, --split)")
    _common(t, DEFAULT.steps)
    t.add_argument("--ratio", type=_positive_float, default=None, help=f"alpha/beta ({DEFAULT.ratio:g})")
    t.add_argument("--content-weight", type=_positive_float, default=None,
                   help="alpha (sets the ratio with beta)")
    t.add_argument("--style-weight", type=_positive_float, default=None, help="beta (%(default)s means 1)")
    t.add_argument("--content-layers", type=_layer_list, default=DEFAULT.content_layers)
    t.add_argument("--style-layers", type=_layer_list, default=DEFAULT.style_layers)
    t.add_argument("--style-layer-weights", type=_weights_list, default=(), help="w_l per style layer")
    t.add_argument("--init", default=DEFAULT.init, help=f"{'|'.join(INITS)}|PATH ({DEFAULT.init})")
    t.add_argument("--tv-weight", type=_nonnegative_float, default=DEFAULT.tv_weight)
    t.add_argument("--style-scale", choices=STYLE_SCALES, default=DEFAULT.style_scale,
                   help="style resized to the content's size (paper) or kept at its own aspect")
    t.add_argument("--pyramid", type=_pyramid, default=DEFAULT.pyramid,
                   help="coarse-to-fine: auto (levels chosen from --size and --init), none (one level, "
                        "as in the paper) or the sizes to optimise at first, e.g. 256,512 before "
                        "--size 1024 (%(default)s)")
    t.add_argument("--pyramid-steps", type=_positive_int, default=DEFAULT.pyramid_steps,
                   help="the most steps at each coarser level (%(default)s)")
    t.add_argument("--preserve-color", choices=COLOR_METHODS, default=DEFAULT.preserve_color,
                   help="keep the content's colours: luminance-only transfer or colour histogram matching")
    t.add_argument("--color-basis", choices=COLOR_BASES, default=DEFAULT.color_basis,
                   help="histogram matching's transform (%(default)s)")
    t.add_argument("--style-blend", type=_weights_list, default=(), help="weights mixing several styles")
    t.add_argument("--mask", action="append", default=None, metavar="PATH",
                   help="one per style: where that style goes (white), drawn over the content at any size of "
                   "its aspect ratio")
    t.add_argument("--split", choices=("horizontal", "vertical"), default=None,
                   help="two styles: the first above (left of) the split, the second below (right)")
    t.add_argument("--split-at", type=_positive_float, default=0.5,
                   help="where --split cuts, 0..1 (%(default)s)")
    t.add_argument("--mask-mode", choices=MASK_MODES, default=DEFAULT.mask_mode,
                   help="masks at each layer: eroded inside the region (paper) or simply resized")

    c = sub.add_parser("content", help="reconstruct IMAGE from one layer's features (paper Fig. 1)")
    c.add_argument("image", help="a path or a sample name")
    c.add_argument("--layer", type=_layer_list, default=DEFAULT.content_layers)
    _common(c, 200)

    s = sub.add_parser("style", help="synthesise a texture from IMAGE's Gram matrices (paper Fig. 1)")
    s.add_argument("image", help="a path or a sample name")
    s.add_argument("--layers", type=_layer_list, default=DEFAULT.style_layers)
    s.add_argument("--layer-weights", type=_weights_list, default=(), help="w_l per layer")
    _common(s, 200)

    sub.add_parser("samples", help="list the images available offline by name")
    return parser


def _image_arguments(args: argparse.Namespace) -> list[str]:
    """Every image the command reads: IMAGE, or CONTENT, each STYLE, --init PATH and each --mask."""
    if args.command != "transfer":
        return [args.image]
    init = [] if args.init in INITS else [args.init]
    return [args.content, *args.style, *init, *(args.mask or [])]


def _check_output(args: argparse.Namespace) -> None:
    out = check_output_path(args.output)  # the checks save_image repeats, before a long run
    if not os.access(out.parent, os.W_OK):
        raise UsageError(f"{out}: folder {out.parent} is not writable")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out}: already exists; pass --overwrite to replace it")
    for source in _image_arguments(args):
        if Path(source).exists() and Path(source).resolve() == out.resolve():
            raise UsageError(f"{out}: output would overwrite an input image")


def _check_inputs(args: argparse.Namespace) -> None:
    """Each image argument names a sample or an image file PIL can read: a typo or a broken file
    is reported at once, not after torch has loaded. (The run reads the files again.)"""
    for source in _image_arguments(args):
        if sample_name(source) is None:  # "sample:NAME" with an unknown NAME raises here too
            check_image_file(source)


def _ratio_and_beta(args: argparse.Namespace) -> tuple[float, float]:
    beta = DEFAULT.style_weight if args.style_weight is None else args.style_weight
    if args.content_weight is not None:
        if args.ratio is not None:
            raise UsageError("give either --ratio or --content-weight, not both")
        return args.content_weight / beta, beta
    return (DEFAULT.ratio if args.ratio is None else args.ratio), beta


def _config(args: argparse.Namespace) -> TransferConfig:
    """Every command's settings as one config (a content run has no style layers, a style run
    no content layers)."""
    cfg = TransferConfig(
        size=args.size, steps=args.steps, optimizer=args.optimizer, lbfgs_history=args.history,
        adam_lr=args.lr, pooling=args.pooling, network_weights=args.network_weights, seed=args.seed,
        device=args.device, precision=args.precision, conv_algorithm=args.conv_algorithm,
        padding=args.padding, plateau_tol=args.plateau_tol, plateau_window=args.plateau_window,
    )
    if args.command == "content":  # from noise at one size, as the paper's Fig. 1
        if len(args.layer) != 1:
            raise UsageError("--layer takes exactly one layer")
        return cfg.replace(content_layers=args.layer, style_layers=(), init="noise", pyramid=())
    if args.command == "style":
        if args.layer_weights and len(args.layer_weights) != len(args.layers):
            given, layers = len(args.layer_weights), len(args.layers)
            raise UsageError(f"{given} --layer-weights given for {layers} --layers")
        return cfg.replace(content_layers=(), style_layers=args.layers,
                           style_layer_weights=args.layer_weights, init="noise", pyramid=())
    ratio, beta = _ratio_and_beta(args)
    return cfg.replace(
        ratio=ratio, style_weight=beta, content_layers=args.content_layers, style_layers=args.style_layers,
        style_layer_weights=args.style_layer_weights, tv_weight=args.tv_weight, init=args.init,
        style_scale=args.style_scale, pyramid=args.pyramid, pyramid_steps=args.pyramid_steps,
        preserve_color=args.preserve_color, color_basis=args.color_basis, style_blend=args.style_blend,
        mask_mode=args.mask_mode,
    )


def _check_regions(args: argparse.Namespace) -> None:
    """--mask and --split: one mask per style, or a split of two styles at a fraction in (0, 1)."""
    if args.command != "transfer":
        return
    if args.mask and args.split:
        raise UsageError("give either --mask or --split, not both")
    if args.split:
        if len(args.style) != 2:
            raise UsageError(f"--split needs exactly two styles, got {len(args.style)}")
        if not 0 < args.split_at < 1:
            raise UsageError(f"--split-at must lie between 0 and 1, got {args.split_at:g}")
    if args.mask and len(args.mask) != len(args.style):
        raise UsageError(f"{len(args.mask)} --mask given for {len(args.style)} styles; give one per style")


def _masks(args: argparse.Namespace, shape: tuple[int, int]) -> list | None:
    """The region masks (checked by :func:`_check_regions`): files, which the run scales to the
    content's size, or a split of ``shape``."""
    if args.split:
        from .masks import split_masks

        return split_masks(shape, args.split_at, args.split)
    return args.mask


def _execute(args: argparse.Namespace, cfg: TransferConfig, quiet: bool) -> tuple[Any, dict[str, Any], Any]:
    """Load the inputs, say how long the run will take, and run the command through the package's
    run loop; returns the result, a description of its inputs, and the forecast."""
    from .engine import build_extractor
    from .images import load_image
    from .recipes import reconstruct_content, synthesize_texture, transfer

    image = load_image(args.content if args.command == "transfer" else args.image, cfg.size)
    shape = tuple(image.shape[-2:])
    styles = args.style if args.command == "transfer" else []
    forecast = _forecast(args, cfg, shape, max(1, len(styles)), quiet)
    # The network for the machine the forecast planned: the run checks it against the config
    # instead of planning again, so what was announced is what runs.
    extractor = build_extractor(cfg, machine=forecast.machine)
    progress = None if quiet else _progress(args, cfg)
    callbacks = [progress] if progress else []
    try:
        if args.command == "transfer":
            style = styles if len(styles) > 1 else styles[0]
            result = transfer(image, style, cfg, masks=_masks(args, shape), extractor=extractor,
                              callbacks=callbacks)
            inputs = {"command": "transfer", "content": args.content, "style": style}
            if args.mask or args.split:
                inputs["masks"] = args.mask or f"{args.split} split at {args.split_at:g}"
        elif args.command == "content":
            result = reconstruct_content(image, cfg.content_layers[0], config=cfg, extractor=extractor,
                                         callbacks=callbacks)
            inputs = {"command": args.command, "image": args.image}
        else:
            result = synthesize_texture(image, config=cfg, extractor=extractor, callbacks=callbacks)
            inputs = {"command": args.command, "image": args.image}
    finally:
        if progress is not None:
            progress.close()
    return result, inputs, forecast


def _forecast(args: argparse.Namespace, cfg: TransferConfig, shape: tuple[int, int], styles: int,
              quiet: bool) -> Any:
    """The run's :class:`~nst_utils.engine.Forecast`, said on stderr before it starts (unless --quiet)."""
    from .engine import forecast

    said = forecast(cfg, shape, styles)
    if said.too_large:
        raise UsageError(said.too_large)
    if not quiet:
        levels = " -> ".join(f"{side} px" for side, _ in cfg.levels())
        print(f"nst: {args.command} {shape[1]}x{shape[0]} px ({levels}) on {said.machine.device}: about "
              f"{_duration(said.seconds)} (at most {_duration(said.at_most)}), "
              f"peak memory about {said.memory / 2**20:.0f} MiB", file=sys.stderr)
    return said


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _progress(args: argparse.Namespace, cfg: TransferConfig) -> Any:
    """A progress bar over the most steps of every level (a level that converges ends early)."""
    from .callbacks import ProgressBar

    return ProgressBar(sum(steps for _, steps in cfg.levels()), desc=args.command)


def _summary(result: Any, inputs: dict[str, Any], out: Path, said: Any) -> dict[str, Any]:
    from .engine import peak_memory

    return {
        "output": str(out),
        **inputs,
        **result.metadata(),
        "initial_loss": result.history[0].losses if result.history else {},
        "best_total": result.best_total,
        "seconds": round(result.seconds, 3),
        "estimated_seconds": round(said.seconds, 1),
        "estimated_seconds_at_most": round(said.at_most, 1),
        "seconds_per_step": round(result.seconds / max(result.steps, 1), 4),
        "peak_memory_mb": round(peak_memory(result.image.device) / 2**20, 1),
        "estimated_peak_memory_mb": (round(result.estimated_memory / 2**20, 1)
                                     if getattr(result, "estimated_memory", None) else None),
        "stopped": result.stopped,
    }


def _list_samples() -> int:
    for name, description in SAMPLES.items():
        print(f"{name:12s} {description}")
    return EXIT_OK


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run; returns the exit status (raises nothing for user errors)."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "samples":
            return _list_samples()
        _check_output(args)
        cfg = _config(args)
        _check_regions(args)
        _check_inputs(args)
        result, inputs, said = _execute(args, cfg, args.quiet)
    except (UsageError, ImageError, ValueError) as err:
        print(f"nst: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("nst: interrupted before optimisation started; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 (a failure during the run: one line, no traceback)
        print(f"nst: failed: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return _finish(args, result, inputs, said)


def _finish(args: argparse.Namespace, result: Any, inputs: dict[str, Any], said: Any) -> int:
    from .images import save_image

    summary = _summary(result, inputs, args.output, said)
    try:
        save_image(result.image, args.output, {**inputs, **result.metadata()})
    except (OSError, ValueError) as err:
        print(f"nst: failed to write {args.output}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(summary, default=str))
    if result.stopped == "interrupted":
        print(f"nst: interrupted after {result.steps} steps; best image so far written to {args.output}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def main() -> None:
    sys.exit(run())
