"""Reshapes: argument errors, FrEIA's channel orders, the Haar log-det, and FrEIA's in-place bug."""

import math

import pytest
import torch

from freia_graph.modules import (
    Flatten,
    HaarDownsampling,
    HaarUpsampling,
    IRevNetDownsampling,
    IRevNetUpsampling,
    Reshape,
)


def test_reshape_target_dim_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="output_dims"):
        reshape = Reshape([(2, 6)], target_dim=(3, 4))
    assert reshape.output_dims(reshape.dims_in) == [(3, 4)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(output_dims=(5, 2)), r"cannot reshape \(2, 6\) \(12 elements\) to \(5, 2\) \(10 elements\)"),
        ({}, "needs output_dims"),
        (dict(output_dims=(0, 12)), "positive ints"),
    ],
)
def test_reshape_rejects_bad_output_dims(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Reshape([(2, 6)], **kwargs)


def test_reshape_rejects_both_names():
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="both output_dims"):
        Reshape([(12,)], output_dims=(12,), target_dim=(12,))


def test_flatten_works_on_non_contiguous_inputs():
    x = torch.randn(3, 4, 2).transpose(1, 2)
    flatten = Flatten([(2, 4)])
    (z,), _ = flatten([x])
    (x_back,), _ = flatten([z], rev=True)
    assert z.shape == (3, 8) and torch.equal(x_back, x)


@pytest.mark.parametrize(
    "block_class, shape, match",
    [
        (IRevNetDownsampling, (3, 5, 4), r"even H and W, got \(3, 5, 4\)"),
        (HaarDownsampling, (3, 4, 7), r"even H and W, got \(3, 4, 7\)"),
        (HaarDownsampling, (12,), r"image shape .* got \(12,\)"),
        (IRevNetUpsampling, (6, 2, 2), r"multiple of 4, got \(6, 2, 2\)"),
        (HaarUpsampling, (6, 2, 2), r"multiple of 4, got \(6, 2, 2\)"),
    ],
)
def test_resampling_rejects_shapes_it_cannot_halve(block_class, shape, match):
    with pytest.raises(ValueError, match=match):
        block_class([shape])


@pytest.mark.parametrize("rebalance, error", [(0.0, ValueError), (math.inf, ValueError), ("1", TypeError)])
def test_haar_rejects_bad_rebalance(rebalance, error):
    with pytest.raises(error, match="rebalance"):
        HaarDownsampling([(1, 2, 2)], rebalance=rebalance)


def _patch_pixels(x: torch.Tensor) -> list[torch.Tensor]:
    """Top-left, top-right, bottom-left, bottom-right pixel of every 2x2 patch."""
    return [x[:, :, i::2, j::2] for i in (0, 1) for j in (0, 1)]


def _haar_coefficients(x: torch.Tensor) -> list[torch.Tensor]:
    a, b, c, d = _patch_pixels(x)
    return [(a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2]


@pytest.mark.parametrize(
    "block, pieces, by_position",
    [
        (IRevNetDownsampling([(3, 4, 6)]), _patch_pixels, False),
        (IRevNetDownsampling([(3, 4, 6)], legacy_backend=True), _patch_pixels, True),
        (HaarDownsampling([(3, 4, 6)]), _haar_coefficients, False),
        (HaarDownsampling([(3, 4, 6)], order_by_wavelet=True), _haar_coefficients, True),
    ],
)
def test_channel_order_follows_freia(block, pieces, by_position):
    x = torch.randn(2, 3, 4, 6)
    (z,), _ = block([x])
    for k, piece in enumerate(pieces(x)):
        for channel in range(3):
            index = k * 3 + channel if by_position else 4 * channel + k
            torch.testing.assert_close(z[:, index], piece[:, channel])


@pytest.mark.parametrize("rebalance", [1.0, 0.5, -2.0])
def test_haar_log_det_is_numel_times_log_rebalance(rebalance):
    down, up = HaarDownsampling([(3, 4, 6)], rebalance=rebalance), HaarUpsampling([(12, 2, 3)], rebalance=rebalance)
    x = torch.randn(2, 3, 4, 6)
    (z,), log_det = down([x])
    (x_up,), log_det_up = up([z])
    assert log_det == pytest.approx(72 * math.log(abs(rebalance)))
    assert log_det_up == pytest.approx(-log_det)
    torch.testing.assert_close(x_up, x)


@pytest.mark.parametrize("order_by_wavelet", [False, True])
def test_haar_reverse_leaves_its_input_alone(order_by_wavelet):
    """FrEIA's reverse pass scales its input in place."""
    haar = HaarDownsampling([(2, 4, 4)], order_by_wavelet=order_by_wavelet, rebalance=0.5)
    z = torch.randn(3, 8, 2, 2)
    z_before, version = z.clone(), z._version
    haar([z], rev=True)
    assert torch.equal(z, z_before) and z._version == version


def test_haar_filters_are_a_buffer_that_follows_the_module():
    haar = HaarDownsampling([(2, 4, 4)]).double()
    assert haar.haar_weights.dtype == torch.float64 and "haar_weights" in haar.state_dict()
    assert not list(haar.parameters())
