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
    std, mean = torch.std_mean(_per_channel(z), dim=1, correction=0)
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5)
    assert torch.allclose(std, torch.ones_like(std), atol=1e-5)
    assert block.initialized and bool(block.is_initialized)
    positions = z[0, 0].numel()
    assert torch.allclose(log_det, -positions * _per_channel(x).std(1, correction=0).log().sum(), atol=1e-4)


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
