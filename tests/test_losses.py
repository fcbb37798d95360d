"""Tests for nst_utils.losses in the kornia taxonomy: shape, exceptions, analytic values,
float64 gradcheck and an independent oracle (the paper's formulas written out again).

Two content losses: ``content_loss_paper`` is the paper's eq. 1, ``1/2 sum (F - P)^2``;
``content_loss`` is that times ``100 / (N M)`` (``N`` filters, ``M = H W`` positions of one
image; a batch is summed over), so it does not grow with the image size."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from helpers import rand
from torch.autograd import gradcheck

from nst_utils.losses import (
    content_loss,
    content_loss_paper,
    gram_matrix,
    style_layer_loss,
    style_loss,
    tv_loss,
)

#: Seeded features in float64, the dtype of the oracles and of gradcheck.
rand64 = partial(rand, dtype=torch.float64)


def _oracle_gram(features: torch.Tensor) -> torch.Tensor:
    """G_ij = sum_k F_ik F_jk by einsum over the spatial axes, batch kept (float64)."""
    f = features.double()
    if f.dim() == 3:
        f = f.unsqueeze(0)
    return torch.einsum("bihw,bjhw->bij", f, f)


def _oracle_content_paper(features: torch.Tensor, target: torch.Tensor) -> float:
    """Paper eq. 1, 1/2 sum (F - P)^2, term by term in Python floats (float64)."""
    return 0.5 * sum((float(a) - float(b)) ** 2 for a, b in zip(features.flatten(), target.flatten()))


def _oracle_content(features: torch.Tensor, target: torch.Tensor) -> float:
    """Eq. 1 times 100 / (N M), with N M the element count of one image's map (batch summed)."""
    n, h, w = features.shape[-3:]
    return _oracle_content_paper(features, target) * 100.0 / (n * h * w)


def _oracle_style_layer(features: torch.Tensor, target_gram: torch.Tensor) -> float:
    """E_l = 1 / (4 N^2 M^2) * sum (G - A)^2, with explicit loops over the entries."""
    f = features.double()
    if f.dim() == 3:
        f = f.unsqueeze(0)
    b, n, h, w = f.shape
    m = h * w
    gram = _oracle_gram(f)
    a = target_gram.double().expand(b, n, n)
    total = 0.0
    for k in range(b):
        for i in range(n):
            for j in range(n):
                total += float(gram[k, i, j] - a[k, i, j]) ** 2
    return total / (4.0 * n**2 * m**2)


# --- smoke / shape -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 3, 4, 5), (2, 3, 4, 5)])
def test_gram_matrix_shape(shape):
    gram = gram_matrix(rand(*shape))
    batch = shape[0] if len(shape) == 4 else 1
    assert gram.shape == (batch, shape[-3], shape[-3])
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, gram.transpose(1, 2))


def test_losses_return_scalars():
    f, p = rand64(1, 3, 4, 5, seed=1), rand64(1, 3, 4, 5, seed=2)
    assert content_loss(f, p).shape == ()
    assert content_loss_paper(f, p).shape == ()
    assert style_layer_loss(f, gram_matrix(p)).shape == ()
    assert tv_loss(f).shape == ()
    assert style_loss({"conv1_1": f}, {"conv1_1": gram_matrix(p)}, {"conv1_1": 1.0}).shape == ()


def test_gram_matrix_bfloat16_input_returns_float32():
    feats = rand(1, 4, 6, 6).bfloat16()
    gram = gram_matrix(feats)
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, _oracle_gram(feats.float()).float(), rtol=1e-5, atol=1e-5)


def test_gram_matrix_float64_stays_float64():
    assert gram_matrix(rand64(2, 3, 3)).dtype == torch.float64


# --- exceptions ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (3, 4), (1, 1, 3, 4, 5)])
def test_gram_matrix_rejects_bad_rank(shape):
    with pytest.raises(ValueError, match="expected features"):
        gram_matrix(torch.zeros(shape))


@pytest.mark.parametrize("loss", [content_loss, content_loss_paper])
def test_content_loss_shape_mismatch(loss):
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 5\).*\(1, 3, 4, 6\)"):
        loss(torch.zeros(1, 3, 4, 5), torch.zeros(1, 3, 4, 6))


def test_style_layer_loss_gram_mismatch():
    with pytest.raises(ValueError, match="Gram matrices"):
        style_layer_loss(torch.zeros(1, 3, 4, 5), torch.zeros(1, 4, 4))


def test_tv_loss_rejects_non_batched_image():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        tv_loss(torch.zeros(3, 8, 8))


