"""Invertible autoencoder layers: what the transposed reverse guarantees, slopes, shapes, bad arguments."""

import math

import pytest
import torch

from freia_graph.modules import InvAutoAct, InvAutoActFixed, InvAutoActTwoSided, InvAutoConv2D, InvAutoFC
from freia_graph.testing import perturb_parameters


def _pair(block_class, shape, dtype=torch.float64, **kwargs):
    return block_class([shape], **kwargs).to(dtype), torch.randn(3, *shape, dtype=dtype)


LINEAR_LAYERS = [
    pytest.param(InvAutoFC, (6,), {}, id="fc"),
    pytest.param(InvAutoFC, (6,), {"dims_out": 9}, id="fc-wider"),
    pytest.param(InvAutoConv2D, (2, 4, 4), {}, id="conv"),
    pytest.param(InvAutoConv2D, (2, 5, 4), {"dims_out": (3, 6, 5), "kernel_size": 2}, id="conv-other-shape"),
]


@pytest.mark.parametrize(("block_class", "shape", "kwargs"), LINEAR_LAYERS)
def test_reverse_is_the_adjoint_of_forward(block_class, shape, kwargs):
    """<f(x) - b, y> == <x, f_rev(y + b)> for any weights: the reverse applies the transposed map."""
    block, x = _pair(block_class, shape, **kwargs)
    perturb_parameters(block, scale=0.5)
    (z,), _ = block([x], jac=False)
    y = torch.randn_like(z)
    (x_of_y,), _ = block([y + block.bias], rev=True, jac=False)
    torch.testing.assert_close(((z - block.bias) * y).sum(), (x * x_of_y).sum())


@pytest.mark.parametrize(("block_class", "shape", "kwargs"), LINEAR_LAYERS[::2])
def test_starts_as_an_exact_volume_preserving_inverse_pair(block_class, shape, kwargs):
    """The (semi-)orthogonal initialisation (in float32) makes the transpose the inverse, with log-det 0."""
    block, x = _pair(block_class, shape, dtype=torch.float32, **kwargs)
    (z,), log_det = block([x])
    (x_back,), log_det_rev = block([z], rev=True)
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(log_det, log_det_rev)
    assert abs(log_det.item()) < 1e-5


def test_reconstruction_training_drives_the_weight_towards_orthogonal():
    """The layer's premise (Teng et al. 2018): a reconstruction loss makes W^T W -> I."""
    torch.manual_seed(0)
    block, _ = _pair(InvAutoFC, (4,))
    perturb_parameters(block, scale=0.3)
    optimizer = torch.optim.Adam(block.parameters(), lr=0.05)
    for _ in range(100):
        x = torch.randn(64, 4, dtype=torch.float64)
        (z,), _ = block([x], jac=False)
        (x_back,), _ = block([z], rev=True, jac=False)
        optimizer.zero_grad()
        ((x_back - x) ** 2).mean().backward()
        optimizer.step()
    gram = block.weights.detach().T @ block.weights.detach()
    torch.testing.assert_close(gram, torch.eye(4, dtype=torch.float64), atol=1e-2, rtol=0)


@pytest.mark.parametrize(("block_class", "shape", "kwargs"), LINEAR_LAYERS[1::2])
def test_non_square_maps_have_no_log_det(block_class, shape, kwargs):
    block, x = _pair(block_class, shape, **kwargs)
    (z,), log_det = block([x])
    assert math.isnan(log_det.item())
    assert block([x], jac=False)[1] is None
    assert tuple(z.shape[1:]) == tuple(block.output_dims(block.dims_in)[0])
    assert block([z], rev=True, jac=False)[0][0].shape == x.shape


