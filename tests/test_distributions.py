"""Densities and samples through graphs: closed forms, normalisation, sampling laws, multi-scale sums,
conditions, gradients, FrEIA's distributions with the log-det included, and the errors.

Exactness checks run in float64 with parameters perturbed away from their initialisation; each check
compares with a density computed independently (torch.distributions on the closed form, or the
hand-written sum over the graph's outputs).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from scipy import stats
from torch import nn
from torch.distributions import (
    Independent,
    Laplace,
    MultivariateNormal,
    Normal,
    SigmoidTransform,
    TransformedDistribution,
)

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.distributions import (
    DiagonalGaussian,
    EventShapeError,
    Flow,
    PullBackDistribution,
    PushForwardDistribution,
    StandardNormal,
    StandardNormalDistribution,
    WrappedDistribution,
    nll_loss,
)
from freia_graph.testing import exact_log_det, perturb_parameters

F64 = torch.float64


def mlp(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(c_in, 32), nn.Tanh(), nn.Linear(32, c_out))


def conv(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, c_out, 3, padding=1))


def linear_flow_parts(dim: int = 3) -> tuple[Ff.SequenceINN, torch.Tensor, torch.Tensor]:
    """z = Mx + b in float64, with M and b drawn once."""
    generator = torch.Generator().manual_seed(3)
    M = torch.randn(dim, dim, generator=generator, dtype=F64) + 2 * torch.eye(dim, dtype=F64)
    b = torch.randn(dim, generator=generator, dtype=F64)
    inn = Ff.SequenceINN(dim)
    inn.append(Fm.FixedLinearTransform, M=M, b=b)
    return inn.double(), M, b


def implied_gaussian(M: torch.Tensor, b: torch.Tensor, loc: torch.Tensor, covariance: torch.Tensor,
                     temperature: float = 1.0) -> MultivariateNormal:
    """The law of x = M⁻¹(z - b) for z ~ N(loc, T² covariance)."""
    inverse = torch.linalg.inv(M)
    return MultivariateNormal(inverse @ (loc - b), temperature**2 * inverse @ covariance @ inverse.T)


def nonlinear_2d_inn() -> Ff.SequenceINN:
    """A small perturbed 2-D flow with couplings, a mixing matrix (log-det ≠ 0) and a learned scaling."""
    torch.manual_seed(0)
    inn = Ff.SequenceINN(2)
    inn.append(Fm.RNVPCouplingBlock, subnet_constructor=mlp, clamp=1.5)
    inn.append(Fm.FixedLinearTransform, M=torch.tensor([[1.3, 0.4], [-0.2, 0.9]], dtype=F64))
    inn.append(Fm.GLOWCouplingBlock, subnet_constructor=mlp, clamp=1.5)
    inn.append(Fm.LearnedElementwiseScaling)
    return perturb_parameters(inn.double(), scale=0.3, seed=1)


def multi_scale_inn() -> Ff.GraphINN:
    """(2, 8, 8) images to three latents of two scales: Haar downsampling and split-off outputs."""
    torch.manual_seed(0)
    x = Ff.InputNode(2, 8, 8, name="x")
    mix = Ff.Node(x, Fm.AllInOneBlock, {"subnet_constructor": conv}, name="mix")
    down_1 = Ff.Node(mix, Fm.HaarDownsampling, {}, name="down_1")
    split_1 = Ff.Node(down_1, Fm.Split, {"section_sizes": [2, 6]}, name="split_1")
    flat = Ff.Node(split_1.out0, Fm.Flatten, {}, name="flat")
    coupling = Ff.Node(split_1.out1, Fm.GLOWCouplingBlock, {"subnet_constructor": conv, "clamp": 2.0},
                       name="coupling")
    down_2 = Ff.Node(coupling, Fm.HaarDownsampling, {"rebalance": 0.7}, name="down_2")
    split_2 = Ff.Node(down_2, Fm.Split, {"section_sizes": [12, 12]}, name="split_2")
    last = Ff.Node(split_2.out1, Fm.AllInOneBlock, {"subnet_constructor": conv}, name="last")
    outputs = [Ff.OutputNode(flat, name="fine"), Ff.OutputNode(split_2.out0, name="mid"),
               Ff.OutputNode(last, name="coarse")]
    inn = Ff.GraphINN([x, mix, down_1, split_1, flat, coupling, down_2, split_2, last, *outputs])
    return perturb_parameters(inn.double(), scale=0.1, seed=2)


def multi_scale_bases() -> dict:
    mid = perturb_parameters(DiagonalGaussian(12, 2, 2).double(), scale=0.3, seed=4)
    laplace = Independent(Laplace(torch.full((12, 2, 2), 0.1, dtype=F64), torch.full((12, 2, 2), 0.8, dtype=F64)), 3)
    return {"fine": StandardNormal, "mid": mid, "coarse": laplace}


# ---------------------------------------------------------------- closed-form densities (float64, 1e-10)


def _linear_standard():
    inn, M, b = linear_flow_parts()
    return Flow(inn), implied_gaussian(M, b, torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64))


def _linear_diagonal():
    inn, M, b = linear_flow_parts()
    base = perturb_parameters(DiagonalGaussian(3).double(), scale=0.5, seed=5)
    covariance = torch.diag(torch.exp(2 * base.log_scale.detach()))
    return Flow(inn, base), implied_gaussian(M, b, base.loc.detach(), covariance)


def _linear_full_covariance():
    inn, M, b = linear_flow_parts()
    loc = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    covariance = torch.tensor([[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5]], dtype=F64)
    return Flow(inn, MultivariateNormal(loc, covariance)), implied_gaussian(M, b, loc, covariance)


def _actnorm():
    inn = Ff.SequenceINN(4)
    inn.append(Fm.ActNorm)
    inn.double()
    inn(torch.randn(64, 4, dtype=F64) * 3 + 1)  # initialise from data
    perturb_parameters(inn, scale=0.3, seed=6)
    with torch.no_grad():  # z = a·x + c elementwise: read a and c off the map, independently of its parameters
        offset = inn(torch.zeros(1, 4, dtype=F64))[0][0]
        slope = inn(torch.ones(1, 4, dtype=F64))[0][0] - offset
    return Flow(inn), Independent(Normal(-offset / slope, 1 / slope.abs()), 1)


def _logit_normal():
    inn = Ff.SequenceINN(3)
    inn.append(Fm.Inverse(Fm.InvertibleSigmoid([(3,)])))  # data in (0, 1) -> logits
    normal = Independent(Normal(torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)), 1)
    return Flow(inn).double(), TransformedDistribution(normal, [SigmoidTransform()])  # no tensors to take a dtype from


CLOSED_FORMS = {
    "linear map, standard normal": _linear_standard,
    "linear map, diagonal Gaussian": _linear_diagonal,
    "linear map, full-covariance torch base": _linear_full_covariance,
    "ActNorm only": _actnorm,
    "elementwise sigmoid (logit-normal)": _logit_normal,
}


@pytest.mark.parametrize("case", CLOSED_FORMS, ids=list(CLOSED_FORMS))
def test_log_prob_equals_the_closed_form_density(case):
    flow, expected = CLOSED_FORMS[case]()
    x = torch.rand(16, *flow.event_shape, dtype=F64) if "sigmoid" in case else 2 * torch.randn(16, *flow.event_shape,
                                                                                                  dtype=F64)
    torch.testing.assert_close(flow.log_prob(x), expected.log_prob(x), atol=1e-10, rtol=1e-10)
    x_sampled, log_prob = flow.sample_with_log_prob(16)
    torch.testing.assert_close(log_prob, expected.log_prob(x_sampled), atol=1e-10, rtol=1e-10)


def test_density_of_a_nonlinear_2d_flow_integrates_to_one():
    inn = nonlinear_2d_inn()
    flow = Flow(inn)
    axis = torch.linspace(-9, 9, 241, dtype=F64)
    grid = torch.cartesian_prod(axis, axis)
    cell = (axis[1] - axis[0]) ** 2
    with torch.no_grad():
        density = flow.log_prob(grid).exp()
        z, _ = inn(grid)
        without_log_det = StandardNormal(2).log_prob(z).exp()
    assert abs((density.sum() * cell).item() - 1) < 1e-2
    # the check has teeth: forgetting the log-det (FrEIA's PushForwardDistribution) misses by far more
    assert abs((without_log_det.sum() * cell).item() - 1) > 0.1


# ---------------------------------------------------------------- sampling


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_samples_follow_the_implied_gaussian(temperature):
    inn, M, b = linear_flow_parts()
    loc = torch.tensor([1.0, 0.0, -0.5], dtype=F64)
    base = DiagonalGaussian(3, loc=loc, log_scale=torch.tensor([0.2, -0.3, 0.0])).double()
    flow = Flow(inn, base)
    expected = implied_gaussian(M, b, loc, torch.diag(torch.exp(2 * base.log_scale.detach())), temperature)
    torch.manual_seed(11)
    samples, log_prob = flow.sample_with_log_prob(20000, temperature=temperature)
    standard_error = expected.variance.sqrt() / math.sqrt(len(samples))
    assert ((samples.mean(0) - expected.mean).abs() < 5 * standard_error).all()
    torch.testing.assert_close(torch.cov(samples.T), expected.covariance_matrix, rtol=0.05, atol=0.02)
    direction = torch.tensor([0.3, -0.8, 0.5], dtype=F64)
    reference = expected.sample((20000,))
    assert stats.ks_2samp((samples @ direction).numpy(), (reference @ direction).numpy()).pvalue > 1e-3
    torch.testing.assert_close(log_prob, expected.log_prob(samples), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("build", ["nonlinear 2-D", "multi-scale"])
def test_log_prob_of_samples_equals_sample_with_log_prob(build):
    flow = Flow(nonlinear_2d_inn()) if build == "nonlinear 2-D" else Flow(multi_scale_inn(), multi_scale_bases())
    x, log_prob = flow.sample_with_log_prob(6)
    assert x.shape == (6, *flow.event_shape) and log_prob.shape == (6,)
    torch.testing.assert_close(flow.log_prob(x), log_prob, atol=1e-9, rtol=1e-9)


# ---------------------------------------------------------------- multi-scale graphs


def test_multi_scale_log_prob_is_the_sum_over_every_latent_plus_the_log_det():
    inn = multi_scale_inn()
    bases = multi_scale_bases()
    flow = Flow(inn, bases)
    x = torch.randn(4, 2, 8, 8, dtype=F64)
    (fine, mid, coarse), log_det = inn(x)
    mid_base = bases["mid"]
    by_hand = (Normal(0.0, 1.0).log_prob(fine).sum(1)
               + Normal(mid_base.loc, mid_base.log_scale.exp()).log_prob(mid).sum((1, 2, 3))
               + bases["coarse"].log_prob(coarse) + log_det)
    log_prob, latents = flow.log_prob_and_latents(x)
    torch.testing.assert_close(log_prob, by_hand, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(latents[2], coarse)
    torch.testing.assert_close(log_det[:2], exact_log_det(inn, [x[:2]]), atol=1e-8, rtol=1e-8)
    assert [tuple(base.shape) for base in flow.bases] == [(32,), (12, 2, 2), (12, 2, 2)]


def test_several_inputs_as_list_or_dict():
    a, b = Ff.InputNode(2, name="a"), Ff.InputNode(3, name="b")
    merge = Ff.Node([a, b], Fm.Concat, {}, name="merge")
    coupling = Ff.Node(merge, Fm.GLOWCouplingBlock, {"subnet_constructor": mlp}, name="coupling")
    inn = perturb_parameters(Ff.GraphINN([a, b, merge, coupling, Ff.OutputNode(coupling, name="z")]).double())
    flow = Flow(inn)
    xa, xb = torch.randn(4, 2, dtype=F64), torch.randn(4, 3, dtype=F64)
    log_prob = flow.log_prob([xa, xb])
    torch.testing.assert_close(flow.log_prob({"b": xb, "a": xa}), log_prob)
    z, log_det = inn([xa, xb])
    torch.testing.assert_close(log_prob, StandardNormal(5).log_prob(z) + log_det)
    torch.testing.assert_close(nll_loss(flow, [xa, xb]), -log_prob.mean() / 5)
    samples = flow.sample(7)
    assert [tuple(s.shape) for s in samples] == [(7, 2), (7, 3)] and flow.input_shapes == [(2,), (3,)]


# ---------------------------------------------------------------- conditions


def conditional_flow() -> Flow:
    torch.manual_seed(0)
    inn = Ff.SequenceINN(2)
    for seed in range(2):
        inn.append(Fm.GLOWCouplingBlock, cond=0, cond_shape=(1,), subnet_constructor=mlp)
        inn.append(Fm.PermuteRandom, seed=seed)
    return Flow(inn)


@pytest.fixture
def one_thread():
    """A small model trains fastest on one thread, and is then immune to busy neighbours."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_per_sample_conditions_give_per_sample_distributions(one_thread):
    flow = conditional_flow()
    optimizer = torch.optim.Adam(flow.parameters(), lr=2e-2)
    for _ in range(60):  # data: x ~ N(3c, 0.5²) for c = ±1
        c = torch.randint(0, 2, (128, 1)).float() * 2 - 1
        loss = nll_loss(flow, 3 * c + 0.5 * torch.randn(128, 2), c)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    c = torch.cat([-torch.ones(1000, 1), torch.ones(1000, 1)])
    samples = flow.sample(2000, c=c)
    assert (samples[:1000].mean(0) < -1.5).all() and (samples[1000:].mean(0) > 1.5).all()