def test_style_loss_needs_layers_and_targets():
    f = {"conv1_1": torch.ones(1, 2, 3, 3)}
    g = {"conv1_1": gram_matrix(f["conv1_1"])}
    with pytest.raises(ValueError, match="at least one"):
        style_loss(f, g, {})
    with pytest.raises(KeyError, match="conv2_1"):
        style_loss(f, g, {"conv1_1": 1.0, "conv2_1": 1.0})


# --- analytic values -----------------------------------------------------------------------


def test_tv_of_constant_image_is_zero():
    assert tv_loss(torch.full((2, 3, 7, 5), 0.3)).item() == 0.0


def test_tv_of_tiny_image_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # vertical: (2-0)^2 + (4-1)^2 = 13; horizontal: (1-0)^2 + (4-2)^2 = 5
    assert tv_loss(image).item() == 18.0


def test_tv_of_horizontal_ramp():
    # columns 0, 1, 2, 3 in each of 3 rows and 2 channels: only horizontal steps of 1.
    image = torch.arange(4.0).expand(1, 2, 3, 4)
    assert tv_loss(image).item() == 2 * 3 * 3  # channels * rows * steps per row


def test_gram_of_hand_made_features():
    # N = 2 filters over M = 2 positions: F = [[1, 2], [3, 4]] (rows are filters).
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(2, 1, 2)
    expected = torch.tensor([[[1.0 + 4.0, 3.0 + 8.0], [3.0 + 8.0, 9.0 + 16.0]]])
    assert torch.equal(gram_matrix(features), expected)


def test_gram_is_unnormalised_sum_over_positions():
    # Doubling the spatial extent with the same values doubles the Gram matrix (no 1/M).
    f = rand64(1, 3, 4, 4)
    torch.testing.assert_close(gram_matrix(torch.cat([f, f], dim=3)), 2 * gram_matrix(f))


def test_content_loss_identical_maps_is_zero():
    f = rand64(1, 8, 5, 5)
    assert content_loss(f, f.clone()).item() == 0.0
    assert content_loss_paper(f, f.clone()).item() == 0.0


def test_content_loss_paper_known_value():
    # N = 1 filter, M = 3 positions: squared errors 1, 4, 4 -> 1/2 * 9.
    f = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3)
    p = torch.tensor([0.0, 0.0, 5.0]).view(1, 1, 1, 3)
    assert content_loss_paper(f, p).item() == 4.5


def test_content_loss_known_value():
    # Same maps: 100 / (2 * N * M) * 9 = 100 / 6 * 9 = 150 (100/6 is inexact in binary).
    f = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3)
    p = torch.tensor([0.0, 0.0, 5.0]).view(1, 1, 1, 3)
    assert content_loss(f, p).item() == pytest.approx(150.0, rel=1e-6)
    # N = 2 filters over M = 2 positions, F = [[1, 2], [3, 4]], P = 0: sum of squares 30,
    # paper 15, ours 100 / (2 * 2 * 2) * 30 = 375 (exact in float32).
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    assert content_loss_paper(f, torch.zeros_like(f)).item() == 15.0
    assert content_loss(f, torch.zeros_like(f)).item() == 375.0
    # A constant error e everywhere gives 50 e^2 at any size.
    f = torch.full((1, 7, 3, 5), 0.25, dtype=torch.float64)
    torch.testing.assert_close(content_loss(f, torch.zeros_like(f)).item(), 50 * 0.25**2, rtol=1e-14, atol=0)


def test_style_layer_loss_single_entry_by_hand():
    # N = M = 1, F = [[2]] so G = 4; A = 1: E = (4 - 1)^2 / (4 * 1 * 1) = 9/4.
    assert style_layer_loss(torch.full((1, 1, 1, 1), 2.0), torch.ones(1, 1, 1)).item() == 2.25


def test_style_layer_loss_identical_is_zero():
    f = rand64(1, 4, 3, 3)
    assert style_layer_loss(f, gram_matrix(f)).item() == 0.0


def test_style_loss_zero_weight_layer_is_skipped():
    f = {"conv1_1": rand64(1, 2, 3, 3, seed=1), "conv2_1": rand64(1, 4, 2, 2, seed=2)}
    # conv2_1's target is the wrong size: computing it would raise, so it must be skipped.
    g = {"conv1_1": gram_matrix(rand64(1, 2, 3, 3, seed=3)), "conv2_1": torch.zeros(1, 3, 3)}
    with_zero = style_loss(f, g, {"conv1_1": 0.5, "conv2_1": 0.0})
    alone = style_loss(f, g, {"conv1_1": 0.5})
    assert with_zero.item() == alone.item() > 0


