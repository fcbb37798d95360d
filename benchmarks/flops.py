"""The FLOP floor: analytic FLOPs of one evaluation over this machine's measured throughput.

One evaluation of the style-transfer objective is a forward pass through the layers up to the
deepest one used and a backward pass **to the image only**: the weights are frozen, so no
weight gradient is computed. Counted (multiply-add = 2 FLOPs; element-wise work, which is
memory-bound, is left out):

* each 3x3 convolution up to the deepest layer, forward: ``2 * 9 * C_in * C_out * H_l * W_l``;
* its backward to its input: a transposed convolution with the same count. This holds for
  conv1_1 as well, because its input *is* the (preprocessed) image whose gradient we need;
  so the backward costs 1x the forward, not the 2x of training (which adds weight gradients);
* with ``winograd`` (what ``nst_utils`` does on a CPU in float32, see ``nst_utils.engine.winograd``),
  each layer it computes with Winograd F(4x4, 3x3) counts what that algorithm multiplies for
  ``T = ceil(H/4) ceil(W/4)`` tiles: ``2 * 36 * C_in * C_out * T`` in the 36 matrix products,
  ``2 * 36 * 36 * C_in * T`` for the input transform and ``2 * 16 * 36 * C_out * T`` for the
  output transform (both applied as dense matrices), and the same again backward;
* each Gram matrix ``F F^T`` (``N x M`` by ``M x N``): ``2 N^2 M`` forward and ``2 N^2 M``
  backward (``dF = (dG + dG^T) F``).

The floor in seconds per evaluation is this count over the throughput this machine reaches on
a large 3x3 convolution (256 -> 256 channels at 128 x 128, channels-last), measured in the same
run, in float32 and under bfloat16 autocast (at 32 x 32 and on a 512^2 matmul where bfloat16 is
emulated: its rate does not depend on the size and a full-size one takes minutes). An L-BFGS-B
step costs one evaluation after the first three (see ``nst_utils.optimize``).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from nst_utils.engine.timing import evaluation_flops  # noqa: F401 (the count, kept where the estimate uses it)


def conv_throughput(dtype: torch.dtype, device: torch.device, side: int = 128, repeats: int = 2) -> float:
    """FLOP/s of a 3x3 convolution 256 -> 256 at ``side`` x ``side`` (best of ``repeats``)."""
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(256, 256, 3, padding=1).to(device).requires_grad_(False)
    x = torch.randn(1, 256, side, side, generator=gen).to(device)
    if device.type == "cpu":
        conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    flops = 2 * 9 * 256 * 256 * side * side
    best = float("inf")
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        for i in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            conv(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:  # the first call creates the kernels' plans
                best = min(best, time.perf_counter() - start)
    return flops / best


def matmul_throughput(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 2) -> float:
    """FLOP/s of an ``n x n`` matrix product in ``dtype`` (best of ``repeats``)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    best = float("inf")
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
