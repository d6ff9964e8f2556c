"""Block-specific tests for the splines: tails far outside the domain, identity start, bad arguments."""

import pytest
import torch
from torch import nn

from freia_graph.modules.splines import (
    ElementwiseRationalQuadraticSpline,
    FreiaBinning,
    LinearSpline,
    RationalQuadraticSpline,
    freia_binned_spline,
    linear_spline,
    make_freia_binning,
    make_grid,
    rational_quadratic_spline,
)
from tests.modules.registry import linear_subnet

SPLINES = [rational_quadratic_spline, linear_spline]
DOMAINS = [(-3.0, 3.0, -3.0, 3.0), (-2.0, 1.0, -1.0, 3.0)]


def _raw(spline, grid, count=50, seed=0):
    per_element = 3 * grid.bins - 1 if spline is rational_quadratic_spline else 2 * grid.bins
    return torch.randn(count, per_element, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("spline", SPLINES)
@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("magnitude", [1e3, 1e6])
def test_far_outside_the_domain_is_a_finite_exactly_invertible_shift(spline, domain, dtype, magnitude):
    grid = make_grid("test", 6, (0.1, 0.1), domain)
    raw = _raw(spline, grid).to(dtype)
    x = torch.tensor([-magnitude, magnitude], dtype=dtype).repeat(25)
    y, log_jac = spline(x, raw, grid, rev=False)
    x_back, log_jac_rev = spline(y, raw, grid, rev=True)
    left, right, bottom, top = domain
    expected = torch.where(x < 0, x + (bottom - left), x + (top - right))
    assert torch.equal(y, expected) and torch.equal(x_back, x)
    assert not log_jac.any() and not log_jac_rev.any()


@pytest.mark.parametrize("spline", SPLINES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_spline_is_continuous_and_increasing_across_the_domain_edges(spline, domain):
    grid = make_grid("test", 5, (0.1, 0.1), domain)
    x = torch.linspace(domain[0] - 1, domain[1] + 1, 2001, dtype=torch.float64)
    raw = _raw(spline, grid, count=1).expand(len(x), -1)
    y, _ = spline(x, raw, grid, rev=False)
    steps = y.diff()
    assert (steps > 0).all() and steps.max() < 0.2


@pytest.mark.parametrize("block", [RationalQuadraticSpline, LinearSpline])
@pytest.mark.parametrize("magnitude", [1e3, 1e6])
def test_couplings_round_trip_inputs_far_outside_the_domain(block, magnitude):
    torch.manual_seed(0)
    coupling = block([(4,)], subnet_constructor=linear_subnet).double()
    x = torch.tensor([[magnitude, -magnitude, 0.5, magnitude], [-magnitude, 0.1, magnitude, -2.0]],
                     dtype=torch.float64)
    (z,), log_det = coupling([x])
    (x_back,), log_det_rev = coupling([z], rev=True)
    assert torch.isfinite(z).all() and torch.isfinite(log_det).all()
    assert torch.allclose(x_back, x, atol=1e-9, rtol=0) and torch.allclose(log_det, -log_det_rev)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 3)])
def test_elementwise_spline_starts_as_identity(shape):
    block = ElementwiseRationalQuadraticSpline([shape], bins=7)
    x = 4 * torch.randn(3, *shape)
    (z,), log_det = block([x])
    assert torch.allclose(z, x, atol=1e-5) and torch.allclose(log_det, torch.zeros(3), atol=1e-5)


def test_conditional_elementwise_spline_needs_its_conditions():
    block = ElementwiseRationalQuadraticSpline([(3,)], [(2,)], subnet_constructor=linear_subnet)
    with pytest.raises(ValueError, match="without conditions"):
        block([torch.randn(4, 3)])


def _conv(c_in, c_out):
    return nn.Conv2d(c_in, c_out, 1)


@pytest.mark.parametrize(
    ("block", "kwargs", "error"),
    [
        (RationalQuadraticSpline, {"dims_in": [(4,)]}, TypeError),
        (RationalQuadraticSpline, {"dims_in": [(4,)], "subnet_constructor": "mlp"}, TypeError),
        (RationalQuadraticSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet, "bins": 0}, ValueError),
        (RationalQuadraticSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet, "bins": 2.0}, TypeError),
        (LinearSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet, "split_len": 0}, ValueError),
        (LinearSpline, {"dims_in": [(1,)], "subnet_constructor": linear_subnet}, ValueError),
        (LinearSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet,
                        "default_domain": (3.0, -3.0, -3.0, 3.0)}, ValueError),
        (LinearSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet,
                        "default_domain": (-3.0, 3.0)}, ValueError),
        (LinearSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet, "default_domain": 3.0}, TypeError),
        (LinearSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet,
                        "min_bin_sizes": (1.0, 1.0)}, ValueError),
        (LinearSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet,
                        "min_bin_sizes": (0.0, 0.1)}, ValueError),
        (LinearSpline, {"dims_in": [(2, 4, 4)], "dims_c": [(1, 3, 3)], "subnet_constructor": _conv}, ValueError),
        (RationalQuadraticSpline, {"dims_in": [(4,), (4,)], "subnet_constructor": linear_subnet}, ValueError),
        (RationalQuadraticSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet,
                                   "parametrization": "free"}, ValueError),
        (RationalQuadraticSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet,
                                   "identity_tails": True}, ValueError),
        (LinearSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet, "domain_clamping": 2.0}, ValueError),
        (LinearSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet, "parametrization": "freia",
                        "domain_clamping": -2.0}, ValueError),
        (ElementwiseRationalQuadraticSpline, {"dims_in": [(4,)], "parametrization": "freia",
                                              "identity_tails": 1}, TypeError),
        (ElementwiseRationalQuadraticSpline, {"dims_in": [(4,)], "dims_c": [(2,)]}, TypeError),
        (ElementwiseRationalQuadraticSpline, {"dims_in": [(4,)], "bins": -1}, ValueError),
        (LinearSpline, {"dims_in": [(4,)], "subnet_constructor": linear_subnet, "subnet_init_scale": -1.0},
         ValueError),
    ],
)
def test_bad_arguments_raise(block, kwargs, error):
    with pytest.raises(error, match=block.__name__):
        block(**kwargs)


