"""Winograd F(4x4, 3x3) convolution for VGG-19's deep 3x3 layers on the CPU.

Style transfer runs the frozen network forward and back through the *image* hundreds of
times, and on a CPU nearly all of that time is 3x3 convolutions that already run at the
machine's GEMM throughput. Winograd's minimal filtering algorithm (Lavin & Gray 2016) computes
each 4x4 output tile from a 6x6 input tile with 36 multiplications per channel pair instead of
144: the convolution becomes 36 independent matrix products ``(K x C) @ (C x tiles)`` between
linear transforms of the input tiles and of the weights. The transforms cost memory traffic
(the transformed input is 36/16 the size of the input), so this pays off where channels are
many and feature maps small: from conv3_1 on (128+ input, 256+ output channels), where it beats
PyTorch's direct convolution on a CPU. The shallow layers keep the direct convolution. How much
it gains on a given machine is measured by ``python -m benchmarks`` (``benchmarks/results.md``,
summarised in the README's "Architecture").

Exactness: the same products summed in a different order, plus the transforms' rounding: float32
rounding, far below what changes a loss (``tests/engine/test_winograd.py`` holds it to 1e-4 of the
largest output against ``F.conv2d``). Only the gradient with respect to the *input* is provided
(the network is frozen): it is the same convolution with the filters flipped and their in/out
channels swapped, so the backward pass is a Winograd convolution too and saves nothing but the
weights for it.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Lavin & Gray's F(4, 3) matrices (interpolation points 0, +-1, +-2, infinity):
# Y = A^T [ (G g G^T) * (B^T d B) ] A for a 6x6 input tile d and a 3x3 filter g.
_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
      (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))
TILE = 4  # output tile side; input tiles are TILE + 2
#: Maps smaller than this on either side take the direct convolution: with fewer than 4x4
#: tiles the fixed cost of the transforms and of 36 small matrix products outweighs the
#: multiplications saved (VGG-19's conv5_1 is 8 px wide in a 128 px run). Chosen by timing
#: both algorithms, forward + input gradient, per map size: where the two break even.
MIN_SIDE = 16
#: Bytes of transformed input (or output) processed at once: bands of tile rows that stay in
#: cache (the transforms of a whole large map at once are memory-bound).
BAND_BYTES = 16 * 2**20


def transform_filters(weight: Tensor) -> Tensor:
    """``(K, C, 3, 3)`` filters -> ``(36, K, C)`` Winograd-domain filters ``G g G^T``.

    One ``(36 x 9) @ (9 x K C)`` product written straight into the output layout: no float64
    or transposed temporaries, which for VGG-19's 512x512 layers would be tens of megabytes
    each that the allocator keeps after they are freed.
    """
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f"Winograd F(4,3) needs 3x3 filters, got {tuple(weight.shape[-2:])}")
    k, c = weight.shape[:2]
    g = torch.tensor(_G, dtype=torch.float64)
    ggt = torch.kron(g, g).to(weight.device, weight.dtype)  # [(a, b), (i, j)] = G[a, i] G[b, j]
    return torch.mm(ggt, weight.reshape(k * c, 9).t()).view(36, k, c)


@lru_cache(maxsize=8)
def _transforms(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    bt = torch.tensor(_BT, dtype=torch.float64)
    at = torch.tensor(_AT, dtype=torch.float64)
    # The 2-D input transform B^T d B of every 6x6 tile, as 36 fixed 6x6 filters applied with
    # stride 4 (one convolution over all channels, no im2col copy); the output transform
    # A^T m A as one (16 x 36) matrix.
    input_filters = torch.kron(bt, bt).view(36, 1, 6, 6)
    output_matrix = torch.kron(at, at)
    return input_filters.to(device, dtype), output_matrix.to(device, dtype)


def winograd_conv3x3(x: Tensor, filters: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.conv2d(x, w, bias, padding=1)`` for ``filters = transform_filters(w)``; ``x`` is
    ``(B, C, H, W)``."""
    if x.dim() != 4 or x.shape[1] != filters.shape[2]:
        raise ValueError(f"expected (B, {filters.shape[2]}, H, W) input, got {tuple(x.shape)}")
    images = x.contiguous()
    # The usual batch of one is a view of its own fresh buffer (stacking would copy it), and
    # the bias goes into that buffer in place (adding it out of place would copy it again).
    if len(images) == 1:
        out = _single(images[0], filters).unsqueeze(0)
    else:
        out = torch.stack([_single(image, filters) for image in images])
    return out if bias is None else out.add_(bias.view(1, -1, 1, 1))