def test_style_loss_all_zero_weights_is_zero():
    f = {"conv1_1": rand64(1, 2, 3, 3, seed=1)}
    g = {"conv1_1": gram_matrix(rand64(1, 2, 3, 3, seed=2))}
    out = style_loss(f, g, {"conv1_1": 0.0})
    assert out.shape == () and out.item() == 0.0


# --- independent oracle --------------------------------------------------------------------


def test_gram_matrix_matches_einsum_oracle():
    f = rand64(2, 5, 4, 3)
    torch.testing.assert_close(gram_matrix(f), _oracle_gram(f))


@pytest.mark.parametrize("shape", [(1, 6, 4, 5), (3, 2, 7), (2, 3, 2, 5)])
def test_content_loss_matches_oracle(shape):
    f, p = rand64(*shape, seed=1), rand64(*shape, seed=2)
    torch.testing.assert_close(content_loss_paper(f, p).item(), _oracle_content_paper(f, p),
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(content_loss(f, p).item(), _oracle_content(f, p), rtol=1e-12, atol=0)


def test_content_loss_is_paper_times_100_over_n_m():
    # One image: N M = F.numel(). float32 inputs, the relation checked in float64.
    f, p = rand(1, 16, 9, 11, seed=3), rand(1, 16, 9, 11, seed=4)
    ours, paper = content_loss(f, p), content_loss_paper(f, p)
    assert ours.dtype == paper.dtype == torch.float32
    expected = float(content_loss_paper(f.double(), p.double())) * 100.0 / f.numel()
    torch.testing.assert_close(float(ours), expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(float(paper) * 100.0 / f.numel(), expected, rtol=1e-5, atol=0)


def test_content_loss_is_size_independent_and_paper_is_not():
    # The same per-element errors (an error map tiled 2x over filters, rows and columns) at a
    # map 8 times as large: the mean form is unchanged, the paper's sum is 8 times larger.
    f, p = rand64(1, 3, 4, 5, seed=5), rand64(1, 3, 4, 5, seed=6)
    big_f, big_p = f.repeat(1, 2, 2, 2), p.repeat(1, 2, 2, 2)
    assert big_f.numel() == 8 * f.numel()
    torch.testing.assert_close(content_loss(big_f, big_p), content_loss(f, p), rtol=1e-12, atol=0)
    torch.testing.assert_close(content_loss_paper(big_f, big_p), 8 * content_loss_paper(f, p),
                               rtol=1e-12, atol=0)
    # A constant error at 16 x 16 and at 64 x 64 (M x 16): equal, and paper ratio 16.
    small, large = torch.full((1, 4, 16, 16), 0.3), torch.full((1, 4, 64, 64), 0.3)
    assert content_loss(small, 0 * small).item() == pytest.approx(
        content_loss(large, 0 * large).item(), rel=1e-6)
    assert content_loss_paper(large, 0 * large).item() == pytest.approx(
        16 * content_loss_paper(small, 0 * small).item(), rel=1e-6)


def test_content_loss_gradient_is_100_over_n_m_times_the_error():
    # d/dF [100 / (2 N M) sum (F - P)^2] = 100 / (N M) (F - P); the paper's is (F - P) (eq. 2).
    f, p = rand64(1, 3, 4, 5, seed=7).requires_grad_(), rand64(1, 3, 4, 5, seed=8)
    (grad,) = torch.autograd.grad(content_loss(f, p), f)
    torch.testing.assert_close(grad, 100.0 / 60 * (f - p).detach(), rtol=1e-12, atol=0)
    (grad,) = torch.autograd.grad(content_loss_paper(f, p), f)
    torch.testing.assert_close(grad, (f - p).detach(), rtol=1e-12, atol=0)


@pytest.mark.parametrize(("n", "h", "w"), [(3, 4, 5), (6, 2, 2), (1, 3, 3)])
def test_style_layer_loss_matches_oracle(n, h, w):
    f = rand64(1, n, h, w, seed=1)
    a = gram_matrix(rand64(1, n, h, w, seed=2))
    torch.testing.assert_close(style_layer_loss(f, a).item(), _oracle_style_layer(f, a), rtol=1e-12, atol=0)


def test_style_layer_loss_target_from_other_size_uses_generated_m():
    # A from a 6x6 style image, F from a 3x4 generated image: normalised by the generated M = 12.
    f = rand64(1, 3, 3, 4, seed=1)
    a = gram_matrix(rand64(1, 3, 6, 6, seed=2))
    torch.testing.assert_close(style_layer_loss(f, a).item(), _oracle_style_layer(f, a), rtol=1e-12, atol=0)


def test_style_loss_is_weighted_sum():
    f = {"conv1_1": rand64(1, 2, 4, 4, seed=1), "conv3_1": rand64(1, 5, 2, 3, seed=2)}
    g = {"conv1_1": gram_matrix(rand64(1, 2, 4, 4, seed=3)),
         "conv3_1": gram_matrix(rand64(1, 5, 2, 3, seed=4))}
    weights = {"conv1_1": 0.2, "conv3_1": 0.7}
    expected = sum(w * _oracle_style_layer(f[k], g[k]) for k, w in weights.items())
    torch.testing.assert_close(style_loss(f, g, weights).item(), expected, rtol=1e-12, atol=0)


def test_batch_of_two_sums():
    f, p = rand64(2, 3, 4, 4, seed=1), rand64(2, 3, 4, 4, seed=2)
    a = gram_matrix(rand64(1, 3, 4, 4, seed=3))
    for loss in (content_loss, content_loss_paper):
        torch.testing.assert_close(loss(f, p), loss(f[:1], p[:1]) + loss(f[1:], p[1:]))
    torch.testing.assert_close(content_loss(f, p).item(), _oracle_content(f, p), rtol=1e-12, atol=0)
    torch.testing.assert_close(style_layer_loss(f, a),
                               style_layer_loss(f[:1], a) + style_layer_loss(f[1:], a))
    torch.testing.assert_close(tv_loss(f), tv_loss(f[:1]) + tv_loss(f[1:]))
    grams = gram_matrix(f)
    torch.testing.assert_close(grams[1], gram_matrix(f[1])[0])
    torch.testing.assert_close(style_layer_loss(f, a).item(), _oracle_style_layer(f, a), rtol=1e-12, atol=0)


def test_three_dim_input_equals_batch_of_one():
    f, p = rand64(3, 4, 5, seed=1), rand64(1, 3, 4, 5, seed=2)
    a = gram_matrix(p)
    torch.testing.assert_close(content_loss(f, p[0]), content_loss(f.unsqueeze(0), p))
    torch.testing.assert_close(content_loss_paper(f, p[0]), content_loss_paper(f.unsqueeze(0), p))
    torch.testing.assert_close(style_layer_loss(f, a), style_layer_loss(f.unsqueeze(0), a))
    torch.testing.assert_close(gram_matrix(f), gram_matrix(f.unsqueeze(0)))


# --- float64 gradcheck ---------------------------------------------------------------------


def test_gradcheck_gram_matrix():
    f = rand64(2, 3, 2, 3).requires_grad_()
    assert gradcheck(gram_matrix, (f,))


@pytest.mark.parametrize("loss", [content_loss, content_loss_paper])
@pytest.mark.parametrize("shape", [(1, 3, 2, 3), (2, 2, 3, 2)])
def test_gradcheck_content_loss(loss, shape):
    f = rand64(*shape, seed=1).requires_grad_()
    p = rand64(*shape, seed=2).requires_grad_()
    assert gradcheck(loss, (f, p))


def test_gradcheck_style_layer_loss():
    f = rand64(1, 3, 2, 3, seed=1).requires_grad_()
    a = gram_matrix(rand64(1, 3, 2, 3, seed=2)).requires_grad_()
    assert gradcheck(style_layer_loss, (f, a))


def test_gradcheck_tv_loss():
    image = rand64(1, 2, 4, 3).requires_grad_()
    assert gradcheck(tv_loss, (image,))


def test_gradcheck_style_loss():
    f = rand64(1, 2, 3, 3, seed=1).requires_grad_()
    g = rand64(1, 4, 2, 2, seed=2).requires_grad_()
    targets = {"conv1_1": gram_matrix(rand64(1, 2, 3, 3, seed=3)),
               "conv2_1": gram_matrix(rand64(1, 4, 2, 2, seed=4))}

    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return style_loss({"conv1_1": x, "conv2_1": y}, targets, {"conv1_1": 0.3, "conv2_1": 0.7})

    assert gradcheck(fn, (f, g))


def test_gram_gradient_is_the_generic_one():
    """The Gram matrix's hand-written backward, dF = (dG + dG^T) F (gradcheck: above), gives the
    same gradient as autograd's rule for ``F @ F^T`` on a channels-last float32 map."""
    x = rand(1, 6, 5, 7).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    weight = rand(1, 6, 6, seed=1)  # a loss that is not symmetric in G
    (gram_matrix(x) * weight).sum().backward()
    flat = x.detach().flatten(2).requires_grad_(True)
    ((flat @ flat.transpose(1, 2)) * weight).sum().backward()
    torch.testing.assert_close(x.grad.flatten(2), flat.grad)
