"""TransferPanel: defaults from the config, settings -> config, runs, live changes, stop, save.

Small and fast: 48-pixel images, a handful of steps, the seeded random-weight VGG-19 (no weight
file). Live changes are made from inside the run (an observer on the status readout, which
the panel updates from its step callback) so they land at a known step.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import math
import time

import helpers
import pytest
import torch

import nst_utils as nst
from nst_utils.config import INITS, OPTIMIZERS
from nst_utils.samples import sample_image
from nst_utils.widgets import TransferPanel

#: The shared small config with the paper's layers (the panel's checkboxes, their weights of 1/5) at 48 px.
SMALL = helpers.SMALL.replace(size=48, content_layers=nst.PAPER.content_layers,
                              style_layers=nst.PAPER.style_layers)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these tiny runs are faster so on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def style():
    return sample_image("mosaic", 64)


def _panel(photo, style, **changes) -> TransferPanel:
    return TransferPanel(photo, style, config=SMALL.replace(**changes), preview_seconds=0)


def _when_step(panel: TransferPanel, step: int, action) -> None:
    """Call ``action()`` once, from the run's step callback, when the readout reaches ``step``."""
    done = []

    def on_status(change):
        if not done and change["new"].startswith(f"running · step {step}/"):
            done.append(step)
            action()

    panel.status.observe(on_status, "value")


