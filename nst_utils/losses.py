"""The losses of Gatys, Ecker & Bethge (CVPR 2016), as pure functions.

Notation (the paper's): a layer ``l`` with ``N_l`` filters has a feature map ``F^l`` of shape
``N_l x M_l``, ``M_l = height x width``. ``P^l`` is the content image's map, ``A^l`` the style
image's Gram matrix and ``G^l`` the generated image's.

The style loss is the paper's exactly. The content loss is the paper's times ``100 / (N_l M_l)``,
the one departure, made so that alpha/beta (a) does not depend on the image size and (b) has
the paper's meaning in the paper's pictures:

* content   ``L_content = 100 / (2 N_l M_l) * sum (F - P)^2``   (paper eq. 1 x 100 / (N_l M_l))
* style     ``E_l = 1 / (4 N_l^2 M_l^2) * sum (G - A)^2``        (paper eq. 4)
            ``L_style = sum_l w_l E_l``                           (paper eq. 5)
* total     ``L = alpha * L_content + beta * L_style``            (paper eq. 7)

Why. (a) The paper's content loss is a sum over ``N_l M_l`` terms while ``E_l`` is normalised by
``N_l^2 M_l^2``, so with the paper's formulas the same alpha/beta gives 16 times more content at
512 px than at 128 px; a mean removes that. (b) The paper's alpha/beta values cannot be taken
literally: its reference implementation (MSE losses, style weights 1e3/N_l^2) ran at an
effective paper-unit alpha/beta of about 1e-6 to 1e-4 at 512 px, not the 1e-3 the text reports.
The constant 100 is calibrated on this normalised network so that the paper's alpha/beta values
give the pictures its trade-off figure shows for them (the measurements: the README, "What α/β
means"). Our alpha/beta therefore equals the paper's alpha/beta times ``N_l M_l / 100`` of the
content layer.

Total variation is not in the paper; :func:`tv_loss` documents its own scale.
Inputs may be ``(N, H, W)`` or ``(B, N, H, W)``; a batch is summed over. Every result is a
float32 (or float64 for float64 inputs) scalar tensor that autograd can differentiate.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor


def _as_batch(features: Tensor) -> Tensor:
    if features.dim() == 3:
        return features.unsqueeze(0)
    if features.dim() != 4:
        raise ValueError(f"expected features of shape (B, N, H, W) or (N, H, W), got {tuple(features.shape)}")
    return features


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix ``G_ij = sum_k F_ik F_jk`` of a feature map, unnormalised (paper eq. 3).

    ``features`` ``(B, N, H, W)`` or ``(N, H, W)`` gives ``(B, N, N)``. Computed in at least
    float32 whatever the input dtype, because ``M_l`` can be 262 144 terms at 512 px.
    """
    feats = _as_batch(features)
    if feats.dtype not in (torch.float32, torch.float64):
        feats = feats.float()
    flat = feats.flatten(2)  # (B, N, M)
    with torch.autocast(flat.device.type, enabled=False):
        return _Gram.apply(flat)


class _Gram(torch.autograd.Function):
    """``F F^T`` with the backward ``dF = (dG + dG^T) F``: one matrix product where autograd's
    generic rule for ``F @ F^T`` computes two (one per operand). Saves 1/3 of the Gram work."""

    @staticmethod
    def forward(ctx, flat: Tensor) -> Tensor:
        ctx.save_for_backward(flat)
        return flat @ flat.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (flat,) = ctx.saved_tensors
        return (grad + grad.transpose(1, 2)) @ flat


#: Calibration of the content loss, chosen once so that the paper's alpha/beta values give the
#: paper's balance on this network (see the module docstring). Not a knob: alpha/beta is.
CONTENT_CALIBRATION = 100.0


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """``L_content = C / (2 N_l M_l) * sum (F - P)^2`` with ``C = CONTENT_CALIBRATION = 100``.

    The paper's eq. 1 times ``C / (N_l M_l)``: a mean over the layer's ``N_l M_l`` elements
    instead of a sum, so that, like the style loss ``E_l``, it does not grow with the image size
    and alpha/beta means the same at 128 and at 512 px, times a constant that puts the paper's
    headline alpha/beta = 1e-3 at a balanced image. :func:`content_loss_paper` is eq. 1 exactly.
    """
    if features.shape != target.shape:
        raise ValueError(f"content features {tuple(features.shape)} and target {tuple(target.shape)} differ")
    # N_l M_l of one image: a batch is summed over, like content_loss_paper and the style loss.
    per_image = features[0].numel() if features.dim() == 4 else features.numel()
    return (0.5 * CONTENT_CALIBRATION / per_image) * (features - target).pow(2).sum()


