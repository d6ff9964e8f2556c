"""Block-specific tests for ActNorm: data-dependent initialisation, batches of one, saving and loading."""

import io

import pytest
import torch
from torch import nn

from freia_graph.modules.normalization import ActNorm

SHAPES = [(5,), (3, 4, 4)]


def _per_channel(z: torch.Tensor) -> torch.Tensor:
    return z.movedim(1, 0).reshape(z.shape[1], -1)


def _data(shape, batch=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return 3.0 + 2.5 * torch.randn(batch, *shape, generator=generator)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("how", ["first_forward", "initialize", "init_data"])
def test_initialisation_gives_zero_mean_unit_std_per_channel(shape, how):
    x = _data(shape)
    block = ActNorm([shape], init_data=x if how == "init_data" else None)
    if how == "initialize":
        block.initialize(x)
    (z,), log_det = block([x])
    # FrEIA's convention (and its test suite's): the unbiased standard deviation comes out as one
    std, mean = torch.std_mean(_per_channel(z), dim=1)
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-6)
    assert torch.allclose(std, torch.ones_like(std), atol=1e-6, rtol=0)
    assert block.initialized and bool(block.is_initialized)
    positions = z[0, 0].numel()
    assert torch.allclose(log_det, -positions * _per_channel(x).std(1).log().sum(), atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_batch_of_one_gives_finite_outputs(shape):
    block = ActNorm([shape])
    x = _data(shape, batch=1)
    (z,), log_det = block([x])
    (x_back,), _ = block([z], rev=True)
    assert torch.isfinite(z).all() and torch.isfinite(log_det).all()
    assert torch.allclose(x_back, x, atol=1e-5)


def test_batch_of_one_vector_is_centred_with_unit_scale():
    block = ActNorm([(4,)])
    with torch.no_grad():
        (z,), log_det = block([_data((4,), batch=1)])
    assert torch.equal(z, torch.zeros_like(z)) and log_det.item() == 0.0


@pytest.mark.parametrize("shape", SHAPES)
def test_initialised_state_survives_saving_and_loading(shape):
    trained = ActNorm([shape])
    trained([_data(shape, seed=1)])
    buffer = io.BytesIO()
    torch.save(nn.Sequential(trained).state_dict(), buffer)
    buffer.seek(0)
    loaded = nn.Sequential(ActNorm([shape]))
    loaded.load_state_dict(torch.load(buffer))
    other = _data(shape, seed=2) * 10
    assert loaded[0].initialized
    assert torch.equal(loaded[0]([other])[0][0], trained([other])[0][0])
    assert torch.equal(loaded[0].loc, trained.loc), "a loaded ActNorm must not re-initialise"


def test_reverse_before_initialisation_raises():
    with pytest.raises(RuntimeError, match="not initialised"):
        ActNorm([(3,)])([torch.randn(2, 3)], rev=True)


def test_initialised_block_compiles_without_graph_breaks():
    block = ActNorm([(3, 2, 2)], init_data=_data((3, 2, 2)))
    compiled = torch.compile(lambda x: block([x]), fullgraph=True, backend="eager")
    x = _data((3, 2, 2), batch=4, seed=3)
    assert torch.allclose(compiled(x)[0][0], block([x])[0][0])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"dims_in": [(3,), (3,)]}, ValueError),
        ({"dims_in": [(3,)], "dims_c": [(1,)]}, ValueError),
        ({"dims_in": [(3,)], "init_data": torch.randn(4, 2)}, ValueError),
        ({"dims_in": [(3,)], "init_data": [[1.0, 2.0, 3.0]]}, TypeError),
    ],
)
def test_bad_arguments_raise(kwargs, error):
    with pytest.raises(error, match="ActNorm"):
        ActNorm(**kwargs)


