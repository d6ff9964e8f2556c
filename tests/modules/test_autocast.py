"""Every registered block under ``torch.autocast``: runs both ways, stays finite, and matches float32.

Each case of the registry (tests/modules/registry.py) is built in float32 with perturbed parameters and
put in a one-node GraphINN, so the log-det checked is the public total. Under bfloat16 autocast (CPU;
CUDA too where there is one) it must

* run forward and reverse with finite outputs and log-dets;
* give outputs within ``rtol`` of the float32 outputs, and a round trip within ``rtol`` of the float32
  round trip (the float32 round trip is ``x`` for exact inverses; InvAuto layers are inverses only for
  orthogonal weights, and are held to the same answer as in float32);
* return a float32 log-det (accumulated in float32, never bfloat16) within ``rtol`` of the float32 one.

Where a CUDA device is present, each case also runs on CUDA: in float32 (matching the CPU) and under
bfloat16 and float16 autocast (the same tolerances; float16 has more significant bits, less range).

Errors are measured relative to the reference's scale, ``max|a - b| <= rtol * max(1, max|b|)``.
bfloat16 keeps 8 significant bits (unit roundoff 2**-9, about 0.002), so ``BF16_RTOL`` allows about
25 roundoffs for a subnet, a matrix product and the inverse's cancellation together; blocks whose answer
passes through more bfloat16 products have a looser entry in ``RTOL``. Blocks that half precision cannot
run (slogdet) or runs too coarsely (spline knots and bin search) compute in float32 internally
(``freia_graph.modules._linalg.in_float32``): splines then round-trip to float32 accuracy.
"""

from __future__ import annotations

import pytest
import torch

import freia_graph.framework as Ff
from freia_graph.testing import prepare_module
from tests.devices import requires_cuda
from tests.modules.registry import BlockCase, all_cases

CASES = all_cases()
PREPARE_OPTIONS = ("batch_size", "seed", "perturbation", "input_scale", "train")

BF16_RTOL = 0.05
# Looser tolerances, by module class name, with the reason.
RTOL: dict[str, float] = {
    # A Gaussian-mixture's reverse solves a triangular system on bfloat16 products and mixes components.
    "GaussianMixtureModel": 0.1,
    # The log-det sums the log-slopes of bins sized by a bfloat16 subnet: narrow bins magnify its rounding
    # (measured 0.04 on the CPU).
    "LinearSpline": 0.1,
}


def rtol_of(case: BlockCase) -> float:
    """The bfloat16 tolerance of a case: ``RTOL`` for its class, else ``BF16_RTOL``."""
    return RTOL.get(case.module.__name__, BF16_RTOL)


def one_node_graph(module: torch.nn.Module, case: BlockCase) -> Ff.GraphINN:
    """The block as the only node of a GraphINN, with one InputNode per input and ConditionNode per condition."""
    inputs = [Ff.InputNode(*dims, name=f"x{i}") for i, dims in enumerate(case.dims_in)]
    conditions = [Ff.ConditionNode(*dims, name=f"c{i}") for i, dims in enumerate(case.dims_c)]
    node = Ff.Node([(x, 0) for x in inputs], module, conditions=conditions or None, name="block")
    outputs = [Ff.OutputNode((node, i), name=f"z{i}") for i in range(len(node.output_dims))]
    return Ff.GraphINN([*inputs, *conditions, node, *outputs], force_tuple_output=True)


def prepared_graph(case: BlockCase, device: str) -> tuple[Ff.GraphINN, list[torch.Tensor], list[torch.Tensor]]:
    """The case's block, float32 with perturbed parameters, in a one-node graph on ``device``; inputs, conditions."""
    options = {key: case.check_kwargs[key] for key in PREPARE_OPTIONS if key in case.check_kwargs}
    prepared = prepare_module(case.module, case.dims_in, case.dims_c, dtype=torch.float32,
                              module_kwargs=case.kwargs, **options)
    inn = one_node_graph(prepared.module, case).to(device)
    return inn, [x.to(device) for x in prepared.x], [c.to(device) for c in prepared.c]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, what: str) -> None:
    """``max|actual - expected| <= rtol * max(1, max|expected|)``, finite, with a message naming ``what``."""
    assert torch.isfinite(actual).all(), f"{what}: non-finite values under autocast"
    error = (actual.double() - expected.double()).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    assert error <= rtol * scale, f"{what}: error {error:.3g} > {rtol} * {scale:.3g}"


def check_autocast(case: BlockCase, device: str, dtype: torch.dtype) -> None:
    """Run the case under autocast on ``device`` in ``dtype`` and compare with float32 (see the module docstring)."""
    inn, x, c = prepared_graph(case, device)
    rtol = rtol_of(case)
    with torch.no_grad():
        z32, log_det32 = inn(x, c or None)
        x32, _ = inn(list(z32), c or None, rev=True)
        with torch.autocast(device, dtype=dtype):
            z, log_det = inn(x, c or None)
            x_back, log_det_rev = inn(list(z), c or None, rev=True)
    assert log_det.dtype == torch.float32 and log_det_rev.dtype == torch.float32, (
        f"{case.id}: the total log-det is {log_det.dtype} forward, {log_det_rev.dtype} reverse; expected float32")
    assert torch.isfinite(log_det_rev).all(), f"{case.id}: non-finite reverse log-det"
    for i, (actual, expected) in enumerate(zip(z, z32)):
        assert_close(actual, expected, rtol, f"{case.id} output {i}")
    for i, (actual, expected) in enumerate(zip(x_back, x32)):
        assert_close(actual, expected, rtol, f"{case.id} round trip of input {i}")
    assert_close(log_det, log_det32, rtol, f"{case.id} log-det")


PRECISIONS = [
    pytest.param("cpu", torch.bfloat16, id="cpu-bfloat16"),
    pytest.param("cuda", torch.bfloat16, id="cuda-bfloat16", marks=requires_cuda),
    pytest.param("cuda", torch.float16, id="cuda-float16", marks=requires_cuda),
]


@pytest.mark.parametrize("device, dtype", PRECISIONS)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_autocast(case: BlockCase, device: str, dtype: torch.dtype):
    check_autocast(case, device, dtype)


@requires_cuda
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_cuda_float32_matches_cpu(case: BlockCase):
    """On CUDA in float32 the block gives the CPU's answer (no tensor left on the CPU inside), and inverts."""
    inn, x, c = prepared_graph(case, "cpu")
    with torch.no_grad():
        z_cpu, log_det_cpu = inn(x, c or None)
        x_cpu, _ = inn(list(z_cpu), c or None, rev=True)
        inn.to("cuda")
        z, log_det = inn([t.cuda() for t in x], [t.cuda() for t in c] or None)
        x_back, _ = inn(list(z), [t.cuda() for t in c] or None, rev=True)
    tolerance = 10 * case.float32_atol
    for actual, expected in zip([*z, *x_back, log_det], [*z_cpu, *x_cpu, log_det_cpu]):
        assert actual.device.type == "cuda"
        assert_close(actual.cpu(), expected, tolerance, f"{case.id} on CUDA")


def test_tolerance_table_names_registered_blocks():
    names = {case.module.__name__ for case in CASES}
    assert set(RTOL) <= names, f"RTOL names blocks that are not in the registry: {sorted(set(RTOL) - names)}"