def content_loss_paper(features: Tensor, target: Tensor) -> Tensor:
    """Paper eq. 1 exactly: ``1/2 * sum (F - P)^2`` (``content_loss`` times ``N_l M_l / 100``)."""
    if features.shape != target.shape:
        raise ValueError(f"content features {tuple(features.shape)} and target {tuple(target.shape)} differ")
    return 0.5 * (features - target).pow(2).sum()


def style_layer_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """Paper eq. 4: ``E_l = 1 / (4 N_l^2 M_l^2) * sum (G - A)^2`` for one layer.

    ``target_gram`` is ``A^l`` as returned by :func:`gram_matrix` of the style image's features
    (which may come from an image of another size: ``A`` is normalised by the generated
    image's ``M_l``, as in the paper, where both images have the same size).
    """
    feats = _as_batch(features)
    _, n, h, w = feats.shape
    gram = gram_matrix(feats)
    if gram.shape[-2:] != target_gram.shape[-2:]:
        raise ValueError(f"Gram matrices {tuple(gram.shape)} and {tuple(target_gram.shape)} differ")
    m = h * w
    return (gram - target_gram).pow(2).sum() / (4.0 * n**2 * m**2)


def style_loss(
    features: Mapping[str, Tensor],
    target_grams: Mapping[str, Tensor],
    layer_weights: Mapping[str, float],
) -> Tensor:
    """Paper eq. 5: ``L_style = sum_l w_l E_l`` over the layers named in ``layer_weights``.

    The paper's Fig. 3 uses ``w_l = 1/5`` on conv1_1 ... conv5_1; a zero weight skips the layer.
    """
    if not layer_weights:
        raise ValueError("style_loss needs at least one style layer")
    total: Tensor | None = None
    for name, weight in layer_weights.items():
        if name not in features or name not in target_grams:
            raise KeyError(f"style layer {name!r} is missing from the features or the targets")
        if weight == 0:
            continue
        term = weight * style_layer_loss(features[name], target_grams[name])
        total = term if total is None else total + term
    if total is None:
        return next(iter(features.values())).new_zeros(())
    return total


def guided_gram_matrix(features: Tensor, mask: Tensor) -> Tensor:
    """The guided Gram matrix of one region (Gatys et al. 2017, sec. 4), per unit of mask mass:
    ``G_r = (F * T_r)(F * T_r)^T / sum_k T_rk^2``.

    ``mask`` ``T_r`` (the paper's guidance channel) is the region's mask at this layer's
    resolution, ``(1, 1, H, W)`` in ``[0, 1]``. Dividing by the mass makes Grams of regions (and
    images) of different sizes comparable: with a mask of all ones ``G_r = G / M_l``, so
    :func:`guided_style_layer_loss` with full masks equals the paper's ``E_l``. An empty mask
    gives zeros.
    """
    feats = _as_batch(features)
    if feats.dtype not in (torch.float32, torch.float64):
        feats = feats.float()
    if mask.shape[-2:] != feats.shape[-2:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match the features {tuple(feats.shape)}")
    mask = mask.to(feats.dtype)
    mass = mask.pow(2).sum().clamp_min(torch.finfo(feats.dtype).tiny)
    return gram_matrix(feats * mask) / mass


def guided_style_layer_loss(features: Tensor, mask: Tensor, target: Tensor) -> Tensor:
    """``E_l^r = 1 / (4 N_l^2) * sum (G_r - A_r)^2`` with both Grams from :func:`guided_gram_matrix`.

    Per unit of mask mass, so with masks of all ones this is exactly the paper's eq. 4."""
    gram = guided_gram_matrix(features, mask)
    if gram.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"Gram matrices {tuple(gram.shape)} and {tuple(target.shape)} differ")
    n = gram.shape[-1]
    return (gram - target).pow(2).sum() / (4.0 * n**2)


def tv_loss(image: Tensor) -> Tensor:
    """Total variation ``sum (x[i+1, j] - x[i, j])^2 + sum (x[i, j+1] - x[i, j])^2``.

    Squared differences between vertical and horizontal neighbours, summed over channels and
    positions of the ``[0, 1]`` image (no mean, like the paper's losses). Zero for a constant
    image. Not part of Gatys et al. (2016); Mahendran & Vedaldi (2015) introduced it as an
    image prior, and it suppresses the high-frequency noise that the style loss leaves.
    """
    if image.dim() != 4:
        raise ValueError(f"expected an image of shape (B, C, H, W), got {tuple(image.shape)}")
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.pow(2).sum() + dx.pow(2).sum()
