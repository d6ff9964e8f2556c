"""Block-specific tests of the coupling blocks: bad arguments, clamping, initialisation, GIN's volume."""

import pytest
import torch
from torch import nn

from freia_graph.modules import (
    AffineCouplingOneSided,
    AllInOneBlock,
    ConditionalAffineTransform,
    GINCouplingBlock,
    GLOWCouplingBlock,
    NICECouplingBlock,
    PermuteRandom,
    RNVPCouplingBlock,
)
from freia_graph.testing import perturb_parameters
from freia_graph.testing.jacobian import exact_log_det
from tests.modules.registry import conv_subnet, linear_subnet

SPLIT_COUPLINGS = [NICECouplingBlock, RNVPCouplingBlock, GLOWCouplingBlock, GINCouplingBlock, AffineCouplingOneSided]
CLAMPED_COUPLINGS = [RNVPCouplingBlock, GLOWCouplingBlock, GINCouplingBlock, AffineCouplingOneSided]


def _not_a_module(c_in: int, c_out: int) -> str:
    return "linear"


@pytest.mark.parametrize(
    ("block", "kwargs", "error", "words"),
    [
        (GLOWCouplingBlock, {"clamp_activation": "RELU"}, ValueError, ["clamp_activation", "RELU", "ATAN"]),
        (RNVPCouplingBlock, {"clamp_activation": 3}, TypeError, ["clamp_activation", "int"]),
        (GLOWCouplingBlock, {"clamp": 0.0}, ValueError, ["clamp", "0.0"]),
        (GLOWCouplingBlock, {"clamp": None}, TypeError, ["clamp", "NoneType"]),
        (GLOWCouplingBlock, {"split_len": 0}, ValueError, ["split_len=0", "[1, 7]"]),
        (GLOWCouplingBlock, {"split_len": 8}, ValueError, ["split_len=8", "8 channels"]),
        (NICECouplingBlock, {"split_len": 1.0}, ValueError, ["split_len=1.0", "(0, 1)"]),
        (AffineCouplingOneSided, {"split_len": 0.01}, ValueError, ["split_len=0.01"]),
        (GINCouplingBlock, {"split_len": "half"}, TypeError, ["split_len", "'half'"]),
        (GLOWCouplingBlock, {"subnet_constructor": None}, TypeError, ["subnet_constructor", "None"]),
        (RNVPCouplingBlock, {"subnet_constructor": _not_a_module}, TypeError, ["nn.Module", "str"]),
        (GLOWCouplingBlock, {"dims_c": [(3, 2)]}, ValueError, ["(3, 2)", "(8,)", "condition 0"]),
        (
            AffineCouplingOneSided,
            {"dims_in": [(4, 6, 6)], "dims_c": [(2, 6, 5)]},
            ValueError,
            ["(2, 6, 5)", "(4, 6, 6)"],
        ),
        (GLOWCouplingBlock, {"dims_in": [(8,), (8,)]}, ValueError, ["exactly one input"]),
        (GLOWCouplingBlock, {"subnet_init_scale": -1.0}, ValueError, ["subnet_init_scale"]),
        (ConditionalAffineTransform, {}, ValueError, ["dims_c", "condition"]),
    ],
)
def test_bad_arguments_raise_helpful_errors(block, kwargs, error, words):
    arguments = {"dims_in": [(8,)], "subnet_constructor": linear_subnet, **kwargs}
    with pytest.raises(error) as raised:
        block(**arguments)
    assert all(word in str(raised.value) for word in words), str(raised.value)


@pytest.mark.parametrize("block", SPLIT_COUPLINGS + [ConditionalAffineTransform])
def test_conditional_block_called_without_condition_says_so(block):
    coupling = block([(8,)], [(3,)], subnet_constructor=linear_subnet)
    with pytest.raises(ValueError, match="without conditions"):
        coupling([torch.randn(2, 8)])


@pytest.mark.parametrize("activation", ["ATAN", "TANH", "SIGMOID", torch.tanh])
@pytest.mark.parametrize("block", [RNVPCouplingBlock, GLOWCouplingBlock, AffineCouplingOneSided])
def test_clamp_bounds_every_log_scale(block, activation):
    coupling = block([(6,)], subnet_constructor=linear_subnet, clamp=1.5, clamp_activation=activation).double()
    with torch.no_grad():
        for parameter in coupling.parameters():
            parameter.fill_(1e3)
    x = torch.randn(4, 6, dtype=torch.float64)
    (z,), log_det = coupling([x])
    # each of the at most 6 transformed dims is scaled by at most exp(clamp)
    assert torch.all(log_det.abs() <= 1.5 * 6 + 1e-3)
    assert torch.all(log_det.abs() >= 1.5 * 3 * 0.99), "saturated subnets should reach the clamp"
    (x_back,), _ = coupling([z], rev=True)
    assert torch.allclose(x_back, x, atol=1e-8)


