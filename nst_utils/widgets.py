"""An interactive style-transfer panel: a thin ipywidgets shell over the config and the loop.

Every default comes from :mod:`nst_utils.config`; every computation (targets, objective,
optimisation, image conversion) is a call into the package. The panel only turns widget
values into a :class:`~nst_utils.config.TransferConfig` and shows what the loop reports.

"Adjust during a run": the panel runs :func:`~nst_utils.recipes.transfer`, the package's one run
loop, with the widgets as its live settings. When the ratio, the layers, their weights or the
optimiser change, the loop restarts the optimiser from the current image (L-BFGS' curvature
pairs describe the old objective) and continues the step count; the step count itself is read
from the slider at every step. The preview and the loss curve are redrawn at most every
``preview_seconds``, and never for more than a tenth of the run's time, so drawing does not
throttle a fast device. With each redraw, a bar per layer shows its share of the loss
(``alpha L_content`` for the content layer, ``beta w_l E_l`` for each style layer), so a learner
sees which layer dominates the objective. "keep colours" chooses the colour method of
:mod:`nst_utils.color`; the upload buttons replace the content or style image, with the loader's
checks.
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from PIL import Image, ImageOps
from torch import Tensor

from .callbacks import StopFlag
from .color import restore_colors
from .config import COLOR_METHODS, DEFAULT, INITS, OPTIMIZERS, PAPER_STYLE_LAYERS, RATIO_RANGE, TransferConfig
from .engine import check_extractor, forecast
from .features import VGG19Features
from .images import ImageError, ImageSource, decode_image, load_image, save_image, target_size, to_pil
from .layers import LAYERS
from .loop import RunResult
from .optimize import StepInfo
from .recipes import load_pair, transfer

#: After drawing for t seconds the panel waits at least this many times t before drawing again,
#: so drawing takes at most a tenth of a run's time however fast the device is.
DRAW_SHARE_FACTOR = 9.0
#: Small previews are upscaled (nearest neighbour, so pixels stay visible) to about this side.
PREVIEW_PX = 256
_LABEL_WIDTH = "110px"


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


def loss_curve_png(history: Sequence[StepInfo], restarts: Iterable[int] = (),
                   total: int | None = None) -> bytes:
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


def layer_shares_html(layer_losses: dict[str, float], content_layers: Iterable[str] = ()) -> str:
    """Horizontal bars: each layer's share of the loss (``alpha L_content`` per content layer,
    ``beta w_l E_l`` per style layer), so the layer that dominates the objective shows at once."""
    total, content_layers = sum(layer_losses.values()), set(content_layers)
    if not layer_losses or not total > 0:
        return "<div class='nst-shares'><i>each layer's share of the loss appears here during a run</i></div>"
    rows = []
    for name, value in layer_losses.items():
        share = 100.0 * value / total
        color = "#d95f02" if name in content_layers else "#1b9e77"
        rows.append(
            f"<div style='display:flex;align-items:center;gap:6px;font-size:12px;line-height:16px'>"
            f"<span style='width:56px;font-family:monospace'>{name}</span>"
            f"<span style='display:inline-block;width:160px;background:#eee;height:10px'>"
            f"<span style='display:block;width:{share:.1f}%;background:{color};height:10px'></span></span>"
            f"<span style='width:120px;white-space:nowrap'>{share:5.1f} % · {value:.2g}</span></div>"
        )
    legend = ("<div style='font-size:11px;color:#555'>share of the loss: "
              "<span style='color:#d95f02'>■</span> α·L<sub>content</sub> "
              "<span style='color:#1b9e77'>■</span> β·w<sub>l</sub>·E<sub>l</sub></div>")
    return "<div class='nst-shares'>" + legend + "".join(rows) + "</div>"


def _labelled(widget: widgets.Widget) -> widgets.Widget:
    widget.style.description_width = _LABEL_WIDTH
    return widget


class TransferPanel(widgets.VBox):
    """Controls for a style-transfer run, a live preview and loss curve, Run / Stop / Save.

    ``content`` and ``style`` are anything :func:`~nst_utils.load_image` accepts (a path, a PIL
    image, a sample name such as ``"hopper"`` or ``"mosaic"``) or ``(1, 3, H, W)`` tensors.
    ``config`` (default :data:`~nst_utils.config.DEFAULT`) sets the initial widget values and every
    setting that has no widget (pooling, network weights, device, precision, seed, ...). The panel
    chooses one content layer; the preview and loss curve redraw at the first and last step and
    in between at most every ``preview_seconds`` (less often when drawing is slow, see
    :data:`DRAW_SHARE_FACTOR`).
    """

    def __init__(
        self,
        content: ImageSource | Tensor,
        style: ImageSource | Tensor,
        *,
        config: TransferConfig | None = None,
        preview_seconds: float = 0.5,
        sizes: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        cfg = DEFAULT if config is None else config
        if not preview_seconds >= 0:
            raise ValueError(f"preview_seconds must not be negative, got {preview_seconds}")
        self._base, self.preview_seconds = cfg, float(preview_seconds)
        self._content, self._style = content, style
        self.result: RunResult | None = None
        self.history: list[StepInfo] = []
        #: First step of each restart of the current run (a settings change mid-run).
        self.restarts: list[int] = []
        self._stop = StopFlag()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._extractor: VGG19Features | None = None
        self._running_config: TransferConfig | None = None
        self._next_draw = -math.inf
        self._note = ""
        self._syncing = False
        self._photo: Tensor | None = None  # the content at the run's size, for the previews' colours
        self._shape: tuple[int, int] | None = None  # the content's (H, W), for the forecast
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
            value=cfg.steps, min=1, max=max(2 * DEFAULT.steps, cfg.steps), description="steps",
            continuous_update=False))
        self.optimizer_picker = _labelled(widgets.Dropdown(
            options=list(OPTIMIZERS), value=cfg.optimizer, description="optimiser"))
        self.init_picker = _labelled(widgets.Dropdown(
            options=list(INITS), value=cfg.init, description="initialisation"))
        self.size_picker = _labelled(widgets.Dropdown(
            options=sorted({int(s) for s in sizes} | {cfg.size}), value=cfg.size, description="size (px)"))
        self.color_picker = _labelled(widgets.Dropdown(
            options=list(COLOR_METHODS), value=cfg.preserve_color, description="keep colours"))
        # Bring your own pictures: checked like any file the loader reads.
        self.content_upload = widgets.FileUpload(accept="image/*", multiple=False, description="content …")
        self.style_upload = widgets.FileUpload(accept="image/*", multiple=False, description="style …")
        self.content_upload.add_class("nst-upload-content")
        self.style_upload.add_class("nst-upload-style")
        self.content_upload.observe(lambda change: self._uploaded("content", change), "value")
        self.style_upload.observe(lambda change: self._uploaded("style", change), "value")
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          disabled=True)
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
        """Refresh the size, time and memory readout when a setting it depends on changes."""
        for widget in (self.size_picker, self.steps_slider, self.optimizer_picker, self.content_dropdown,
                       *self.style_checks.values()):
            widget.observe(self._settings_changed, "value")

    def _build_outputs(self) -> None:
        self.preview = widgets.Image(format="png", layout=widgets.Layout(min_width="128px"))
        self.loss_plot = widgets.Image(format="png")
        self.layer_bars = widgets.HTML(value=layer_shares_html({}))
        self.layer_bars.add_class("nst-shares")
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
            self.steps_slider, self.optimizer_picker, self.init_picker, self.size_picker, self.color_picker,
            widgets.HBox([self.content_upload, self.style_upload]),
            widgets.HBox([self.run_button, self.stop_button]),
            widgets.HBox([self.save_path, self.save_button]),
        ], layout=widgets.Layout(width="380px"))
        outputs = widgets.VBox([widgets.HBox([self.preview, self.loss_plot]), self.layer_bars, self.status,
                                self.info])
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
        if not chosen:  # a transfer needs a style (the package's content-only runs are recipes)
            raise ValueError("at least one style layer is needed")
        weights = () if self.equal_weights.value else tuple(self.weight_fields[n].value for n in chosen)
        return self._base.replace(
            ratio=float(self.ratio_slider.value), content_layers=(self.content_dropdown.value,),
            style_layers=chosen, style_layer_weights=weights, steps=int(self.steps_slider.value),
            optimizer=self.optimizer_picker.value, init=self.init_picker.value,
            size=int(self.size_picker.value), preserve_color=self.color_picker.value,
        )

    def _live_config(self) -> TransferConfig:
        """The settings now, for the run loop; the running ones (noted in the status) while invalid."""
        current = self._running_config or self._base
        try:
            cfg = self.config()
        except ValueError as err:
            self._note = f" · ignored: {err}"
            return current
        self._note = ""
        return cfg

    def _reusable_extractor(self, cfg: TransferConfig) -> VGG19Features | None:
        """The last run's network when it fits ``cfg`` (else None: the run builds one)."""
        if self._extractor is None:
            return None
        try:
            check_extractor(self._extractor, cfg, [*cfg.content_layers, *cfg.style_layers])
        except ValueError:
            self._extractor = None  # one network at a time (memory)
        return self._extractor

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

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Wait for a background run to end; returns :attr:`result`."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    @property
    def running(self) -> bool:
        """Whether a run (background or :meth:`run_sync`) is in progress."""
        return self._lock.locked()

    def run_sync(self) -> RunResult:
        """Run the current settings to completion in the calling thread (tests, notebook checks)."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("a run is already in progress; press Stop or wait for it")
        try:
            self._stop.clear()
            return self._run()
        except Exception as err:
            self.status.value = _error_text(err)
            raise
        finally:
            self._set_running(False)
            self._lock.release()

    def _run_in_background(self) -> None:
        try:
            self._run()
        except Exception as err:  # noqa: BLE001 (a worker thread must not raise into nowhere)
            self.status.value = _error_text(err)
        finally:
            self._set_running(False)
            self._lock.release()

    def _set_running(self, running: bool) -> None:
        self.run_button.disabled = running
        self.stop_button.disabled = not running
        for widget in (self.size_picker, self.init_picker, self.color_picker, self.content_upload,
                       self.style_upload):
            widget.disabled = running  # fixed for the run: they change its inputs, not its objective
        self.save_button.disabled = running or self.result is None

    def _run(self) -> RunResult:
        cfg = self.config()
        self._set_running(True)
        self.status.value = "starting …"
        self.history, self.restarts, self._next_draw = [], [], -math.inf
        self._running_config = cfg
        self._photo, _ = load_pair(self._content, self._style, cfg)
        try:
            result = transfer(self._content, self._style, cfg, extractor=self._reusable_extractor(cfg),
                              callbacks=[self._on_step, self._stop], live=self._live_config)
        finally:
            self._running_config = None
        self.result, self._extractor = result, result.extractor
        self._show_final(result)
        return result

    def _on_step(self, info: StepInfo) -> None:
        """Record the step's numbers; redraw when ``preview_seconds`` have passed (or at the ends)."""
        previous = self.history[-1] if self.history else None
        self.history.append(replace(info, image=None))
        live = self._live_config()
        if previous is not None and info.segment != previous.segment and info.level == previous.level:
            self.restarts.append(info.step)  # the settings changed: the loop restarted the optimiser
        self._running_config = live
        self.status.value = self._readout("running", info, live, live.steps) + self._note  # cheap: every step
        if info.step == 1 or info.step >= live.steps or time.perf_counter() >= self._next_draw:
            start = time.perf_counter()
            self._draw(info, live.steps)
            end = time.perf_counter()
            # The run waits while we draw: draw again after preview_seconds, or later when drawing
            # is slow, so that it never takes more than a tenth of the run's time.
            self._next_draw = end + max(self.preview_seconds, DRAW_SHARE_FACTOR * (end - start))

    # ---- display -------------------------------------------------------------------------------

    def _uploaded(self, kind: str, change: Any) -> None:
        """A file from the upload control becomes the content or the style (the loader's checks)."""
        files = change["new"]
        if not files:
            return
        item = files[0]  # ipywidgets 8: a tuple of dicts
        name = item.get("name", "upload")
        try:
            image = decode_image(bytes(item["content"]), name)
            checked = load_image(image, name=name)  # too small, unreadable: one line, nothing changes
        except ImageError as err:
            self.status.value = f"error: {err}"
            return
        if kind == "content":
            self._content = image
        else:
            self._style = image
        self.status.value = f"{kind}: {name} ({checked.shape[-1]}×{checked.shape[-2]} px) · press Run"
        self._show_initial(self._config_or_base())

    def _config_or_base(self) -> TransferConfig:
        try:
            return self.config()
        except ValueError:
            return self._base

    def _show_initial(self, cfg: TransferConfig) -> None:
        content, _ = load_pair(self._content, self._style, cfg)
        self.preview.value = preview_png(content)
        self.loss_plot.value = loss_curve_png([], total=cfg.steps)
        self._show_info(cfg, content)

    def _show_info(self, cfg: TransferConfig, content: Tensor | None = None) -> None:
        """What will run (device, size, levels, network, precision, convolutions), how long it will
        take and its peak memory, from the engine's forecast for this machine."""
        if content is not None:
            self._shape = (int(content.shape[-2]), int(content.shape[-1]))
        shape = target_size(self._shape[1], self._shape[0], cfg.size) if self._shape else None
        said = forecast(cfg, shape)
        size = f"{cfg.size} px longest side" if shape is None else f"{shape[1]}×{shape[0]} px"
        levels = " → ".join(str(side) for side, _ in cfg.levels())
        text = (f"device {said.machine.device} · {size} (levels {levels} px) · {cfg.steps} steps at most · "
                f"{cfg.network_weights} VGG-19, {cfg.pooling} pooling · {said.machine.precision}, "
                f"{said.machine.conv_algorithm} convolutions · ")
        if said.too_large:
            self.info.value = text + f"too large: {said.too_large}"
        else:
            self.info.value = text + (f"about {_duration(said.seconds)} "
                                      f"(at most {_duration(said.at_most)}) · "
                                      f"est. peak memory {said.memory / 2**20:.0f} MiB")

    def _settings_changed(self, _change: Any) -> None:
        if self.running:
            return  # the run shows its own size and device
        try:
            cfg = self.config()
        except ValueError:
            return
        self._show_info(cfg)

    def _readout(self, state: str, info: StepInfo, cfg: TransferConfig, total: int) -> str:
        terms = " · ".join(f"{name} {value:.3g}" for name, value in info.losses.items())
        return f"{state} · step {info.step}/{total} · α/β {cfg.ratio:.3g} · {terms} · {info.elapsed:.1f} s"

    def _draw(self, info: StepInfo, total: int) -> None:
        # As the result will be: a luminance-only run optimises grey images, shown in the photo's colours.
        method = self._running_config.preserve_color if self._running_config else "none"
        self.preview.value = preview_png(restore_colors(info.image, self._photo, method))
        self.loss_plot.value = loss_curve_png(self.history, self.restarts, total)
        self.layer_bars.value = layer_shares_html(info.layer_losses, self._running_config.content_layers
                                                  if self._running_config else ())

    def _show_final(self, result: RunResult) -> None:
        self.preview.value = preview_png(result.image)
        if self.history:
            self.layer_bars.value = layer_shares_html(self.history[-1].layer_losses,
                                                      result.config.content_layers)
        if not self.history:
            self.status.value = "stopped before the first step"
            return
        total = max(len(self.history), self.steps_slider.value)
        self.restarts = [s.first_step for s, before in zip(result.segments[1:], result.segments)
                         if s.level == before.level]
        self.loss_plot.value = loss_curve_png(self.history, self.restarts, total)
        state = "stopped" if result.stopped else "done"
        self.status.value = self._readout(state, self.history[-1], result.config, total) + self._note

    # ---- saving --------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the last result as PNG, with what ran (settings, machine, segments) as metadata."""
        if self.result is None:
            raise RuntimeError("nothing to save yet: press Run first")
        return save_image(self.result.image, path, metadata=self.result.metadata())

    def _save_clicked(self) -> None:
        try:
            self.status.value = f"saved {self.save(self.save_path.value)}"
        except (OSError, ValueError, RuntimeError) as err:
            self.status.value = f"not saved: {err}"


def _error_text(err: Exception) -> str:
    """One line, as the command line says it: bad settings or input (a size that does not fit in
    memory among them) read ``error: …``; a failure during the run names its type."""
    if isinstance(err, ValueError):
        return f"error: {err}"
    return f"failed: {type(err).__name__}: {err}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"