def test_elementwise_spline_ignores_a_subnet_without_conditions():
    """As in FrEIA: with no conditions the spline parameters are learned and the constructor is not called."""
    for parametrization in ("fixed_domain", "freia"):
        block = ElementwiseRationalQuadraticSpline([(3,)], subnet_constructor=linear_subnet,
                                                   parametrization=parametrization)
        assert not hasattr(block, "subnet")
        assert [name for name, _ in block.named_parameters()] == ["spline_parameters"]
        x = torch.randn(4, 3)
        torch.testing.assert_close(block([x])[0][0], x, atol=1e-5, rtol=0)


def _freia_binning(domain, **kwargs) -> FreiaBinning:
    return make_freia_binning("test", make_grid("test", 4, (0.1, 0.1), domain), kwargs.pop("identity_tails", False),
                              kwargs.pop("domain_clamping", None))


@pytest.mark.parametrize("rq", [True, False])
def test_freia_binning_at_zero_is_the_default_domain_with_affine_tails(rq):
    """FrEIA HEAD: raw zeros give the default domain and equal bins; outside it the map is the line through
    the domain's corners, with slope (top - bottom) / (right - left), and the derivatives there match it."""
    binning = _freia_binning((-2.0, 1.0, -1.0, 3.0))
    raw = torch.zeros(binning.count(rq), dtype=torch.float64)
    x = torch.tensor([-50.0, -2.0 - 1e-9, -2.0 + 1e-9, 0.99999999, 1.0 + 1e-9, 7.0], dtype=torch.float64)
    z, log_jac = freia_binned_spline(x, raw, binning, rev=False, inner_derivatives=rq)
    torch.testing.assert_close(z, x * 4 / 3 + 5 / 3)  # continuous at both edges
    assert torch.allclose(log_jac[[0, 1, 2, 4, 5]], torch.tensor(4 / 3, dtype=torch.float64).log(), atol=1e-6)
    x_back, log_jac_rev = freia_binned_spline(z, raw, binning, rev=True, inner_derivatives=rq)
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(log_jac_rev, -log_jac)


@pytest.mark.parametrize("kwargs", [{"identity_tails": True}, {"domain_clamping": 1.5}, {}])
def test_freia_binning_log_derivative_and_inverse(kwargs):
    binning = _freia_binning((-3.0, 3.0, -3.0, 3.0), **kwargs)
    generator = torch.Generator().manual_seed(0)
    raw = torch.randn(200, binning.count(True), generator=generator, dtype=torch.float64)
    x = 4 * torch.randn(200, generator=generator, dtype=torch.float64)
    x[:4] = torch.tensor([-50.0, -30.0, 30.0, 50.0])
    z, log_jac = freia_binned_spline(x, raw, binning, rev=False, inner_derivatives=True)
    derivative = torch.func.vmap(torch.func.grad(
        lambda one_x, one_raw: freia_binned_spline(one_x, one_raw, binning, False, True)[0]))(x, raw)
    torch.testing.assert_close(log_jac, derivative.log())
    x_back, _ = freia_binned_spline(z, raw, binning, rev=True, inner_derivatives=True)
    torch.testing.assert_close(x_back, x)
    if kwargs.get("identity_tails"):
        torch.testing.assert_close(z[:4], x[:4])


@pytest.mark.parametrize("block", ["coupling", "elementwise"])
def test_freia_layout_needs_the_freia_parametrization_and_its_settings(block):
    def build(**kwargs):
        if block == "coupling":
            return RationalQuadraticSpline([(4,)], subnet_constructor=linear_subnet, **kwargs)
        return ElementwiseRationalQuadraticSpline([(4,)], **kwargs)

    saved = build(parametrization="freia", bins=5).state_dict()
    build(parametrization="freia", bins=5).load_state_dict(saved, strict=True)
    with pytest.raises(ValueError, match="parametrization='freia'"):
        build(bins=5).load_state_dict(saved)
    with pytest.raises(ValueError, match="default_domain"):
        build(parametrization="freia", bins=5, default_domain=(-2, 2, -2, 2)).load_state_dict(saved)