@pytest.mark.parametrize("shape, subnet", [((8,), linear_subnet), ((4, 6, 6), conv_subnet)])
def test_gin_is_volume_preserving_with_log_det_exactly_zero(shape, subnet):
    torch.manual_seed(0)
    gin = perturb_parameters(GINCouplingBlock([shape], subnet_constructor=subnet).double(), 0.5)
    x = torch.randn(3, *shape, dtype=torch.float64)
    (z,), log_det = gin([x])
    _, log_det_rev = gin([z], rev=True)
    assert torch.equal(torch.as_tensor(log_det), torch.zeros(())) and float(log_det_rev) == 0.0
    assert torch.allclose(exact_log_det(gin, [x]), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert not torch.allclose(z.abs(), x.abs()), "GIN should rescale dimensions, not only shift them"


def test_subnet_init_scale_scales_only_the_last_layer_and_1_opts_out():
    def build(scale):
        torch.manual_seed(0)
        return GLOWCouplingBlock([(8,)], subnet_constructor=linear_subnet, subnet_init_scale=scale)

    untouched, default, zeroed = build(1.0), build(0.1), build(0.0)
    torch.manual_seed(0)
    reference = linear_subnet(4, 8)
    assert all(torch.equal(a, b) for a, b in zip(untouched.subnet1.parameters(), reference.parameters()))
    assert torch.equal(default.subnet1[0].weight, reference[0].weight)
    assert torch.allclose(default.subnet1[2].weight, 0.1 * reference[2].weight)
    assert torch.allclose(default.subnet1[2].bias, 0.1 * reference[2].bias)
    x = torch.randn(3, 8)
    (z,), log_det = zeroed([x])
    assert torch.equal(z, x) and torch.equal(log_det, torch.zeros(3)), "zero init is the identity"


def _wide_subnet(c_in: int, c_out: int) -> nn.Module:
    """The usual subnet of FrEIA's examples, with which its 32-block Glow chain reaches |z| ~ 1e15."""
    return nn.Sequential(nn.Linear(c_in, 512), nn.ReLU(), nn.Linear(512, c_out))


def _deep_chain(block: type, depth: int, dims: int) -> list[nn.Module]:
    chain: list[nn.Module] = []
    for index in range(depth):
        chain += [block([(dims,)], subnet_constructor=_wide_subnet), PermuteRandom([(dims,)], seed=index)]
    return chain


@pytest.mark.parametrize("block", [GLOWCouplingBlock, RNVPCouplingBlock, AffineCouplingOneSided, AllInOneBlock])
def test_deep_chain_of_default_blocks_stays_tame_and_inverts(block):
    torch.manual_seed(0)
    chain = _deep_chain(block, depth=32, dims=8)
    x = torch.randn(256, 8)
    z, log_det = x, torch.zeros(256)
    with torch.no_grad():
        for module in chain:
            (z,), block_log_det = module([z])
            log_det = log_det + block_log_det
        x_back = z
        for module in reversed(chain):
            (x_back,), _ = module([x_back], rev=True)
    assert z.abs().max() < 1e3 and log_det.abs().max() < 1e2
    assert torch.allclose(x_back, x, atol=1e-4)


@pytest.mark.parametrize(
    ("block", "names"),
    [
        (NICECouplingBlock, {"F", "G"}),
        (RNVPCouplingBlock, {"subnet_s1", "subnet_t1", "subnet_s2", "subnet_t2"}),
        (GLOWCouplingBlock, {"subnet1", "subnet2"}),
        (GINCouplingBlock, {"subnet1", "subnet2"}),
        (AffineCouplingOneSided, {"subnet"}),
    ],
)
def test_state_dict_uses_freia_names(block, names):
    state = block([(8,)], subnet_constructor=linear_subnet).state_dict()
    assert {key.split(".")[0] for key in state} == names


def test_conditional_affine_transform_depends_on_condition_only():
    torch.manual_seed(0)
    block = perturb_parameters(ConditionalAffineTransform([(5,)], [(3,)], subnet_constructor=linear_subnet))
    x, c = torch.randn(4, 5), torch.randn(4, 3)
    (z,), log_det = block([x], [c])
    (z_other,), log_det_other = block([2 * x], [c])
    assert torch.allclose(log_det, log_det_other), "the log-det must not depend on x"
    assert torch.allclose(z_other - z, (z - block([torch.zeros_like(x)], [c])[0][0])), "affine in x"


@pytest.mark.parametrize("block", SPLIT_COUPLINGS)
@pytest.mark.parametrize("shape", [(1,), (1, 4, 4)], ids=["vector", "image"])
def test_one_channel_cannot_be_split_and_the_error_says_why(block, shape):
    subnet = conv_subnet if len(shape) == 3 else linear_subnet
    with pytest.raises(ValueError) as raised:
        block([shape], subnet_constructor=subnet)
    message = str(raised.value)
    assert block.__name__ in message and "at least 2 channels" in message and "has 1" in message, message
    assert "[1, 0]" not in message
