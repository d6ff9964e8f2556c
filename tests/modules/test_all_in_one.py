"""Block-specific tests of AllInOneBlock: bad arguments, Householder with hard permutations, buffers, init."""

import copy

import pytest
import torch

from freia_graph.modules import AllInOneBlock
from freia_graph.testing import check_invertible, check_log_det, perturb_parameters
from tests.modules.registry import conv_subnet, linear_subnet


def _block(dims_in=((8,),), **kwargs) -> AllInOneBlock:
    return AllInOneBlock(list(dims_in), subnet_constructor=kwargs.pop("subnet_constructor", linear_subnet), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"global_affine_type": "RELU"}, ValueError, ["global_affine_type", "RELU", "SOFTPLUS"]),
        ({"global_affine_init": 0.0}, ValueError, ["global_affine_init", "0.0"]),
        ({"global_affine_init": 10.0, "global_affine_type": "SIGMOID"}, ValueError, ["(0, 10)", "SIGMOID"]),
        ({"affine_clamping": -1.0}, ValueError, ["affine_clamping", "-1.0"]),
        ({"affine_clamping": "2"}, TypeError, ["affine_clamping", "str"]),
        ({"learned_householder_permutation": -1}, ValueError, ["learned_householder_permutation", "-1"]),
        ({"learned_householder_permutation": 1.5}, TypeError, ["learned_householder_permutation", "1.5"]),
        ({"subnet_constructor": None}, TypeError, ["subnet_constructor", "None"]),
        ({"freia_head_clamp": 1}, TypeError, ["freia_head_clamp", "1"]),
        ({"dims_in": [(1,)]}, ValueError, ["2 channels", "(1,)"]),
        ({"dims_in": [(2, 2, 2, 2, 2)]}, ValueError, ["1 to 4 dims"]),
        ({"dims_in": [(4, 6, 6)], "dims_c": [(2, 6, 6), (1, 5, 6)]}, ValueError, ["condition 1", "(1, 5, 6)"]),
    ],
)
def test_bad_arguments_raise_helpful_errors(kwargs, error, words):
    with pytest.raises(error) as raised:
        _block(**kwargs)
    assert all(word in str(raised.value) for word in words), str(raised.value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reverse_permutation", [False, True])
@pytest.mark.parametrize("shape, subnet", [((8,), linear_subnet), ((4, 6, 6), conv_subnet)])
def test_householder_with_hard_permutation_works(shape, subnet, reverse_permutation, dtype):
    """Regression: learned Householder reflections with a hard permutation, forward, reverse, gradients.

    FrEIA stores the matrix it computes from the reflections on the module, graph attached, so a block
    that has run cannot even be deep-copied; here the matrix lives only inside each call.
    """
    torch.manual_seed(0)
    block = _block(
        [shape],
        subnet_constructor=subnet,
        learned_householder_permutation=2,
        permute_soft=False,
        reverse_permutation=reverse_permutation,
    ).to(dtype)
    perturb_parameters(block, 0.3)
    x = torch.randn(3, *shape, dtype=dtype)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-9
    check_invertible(block, x, z=torch.randn(3, *shape, dtype=dtype), atol=tolerance, rtol=0.0)
    if dtype == torch.float64:
        check_log_det(block, x, atol=1e-9, rtol=1e-9)
    (z,), log_det = block([x])
    (log_det.sum() + z.square().sum()).backward()
    assert block.vk_householder.grad is not None and block.vk_householder.grad.abs().sum() > 0
    copied = copy.deepcopy(block)
    assert torch.equal(copied([x])[0][0], z)


@pytest.mark.parametrize("permute_soft", [False, True])
def test_permutations_are_buffers_hard_as_index_vectors_soft_as_rotations(permute_soft):
    block = _block([(4, 6, 6)], subnet_constructor=conv_subnet, permute_soft=permute_soft).double()
    buffers = dict(block.named_buffers())
    assert {"w_perm", "w_perm_inv"} <= set(buffers)
    assert not {"w_perm", "w_perm_inv"} & {name for name, _ in block.named_parameters()}
    if not permute_soft:  # FrEIA HEAD's form: index vectors, x[:, w_perm]
        assert block.w_perm.dtype == torch.int64 and block.w_perm.shape == (4,)
        assert sorted(block.w_perm.tolist()) == [0, 1, 2, 3]
        assert torch.equal(block.w_perm_inv, torch.argsort(block.w_perm))
        return
    w, w_inv = block.w_perm.reshape(4, 4), block.w_perm_inv.reshape(4, 4)
    assert w.dtype == torch.float64 and torch.equal(w_inv, w.T)
    assert torch.allclose(w @ w.T, torch.eye(4, dtype=torch.float64), atol=1e-14)
    assert torch.isclose(torch.linalg.det(w), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize(
    ("affine_type", "init"),
    [("SOFTPLUS", 1.0), ("SOFTPLUS", 0.3), ("SOFTPLUS", 200.0), ("SIGMOID", 1.0), ("SIGMOID", 7.0), ("EXP", 2.5)],
)
def test_global_scale_starts_at_global_affine_init(affine_type, init):
    block = _block(global_affine_type=affine_type, global_affine_init=init)
    scale = block.global_scale_activation(block.global_scale)
    assert torch.allclose(scale, torch.full_like(scale, init), rtol=1e-6)


@pytest.mark.parametrize("shape, subnet", [((8,), linear_subnet), ((4, 6, 6), conv_subnet)])
def test_gin_block_has_log_det_exactly_zero_and_no_global_scale(shape, subnet):
    torch.manual_seed(0)
    block = perturb_parameters(_block([shape], subnet_constructor=subnet, gin_block=True).double(), 0.5)
    assert "global_scale" not in dict(block.named_parameters())
    x = torch.randn(3, *shape, dtype=torch.float64)
    (z,), log_det = block([x])
    _, log_det_rev = block([z], rev=True)
    assert float(log_det) == 0.0 and float(log_det_rev) == 0.0
    check_log_det(block, x, atol=1e-10, rtol=0.0)


@pytest.mark.parametrize(
    ("kwargs", "keys"),
    [
        ({}, {"global_scale", "global_offset", "w_perm", "w_perm_inv", "subnet"}),
        ({"learned_householder_permutation": 3}, {"global_scale", "global_offset", "vk_householder", "w_0", "subnet"}),
        ({"gin_block": True}, {"global_scale", "global_offset", "w_perm", "w_perm_inv", "subnet"}),
    ],
)
def test_state_dict_uses_freia_names_and_round_trips(kwargs, keys):
    torch.manual_seed(0)
    block = perturb_parameters(_block(**kwargs))
    state = block.state_dict()
    assert {key.split(".")[0] for key in state} == keys
    fresh = _block(**kwargs)
    # GIN blocks save (and ignore when loading) the unused global_scale FrEIA keeps, so states move both ways
    fresh.load_state_dict(state)
    x = torch.randn(5, 8)
    assert torch.equal(fresh([x])[0][0], block([x])[0][0])


def test_permutation_is_drawn_from_torch_generator():
    torch.manual_seed(3)
    first = _block(permute_soft=True).w_perm
    torch.manual_seed(3)
    assert torch.equal(first, _block(permute_soft=True).w_perm)


@pytest.mark.parametrize("shape, subnet", [((8,), linear_subnet), ((4, 6, 6), conv_subnet)])
def test_freia_head_clamp_is_bounded_exact_and_differs_from_the_default(shape, subnet):
    """FrEIA 0.2's alpha tanh(a) (default) and HEAD's alpha tanh(a / alpha): both exact flows whose coupling
    log-det is bounded by alpha per scaled entry, giving different outputs from the same weights."""
    torch.manual_seed(0)
    clamp = 0.5
    default = perturb_parameters(_block([shape], subnet_constructor=subnet, affine_clamping=clamp).double(), 2.0)
    head = _block([shape], subnet_constructor=subnet, affine_clamping=clamp, freia_head_clamp=True).double()
    head.load_state_dict(default.state_dict())
    x = 3 * torch.randn(4, *shape, dtype=torch.float64)
    check_invertible(head, x, atol=1e-9)
    check_log_det(head, x, atol=1e-9, rtol=1e-9)
    scaled_entries = x[0, default.splits[0]:].numel()
    global_log_det = head._global_log_det(head.global_scale_activation(head.global_scale))
    (z_head,), log_det_head = head([x])
    assert ((log_det_head - global_log_det).abs() <= clamp * scaled_entries).all()
    assert not torch.allclose(z_head, default([x])[0][0], atol=1e-3)
