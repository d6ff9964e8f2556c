"""Elementwise maps: FrEIA's log-det bugs, argument errors, and the sigmoid's numerical range."""

import math

import pytest
import torch
import torch.nn.functional as F

from freia_graph.modules import InvertibleSigmoid, LearnedElementwiseScaling


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_scaling_reverse_log_det_is_negated(shape):
    """FrEIA returns +sum(s) in both directions."""
    scaling = LearnedElementwiseScaling([shape], init_scale=1.5)
    with torch.no_grad():
        scaling.s.add_(0.3 * torch.randn_like(scaling.s))
    (z,), log_det = scaling([torch.randn(3, *shape)])
    _, log_det_rev = scaling([z], rev=True)
    torch.testing.assert_close(log_det, scaling.s.sum())
    torch.testing.assert_close(log_det_rev, -log_det)


@pytest.mark.parametrize("init_scale, error", [(0.0, ValueError), (-1.0, ValueError), (math.nan, ValueError),
                                               (True, TypeError), ("2", TypeError)])
def test_scaling_rejects_bad_init_scale(init_scale, error):
    with pytest.raises(error, match="init_scale"):
        LearnedElementwiseScaling([(3,)], init_scale=init_scale)


@pytest.mark.parametrize("rev", [False, True])
def test_sigmoid_runs_without_jacobian(rev):
    """FrEIA fails with jac=False."""
    sigmoid = InvertibleSigmoid([(2, 3, 3)])
    x = torch.rand(4, 2, 3, 3) if rev else torch.randn(4, 2, 3, 3)
    (out,), log_det = sigmoid([x], rev=rev, jac=False)
    (expected,), _ = sigmoid([x], rev=rev)
    assert log_det is None and torch.equal(out, expected)


def test_sigmoid_log_det_sums_over_all_non_batch_dims():
    """FrEIA sums over dimension 1 only."""
    x = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    _, log_det = InvertibleSigmoid([(2, 3, 3)])([x])
    derivative = torch.sigmoid(x) * torch.sigmoid(-x)
    torch.testing.assert_close(log_det, derivative.log().sum(dim=(1, 2, 3)))


def test_sigmoid_log_det_stays_finite_far_out():
    x = torch.tensor([[-200.0, -40.0, 0.0, 40.0, 200.0]])
    _, log_det = InvertibleSigmoid([(5,)])([x])
    exact = (-x.abs() - 2 * F.softplus(-x.abs())).sum(1)
    torch.testing.assert_close(log_det, exact)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logit_clamps_the_ends_of_the_range_to_finite_values(dtype):
    z = torch.tensor([[0.0, 1.0, 0.5, -0.5, 1.5]], dtype=dtype)
    (x,), log_det = InvertibleSigmoid([(5,)])([z], rev=True)
    assert torch.isfinite(x).all() and torch.isfinite(log_det).all()
    assert x[0, 0] < -80 and x[0, 1] > 15 and x[0, 2] == 0


def test_sigmoid_round_trip_is_exact_in_float64_over_a_wide_range():
    """Far below 0 the sigmoid keeps full precision; above, 1 - z loses digits, hence the upper bound."""
    x = torch.linspace(-60, 20, 81, dtype=torch.float64).unsqueeze(0)
    sigmoid = InvertibleSigmoid([(81,)])
    (z,), log_det = sigmoid([x])
    (x_back,), log_det_rev = sigmoid([z], rev=True)
    torch.testing.assert_close(x_back, x, atol=1e-6, rtol=1e-9)
    torch.testing.assert_close(log_det_rev, -log_det)
