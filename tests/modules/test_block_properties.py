"""The shared property suite: every block in the registry honours the invertible-module contract.

Three tests per registered case (tests/modules/registry.py):

* ``test_contract``: :func:`freia_graph.testing.check_module_contract` in float64 with perturbed
  parameters (the case's ``check_kwargs`` are passed through);
* ``test_float32_round_trip``: x -> z -> x and z -> x -> z in float32 within ``case.float32_atol``;
* ``test_fullgraph_compile``: ``torch.compile(fullgraph=True, backend="eager")`` traces forward and reverse
  and matches eager mode. Cases with ``compiles=False`` are strict xfails, so we notice when they start
  compiling.

Run one block's cases with ``pytest tests/modules/test_block_properties.py -k GLOWCouplingBlock``.
"""

from __future__ import annotations

import pytest
import torch

from freia_graph.testing import (
    ContractViolation,
    check_compiles,
    check_invertible,
    check_module_contract,
    prepare_module,
)
from freia_graph.testing.calling import random_like_dims
from tests.modules.registry import BlockCase, all_cases

CASES = all_cases()
# check_module_contract options that also shape how the float32 and compile checks build the block.
PREPARE_OPTIONS = ("batch_size", "seed", "perturbation", "input_scale", "train")


def _prepare(case: BlockCase, dtype: torch.dtype):
    options = {key: case.check_kwargs[key] for key in PREPARE_OPTIONS if key in case.check_kwargs}
    return prepare_module(case.module, case.dims_in, case.dims_c, dtype=dtype, module_kwargs=case.kwargs, **options)


def _compile_param(case: BlockCase):
    if case.compiles:
        return pytest.param(case, id=case.id)
    mark = pytest.mark.xfail(strict=True, raises=ContractViolation, reason=case.compile_reason or "no reason given")
    return pytest.param(case, id=case.id, marks=mark)


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_contract(case: BlockCase):
    check_module_contract(case.module, case.dims_in, case.dims_c, module_kwargs=case.kwargs, **case.check_kwargs)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_float32_round_trip(case: BlockCase):
    if "round_trip" in case.check_kwargs.get("skip", {}):
        pytest.skip(f"round trip skipped: {case.check_kwargs['skip']['round_trip']}")
    prepared = _prepare(case, torch.float32)
    z = None
    if case.check_kwargs.get("reverse_inputs", "random") == "random":
        output_dims = prepared.module.output_dims(prepared.module.dims_in)
        z = random_like_dims(output_dims, prepared.x[0].shape[0], torch.Generator().manual_seed(1), torch.float32)
    check_invertible(prepared.module, prepared.x, prepared.c, z=z, atol=case.float32_atol, rtol=0.0)


@pytest.mark.parametrize("case", [_compile_param(case) for case in CASES])
def test_fullgraph_compile(case: BlockCase, fresh_dynamo):
    prepared = _prepare(case, torch.float64)
    check_compiles(prepared.module, prepared.x, prepared.c)
