"""i-ResNet: contraction under any weights, the inverse's accuracy and gradients, the log-det estimator."""

import pytest
import torch
import torch.nn.functional as F

from freia_graph.modules import IResNetLayer
from freia_graph.testing import exact_jacobian


def _blown_up(shape, **kwargs):
    """A float64 layer whose raw weights are far outside the contractive regime."""
    torch.manual_seed(0)
    block = IResNetLayer([shape], **kwargs).double()
    with torch.no_grad():
        for layer in block.layers:
            layer.weight.mul_(50)
    return block


def _dense_operator_norm(block, weight):
    """The exact spectral norm of a layer's map, from its dense matrix."""
    if not block.is_image:
        return torch.linalg.matrix_norm(weight, ord=2)
    channels, height, width = weight.shape[1], *block.dims_in[0][1:]
    size = channels * height * width
    basis = torch.eye(size, dtype=weight.dtype).reshape(size, channels, height, width)
    return torch.linalg.matrix_norm(F.conv2d(basis, weight, padding=1).reshape(size, -1), ord=2)


@pytest.mark.parametrize("shape", [(6,), (2, 5, 4)])
def test_every_layer_is_contractive_whatever_the_weights(shape):
    """FrEIA only rescales when lipschitz_correction() is called, by an underestimate of each norm."""
    block = _blown_up(shape, spectral_norm_max=0.7)
    for weight in block._contractive_weights():
        assert _dense_operator_norm(block, weight.detach()) <= 0.7 + 1e-9
    x = torch.randn(3, *shape, dtype=torch.float64)
    (z,), _ = block([x], jac=False)
    (x_back,), _ = block([z], rev=True, jac=False)
    torch.testing.assert_close(x_back, x)


@pytest.mark.parametrize("shape", [(6,), (2, 4, 4)])
def test_lipschitz_correction_keeps_the_function(shape):
    block = _blown_up(shape)
    x = torch.randn(3, *shape, dtype=torch.float64)
    (before,), _ = block([x], jac=False)
    block.lipschitz_correction()
    (after,), _ = block([x], jac=False)
    torch.testing.assert_close(after, before)
    for layer, weight in zip(block.layers, block._contractive_weights()):
        torch.testing.assert_close(layer.weight, weight)


@pytest.mark.parametrize("iterations", [1, 3, 8])
def test_fixed_point_error_shrinks_as_documented(iterations):
    """||x_k - x|| <= L^k ||g(x)|| with L = spectral_norm_max ** number_of_layers."""
    block = _blown_up((5,), spectral_norm_max=0.9, fixed_point_iterations=iterations)
    x = torch.randn(4, 5, dtype=torch.float64)
    (z,), _ = block([x], jac=False)
    (x_back,), _ = block([z], rev=True, jac=False)
    bound = (0.9 ** len(block.layers)) ** iterations * block.residual(x).norm(dim=1)
    assert ((x_back - x).norm(dim=1) <= bound + 1e-12).all()


def test_gradients_through_the_inverse_are_exact():
    """FrEIA detaches the fixed-point iterate, so its reverse Jacobian is the identity."""
    block = _blown_up((4,), exact_log_det=True)
    x = torch.randn(2, 4, dtype=torch.float64)
    (z,), _ = block([x], jac=False)
    forward_jacobian = exact_jacobian(block, [x])
    reverse_jacobian = exact_jacobian(block, [z], rev=True)
    torch.testing.assert_close(reverse_jacobian @ forward_jacobian, torch.eye(4, dtype=torch.float64).expand(2, 4, 4))


@pytest.mark.parametrize("shape", [(6,), (2, 3, 3)])
def test_estimated_log_det_matches_the_exact_one_on_average(shape):
    block = _blown_up(shape, hutchinson_samples=400)
    x = torch.randn(3, *shape, dtype=torch.float64)
    _, estimate = block([x])
    block.exact_log_det = True
    _, exact = block([x])
    # One probe has an RMS error near 0.2 (see the docstring); 400 probes leave about 0.01.
    torch.testing.assert_close(estimate, exact, atol=0.06, rtol=0)


