"""Check an invertible block: its whole contract, then random graphs that contain it.

``freia-graph check PACKAGE.MODULE:CLASS --dims 8 [--cond 4] [--examples N] [--thorough]`` builds the
block for inputs of shape ``--dims`` (and conditions ``--cond``) and checks it in two stages, stopping at
the first that fails: (1) :func:`check_module_contract`; (2) a search of random GraphINNs that contain
the block for a round trip or log-det that fails, shrinking a failure to a small graph. By default the
search is short (20 graphs, shrinking bounded to a few seconds: a small block is checked in well under
15 s of CPU); ``--thorough`` runs the long search (500 graphs, longer shrinking). The module is looked
up in the current directory first, as ``python -m`` would. It prints a report and exits with 0 when
everything passed, 1 when a check failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from freia_graph.cli import UsageError
from freia_graph.modules.base import InvertibleModule, Shape

from .calling import random_like_dims
from .checks import check_invertible, check_log_det
from .contract import PROPERTIES, check_module_contract
from .describe import describe
from .violations import ContractViolation

__all__ = ["MAX_ELEMENTS", "SearchBudget", "add_arguments", "run"]

MAX_ELEMENTS = 4096
"""The most values per sample ``--dims`` (and each ``--cond``) may have: the contract's exact Jacobian
holds batch × D² float64 numbers, 512 MiB at D = 4096."""


@dataclass(frozen=True)
class SearchBudget:
    """How long the random-graph stage searches: graphs drawn, their size, CPU seconds spent shrinking.

    Example:
        >>> SearchBudget.default(thorough=True).examples
        500
    """

    examples: int
    max_nodes: int
    shrink_seconds: float

    @classmethod
    def default(cls, thorough: bool) -> SearchBudget:
        """The default budget (``thorough=False``) or the long one of ``--thorough``."""
        return cls(500, 16, 120.0) if thorough else cls(20, 8, 5.0)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"clamp\": 1.5}}', got {text!r}")
    return value


def _skip(text: str) -> tuple[str, str]:
    name, _, reason = text.partition("=")
    if name not in PROPERTIES:
        raise argparse.ArgumentTypeError(f"unknown property {name!r}; the properties are {', '.join(PROPERTIES)}")
    return name, reason or "skipped on the command line"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``check`` sub-command's arguments to ``parser`` and make :func:`run` its action.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_arguments(parser)
        >>> args = parser.parse_args(["freia_graph.modules:PermuteRandom", "--dims", "4", "--cond", "2"])
        >>> args.dims, args.cond, args.examples, args.thorough, args.run is run
        ([4], [[2]], None, False, True)
    """
    parser.add_argument("target", metavar="PACKAGE.MODULE:CLASS", help="the InvertibleModule class to check")
    positive = {"type": _positive_int, "nargs": "+", "metavar": "N"}
    parser.add_argument("--dims", required=True, help="input shape without batch, e.g. --dims 8 or --dims 3 16 16 "
                        f"(at most {MAX_ELEMENTS} values)", **positive)
    parser.add_argument("--cond", action="append", default=[], help="a condition shape; repeat for several", **positive)
    parser.add_argument("--examples", type=_positive_int, metavar="N",
                        help="random graphs to try (default 20, or 500 with --thorough)")
    parser.add_argument("--thorough", action="store_true",
                        help="the long search: 500 bigger random graphs, up to two minutes of shrinking")
    parser.add_argument("--kwargs", type=_json_object, default={}, metavar="JSON",
                        help="constructor arguments as a JSON object, e.g. '{\"clamp\": 1.5}'")
    parser.add_argument("--skip", type=_skip, action="append", default=[], metavar="PROPERTY=REASON",
                        help=f"a property not to check, with the reason; repeatable. One of: {', '.join(PROPERTIES)}")
    parser.set_defaults(run=run)


def _import(module_name: str) -> Any:
    """Import the user's module, looking in the current directory first as ``python -m`` does."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and (module_name == error.name or module_name.startswith(error.name + ".")):
            raise UsageError(f"no module named {error.name!r} in the current directory or on sys.path") from None
        raise UsageError(f"importing {module_name} failed: {error}") from None
    except Exception as error:  # anything the user's module raises while importing is a bad argument
        raise UsageError(f"importing {module_name} raised {type(error).__name__}: {error}") from None


def _load(target: str) -> type:
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise UsageError(f"expected PACKAGE.MODULE:CLASS, got {target!r}")
    module_class = getattr(_import(module_name), class_name, None)
    if module_class is None:
        raise UsageError(f"{module_name} has no class {class_name!r}")
    if not (isinstance(module_class, type) and issubclass(module_class, InvertibleModule)):
        raise UsageError(f"{target} is not a subclass of freia_graph.InvertibleModule (it is {module_class!r}); "
                         "check takes invertible blocks")
    return module_class


def _shape(values: list[int], option: str) -> Shape:
    if math.prod(values) > MAX_ELEMENTS:
        raise UsageError(f"{option} {' '.join(map(str, values))} has {math.prod(values):,} values per sample; the "
                         f"exact-Jacobian checks accept at most {MAX_ELEMENTS} (check a smaller instance)")
    return tuple(values)


def _constructor_arguments(module_class: type, dims: Shape, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The given arguments, plus a small subnet when the class takes a subnet_constructor."""
    from .strategies import subnet_for

    parameters = inspect.signature(module_class.__init__).parameters
    if "subnet_constructor" in parameters and "subnet_constructor" not in kwargs:
        return {**subnet_for(dims), **kwargs}
    return dict(kwargs)


