"""Every registered block keeps its input's dtype: float32 in, float32 out (outputs and log-det), both ways.

The block is built as a user builds it, without ``.to(dtype)`` (which would hide float64 buffers made
in ``__init__``); tensors among its arguments (fixed matrices) are given in float32, as a float32 user
would. A block that silently computes in float64 from float32 parameters doubles memory and time
downstream and defeats the graph's dtype check, so this runs over the whole registry
(tests/modules/registry.py).
"""

from __future__ import annotations

import pytest
import torch

from freia_graph.testing.calling import random_like_dims
from tests.modules.registry import BlockCase, all_cases

CASES = all_cases()


def _dtypes(answer) -> list[tuple[str, torch.dtype]]:
    outputs, log_det = answer
    found = [(f"output {i}", tensor.dtype) for i, tensor in enumerate(outputs)]
    if isinstance(log_det, torch.Tensor):
        found.append(("log-det", log_det.dtype))
    return found


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_float32_in_float32_out(case: BlockCase):
    assert torch.get_default_dtype() == torch.float32
    torch.manual_seed(0)
    kwargs = {key: value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value
              for key, value in case.kwargs.items()}
    module = case.module(case.dims_in, **({"dims_c": case.dims_c} if case.dims_c else {}), **kwargs)
    generator = torch.Generator().manual_seed(0)
    x = random_like_dims(case.dims_in, 4, generator, torch.float32)
    c = random_like_dims(case.dims_c, 4, generator, torch.float32) or None
    forward = module(x, c, rev=False, jac=True)
    backward = module(list(forward[0]), c, rev=True, jac=True)
    wrong = [(direction, what, dtype) for direction, answer in (("forward", forward), ("reverse", backward))
             for what, dtype in _dtypes(answer) if dtype != torch.float32]
    assert not wrong, f"{case.id} returns {wrong} for float32 inputs and parameters"
