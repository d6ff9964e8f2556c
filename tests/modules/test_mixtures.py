"""Gaussian mixture: buffers follow the module, every way of choosing components, the NLL helpers."""

import pytest
import torch

from freia_graph.modules import GaussianMixtureModel

K, D, BATCH = 4, 3, 5
DIMS_C = [(K,), (K, D), (K, D * (D + 1) // 2)]


def _conditions(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    w = GaussianMixtureModel.normalize_weights(torch.randn(BATCH, K, generator=generator, dtype=torch.float64))
    mu = torch.randn(BATCH, K, D, generator=generator, dtype=torch.float64)
    U_entries = torch.randn(BATCH, K, D * (D + 1) // 2, generator=generator, dtype=torch.float64)
    return [w, mu, U_entries]


def _reference_factor(entries: torch.Tensor) -> torch.Tensor:
    """FrEIA's layout: exp of the first D entries on the diagonal, the rest row by row above it."""
    factor = torch.diag(entries[:D].exp())
    rows, cols = torch.triu_indices(D, D, offset=1)
    factor[rows, cols] = entries[D:]
    return factor


def _reference_latent(x, conditions, index):
    _, mu, U_entries = conditions
    return torch.stack([_reference_factor(U_entries[b, index[b]]) @ (x[b] - mu[b, index[b]]) for b in range(BATCH)])


def test_index_map_is_a_buffer_that_follows_the_module():
    """FrEIA keeps its triangle masks as plain attributes, left on the CPU by .to(device)."""
    block = GaussianMixtureModel([(D,)], DIMS_C)
    assert "triangle_source" in dict(block.named_buffers())
    assert block.to("meta").triangle_source.device.type == "meta"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_explicit_indices_use_freia_s_factor_layout(dtype):
    block = GaussianMixtureModel([(D,)], DIMS_C + [(1,)]).to(dtype)
    conditions = [t.to(dtype) for t in _conditions()]
    x = torch.randn(BATCH, D, dtype=dtype)
    index = torch.tensor([[0], [3], [1], [3], [2]])
    (z,), log_det = block([x], c=[*conditions, index])
    torch.testing.assert_close(z, _reference_latent(x, conditions, index.flatten()))
    chosen = conditions[2][torch.arange(BATCH), index.flatten()]
    torch.testing.assert_close(log_det, chosen[:, :D].sum(dim=1))
    (x_back,), log_det_rev = block([z], c=[*conditions, index], rev=True)
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(log_det_rev, -log_det)


@pytest.mark.parametrize("choice", ["argmax", "seed"])
def test_implicit_choices_match_explicit_indices(choice):
    block = GaussianMixtureModel([(D,)], DIMS_C)
    conditions = _conditions()
    x = torch.randn(BATCH, D, dtype=torch.float64)
    if choice == "argmax":
        (z,), _ = block([x], c=conditions)
        index = conditions[0].argmax(dim=1)
    else:
        (z,), _ = block([x], c=[*conditions, 7])
        index = GaussianMixtureModel.pick_mixture_component(conditions[0], seed=7)
        torch.testing.assert_close(block([x], c=[*conditions, 7])[0][0], z)
    torch.testing.assert_close(z, _reference_latent(x, conditions, index))


@pytest.mark.parametrize("conditions_extra", [[], [None]])
def test_all_components_map_each_slice_and_sum_their_log_dets(conditions_extra):
    block = GaussianMixtureModel([(K, D)], DIMS_C)
    conditions = _conditions()
    x = torch.randn(BATCH, K, D, dtype=torch.float64)
    (z,), log_det = block([x], c=conditions + conditions_extra)
    for k in range(K):
        index = torch.full((BATCH,), k)
        torch.testing.assert_close(z[:, k], _reference_latent(x[:, k], conditions, index))
    torch.testing.assert_close(log_det, block.component_log_dets(conditions[2]).sum(dim=1))


def test_nll_is_stable_and_bounded_by_jensen():
    """FrEIA exponentiates before summing (overflow) and its 'upper bound' can undercut the NLL."""
    generator = torch.Generator().manual_seed(1)
    w = torch.softmax(torch.randn(6, K, generator=generator, dtype=torch.float64), dim=1)
    z = torch.randn(6, K, D, generator=generator, dtype=torch.float64)
    log_jacobian = 800 * torch.rand(6, K, generator=generator, dtype=torch.float64)
    nll = GaussianMixtureModel.nll_loss(w, z, log_jacobian)
    terms = w.log() - 0.5 * (z**2).sum(dim=-1) + log_jacobian
    shift = terms.max(dim=1, keepdim=True).values
    torch.testing.assert_close(nll, -(shift.squeeze(1) + (terms - shift).exp().sum(dim=1).log()))
    assert (GaussianMixtureModel.nll_upper_bound(w, z, log_jacobian) >= nll).all()


def test_picked_components_stay_in_range_when_the_weights_sum_below_one():
    w = torch.tensor([[0.5, 0.4999]]).expand(4000, 2)
    index = GaussianMixtureModel.pick_mixture_component(w, seed=0)
    assert index.dtype == torch.int64 and index.min() >= 0 and index.max() <= 1
    assert abs(index.double().mean().item() - 0.5) < 0.05


@pytest.mark.parametrize(
    ("dims_in", "dims_c", "match"),
    [
        ([(D,)], DIMS_C[:2], "needs the conditions"),
        ([(D,)], [(K,), (K, D), (K, D)], "expects the conditions"),
        ([(D,)], [(K,), (K + 1, D), DIMS_C[2]], "expects the conditions"),
        ([(K + 1, D)], DIMS_C, "expects the conditions"),
        ([(2, K, D)], DIMS_C, r"shape \(D,\) or \(K, D\)"),
        ([(D,), (D,)], DIMS_C, "exactly one input"),
        ([(D,)], DIMS_C + [(2,)], "one entry per sample"),
    ],
)
def test_bad_shapes_raise(dims_in, dims_c, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureModel(dims_in, dims_c)


@pytest.mark.parametrize(
    ("dims_in", "choice", "x_shape", "error", "match"),
    [
        ([(D,)], None, (BATCH, D + 1), ValueError, r"every component .* \(batch, 4, 3\), got \(5, 4\)"),
        ([(K, D)], torch.zeros(BATCH), (BATCH, K, D), ValueError, r"one component .* \(batch, 3\)"),
        ([(D,)], "first", (BATCH, D), TypeError, "int seed or None"),
    ],
)
def test_bad_calls_raise(dims_in, choice, x_shape, error, match):
    block = GaussianMixtureModel(dims_in, DIMS_C)
    with pytest.raises(error, match=match):
        block([torch.randn(x_shape, dtype=torch.float64)], c=[*_conditions(), choice])


@pytest.mark.parametrize(("c", "match"), [(None, "got None"), (_conditions()[:2], "got 2 conditions")])
def test_missing_conditions_raise(c, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureModel([(D,)], DIMS_C)([torch.randn(BATCH, D, dtype=torch.float64)], c=c)