def _check_contract(module_class: type, dims: Shape, dims_c: list[Shape], kwargs: dict, skip: dict) -> str | None:
    """Stage 1; returns None when the contract holds, else the names of the violated properties."""
    print(f"== 1/2 Contract of {module_class.__name__}")
    try:
        print(check_module_contract(module_class, [dims], dims_c, module_kwargs=kwargs, skip=skip))
    except ContractViolation as violation:
        print(f"FAILED {violation}")
        return ", ".join(f"[{v.property}]" for v in getattr(violation, "violations", [violation]))
    return None


def _graph_fails(inn: torch.nn.Module, skip: dict[str, str]) -> ContractViolation | Exception | None:
    generator = torch.Generator().manual_seed(0)
    x = random_like_dims(inn.dims_in, 2, generator, torch.float64)
    c = random_like_dims(inn.dims_c, 2, generator, torch.float64)
    try:
        if "round_trip" not in skip:
            check_invertible(inn, x, c)
        if "log_det" not in skip:
            check_log_det(inn, x, c)
    except Exception as error:  # a crash inside a graph is a failure to report, like a violation
        return error
    return None


class _ShrinkBudgetSpent(BaseException):
    """Raised from inside hypothesis' search to end shrinking (a BaseException, so it is not a test failure)."""


def _find_failing_graph(strategy: Any, skip: dict[str, str], budget: SearchBudget) -> tuple[Any, bool]:
    """The smallest failing graph found within the budget (None when no drawn graph fails), and whether
    shrinking was stopped by the budget."""
    from hypothesis import HealthCheck, Phase, Verbosity, find, settings
    from hypothesis.errors import HypothesisWarning, NoSuchExample

    smallest: list[Any] = []
    first_failure: list[float] = []

    def fails(inn: Any) -> bool:
        if first_failure and time.process_time() - first_failure[0] > budget.shrink_seconds:
            raise _ShrinkBudgetSpent
        if _graph_fails(inn, skip) is None:
            return False
        smallest[:] = [inn]  # the shrinker only tries smaller candidates, so the last failure is the smallest
        first_failure[:] = first_failure or [time.process_time()]
        return True

    search = settings(max_examples=budget.examples, database=None, deadline=None, derandomize=True,
                      phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck),
                      verbosity=Verbosity.quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HypothesisWarning)  # hypothesis' own advice is not for our users
        try:
            return find(strategy, fails, settings=search), False
        except NoSuchExample:
            return None, False
        except _ShrinkBudgetSpent:
            return smallest[0], True


def _search_graphs(module_class: type, dims: Shape, dims_c: list[Shape], kwargs: dict, skip: dict[str, str],
                   budget: SearchBudget) -> str | None:
    """Stage 2; returns None when no random graph fails, else what failed."""
    from hypothesis import strategies as st

    from .strategies import BlockSpec, default_blocks, graphs

    spec = BlockSpec(module_class, accepts=lambda shape: shape == dims, arguments=kwargs,
                     condition_dims=tuple(dims_c) if dims_c else None)
    strategy = graphs([*default_blocks(), spec], require=spec, input_shapes=st.just(dims), inputs=(1, 2),
                      condition_dims=dims_c, max_nodes=budget.max_nodes)
    print(f"\n== 2/2 Random graphs containing {module_class.__name__} ({budget.examples} examples)")
    try:
        smallest, cut_short = _find_failing_graph(strategy, skip, budget)
    except Exception as error:  # building or initialising a drawn graph failed: report it, do not crash
        print(f"FAILED while building a random graph: {type(error).__name__}: {error}")
        return "building a random graph containing it failed"
    if smallest is None:
        print(f"ok    no failure in {budget.examples} random graphs")
        return None
    how = "shrunk"
    if cut_short:
        how = f"shrinking stopped after {budget.shrink_seconds:g} s of CPU, --thorough shrinks longer"
    print(f"FAILED on this graph ({how}):\n" + describe(smallest, "    "))
    error = _graph_fails(smallest, skip)
    print(f"  {error}" if isinstance(error, ContractViolation) else f"  {type(error).__name__}: {error}")
    return "the contract holds, but a random graph containing it fails (shown above)"


def run(args: argparse.Namespace) -> int:
    """Run the checks for the parsed arguments; returns the exit code (0 passed, 1 failed).

    Raises:
        UsageError: for a target that cannot be imported or is not an InvertibleModule, or a shape
            larger than :data:`MAX_ELEMENTS`.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_arguments(parser)
        >>> run(parser.parse_args(["freia_graph.modules:PermuteRandom", "--dims", "4", "--examples", "3"]))
        == 1/2 Contract of PermuteRandom
        ...
        PASSED: freia_graph.modules:PermuteRandom (the contract, and 3 random graphs containing it)
        0
    """
    module_class = _load(args.target)
    dims, dims_c = _shape(args.dims, "--dims"), [_shape(shape, "--cond") for shape in args.cond]
    budget = SearchBudget.default(args.thorough)
    if args.examples is not None:
        budget = SearchBudget(args.examples, budget.max_nodes, budget.shrink_seconds)
    kwargs, skip = _constructor_arguments(module_class, dims, args.kwargs), dict(args.skip)
    violated = _check_contract(module_class, dims, dims_c, kwargs, skip)
    if violated:
        print(f"\nFAILED: {args.target} breaks the contract: {violated}. Fix this first; random graphs were "
              "not searched.")
        return 1
    failure = _search_graphs(module_class, dims, dims_c, kwargs, skip, budget)
    if failure:
        print(f"\nFAILED: {args.target}: {failure}")
        return 1
    print(f"\nPASSED: {args.target} (the contract, and {budget.examples} random graphs containing it)")
    return 0
