"""The naive reference: style transfer written the way the popular PyTorch tutorial writes it.

Deliberately *without* the care ``nst_utils`` takes, because that is what it is measured
against: the whole 37-module VGG-19 ``features`` stack with torchvision's in-place ReLU, loss
modules spliced in after the tap layers that store ``self.loss`` as a side effect of
``forward``, the whole stack run every step (the tutorial trims after the last loss module;
the benchmark's brief asks for the whole stack), ``torch.optim.LBFGS`` with its defaults
(history 100, 20 iterations per ``step``) and ``input.data.clamp_(0, 1)`` inside the closure.

What it shares with ``nst_utils``, so that the two optimise *the same objective*: the Caffe
conv weights (the modules come from :func:`nst_utils.features.build_vgg19_body`), the Caffe
preprocessing (RGB -> BGR, times 255, minus the mean pixel), the paper's per-channel network
normalisation (applied to each tap inside the loss module, the simple way), average pooling,
the layers, and ``nst_utils``' loss normalisation (content ``100/(2 N M) sum (F - P)^2``, the
paper's eq. 1 times ``100 / (N M)`` as ``nst_utils.losses`` defines it; style
``1/(4 N^2 M^2) sum (G - A)^2``, weights ``alpha``, ``beta``, ``w_l``). Where the tutorial
uses ``mse_loss`` and a Gram matrix divided by ``a*b*c*d``, we use these factors instead,
so that ``tests/test_benchmarks.py`` can check both evaluate the same loss at the same image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from nst_utils.features import CAFFE_MEAN_BGR, build_vgg19_body
from nst_utils.layers import LAYERS
from nst_utils.normalization import load_filter_scales


class Normalization(nn.Module):
    """The tutorial's first module, with the Caffe model's preprocessing instead of ImageNet's."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))

    def forward(self, img: Tensor) -> Tensor:
        return img[:, [2, 1, 0]] * 255.0 - self.mean


def _gram(features: Tensor) -> Tensor:
    b, n, h, w = features.shape
    flat = features.view(b * n, h * w)
    return torch.mm(flat, flat.t())


class ContentLoss(nn.Module):
    """Stores ``self.loss`` in ``forward`` and passes its input through (the tutorial's pattern)."""

    def __init__(self, target: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.scale = scale
        self.target = (target * scale).detach()
        self.loss: Tensor = torch.zeros(())

    def forward(self, input: Tensor) -> Tensor:
        # nst_utils.losses.content_loss: CONTENT_CALIBRATION = 100 over 2 N M (written out again).
        _, n, h, w = input.shape
        self.loss = 100.0 * (input * self.scale - self.target).pow(2).sum() / (2.0 * n * h * w)
        return input


class StyleLoss(nn.Module):
    """Stores ``self.loss`` (paper eq. 4) in ``forward`` and passes its input through."""

    def __init__(self, target_feature: Tensor, scale: Tensor) -> None:
        super().__init__()
        self.scale = scale
        self.target = _gram(target_feature * scale).detach()
        self.loss: Tensor = torch.zeros(())

    def forward(self, input: Tensor) -> Tensor:
        _, n, h, w = input.shape
        gram = _gram(input * self.scale)
        self.loss = (gram - self.target).pow(2).sum() / (4.0 * n**2 * (h * w) ** 2)
        return input


def build_model(
    content: Tensor,
    style: Tensor,
    content_layers: Sequence[str],
    style_layers: Sequence[str],
    pooling: str = "avg",
) -> tuple[nn.Sequential, list[ContentLoss], list[StyleLoss]]:
    """The tutorial's ``get_style_model_and_losses``: walk the stack, splice in loss modules.

    Targets are computed, as in the tutorial, by running the partially built model on the
    content and style images each time a loss module is added.
    """
    body = build_vgg19_body("caffe", pooling)
    scales = load_filter_scales(pooling)
    model = nn.Sequential(Normalization())
    content_losses: list[ContentLoss] = []
    style_losses: list[StyleLoss] = []
    for name, layer in zip(LAYERS, body):
        if isinstance(layer, nn.ReLU):
            layer = nn.ReLU(inplace=True)  # as torchvision has it
        model.add_module(name, layer)
        scale = scales[name].view(1, -1, 1, 1)
        if name in content_layers:
            loss = ContentLoss(model(content).detach(), scale)
            model.add_module(f"content_loss_{name}", loss)
            content_losses.append(loss)
        if name in style_layers:
            loss = StyleLoss(model(style).detach(), scale)
            model.add_module(f"style_loss_{name}", loss)
            style_losses.append(loss)
    model.requires_grad_(False)
    return model.eval(), content_losses, style_losses


def total_loss(
    content_losses: Sequence[ContentLoss],
    style_losses: Sequence[StyleLoss],
    content_weight: float,
    style_weight: float,
    style_layer_weights: Mapping[str, float] | None = None,
) -> Tensor:
    """``alpha * sum content + beta * sum_l w_l E_l``; ``w_l`` equal by default, as in the paper."""
    weights = list(style_layer_weights.values()) if style_layer_weights else [1 / len(style_losses)] * len(
        style_losses
    )
    style_score = sum(w * sl.loss for w, sl in zip(weights, style_losses))
    content_score = sum(cl.loss for cl in content_losses)
    return content_weight * content_score + style_weight * style_score


def evaluate(model: nn.Module, content_losses, style_losses, image: Tensor, content_weight: float,
             style_weight: float) -> float:
    """The reference's total loss at ``image`` (no gradient): used to compare with ``nst_utils``."""
    with torch.no_grad():
        model(image)
        return float(total_loss(content_losses, style_losses, content_weight, style_weight))


def run_style_transfer(
    model: nn.Module,
    content_losses: Sequence[ContentLoss],
    style_losses: Sequence[StyleLoss],
    input_img: Tensor,
    *,
    steps: int,
    content_weight: float,
    style_weight: float,
    on_evaluation: Callable[[int, float], bool | None] | None = None,
) -> Tensor:
    """The tutorial's loop: ``optimizer.step(closure)`` until ``steps`` closure evaluations.

    One "step" is one closure evaluation (the tutorial's ``run[0]`` counter), which for
    ``torch.optim.LBFGS`` without line search is one L-BFGS iteration. The last ``step`` call
    is capped so that exactly ``steps`` evaluations run. ``on_evaluation(count, loss)`` is
    called after each evaluation; returning True stops after the current ``step`` call.
    """
    input_img.requires_grad_(True)
    optimizer = torch.optim.LBFGS([input_img])  # defaults: lr 1, max_iter 20, history 100
    run = [0]
    stop = [False]

    def closure() -> Tensor:
        input_img.data.clamp_(0, 1)  # the tutorial's projection, inside the closure
        optimizer.zero_grad()
        model(input_img)
        loss = total_loss(content_losses, style_losses, content_weight, style_weight)
        loss.backward()
        run[0] += 1
        if on_evaluation is not None and on_evaluation(run[0], float(loss.detach())):
            stop[0] = True
        return loss

    while run[0] < steps and not stop[0]:
        # Each step call runs max_iter iterations of one evaluation each (no line search).
        optimizer.param_groups[0]["max_iter"] = min(20, steps - run[0])
        before = run[0]
        optimizer.step(closure)
        if run[0] == before:  # converged (the tolerances): nothing more will happen
            break
    input_img.data.clamp_(0, 1)
    return input_img.detach()