@pytest.mark.parametrize("shared", ["unbatched", "batch of one"])
def test_a_single_condition_is_shared_by_every_sample(shared):
    flow = perturb_parameters(conditional_flow())
    c = torch.tensor([0.7]) if shared == "unbatched" else torch.tensor([[0.7]])
    torch.manual_seed(5)
    broadcast = flow.sample(9, c=c)
    torch.manual_seed(5)
    per_sample = flow.sample(9, c=torch.full((9, 1), 0.7))
    torch.testing.assert_close(broadcast, per_sample)


# ---------------------------------------------------------------- gradients, modules


def test_rsample_carries_gradients_and_sample_does_not():
    flow = Flow(perturb_parameters(conditional_flow().inn), DiagonalGaussian)
    c = torch.randn(8, 1)
    flow.rsample(8, c).square().sum().backward()
    missing = [name for name, p in flow.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing and any(name.startswith("bases.0.") for name, _ in flow.named_parameters())
    x, log_prob = flow.rsample_with_log_prob(8, c)
    assert x.requires_grad and log_prob.requires_grad
    for result in (flow.sample(8, c), *flow.sample_with_log_prob(8, c)):
        assert not result.requires_grad and result.grad_fn is None


def test_flow_is_a_module_and_a_distribution(tmp_path):
    inn, M, b = linear_flow_parts()
    flow = Flow(inn, DiagonalGaussian)
    assert isinstance(flow, torch.distributions.Distribution) and isinstance(flow, nn.Module)
    assert set(flow.state_dict()) == {"inn.module_list.0.M", "inn.module_list.0.M_inv",  # FrEIA's names
                                      "inn.module_list.0.b", "inn.module_list.0.logDetM",
                                      "bases.0.loc", "bases.0.log_scale"}
    perturb_parameters(flow, seed=8)
    other = Flow(linear_flow_parts()[0], DiagonalGaussian).double()
    other.load_state_dict(flow.state_dict())
    x = torch.randn(5, 3, dtype=F64)
    torch.testing.assert_close(other.log_prob(x), flow.log_prob(x))
    torch.testing.assert_close(copy.deepcopy(flow).log_prob(x), flow.log_prob(x))
    wrapped = Flow(linear_flow_parts()[0].float(), MultivariateNormal(torch.zeros(3), torch.eye(3)))
    assert wrapped.sample(2).dtype == torch.float32
    assert wrapped.double().sample(2).dtype == F64 and Flow(linear_flow_parts()[0]).double().sample(2).dtype == F64


def test_distributed_data_parallel_computes_the_loss(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        flow = Flow(perturb_parameters(conditional_flow().inn), DiagonalGaussian)
        parallel = nn.parallel.DistributedDataParallel(flow)
        x, c = torch.randn(8, 2), torch.randn(8, 1)
        loss = nll_loss(parallel, x, c)
        torch.testing.assert_close(loss, nll_loss(flow, x, c))
        loss.backward()
        assert all(p.grad is not None for p in flow.parameters())
    finally:
        dist.destroy_process_group()


def test_nll_loss_and_bits_per_dim():
    inn, M, b = linear_flow_parts(4)
    flow = Flow(inn)
    expected = implied_gaussian(M, b, torch.zeros(4, dtype=F64), torch.eye(4, dtype=F64))
    pixels = torch.randint(0, 256, (6, 4)).to(F64)
    torch.testing.assert_close(nll_loss(flow, pixels / 256), -expected.log_prob(pixels / 256).mean() / 4)
    torch.manual_seed(2)
    bits = flow.bits_per_dim(pixels)
    torch.manual_seed(2)
    dequantised = (pixels + torch.rand_like(pixels)) / 256
    torch.testing.assert_close(bits, (-expected.log_prob(dequantised) / 4 + math.log(256)) / math.log(2))
    torch.testing.assert_close(flow.bits_per_dim(dequantised, dequantization="none"), bits)


# ---------------------------------------------------------------- FrEIA's distributions, log-det included


def test_push_forward_log_prob_includes_the_log_det():
    sigmoid = Ff.SequenceINN(3)
    sigmoid.append(Fm.InvertibleSigmoid)
    pushed = PushForwardDistribution(StandardNormalDistribution(3, dtype=F64), sigmoid.double())
    logit_normal = _logit_normal()[1]
    x = torch.rand(5, 4, 3, dtype=F64)
    torch.testing.assert_close(pushed.log_prob(x), logit_normal.log_prob(x), atol=1e-10, rtol=1e-10)
    assert pushed.sample((5, 2)).shape == (5, 2, 3) and pushed.sample().shape == (3,)
    # FrEIA's value (the base's log-density of the latent, no log-det) is far off
    without_log_det = StandardNormalDistribution(3, dtype=F64).log_prob(torch.logit(x))
    assert (pushed.log_prob(x) - without_log_det).abs().min() > 1


def test_pull_back_is_a_normalizing_flow():
    inn = nonlinear_2d_inn()
    pulled = PullBackDistribution(StandardNormalDistribution(2, dtype=F64), inn)
    x = torch.randn(7, 2, dtype=F64)
    z, _ = inn(x)
    expected = Normal(0.0, 1.0).log_prob(z).sum(1) + exact_log_det(inn, [x])
    torch.testing.assert_close(pulled.log_prob(x), expected, atol=1e-10, rtol=1e-10)
    sample = pulled.rsample((3,))
    assert sample.requires_grad and not pulled.sample((3,)).requires_grad
    pulled.force_to(torch.float32)
    assert pulled.sample((2,)).dtype == torch.float32


# ---------------------------------------------------------------- errors


def _flow_2d():
    inn = Ff.SequenceINN(2)
    inn.append(Fm.PermuteRandom, seed=0)
    return Flow(inn)


ERRORS = [
    ("not a module", lambda: Flow(nn.Linear(2, 2)), TypeError, "InvertibleModule"),
    ("base shape", lambda: Flow(multi_scale_inn(), [StandardNormal(32), StandardNormal(12, 2, 2),
                                                     StandardNormal(12, 4)]),
     ValueError, r"output 'coarse'.*\(12, 4\).*\(12, 2, 2\)"),
    ("torch base shape", lambda: Flow(_flow_2d().inn, StandardNormalDistribution(3)), ValueError,
     r"output '0'.*\(3,\).*\(2,\)"),
    ("too few bases", lambda: Flow(multi_scale_inn(), [StandardNormal, StandardNormal]), ValueError,
     r"2 base\(s\) for 3 output\(s\)"),
    ("dict leaves one out", lambda: Flow(multi_scale_inn(), {"fine": None, "mid": None}), ValueError,
     r"missing \['coarse'\]"),
    ("one base, many outputs", lambda: Flow(multi_scale_inn(), StandardNormal(32)), ValueError,
     "one base per output"),
    ("batch shape", lambda: Flow(_flow_2d().inn, Normal(torch.zeros(2), torch.ones(2))), ValueError, "Independent"),
    ("not a distribution", lambda: Flow(_flow_2d().inn, "normal"), TypeError, "LatentDistribution"),
    ("zero samples", lambda: _flow_2d().sample(0), ValueError, "positive int"),
    ("sample shape", lambda: _flow_2d().sample((2, 3)), ValueError, r"shape \(n,\)"),
    ("temperature", lambda: _flow_2d().sample(3, temperature=0.0), ValueError, "temperature"),
    ("condition count", lambda: _flow_2d().sample(3, c=torch.zeros(1)), ValueError, "condition"),
    ("condition shape", lambda: conditional_flow().sample(3, c=torch.zeros(2)), ValueError,
     r"condition 'c\[0\]' has shape \(2,\)"),
    ("dequantization", lambda: _flow_2d().bits_per_dim(torch.zeros(2, 2), dequantization="gauss"), ValueError,
     "dequantization"),
    ("bad event shape", lambda: StandardNormal(2, 0), ValueError, "positive ints"),
    ("diagonal loc", lambda: DiagonalGaussian(2, loc=torch.zeros(3)), ValueError, r"loc of shape \(3,\)"),
    ("push-forward base", lambda: PushForwardDistribution(StandardNormalDistribution(3), _flow_2d().inn),
     ValueError, r"\(3,\).*input shape \(2,\)"),
    ("push-forward transform", lambda: PullBackDistribution(StandardNormalDistribution(2), nn.Identity()),
     TypeError, "InvertibleModule"),
    ("push-forward value", lambda: PushForwardDistribution(StandardNormalDistribution(2), _flow_2d().inn).log_prob(
        torch.zeros(4, 3)), EventShapeError, r"\(4, 3\).*\(2,\)"),
    ("temperature without mean", lambda: Flow(_flow_2d().inn, WrappedDistribution(
        _NoMean(torch.zeros(2)))).sample(2, temperature=0.5), ValueError, "mean"),
]


class _NoMean(Independent):
    def __init__(self, loc):
        super().__init__(Normal(loc, torch.ones_like(loc)), 1)

    @property
    def mean(self):
        raise NotImplementedError


@pytest.mark.parametrize("make, error, message", [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_bad_arguments_raise_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_event_shape_error_is_what_freia_raised():
    assert issubclass(EventShapeError, RuntimeError) and issubclass(EventShapeError, ValueError)


def test_half_precision_latents_are_scored_in_float32():
    """A bfloat16 latent's log-density is summed in float32: 1537 ones square-sum to 1537, which bfloat16
    (spacing 8 there) would round to 1536, half a nat off."""
    inn = Ff.SequenceINN(1537)
    inn.append(Fm.PermuteRandom, seed=0)
    flow = Flow(inn).to(torch.bfloat16)
    x = torch.ones(2, 1537, dtype=torch.bfloat16)
    expected = -0.5 * 1537 - 0.5 * 1537 * math.log(2 * math.pi)
    log_prob = flow.log_prob(x)
    assert log_prob.dtype == torch.float32
    torch.testing.assert_close(log_prob, torch.full((2,), expected), rtol=0, atol=1e-3)