@pytest.mark.parametrize(
    ("block", "x", "expected_z", "expected_log_det"),
    [
        (InvAutoAct([(3,)]), [[1.0, -1.0, 0.0]], [[2.0, -0.5, 0.0]], math.log(2.0)),
        (
            InvAutoActTwoSided([(3,)], init_pos=3.0, init_neg=0.25),
            [[1.0, -1.0, 0.0]],
            [[3.0, -0.25, 0.0]],
            2 * math.log(3.0) + math.log(0.25),
        ),
    ],
)
def test_activation_slopes_use_freia_defaults_and_treat_zero_as_positive(block, x, expected_z, expected_log_det):
    (z,), log_det = block([torch.tensor(x)])
    assert z.tolist() == expected_z
    assert log_det.item() == pytest.approx(expected_log_det)


@pytest.mark.parametrize(
    "make", [lambda: InvAutoAct([(2, 3, 3)], learnable=False), lambda: InvAutoActTwoSided([(4,)], learnable=False)]
)
def test_fixed_slopes_are_buffers(make):
    block = make()
    assert list(block.parameters()) == [] and len(block.state_dict()) >= 1


def test_inv_auto_act_fixed_warns_and_does_not_learn():
    """FrEIA's alias of the fixed activation still learns its slope."""
    with pytest.warns(DeprecationWarning, match="InvAutoAct"):
        block = InvAutoActFixed([(3,)], slope_init=1.5)
    assert list(block.parameters()) == []
    assert block.alpha.flatten().tolist() == pytest.approx([math.log(1.5)] * 3)


@pytest.mark.parametrize(
    ("block_class", "kwargs", "error", "match"),
    [
        (InvAutoAct, {"dims_in": [(4,)], "slope_init": 0.0}, ValueError, "slope_init"),
        (InvAutoAct, {"dims_in": [(4,)], "slope_init": math.inf}, ValueError, "slope_init"),
        (InvAutoAct, {"dims_in": [(4,)], "slope_init": True}, TypeError, "slope_init"),
        (InvAutoAct, {"dims_in": [(4,)], "learnable": 1}, TypeError, "learnable"),
        (InvAutoAct, {"dims_in": [(4,)], "dims_c": [(2,)]}, ValueError, "takes no conditions"),
        (InvAutoAct, {"dims_in": [()]}, ValueError, "at least one dimension"),
        (InvAutoActTwoSided, {"dims_in": [(4,)], "init_neg": -1.0}, ValueError, "init_neg"),
        (InvAutoActTwoSided, {"dims_in": [(4,), (4,)]}, ValueError, "one input"),
        (InvAutoFC, {"dims_in": [(2, 4, 4)]}, ValueError, "rank 1"),
        (InvAutoFC, {"dims_in": [(4,)], "dims_out": 0}, ValueError, "dims_out"),
        (InvAutoFC, {"dims_in": [(4,)], "dims_out": [(8,)]}, TypeError, "dims_out"),
        (InvAutoConv2D, {"dims_in": [(4,)]}, ValueError, "rank 3"),
        (InvAutoConv2D, {"dims_in": [(2, 4, 4)], "kernel_size": 0}, ValueError, "kernel_size"),
        (InvAutoConv2D, {"dims_in": [(2, 4, 4)], "padding": -1}, ValueError, "padding"),
        (InvAutoConv2D, {"dims_in": [(2, 4, 4)], "padding": 1.0}, TypeError, "padding"),
        (InvAutoConv2D, {"dims_in": [(2, 4, 4)], "kernel_size": 7, "padding": 0}, ValueError, "leaves no output"),
        (InvAutoConv2D, {"dims_in": [(2, 4, 4)], "dims_out": (3, 5, 5)}, ValueError, r"spatial size \(4, 4\)"),
        (InvAutoConv2D, {"dims_in": [(2, 4, 4)], "dims_out": (3, 4)}, ValueError, "three positive ints"),
        (InvAutoConv2D, {"dims_in": [(2, 4, 4)], "dims_out": 3}, TypeError, "dims_out"),
    ],
)
def test_bad_arguments_raise(block_class, kwargs, error, match):
    with pytest.raises(error, match=match):
        block_class(**kwargs)
