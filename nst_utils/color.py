"""Colour control (Gatys, Ecker, Bethge, Hertzmann & Shechtman, "Controlling Perceptual Factors in
Neural Style Transfer", CVPR 2017, sec. 5): keep the photograph's colours while taking the style.

Style transfer copies a painting's colours along with its brush strokes, because the Gram
matrices of the first layers are mostly colour statistics. The paper gives two ways to keep the
content's colours instead; both are pure functions here, applied before and after a run:

*Luminance-only transfer* (:func:`luminance_inputs`, :func:`recombine`). Run the transfer on the
luminance channels alone, then put the content's chroma back (:func:`restore_colors`, which the
run's result and the panel's previews both go through). In YIQ (the NTSC television
space the paper uses), ``Y`` is luminance and ``I``, ``Q`` carry the colour. The style's
luminance is first shifted and scaled to the content's mean and standard deviation (the paper's
luminance matching), so that only the *texture* of the brightness transfers, not the painting's
overall brightness. Fails when colour itself is the style (a Fauvist painting loses its point),
and where the painting's strokes are visible only as changes of hue at constant luminance.

*Colour histogram matching* (:func:`match_color`). Before the run, map the style image's pixels
by an affine transform ``x' = A (x - mu_S) + mu_C`` that gives them the content's mean ``mu_C``
and covariance ``Sigma_C``; then transfer as usual. Any ``A`` with ``A Sigma_S A^T = Sigma_C``
does it: every solution is ``Sigma_C^1/2 Q Sigma_S^-1/2`` for some orthogonal ``Q``. Two
choices (``color_basis``; the paper discusses both):

* ``"cholesky"``: ``A = L_C L_S^-1`` with ``Sigma = L L^T``, the lower-triangular Cholesky
  factors: whiten the style's pixels channel after channel (R, then G given R, then B given
  both) and colour them the same way with the content's factor. ``A`` is lower triangular, so
  the result depends on the order of the channels.
* ``"symmetric"`` (default): ``A = Sigma_C^1/2 Sigma_S^-1/2`` with the symmetric square roots
  from the eigendecompositions: whiten the style's pixels along its own principal axes (PCA
  whitening), then colour them along the content's. This is the colour transfer of Image
  Analogies (Hertzmann et al. 2001), which Gatys et al. (2017) use (their code calls it
  ``"pca"``). Each factor is symmetric; their product ``A`` is not, unless the two covariances
  share their principal axes.

Neither is the map that moves the colours least. That one, the linear Monge-Kantorovich map
``A = Sigma_S^-1/2 (Sigma_S^1/2 Sigma_C Sigma_S^1/2)^1/2 Sigma_S^-1/2`` (the optimal transport
between the two Gaussians, which minimises the mean squared change of a pixel), is symmetric
positive-definite: it scales along orthogonal axes and rotates nothing. The package does not
offer it (the authors' code does, as ``"sym"``).

Histogram matching keeps the interplay of colour and luminance in the strokes, but only first and
second moments are matched: a style whose colours are not roughly Gaussian (a few saturated
patches on grey) comes out with colours the photograph never had. Pixels pushed outside ``[0, 1]``
are clipped, which moves the mean and covariance a little where the content is very saturated.

All images follow the package's convention: float32 ``(B, 3, H, W)`` RGB in ``[0, 1]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import COLOR_BASES, COLOR_METHODS, check_choice

#: The NTSC RGB -> YIQ matrix (rows Y, I, Q). Y is the paper's luminance 0.299 R + 0.587 G + 0.114 B.
RGB_TO_YIQ: tuple[tuple[float, ...], ...] = (
    (0.299, 0.587, 0.114),
    (0.596, -0.274, -0.322),
    (0.211, -0.523, 0.312),
)


def _check_rgb(image: Tensor, name: str = "image") -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"{name} must be an RGB tensor of shape (B, 3, H, W), got {tuple(image.shape)}")


def _matrix(image: Tensor) -> Tensor:
    return torch.tensor(RGB_TO_YIQ, dtype=torch.float64).to(image.device, image.dtype)


def rgb_to_yiq(image: Tensor) -> Tensor:
    """RGB -> YIQ, channel by channel (``Y`` in ``[0, 1]``, ``I``, ``Q`` signed)."""
    _check_rgb(image)
    return torch.einsum("ij,bjhw->bihw", _matrix(image), image)


def yiq_to_rgb(yiq: Tensor) -> Tensor:
    """YIQ -> RGB, the exact inverse of :func:`rgb_to_yiq` (no clipping)."""
    _check_rgb(yiq, "yiq")
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_matrix(yiq).double()).to(yiq.dtype), yiq)


def luminance(image: Tensor) -> Tensor:
    """``Y`` of an RGB image, ``(B, 1, H, W)``."""
    return rgb_to_yiq(image)[:, :1]


def gray(y: Tensor) -> Tensor:
    """A luminance channel ``(B, 1, H, W)`` as the grey RGB image the network takes."""
    return y.expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


def match_luminance(style_y: Tensor, content_y: Tensor) -> Tensor:
    """The paper's luminance matching: ``(sigma_C / sigma_S) (Y_S - mu_S) + mu_C``.

    ``style_y`` and ``content_y`` are ``(B, 1, H, W)`` luminance channels (any sizes); the
    result has the content's mean and standard deviation. A flat style (``sigma_S ~ 0``) is
    only shifted."""
    mu_s, mu_c = style_y.mean(), content_y.mean()
    sigma_s, sigma_c = style_y.std(), content_y.std()
    scale = sigma_c / sigma_s if sigma_s > 1e-6 else torch.ones_like(sigma_s)  # flat: rounding, not spread
    return scale * (style_y - mu_s) + mu_c


def luminance_inputs(content: Tensor, style: Tensor) -> tuple[Tensor, Tensor]:
    """The two grey images a luminance-only transfer runs on: the content's luminance, and the
    style's luminance matched to it (mean and spread)."""
    _check_rgb(content, "content")
    _check_rgb(style, "style")
    y_c = luminance(content)
    return gray(y_c), gray(match_luminance(luminance(style), y_c))


