"""Turns a plan into straight-line Python: one local variable per slot, one line per step.

A generic interpreter loop costs about a microsecond per step (building argument lists from a slot list,
writing results back). The generated function does only what a hand-written forward pass would: each
step is one call whose arguments are local variables, and rebinding a variable releases the value it
held, exactly as the plan's slot reuse intends. Modules are called with the contract's positional
order ``(x_or_z, c, rev, jac)``: keyword arguments cost a dict per call in ``nn.Module.__call__``.
Each step is a single line (compiling the code costs about 10 µs a line); the steps' log-dets are
returned together (``calls.sum_log_dets`` adds them up). ``runner.source`` shows the code.

Example of generated code for a split into a coupling and a permutation, merged again::

    def run(modules, inputs, conditions, rev, jac):
        s0, = inputs
        s1, = conditions
        log_dets = [None] * 4
        (s0, s2), log_dets[0] = modules[0]([s0], None, rev, jac)
        (s0,), log_dets[1] = modules[1]([s0], [s1], rev, jac)
        (s2,), log_dets[2] = modules[2]([s2], None, rev, jac)
        (s2,), log_dets[3] = modules[3]([s0, s2], None, rev, jac)
        return [s2], log_dets
"""

from __future__ import annotations

import linecache
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from torch import Tensor

from freia_graph.framework.plan import Plan

__all__ = ["PlanRunner"]


def _names(slots: Iterable[int]) -> str:
    return ", ".join(f"s{slot}" for slot in slots)


def _targets(slots: tuple[int, ...]) -> str:
    return _names(slots) + ("," if len(slots) == 1 else "")


def _as_tuple(result: Any) -> tuple:
    return (result,) if isinstance(result, Tensor) else tuple(result)


def _source(plan: Plan, return_all_slots: bool) -> str:
    lines = ["def run(modules, inputs, conditions, rev, jac):"]
    if plan.input_slots:
        lines.append(f"    {_targets(plan.input_slots)} = inputs")
    if plan.condition_slots:
        lines.append(f"    {_targets(plan.condition_slots)} = conditions")
    for index, read, write in plan.feed_forward:
        lines.append(f"    {_targets(write)} = as_tuple(modules[{index}]({_names(read)}))")
    lines.append(f"    log_dets = [None] * {len(plan.steps)}")
    for step, (index, read, read_conditions, write) in enumerate(plan.steps):
        conditions = "None" if read_conditions is None else f"[{_names(read_conditions)}]"
        call = f"modules[{index}]([{_names(read)}], {conditions}, rev, jac)"
        lines.append(f"    ({_targets(write)}), log_dets[{step}] = {call}")
    returned = range(plan.n_slots) if return_all_slots else plan.output_slots
    lines.append(f"    return [{_names(returned)}], log_dets")
    return "\n".join(lines) + "\n"


class PlanRunner:
    """A plan compiled into a Python function ``run(modules, inputs, conditions, rev, jac)``.

    It returns ``(values, log_dets)``: the output values (or every slot's value, with
    ``return_all_slots``) and each step's log-det, in plan order. Modules are passed in on every call,
    so DataParallel replicas run their own. Pickling keeps the plan and regenerates the function.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(4); p = Ff.Node(x, Fm.PermuteRandom, {"seed": 0})
        >>> inn = Ff.GraphINN([x, p, Ff.OutputNode(p)])
        >>> print(PlanRunner(inn.plans[0]).source.splitlines()[3])
            (s0,), log_dets[0] = modules[0]([s0], None, rev, jac)
    """

    def __init__(self, plan: Plan, return_all_slots: bool = False):
        self.plan = plan
        self.return_all_slots = return_all_slots
        self.source = _source(plan, return_all_slots)
        filename = f"<freia_graph plan {id(self):x}>"
        namespace: dict[str, Any] = {"as_tuple": _as_tuple}
        exec(compile(self.source, filename, "exec"), namespace)  # noqa: S102 - our own generated code
        # Tracebacks show the generated lines while the runner lives; the entry goes with the runner.
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True), filename)
        weakref.finalize(self, linecache.cache.pop, filename, None)
        self.run: Callable[..., tuple[list[Any], Any]] = namespace["run"]

    def __getstate__(self) -> dict[str, Any]:
        return {"plan": self.plan, "return_all_slots": self.return_all_slots}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)