def _wait_for(predicate, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_defaults_come_from_the_package_default(photo, style):
    panel = TransferPanel(photo, style)
    assert panel.config() == nst.DEFAULT
    assert (10 ** panel.ratio_slider.min, 10 ** panel.ratio_slider.max) == pytest.approx(nst.RATIO_RANGE)
    assert panel.ratio_slider.value == nst.DEFAULT.ratio
    assert panel.content_dropdown.value == nst.DEFAULT.content_layers[0]
    assert tuple(panel.style_checks) == nst.PAPER_STYLE_LAYERS
    assert all(box.value for box in panel.style_checks.values())
    assert [f.value for f in panel.weight_fields.values()] == list(nst.DEFAULT.layer_weights().values())
    assert tuple(panel.optimizer_picker.options) == OPTIMIZERS
    assert tuple(panel.init_picker.options) == INITS
    assert panel.steps_slider.value == nst.DEFAULT.steps
    assert panel.size_picker.value == nst.DEFAULT.size
    assert panel.result is None
    assert bytes(panel.preview.value).startswith(b"\x89PNG")  # the content image until the first run


def test_given_config_is_reproduced(photo, style):
    cfg = SMALL.replace(ratio=3e-4, style_layers=("relu1_1", "relu3_1", "relu5_4"),
                        style_layer_weights=(0.5, 0.25, 1.0), optimizer="adam", init="content", size=40)
    panel = TransferPanel(photo, style, config=cfg)
    assert panel.config() == cfg
    assert 40 in panel.size_picker.options
    assert not panel.style_checks["relu2_1"].value
    assert panel.weight_fields["relu2_1"].disabled


def test_config_reflects_widget_changes(photo, style):
    panel = TransferPanel(photo, style, config=SMALL)
    panel.ratio_slider.value = 1e-2
    assert panel.config().ratio == pytest.approx(1e-2)
    panel.style_checks["relu5_1"].value = False
    cfg = panel.config()
    assert cfg.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    assert cfg.style_layer_weights == ()  # still equal weights; the fields show the config's w_l
    assert panel.weight_fields["relu1_1"].value == pytest.approx(0.25)
    panel.weight_fields["relu2_1"].value = 0.75
    assert not panel.equal_weights.value
    assert panel.config().layer_weights() == pytest.approx(
        {"relu1_1": 0.25, "relu2_1": 0.75, "relu3_1": 0.25, "relu4_1": 0.25})
    panel.content_dropdown.value = "relu3_2"
    panel.steps_slider.value = 7
    panel.optimizer_picker.value = "adam"
    panel.init_picker.value = "content"
    panel.size_picker.value = 64
    cfg = panel.config()
    assert (cfg.content_layers, cfg.steps, cfg.optimizer, cfg.init, cfg.size) == (
        ("relu3_2",), 7, "adam", "content", 64)
    for box in panel.style_checks.values():
        box.value = False
    with pytest.raises(ValueError, match="at least one style layer"):
        panel.config()


def test_run_sync_runs_the_requested_steps(photo, style):
    panel = _panel(photo, style)
    result = panel.run_sync()
    assert result is panel.result
    assert result.steps == SMALL.steps
    assert [h.step for h in result.history] == list(range(1, SMALL.steps + 1))
    assert all(h.image is None for h in result.history)  # numbers only: no image held per step
    assert result.losses()[-1] < result.losses()[0]
    assert result.stopped is None
    assert result.config == SMALL
    assert result.image.shape == (1, 3, 48, 48)
    assert panel.status.value.startswith(f"done · step {SMALL.steps}/{SMALL.steps} · α/β 0.001 · content ")
    assert bytes(panel.loss_plot.value).startswith(b"\x89PNG")
    assert not panel.save_button.disabled and not panel.run_button.disabled and panel.stop_button.disabled


def test_ratio_change_during_a_run_restarts_with_the_new_ratio(photo, style):
    panel = _panel(photo, style, steps=5)
    _when_step(panel, 2, lambda: setattr(panel.ratio_slider, "value", 1e-2))
    result = panel.run_sync()
    assert result.steps == 5
    assert [(s.first_step, s.steps) for s in result.segments] == [(1, 2), (3, 3)]
    assert panel.restarts == [3]
    assert result.segments[0].config.content_weight == pytest.approx(1e-3)
    assert result.segments[-1].config.content_weight == pytest.approx(1e-2)
    assert result.config.ratio == pytest.approx(1e-2)
    assert "α/β 0.01 ·" in panel.status.value


def test_layer_change_during_a_run_rebuilds_the_targets(photo, style):
    panel = _panel(photo, style, steps=4, optimizer="adam")
    _when_step(panel, 2, lambda: setattr(panel.style_checks["relu5_1"], "value", False))
    result = panel.run_sync()
    assert result.steps == 4 and len(result.segments) == 2
    final = result.segments[-1].config
    assert final.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    assert final.layer_weights() == pytest.approx({n: 0.25 for n in final.style_layers})


def test_lowering_the_step_slider_during_a_run_stops_early(photo, style):
    panel = _panel(photo, style, steps=6)
    _when_step(panel, 2, lambda: setattr(panel.steps_slider, "value", 3))
    result = panel.run_sync()
    assert result.steps == 3
    assert len(result.segments) == 1
    assert result.stopped is None


def test_a_kernel_interrupt_ends_the_run_instead_of_restarting_it(photo, style):
    panel = _panel(photo, style, steps=6)

    def interrupt():
        raise KeyboardInterrupt

    _when_step(panel, 2, interrupt)
    result = panel.run_sync()
    assert result.stopped == "interrupted"
    assert result.steps == 2 and len(result.segments) == 1
    assert panel.status.value.startswith("stopped · step 2/6 ·")


def test_background_run_follows_changes_from_another_thread(photo, style):
    panel = _panel(photo, style, steps=40)
    panel.start()
    assert panel.running
    _wait_for(lambda: len(panel.history) >= 1 or not panel.running)
    panel.ratio_slider.value = 1e-1  # from this (the "notebook") thread while the run goes on
    _wait_for(lambda: len(panel.restarts) >= 1 or not panel.running)
    panel.steps_slider.value = 1  # below the current step: ends after the current step
    result = panel.wait(timeout=120)
    assert not panel.running
    assert result is not None and result.stopped is None
    assert result.steps < 40 and len(result.segments) == 2
    assert result.segments[-1].config.content_weight == pytest.approx(1e-1)


def test_stop_ends_a_background_run_and_keeps_the_result(photo, style):
    panel = _panel(photo, style, steps=200)
    panel.start()
    panel.start()  # a second press while running is ignored
    _wait_for(lambda: len(panel.history) >= 2 or not panel.running)
    panel.stop()
    result = panel.wait(timeout=120)
    assert not panel.running and result is not None
    assert result.stopped == "callback"
    assert 2 <= result.steps < 200
    assert result.image.shape == (1, 3, 48, 48)
    assert torch.isfinite(result.image).all() and 0 <= result.image.min() <= result.image.max() <= 1
    assert panel.status.value.startswith(f"stopped · step {result.steps}/200 ·")
    assert not panel.run_button.disabled and panel.stop_button.disabled


def test_errors_in_the_background_are_shown_in_the_status(photo, style):
    panel = _panel(photo, style)
    for box in panel.style_checks.values():
        box.value = False
    panel.start()
    panel.wait(timeout=60)
    assert panel.status.value == "error: at least one style layer is needed"
    assert not panel.running and panel.result is None


def test_run_sync_refuses_while_running(photo, style):
    panel = _panel(photo, style, steps=200)
    panel.start()
    try:
        with pytest.raises(RuntimeError, match="already in progress"):
            panel.run_sync()
    finally:
        panel.stop()
        panel.wait(timeout=120)


def test_save_writes_png_with_the_config(photo, style, tmp_path):
    panel = _panel(photo, style, steps=2)
    with pytest.raises(RuntimeError, match="nothing to save"):
        panel.save(tmp_path / "early.png")
    # Not the default ratio (1e-3), so the file must record the slider's value. At 1e-4 the
    # random network's loss is ~1e-4 in float32 and L-BFGS-B's line search gives up at step 2.
    panel.ratio_slider.value = 1e-1
    panel.run_sync()
    assert len(panel.history) == 2
    out = panel.save(tmp_path / "result.png")
    meta = nst.read_metadata(out)
    assert math.isclose(meta["config"]["ratio"], 1e-1)
    assert meta["steps"] == 2 and meta["config"]["style_layers"] == list(nst.PAPER_STYLE_LAYERS)
    assert meta["ran"] == {"device": "cpu", "precision": "float32", "conv_algorithm": "winograd"}
    assert meta["segments"] == [{
        "level": 0, "first_step": 1, "steps": 2, "height": 48, "width": 48, "stopped": None,
        "ratio": meta["config"]["ratio"],
        "content_layers": ["relu4_2"], "style_layer_weights": {n: 0.2 for n in nst.PAPER_STYLE_LAYERS},
        "tv_weight": 0.0, "optimizer": SMALL.optimizer}]
    assert nst.load_image(out).shape == (1, 3, 48, 48)


def test_info_shows_what_will_run_and_its_memory(photo, style):
    panel = TransferPanel(photo, style, config=SMALL)
    info = panel.info.value
    assert info.startswith("device cpu · 48×48 px (levels 48 px) · 4 steps at most · "
                           "random VGG-19, avg pooling · float32, winograd convolutions · about "), info
    assert " · est. peak memory " in info and info.endswith(" MiB"), info
    before = panel.info.value
    panel.size_picker.value = 512
    assert panel.info.value.startswith("device cpu · 512×512 px (levels 512 px) ·")
    assert panel.info.value != before


def _no_memory(monkeypatch) -> None:
    """Nothing free: every run is refused. And building a network would be a failure."""
    monkeypatch.setattr("nst_utils.engine.memory.available_memory", lambda device: 0)
    monkeypatch.setattr("nst_utils.engine.memory.memory_in_use", lambda device: 0)

    def no_network(*args, **kwargs):
        raise AssertionError("a network was built for a run that does not fit")

    monkeypatch.setattr("nst_utils.features.build_vgg19_body", no_network)


def test_a_run_that_does_not_fit_is_refused_before_allocating_as_the_cli_says(
    photo, style, monkeypatch, tmp_path
):
    from nst_utils import cli
    from nst_utils.engine.memory import InsufficientMemoryError

    panel = _panel(photo, style, size=512)
    photo_path = tmp_path / "photo.png"
    nst.save_image(photo, photo_path)
    _no_memory(monkeypatch)
    panel.size_picker.value = 256  # the info line says so as soon as the size is picked
    assert " · too large: a 256 px run needs about " in panel.info.value
    panel.size_picker.value = 512
    with pytest.raises(InsufficientMemoryError) as refused:
        panel.run_sync()
    message = str(refused.value)
    assert "\n" not in message and message.startswith("a 512 px run needs about ")
    assert message.endswith("not even 32 px fits; free some memory")
    assert panel.status.value == f"error: {message}"
    assert panel.result is None and not panel.running
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.run(["transfer", str(photo_path), "mosaic", "-o", str(tmp_path / "out.png"),
                        "--size", "512", "--network-weights", "random", "--steps", "2", "--quiet"])
    assert code == cli.EXIT_USAGE and err.getvalue() == f"nst: error: {message}\n"
    assert not (tmp_path / "out.png").exists()


def test_bad_arguments_fail_fast(photo, style):
    with pytest.raises(ValueError, match="preview_seconds"):
        TransferPanel(photo, style, config=SMALL, preview_seconds=-1)
    with pytest.raises(nst.ImageError):
        TransferPanel("/nonexistent/content.png", style, config=SMALL)


def test_drawing_takes_at_most_a_tenth_of_the_run(photo, style, monkeypatch):
    """Previews are drawn at the first and last step, and in between only after waiting nine
    times as long as the last drawing took: a fast device is not held back by matplotlib."""
    from nst_utils import widgets

    draws: list[float] = []

    def slow_draw(self, info, total):
        time.sleep(0.03)
        draws.append(info.step)

    monkeypatch.setattr(widgets.TransferPanel, "_draw", slow_draw)
    panel = _panel(photo, style, steps=12, optimizer="adam")
    result = panel.run_sync()
    assert draws[0] == 1 and draws[-1] == 12
    between = len(draws) - 2
    assert between <= math.ceil(result.seconds / (widgets.DRAW_SHARE_FACTOR * 0.03)), (draws, result.seconds)
    assert len(draws) < 12  # the status line still showed every step:
    assert panel.status.value.startswith("done · step 12/12")


def test_the_layer_bars_show_each_layers_share_of_the_loss(photo, style):
    panel = _panel(photo, style, steps=3)
    result = panel.run_sync()
    shares = result.history[-1].layer_losses
    assert list(shares) == [*panel.config().content_layers, *panel.config().style_layers]
    # No TV: the layers' shares are all the terms.
    assert sum(shares.values()) == pytest.approx(result.history[-1].total, rel=1e-4)
    html = panel.layer_bars.value
    for name, value in shares.items():
        assert name in html and f"{100 * value / sum(shares.values()):5.1f} %" in html
    assert "#d95f02" in html  # the content layer's colour


def test_the_layer_bars_are_pure_and_empty_before_a_run():
    assert "appears here" in nst.widgets.layer_shares_html({})
    html = nst.widgets.layer_shares_html({"relu4_2": 1.0, "relu1_1": 3.0}, ["relu4_2"])
    assert " 25.0 %" in html and " 75.0 %" in html


def _upload(name: str, data: bytes) -> tuple[dict, ...]:
    return ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)},)