def _single(x: Tensor, filters: Tensor) -> Tensor:
    channels, height, width = x.shape
    k = filters.shape[1]
    th, tw = -(-height // TILE), -(-width // TILE)
    input_filters, output_matrix = _transforms(x.device, x.dtype)
    # Zero padding 1 (the convolution's) plus whatever completes the last tile row/column.
    padded = F.pad(x, (1, 1 + tw * TILE - width, 1, 1 + th * TILE - height)).unsqueeze(1)
    out = x.new_empty(k, th, TILE, tw, TILE)
    rows = max(1, min(th, BAND_BYTES // (36 * max(channels, k) * tw * x.element_size())))
    for r0 in range(0, th, rows):
        r1 = min(th, r0 + rows)
        tiles = (r1 - r0) * tw
        v = F.conv2d(padded[:, :, TILE * r0: TILE * r1 + 2], input_filters, stride=TILE)  # (C, 36, r, tw)
        m = torch.bmm(filters, v.view(channels, 36, tiles).transpose(0, 1))  # (36, K, tiles)
        y = torch.mm(output_matrix, m.view(36, k * tiles)).view(TILE, TILE, k, r1 - r0, tw)
        out[:, r0:r1].copy_(y.permute(2, 3, 0, 4, 1))
    return out.view(k, th * TILE, tw * TILE)[:, :height, :width]


class _WinogradFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, x: Tensor, forward_filters: Tensor, backward_filters: Tensor, bias: Tensor | None
    ) -> Tensor:
        ctx.save_for_backward(backward_filters)
        return winograd_conv3x3(x, forward_filters, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        (backward_filters,) = ctx.saved_tensors
        grad_input = winograd_conv3x3(grad, backward_filters) if ctx.needs_input_grad[0] else None
        return grad_input, None, None, None


class WinogradConv2d(nn.Module):
    """A frozen 3x3, stride-1, padding-1 convolution computed with Winograd F(4x4, 3x3).

    Built from an ``nn.Conv2d``; keeps its ``weight`` and ``bias`` (so state dicts and layer
    inspection look the same, and maps smaller than :data:`MIN_SIDE` are convolved directly)
    and the two transformed filter banks as buffers. Gradients flow to the input only.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) or conv.groups != 1 \
                or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise ValueError(f"WinogradConv2d needs a 3x3 stride-1 padding-1 convolution, got {conv}")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        weight = conv.weight.detach()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach())
        self.register_buffer("forward_filters", transform_filters(weight), persistent=False)
        # d(conv)/d(input) is the convolution with the filters rotated 180 degrees and in/out swapped.
        self.register_buffer("backward_filters", transform_filters(weight.flip(2, 3).transpose(0, 1)),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if not winograd_map(*x.shape[-2:]):
            return F.conv2d(x, self.weight, self.bias, padding=1)
        return _WinogradFunction.apply(x, self.forward_filters, self.backward_filters, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=(3, 3), algorithm=winograd F(4x4,3x3)"


def winograd_layer(in_channels: int, out_channels: int) -> bool:
    """Whether a VGG 3x3 layer of this width is one where Winograd pays on the CPU: conv3_1 on.
    (Timed per evaluation with the paper's layers, starting at conv2_1 or at conv3_2 instead was
    slower end to end.)"""
    return in_channels >= 128 and out_channels >= 256


def winograd_map(height: int, width: int) -> bool:
    """Whether a map this size is convolved with Winograd (else directly, see :data:`MIN_SIDE`)."""
    return min(height, width) >= MIN_SIDE


def use_winograd(conv: nn.Module) -> bool:
    """Whether to replace ``conv`` with a :class:`WinogradConv2d` (a 3x3 stride-1 zero-padded layer,
    see above; reflect and circular padding keep the direct convolution)."""
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.padding_mode == "zeros" and conv.groups == 1
            and conv.dilation == (1, 1)
            and winograd_layer(conv.in_channels, conv.out_channels))


def use_winograd_convolutions(extractor: nn.Module) -> None:
    """Replace, in place, the convolutions of ``extractor.body`` for which :func:`use_winograd`
    holds by :class:`WinogradConv2d` (same function), and record it in ``conv_algorithm``."""
    modules = [WinogradConv2d(m) if use_winograd(m) else m for m in extractor.body]
    if any(isinstance(m, WinogradConv2d) for m in modules):  # a shallow network has no such layer
        extractor.body = nn.Sequential(*modules)
        extractor.conv_algorithm = "winograd"
