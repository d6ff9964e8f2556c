"""Block-specific tests for the permutations family: seeding, buffers and bad arguments."""

import pytest
import torch

from freia_graph.modules.permutations import (
    Fixed1x1Conv,
    FixedLinearTransform,
    InvertibleConv1x1,
    InvertibleLinear,
    PermuteRandom,
)


@pytest.mark.parametrize("seed", [0, 123, None])
def test_permute_random_leaves_global_rng_alone_except_one_draw_for_no_seed(seed):
    torch.manual_seed(0)
    PermuteRandom([(16,)], seed=seed)
    after_block = torch.rand(3)
    torch.manual_seed(0)
    if seed is None:
        torch.randint(2**62, (), dtype=torch.int64)
    assert torch.equal(after_block, torch.rand(3))


def test_permute_random_is_deterministic_by_seed():
    same = [PermuteRandom([(32,)], seed=7).perm for _ in range(2)]
    other = PermuteRandom([(32,)], seed=8).perm
    assert torch.equal(*same) and not torch.equal(same[0], other)
    torch.manual_seed(5)
    first = PermuteRandom([(32,)]).perm
    torch.manual_seed(5)
    assert torch.equal(first, PermuteRandom([(32,)]).perm)


@pytest.mark.parametrize("shape", [(7,), (4, 6, 6)])
def test_permute_random_round_trips_and_permutes_channels(shape):
    block = PermuteRandom([shape], seed=3)
    x = torch.randn(5, *shape)
    (z,), log_det = block([x])
    (x_back,), log_det_rev = block([z], rev=True)
    assert torch.equal(x_back, x) and log_det == 0.0 and log_det_rev == 0.0
    assert torch.equal(z, x[:, block.perm])


def test_permute_random_buffers_are_saved_and_loaded():
    block, fresh = PermuteRandom([(10,)], seed=1), PermuteRandom([(10,)], seed=2)
    fresh.load_state_dict(block.state_dict())
    x = torch.randn(3, 10)
    assert torch.equal(fresh([x])[0][0], block([x])[0][0])
    assert list(block.parameters()) == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"dims_in": [(4,), (4,)]}, ValueError),
        ({"dims_in": [(4,)], "dims_c": [(2,)]}, ValueError),
        ({"dims_in": [(4,)], "seed": 1.5}, TypeError),
        ({"dims_in": [(4,)], "seed": True}, TypeError),
    ],
)
def test_permute_random_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        PermuteRandom(**kwargs)


def _matrix(channels: int) -> torch.Tensor:
    return torch.randn(channels, channels, generator=torch.Generator().manual_seed(0)) + 3 * torch.eye(channels)


def test_fixed_linear_transform_keeps_freias_convention():
    M, b = _matrix(4), torch.arange(4.0)
    x = torch.randn(5, 4)
    (z,), log_det = FixedLinearTransform([(4,)], M=M, b=b)([x])
    assert torch.allclose(z, x @ M.T + b, atol=1e-5)
    assert torch.allclose(log_det, torch.linalg.slogdet(M).logabsdet)


def test_fixed_1x1_conv_keeps_freias_convention_and_counts_positions():
    M = _matrix(3)
    x = torch.randn(2, 3, 4, 5)
    (z,), log_det = Fixed1x1Conv([(3, 4, 5)], M=M)([x])
    assert torch.allclose(z, torch.nn.functional.conv2d(x, M.T[..., None, None]), atol=1e-5)
    assert torch.allclose(log_det, 20 * torch.linalg.slogdet(M).logabsdet)


@pytest.mark.parametrize(("block", "shape"), [(InvertibleLinear, (6,)), (InvertibleConv1x1, (6, 3, 3))])
def test_learned_channel_matrix_starts_orthogonal_and_is_seeded_privately(block, shape):
    torch.manual_seed(0)
    first = block([shape], seed=4)
    after_block = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after_block, torch.rand(3))
    second = block([shape], seed=4)
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name])
    basis = torch.eye(6).reshape(6, 6, *[1] * (len(shape) - 1)).expand(6, *shape)
    with torch.no_grad():
        (z,), log_det = first([basis])
    rows = z.reshape(6, 6, -1)[..., 0]
    assert torch.allclose(rows @ rows.T, torch.eye(6), atol=1e-5) and abs(float(log_det)) < 1e-5


def test_lu_factors_are_buffers_and_parameters_where_expected():
    block = InvertibleConv1x1([(4, 2, 2)], seed=0)
    assert {name for name, _ in block.named_parameters()} == {"lower", "upper", "log_s"}
    assert {name for name, _ in block.named_buffers()} == {"permutation", "sign_s", "identity"}
    assert block.double().permutation.dtype == torch.float64


@pytest.mark.parametrize(
    ("block", "kwargs", "error"),
    [
        (FixedLinearTransform, {"dims_in": [(3,)]}, TypeError),
        (FixedLinearTransform, {"dims_in": [(3,)], "M": [[1.0]]}, TypeError),
        (FixedLinearTransform, {"dims_in": [(3,)], "M": torch.eye(2)}, ValueError),
        (FixedLinearTransform, {"dims_in": [(3,)], "M": torch.ones(3, 3)}, ValueError),
        (FixedLinearTransform, {"dims_in": [(3,)], "M": torch.eye(3), "b": torch.ones(4)}, ValueError),
        (FixedLinearTransform, {"dims_in": [(3, 2, 2)], "M": torch.eye(3)}, ValueError),
        (Fixed1x1Conv, {"dims_in": [(3,)], "M": torch.eye(3)}, ValueError),
        (Fixed1x1Conv, {"dims_in": [(3, 2, 2)], "M": torch.full((3, 3), float("nan"))}, ValueError),
        (InvertibleConv1x1, {"dims_in": [(3,)]}, ValueError),
        (InvertibleConv1x1, {"dims_in": [(3, 2, 2)], "LU_decomposed": 1}, TypeError),
        (InvertibleLinear, {"dims_in": [(3, 2, 2)]}, ValueError),
        (InvertibleLinear, {"dims_in": [(3,)], "seed": "0"}, TypeError),
    ],
)
def test_linear_maps_reject_bad_arguments(block, kwargs, error):
    with pytest.raises(error, match=block.__name__):
        block(**kwargs)
