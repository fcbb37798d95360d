"""Tests for nst_utils.losses in the kornia taxonomy: shape, exceptions, analytic values,
float64 gradcheck and an independent oracle (the paper's formulas written out again)."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from nst_utils.losses import content_loss, gram_matrix, style_layer_loss, style_loss, tv_loss


def _rand(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=dtype)


def _oracle_gram(features: torch.Tensor) -> torch.Tensor:
    """G_ij = sum_k F_ik F_jk by einsum over the spatial axes, batch kept (float64)."""
    f = features.double()
    if f.dim() == 3:
        f = f.unsqueeze(0)
    return torch.einsum("bihw,bjhw->bij", f, f)


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
    gram = gram_matrix(_rand(*shape, dtype=torch.float32))
    batch = shape[0] if len(shape) == 4 else 1
    assert gram.shape == (batch, shape[-3], shape[-3])
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, gram.transpose(1, 2))


def test_losses_return_scalars():
    f, p = _rand(1, 3, 4, 5, seed=1), _rand(1, 3, 4, 5, seed=2)
    assert content_loss(f, p).shape == ()
    assert style_layer_loss(f, gram_matrix(p)).shape == ()
    assert tv_loss(f).shape == ()
    assert style_loss({"conv1_1": f}, {"conv1_1": gram_matrix(p)}, {"conv1_1": 1.0}).shape == ()


def test_gram_matrix_bfloat16_input_returns_float32():
    feats = _rand(1, 4, 6, 6, dtype=torch.float32).bfloat16()
    gram = gram_matrix(feats)
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, _oracle_gram(feats.float()).float(), rtol=1e-5, atol=1e-5)


def test_gram_matrix_float64_stays_float64():
    assert gram_matrix(_rand(2, 3, 3)).dtype == torch.float64


# --- exceptions ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (3, 4), (1, 1, 3, 4, 5)])
def test_gram_matrix_rejects_bad_rank(shape):
    with pytest.raises(ValueError, match="expected features"):
        gram_matrix(torch.zeros(shape))


def test_content_loss_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 5\).*\(1, 3, 4, 6\)"):
        content_loss(torch.zeros(1, 3, 4, 5), torch.zeros(1, 3, 4, 6))


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
    f = _rand(1, 3, 4, 4)
    torch.testing.assert_close(gram_matrix(torch.cat([f, f], dim=3)), 2 * gram_matrix(f))


def test_content_loss_identical_maps_is_zero():
    f = _rand(1, 8, 5, 5)
    assert content_loss(f, f.clone()).item() == 0.0


def test_content_loss_known_value():
    f = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3)
    p = torch.tensor([0.0, 0.0, 5.0]).view(1, 1, 1, 3)
    assert content_loss(f, p).item() == 0.5 * (1 + 4 + 4)


def test_style_layer_loss_single_entry_by_hand():
    # N = M = 1, F = [[2]] so G = 4; A = 1: E = (4 - 1)^2 / (4 * 1 * 1) = 9/4.
    assert style_layer_loss(torch.full((1, 1, 1, 1), 2.0), torch.ones(1, 1, 1)).item() == 2.25


def test_style_layer_loss_identical_is_zero():
    f = _rand(1, 4, 3, 3)
    assert style_layer_loss(f, gram_matrix(f)).item() == 0.0


def test_style_loss_zero_weight_layer_is_skipped():
    f = {"conv1_1": _rand(1, 2, 3, 3, seed=1), "conv2_1": _rand(1, 4, 2, 2, seed=2)}
    # conv2_1's target is the wrong size: computing it would raise, so it must be skipped.
    g = {"conv1_1": gram_matrix(_rand(1, 2, 3, 3, seed=3)), "conv2_1": torch.zeros(1, 3, 3)}
    with_zero = style_loss(f, g, {"conv1_1": 0.5, "conv2_1": 0.0})
    alone = style_loss(f, g, {"conv1_1": 0.5})
    assert with_zero.item() == alone.item() > 0


def test_style_loss_all_zero_weights_is_zero():
    f = {"conv1_1": _rand(1, 2, 3, 3, seed=1)}
    g = {"conv1_1": gram_matrix(_rand(1, 2, 3, 3, seed=2))}
    out = style_loss(f, g, {"conv1_1": 0.0})
    assert out.shape == () and out.item() == 0.0


# --- independent oracle --------------------------------------------------------------------


def test_gram_matrix_matches_einsum_oracle():
    f = _rand(2, 5, 4, 3)
    torch.testing.assert_close(gram_matrix(f), _oracle_gram(f))


def test_content_loss_matches_oracle():
    f, p = _rand(1, 6, 4, 5, seed=1), _rand(1, 6, 4, 5, seed=2)
    expected = 0.5 * sum(float(a - b) ** 2 for a, b in zip(f.flatten(), p.flatten()))
    torch.testing.assert_close(content_loss(f, p).item(), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize(("n", "h", "w"), [(3, 4, 5), (6, 2, 2), (1, 3, 3)])
def test_style_layer_loss_matches_oracle(n, h, w):
    f = _rand(1, n, h, w, seed=1)
    a = gram_matrix(_rand(1, n, h, w, seed=2))
    torch.testing.assert_close(style_layer_loss(f, a).item(), _oracle_style_layer(f, a), rtol=1e-12, atol=0)


def test_style_layer_loss_target_from_other_size_uses_generated_m():
    # A from a 6x6 style image, F from a 3x4 generated image: normalised by the generated M = 12.
    f = _rand(1, 3, 3, 4, seed=1)
    a = gram_matrix(_rand(1, 3, 6, 6, seed=2))
    torch.testing.assert_close(style_layer_loss(f, a).item(), _oracle_style_layer(f, a), rtol=1e-12, atol=0)


def test_style_loss_is_weighted_sum():
    f = {"conv1_1": _rand(1, 2, 4, 4, seed=1), "conv3_1": _rand(1, 5, 2, 3, seed=2)}
    g = {"conv1_1": gram_matrix(_rand(1, 2, 4, 4, seed=3)), "conv3_1": gram_matrix(_rand(1, 5, 2, 3, seed=4))}
    weights = {"conv1_1": 0.2, "conv3_1": 0.7}
    expected = sum(w * _oracle_style_layer(f[k], g[k]) for k, w in weights.items())
    torch.testing.assert_close(style_loss(f, g, weights).item(), expected, rtol=1e-12, atol=0)


def test_batch_of_two_sums():
    f, p = _rand(2, 3, 4, 4, seed=1), _rand(2, 3, 4, 4, seed=2)
    a = gram_matrix(_rand(1, 3, 4, 4, seed=3))
    torch.testing.assert_close(content_loss(f, p), content_loss(f[:1], p[:1]) + content_loss(f[1:], p[1:]))
    torch.testing.assert_close(style_layer_loss(f, a), style_layer_loss(f[:1], a) + style_layer_loss(f[1:], a))
    torch.testing.assert_close(tv_loss(f), tv_loss(f[:1]) + tv_loss(f[1:]))
    grams = gram_matrix(f)
    torch.testing.assert_close(grams[1], gram_matrix(f[1])[0])
    torch.testing.assert_close(style_layer_loss(f, a).item(), _oracle_style_layer(f, a), rtol=1e-12, atol=0)


def test_three_dim_input_equals_batch_of_one():
    f, p = _rand(3, 4, 5, seed=1), _rand(1, 3, 4, 5, seed=2)
    a = gram_matrix(p)
    torch.testing.assert_close(style_layer_loss(f, a), style_layer_loss(f.unsqueeze(0), a))
    torch.testing.assert_close(gram_matrix(f), gram_matrix(f.unsqueeze(0)))


# --- float64 gradcheck ---------------------------------------------------------------------


def test_gradcheck_gram_matrix():
    f = _rand(1, 3, 2, 3).requires_grad_()
    assert gradcheck(gram_matrix, (f,))


def test_gradcheck_content_loss():
    f = _rand(1, 3, 2, 3, seed=1).requires_grad_()
    p = _rand(1, 3, 2, 3, seed=2).requires_grad_()
    assert gradcheck(content_loss, (f, p))


def test_gradcheck_style_layer_loss():
    f = _rand(1, 3, 2, 3, seed=1).requires_grad_()
    a = gram_matrix(_rand(1, 3, 2, 3, seed=2)).requires_grad_()
    assert gradcheck(style_layer_loss, (f, a))


def test_gradcheck_tv_loss():
    image = _rand(1, 2, 4, 3).requires_grad_()
    assert gradcheck(tv_loss, (image,))


def test_gradcheck_style_loss():
    f = _rand(1, 2, 3, 3, seed=1).requires_grad_()
    g = _rand(1, 4, 2, 2, seed=2).requires_grad_()
    targets = {"conv1_1": gram_matrix(_rand(1, 2, 3, 3, seed=3)), "conv2_1": gram_matrix(_rand(1, 4, 2, 2, seed=4))}

    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return style_loss({"conv1_1": x, "conv2_1": y}, targets, {"conv1_1": 0.3, "conv2_1": 0.7})

    assert gradcheck(fn, (f, g))
