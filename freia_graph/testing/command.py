"""Check an invertible block: its whole contract, then random graphs that contain it.

``freia-graph check PACKAGE.MODULE:CLASS --dims 8 [--cond 4] [--examples N]`` builds the block for
inputs of shape ``--dims`` (and conditions ``--cond``), runs :func:`check_module_contract` on it, and
searches random GraphINNs that contain it for a round trip or log-det that fails, shrinking any failure
to a small graph. It prints a report and exits with 1 when anything fails (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
from typing import Any

import torch

from freia_graph.modules.base import Shape

from .calling import random_like_dims
from .checks import check_invertible, check_log_det
from .contract import check_module_contract
from .describe import describe
from .violations import ContractViolation

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``check`` sub-command's arguments to ``parser`` and make :func:`run` its action.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_arguments(parser)
        >>> args = parser.parse_args(["freia_graph.modules:PermuteRandom", "--dims", "4", "--cond", "2"])
        >>> args.dims, args.cond, args.examples, args.run is run
        ([4], [[2]], 50, True)
    """
    parser.add_argument("target", metavar="PACKAGE.MODULE:CLASS", help="the InvertibleModule class to check")
    parser.add_argument(
        "--dims",
        type=int,
        nargs="+",
        required=True,
        metavar="N",
        help="input shape without batch, e.g. --dims 8 or --dims 3 16 16",
    )
    parser.add_argument(
        "--cond",
        type=int,
        nargs="+",
        action="append",
        default=[],
        metavar="N",
        help="a condition shape; repeat for several conditions",
    )
    parser.add_argument("--examples", type=int, default=50, metavar="N", help="random graphs to try (default 50)")
    parser.add_argument(
        "--kwargs",
        type=json.loads,
        default={},
        metavar="JSON",
        help="constructor arguments as JSON, e.g. '{\"clamp\": 1.5}'",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="PROPERTY=REASON",
        help="a contract property not to check, with the reason; repeatable",
    )
    parser.set_defaults(run=run)


def _load(target: str) -> type:
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"expected PACKAGE.MODULE:CLASS, got {target!r}")
    module_class = getattr(importlib.import_module(module_name), class_name, None)
    if not isinstance(module_class, type):
        raise ValueError(f"{module_name} has no class {class_name!r}")
    return module_class


def _constructor_arguments(module_class: type, dims: Shape, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The given arguments, plus a small subnet when the class takes a subnet_constructor."""
    from .strategies import subnet_for

    parameters = inspect.signature(module_class.__init__).parameters
    if "subnet_constructor" in parameters and "subnet_constructor" not in kwargs:
        return {**subnet_for(dims), **kwargs}
    return dict(kwargs)


def _skips(pairs: list[str]) -> dict[str, str]:
    skips = {}
    for pair in pairs:
        name, _, reason = pair.partition("=")
        skips[name] = reason or "skipped on the command line"
    return skips


def _check_contract(module_class: type, dims: Shape, dims_c: list[Shape], kwargs: dict, skip: dict) -> bool:
    print(f"== Contract of {module_class.__name__}")
    try:
        print(check_module_contract(module_class, [dims], dims_c, module_kwargs=kwargs, skip=skip))
    except ContractViolation as violation:
        print(f"FAILED {violation}")
        return False
    return True


def _graph_fails(inn: torch.nn.Module) -> ContractViolation | Exception | None:
    generator = torch.Generator().manual_seed(0)
    x = random_like_dims(inn.dims_in, 2, generator, torch.float64)
    c = random_like_dims(inn.dims_c, 2, generator, torch.float64)
    try:
        check_invertible(inn, x, c)
        check_log_det(inn, x, c)
    except Exception as error:  # a crash inside a graph is a failure to report, like a violation
        return error
    return None


def _search_graphs(module_class: type, dims: Shape, dims_c: list[Shape], kwargs: dict, examples: int) -> bool:
    from hypothesis import HealthCheck, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    from .strategies import BlockSpec, default_blocks, graphs

    spec = BlockSpec(
        module_class,
        accepts=lambda shape: shape == dims,
        arguments=kwargs,
        condition_dims=tuple(dims_c) if dims_c else None,
    )
    strategy = graphs(
        [*default_blocks(), spec],
        require=spec,
        input_shapes=st.just(dims),
        inputs=(1, 2),
        condition_dims=dims_c,
        max_nodes=12,
    )
    print(f"\n== Random graphs containing {module_class.__name__} ({examples} examples)")
    found_settings = settings(
        max_examples=examples, database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    try:
        smallest = find(strategy, lambda inn: _graph_fails(inn) is not None, settings=found_settings)
    except NoSuchExample:
        print(f"ok    no failure in {examples} random graphs")
        return True
    except Exception as error:  # building or initialising a drawn graph failed: report it, do not crash
        print(f"FAILED while building a random graph: {type(error).__name__}: {error}")
        return False
    print("FAILED on this graph (shrunk):\n" + describe(smallest, "    "))
    error = _graph_fails(smallest)
    print(f"  {type(error).__name__}: {error}" if not isinstance(error, ContractViolation) else f"  {error}")
    return False


def run(args: argparse.Namespace) -> int:
    """Run the checks for the parsed arguments; returns the exit code (0 pass, 1 fail, 2 bad arguments).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_arguments(parser)
        >>> run(parser.parse_args(["freia_graph.modules:PermuteRandom", "--dims", "4", "--examples", "3"]))
        == Contract of PermuteRandom
        ...
        PASSED: freia_graph.modules:PermuteRandom
        0
    """
    try:
        module_class = _load(args.target)
    except (ImportError, ValueError) as error:
        print(f"freia-graph check: {error}")
        return 2
    dims, dims_c = tuple(args.dims), [tuple(shape) for shape in args.cond]
    kwargs = _constructor_arguments(module_class, dims, args.kwargs)
    contract_holds = _check_contract(module_class, dims, dims_c, kwargs, _skips(args.skip))
    graphs_pass = _search_graphs(module_class, dims, dims_c, kwargs, args.examples)
    passed = contract_holds and graphs_pass
    print(f"\n{'PASSED' if passed else 'FAILED'}: {args.target}")
    return 0 if passed else 1
