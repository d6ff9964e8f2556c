"""Property-testing tools for invertible modules and graphs: contract checks, exact log-dets, strategies.

``check_module_contract`` checks every property of the block contract; ``check_invertible`` and
``check_log_det`` check any block or graph on given inputs. The hypothesis strategies live in
:mod:`freia_graph.testing.strategies` (imported lazily, so this package works without hypothesis).
"""

from __future__ import annotations

import importlib
from typing import Any

from .checks import check_compiles, check_invertible, check_log_det, perturb_parameters, prepare_model
from .contract import PROPERTIES, ContractReport, PreparedModule, check_module_contract, prepare_module
from .describe import describe
from .jacobian import exact_jacobian, exact_log_det
from .memory import saved_tensor_bytes
from .violations import ContractViolation

__all__ = [
    "PROPERTIES",
    "ContractReport",
    "ContractViolation",
    "PreparedModule",
    "check_compiles",
    "check_invertible",
    "check_log_det",
    "check_module_contract",
    "describe",
    "exact_jacobian",
    "exact_log_det",
    "perturb_parameters",
    "prepare_model",
    "prepare_module",
    "saved_tensor_bytes",
]


def __getattr__(name: str) -> Any:
    if name == "strategies":
        return importlib.import_module(".strategies", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