@pytest.mark.parametrize("shape", SHAPES)
def test_moments_after_initialisation_on_a_skewed_float32_batch(shape):
    """A large float32 batch of uneven spread: mean 0 to 1e-7 and unbiased std 1 within allclose's defaults."""
    torch.manual_seed(0)
    x = torch.randn(256, *shape)
    x = x * torch.rand_like(x) + torch.randn_like(x)
    (z,), _ = ActNorm([shape])([x], jac=False)
    mean, std = _per_channel(z).mean(1), _per_channel(z).std(1)
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-7)
    assert torch.allclose(std, torch.ones_like(std))


def test_initialised_flag_travels_with_copy_and_load():
    """A fresh block whose state is copied in (as DDP's broadcast does) must not re-initialise."""
    trained = ActNorm([(3,)], init_data=_data((3,)))
    fresh = ActNorm([(3,)])
    with torch.no_grad():
        targets, sources = fresh.state_dict(keep_vars=True), trained.state_dict(keep_vars=True)
        for name, target in targets.items():
            target.copy_(sources[name])
    assert fresh.initialized
    other = _data((3,), seed=5) * 7
    assert torch.equal(fresh([other])[0][0], trained([other])[0][0])
    assert torch.equal(fresh.loc, trained.loc)
    # loading an uninitialised state makes the block initialise again on its next batch
    fresh.load_state_dict(ActNorm([(3,)]).state_dict())
    fresh([other])
    assert not torch.equal(fresh.loc, trained.loc)


@pytest.mark.parametrize("shape", SHAPES)
def test_non_finite_values_are_ignored_when_initialising(shape):
    x = _data(shape)
    poisoned = x.clone()
    poisoned[0] = float("nan")
    poisoned[1, 0] = float("inf")
    block = ActNorm([shape])
    with pytest.warns(RuntimeWarning, match=r"ActNorm with dims_in .* ignored \d+ non-finite"):
        block([poisoned])
    assert torch.isfinite(block.loc).all() and torch.isfinite(block.log_scale).all()
    finite_only = _per_channel(poisoned.masked_fill(~torch.isfinite(poisoned), float("nan")))
    mean = finite_only.nanmean(1)
    count = torch.isfinite(finite_only).sum(1)
    std = ((finite_only - mean[:, None]).square().nansum(1) / (count - 1)).sqrt()
    assert torch.allclose(block.loc.flatten(), mean, atol=1e-5)
    assert torch.allclose(block.log_scale.flatten(), std.log(), atol=1e-5)


def test_a_channel_without_finite_values_raises_and_stores_nothing():
    x = _data((3,))
    x[:, 1] = float("nan")
    block = ActNorm([(3,)])
    with pytest.raises(ValueError, match=r"ActNorm with dims_in \[\(3,\)\] .* channel\(s\) \[1\]"):
        block([x])
    assert not block.initialized and torch.equal(block.loc, torch.zeros_like(block.loc))


@pytest.mark.parametrize("shape", SHAPES)
def test_state_dicts_of_freia_and_earlier_freia_graph_load(shape):
    """FrEIA 0.2's ``scale``/``bias`` (z = x e^s + b) and earlier freia_graph's (C, 1, ...) shapes."""
    generator = torch.Generator().manual_seed(0)
    block = ActNorm([shape], init_data=_data(shape))
    with torch.no_grad():
        block.log_scale.add_(0.3 * torch.randn(block.log_scale.shape, generator=generator))
    x = _data(shape, seed=4)
    expected = block([x])
    log_scale, loc = block.log_scale.detach(), block.loc.detach()
    layouts = {
        "freia 0.2": {"scale": -log_scale, "bias": -loc * torch.exp(-log_scale)},
        "earlier freia_graph": {"log_scale": log_scale[0], "loc": loc[0], "is_initialized": torch.tensor(True)},
    }
    for state in layouts.values():
        loaded = ActNorm([shape])
        loaded.load_state_dict(state, strict=True)
        assert loaded.initialized
        (z,), log_det = loaded([x])
        assert torch.allclose(z, expected[0][0], atol=1e-5) and torch.allclose(log_det, expected[1], atol=1e-5)
        shapes = {key: value.shape for key, value in loaded.state_dict().items()}
        assert shapes == {key: value.shape for key, value in block.state_dict().items()}