def test_estimated_log_det_is_differentiable_and_leaves_the_input_alone():
    """FrEIA's estimate has no graph to the parameters and sets requires_grad on the caller's input."""
    block = _blown_up((5,))
    x = torch.randn(3, 5, dtype=torch.float64)
    _, log_det = block([x])
    log_det.sum().backward()
    assert not x.requires_grad
    assert all(layer.weight.grad is not None and layer.weight.grad.any() for layer in block.layers)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dims_in": [(2, 3)]}, ValueError, r"\(D,\) or \(C, H, W\)"),
        ({"dims_in": [(4,), (4,)]}, ValueError, "exactly one input"),
        ({"dims_in": [(4,)], "dims_c": [(2, 4, 4)]}, ValueError, "all dims but the first"),
        ({"dims_in": [(2, 4, 4)], "dims_c": [(1, 4, 3)]}, ValueError, r"\(4, 3\) != \(4, 4\)"),
        ({"dims_in": [(4,)], "spectral_norm_max": 0.0}, ValueError, "spectral_norm_max"),
        ({"dims_in": [(4,)], "spectral_norm_max": 1.5}, ValueError, "spectral_norm_max"),
        ({"dims_in": [(4,)], "spectral_norm_max": "0.5"}, TypeError, "spectral_norm_max"),
        ({"dims_in": [(4,)], "internal_size": 0}, ValueError, "internal_size"),
        ({"dims_in": [(4,)], "internal_size": 2.5}, TypeError, "internal_size"),
        ({"dims_in": [(4,)], "n_internal_layers": -1}, ValueError, "n_internal_layers"),
        ({"dims_in": [(4,)], "fixed_point_iterations": 0}, ValueError, "fixed_point_iterations"),
        ({"dims_in": [(4,)], "hutchinson_samples": True}, TypeError, "hutchinson_samples"),
        ({"dims_in": [(4,)], "exact_log_det": "yes"}, TypeError, "exact_log_det"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        IResNetLayer(**kwargs)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 3)])
def test_freia_maths_uses_the_weights_as_stored(shape):
    """With enforce_lipschitz=False the residual branch is FrEIA's plain ELU network of the raw weights,
    until lipschitz_correction() rescales them; the log-det stays exact and the inverse accurate."""
    block = _blown_up(shape, exact_log_det=True, enforce_lipschitz=False, fixed_point_iterations=200)
    with torch.no_grad():
        for layer in block.layers:
            layer.weight.div_(50 * 4)  # well inside the contractive regime, but not at the bound
    x = torch.randn(4, *shape, dtype=torch.float64)
    plain = torch.nn.Sequential(*[m for layer in block.layers for m in (layer, torch.nn.ELU())][:-1])
    (z,), log_det = block([x])
    torch.testing.assert_close(z, x + plain(x))
    size = x[0].numel()
    jacobian = torch.func.vmap(torch.func.jacrev(lambda t: t + plain(t[None])[0]))(x).reshape(-1, size, size)
    torch.testing.assert_close(log_det, torch.linalg.slogdet(jacobian).logabsdet)
    (x_back,), _ = block([z], rev=True, jac=False)
    torch.testing.assert_close(x_back, x)
    enforced = IResNetLayer([shape], exact_log_det=True).double()
    enforced.load_state_dict(block.state_dict())
    block.lipschitz_correction()
    torch.testing.assert_close(block([x])[0][0], enforced([x])[0][0])


def test_state_dict_is_freia_layout_and_every_layout_loads():
    """Saved as FrEIA's nn.Sequential 'residual' (layers at even indices); FrEIA's and our earlier 'layers.<i>'
    layouts both load strictly."""
    torch.manual_seed(0)
    block = IResNetLayer([(4,)], n_internal_layers=2, exact_log_det=True).double()
    saved = block.state_dict()
    assert list(saved) == [f"residual.{i}.{name}" for i in (0, 2, 4, 6) for name in ("weight", "bias")]
    earlier = {f"layers.{int(key.split('.')[1]) // 2}.{key.split('.')[2]}": value for key, value in saved.items()}
    x = torch.randn(3, 4, dtype=torch.float64)
    for state_dict in (saved, earlier):
        other = IResNetLayer([(4,)], n_internal_layers=2, exact_log_det=True).double()
        other.load_state_dict(state_dict, strict=True)
        torch.testing.assert_close(other([x])[0][0], block([x])[0][0])
    wrapped = torch.nn.Sequential(block)  # nested: the prefix is handled
    torch.nn.Sequential(IResNetLayer([(4,)], n_internal_layers=2)).double().load_state_dict(wrapped.state_dict())