def test_an_uploaded_image_becomes_the_content_and_a_bad_one_is_refused(photo, style, tmp_path):
    panel = _panel(photo, style, steps=1)
    buf = io.BytesIO()
    sample_image("hopper", 80).save(buf, format="PNG")
    panel.content_upload.value = _upload("me.png", buf.getvalue())
    assert "content: me.png" in panel.status.value
    assert panel.run_sync().content.shape[-2:] != photo.shape[-2:]  # hopper's aspect, not the 64 px square
    before = panel._style
    panel.style_upload.value = _upload("notes.txt", b"not an image")
    assert panel.status.value == "error: notes.txt: not an image PIL can read"
    assert panel._style is before
    tiny = io.BytesIO()
    sample_image("hopper", 20).save(tiny, format="PNG")
    panel.style_upload.value = _upload("tiny.png", tiny.getvalue())
    assert panel.status.value.startswith("error: tiny.png:") and "too small" in panel.status.value


def test_keep_colours_runs_a_luminance_only_transfer(photo, style):
    from nst_utils.color import rgb_to_yiq

    panel = _panel(photo, style, steps=2)
    panel.color_picker.value = "luminance"
    result = panel.run_sync()
    assert result.config.preserve_color == "luminance"
    torch.testing.assert_close(rgb_to_yiq(result.image)[:, 1:], rgb_to_yiq(result.content)[:, 1:],
                               atol=1e-4, rtol=0)
    assert result.content.shape[-2:] == result.image.shape[-2:] == (48, 48)  # the photo at the panel's size


def test_a_luminance_only_run_is_previewed_in_the_photos_colours(photo, style, monkeypatch):
    from nst_utils import widgets
    from nst_utils.color import rgb_to_yiq

    panel = _panel(photo, style, steps=2)
    panel.color_picker.value = "luminance"
    shown = []
    real_png = widgets.preview_png
    monkeypatch.setattr(widgets, "preview_png", lambda image: shown.append(image) or real_png(image))
    result = panel.run_sync()
    steps = shown[:-1]  # the last one is the result's
    assert steps
    for image in steps:  # not the grey image the run optimises
        torch.testing.assert_close(rgb_to_yiq(image)[:, 1:], rgb_to_yiq(result.content)[:, 1:],
                                   atol=1e-4, rtol=0)