def recombine(result: Tensor, content: Tensor) -> Tensor:
    """The luminance of ``result`` with the chroma (``I``, ``Q``) of ``content``, as RGB in ``[0, 1]``.

    ``content`` is resized to the result's size if it differs. Every YIQ -> RGB row has
    coefficient 1 on ``Y``, so for each pixel the luminances that keep all three channels in
    ``[0, 1]`` form an interval, which contains the content's own luminance. Clamping ``Y`` to
    that interval, instead of clipping R, G and B, keeps the content's ``I`` and ``Q`` exactly."""
    _check_rgb(result, "result")
    _check_rgb(content, "content")
    content = content.to(result.device, result.dtype)  # the photo may still be on the host
    if content.shape[-2:] != result.shape[-2:]:
        from .images import resize

        content = resize(content, tuple(result.shape[-2:]))
    y = luminance(result)
    iq = rgb_to_yiq(content)[:, 1:]
    offsets = yiq_to_rgb(torch.cat([torch.zeros_like(y), iq], dim=1))  # RGB - Y for each channel
    low = (-offsets).amax(dim=1, keepdim=True)
    high = (1 - offsets).amin(dim=1, keepdim=True)
    y = torch.maximum(torch.minimum(y, high), low)
    return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0, 1)


def restore_colors(image: Tensor, content: Tensor, method: str) -> Tensor:
    """The picture that a run with colour control ``method`` (``preserve_color``) has made of its
    optimised ``image``: for ``"luminance"``, whose run optimised grey images, ``image``'s luminance
    with ``content``'s chroma (:func:`recombine`); ``image`` itself for ``"none"``, and for
    ``"histogram"``, whose colours were settled before the run."""
    check_choice(method, COLOR_METHODS, "preserve_color")
    return recombine(image, content) if method == "luminance" else image


def color_statistics(image: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(3,)`` and covariance ``(3, 3)`` of an image's pixels (all of the batch), in float64."""
    _check_rgb(image)
    pixels = image.detach().double().permute(1, 0, 2, 3).reshape(3, -1)
    mean = pixels.mean(dim=1)
    centred = pixels - mean[:, None]
    return mean, centred @ centred.T / max(1, pixels.shape[1] - 1)


def _sqrt_and_inverse(cov: Tensor) -> tuple[Tensor, Tensor]:
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(1e-12)  # a flat channel: covariance not of full rank
    return (vectors * values.sqrt()) @ vectors.T, (vectors * values.rsqrt()) @ vectors.T


def color_transform(style: Tensor, content: Tensor, basis: str = "symmetric") -> tuple[Tensor, Tensor]:
    """``(A, b)`` with ``A x + b`` mapping the style's pixel mean and covariance onto the content's."""
    check_choice(basis, COLOR_BASES, "color_basis")
    mu_s, cov_s = color_statistics(style)
    mu_c, cov_c = color_statistics(content)
    eye = 1e-8 * torch.eye(3, dtype=torch.float64, device=cov_s.device)  # a flat style stays invertible
    if basis == "cholesky":
        a = torch.linalg.cholesky(cov_c + eye) @ torch.linalg.inv(torch.linalg.cholesky(cov_s + eye))
    else:
        sqrt_c, _ = _sqrt_and_inverse(cov_c + eye)
        _, inv_sqrt_s = _sqrt_and_inverse(cov_s + eye)
        a = sqrt_c @ inv_sqrt_s
    return a, mu_c - a @ mu_s


def match_color(style: Tensor, content: Tensor, basis: str = "symmetric") -> Tensor:
    """The style image with the content's colour mean and covariance (clipped to ``[0, 1]``)."""
    _check_rgb(style, "style")
    _check_rgb(content, "content")
    a, b = color_transform(style, content, basis)
    out = torch.einsum("ij,bjhw->bihw", a.to(style.dtype), style) + b.to(style.dtype).view(1, 3, 1, 1)
    return out.clamp(0, 1)
