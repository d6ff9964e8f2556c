"""Turns a plan into straight-line Python: one local variable per slot, one line per step.

A generic interpreter loop costs about a microsecond per step (building argument lists from a slot list,
writing results back). The generated function does only what a hand-written forward pass would: each
step is one call whose arguments are local variables, and rebinding a variable releases the value it
held, exactly as the plan's slot reuse intends. Each module is called in the form decided for it when the
plan was compiled (``call_form``): positionally, ``(x_or_z, c, rev, jac)``, for modules that take the
contract's order (keyword arguments cost a dict per call in ``nn.Module.__call__``), by keyword for
FrEIA-style signatures. Each step is a single line (compiling the code costs about 10 µs a line) that
also adds the step's log-det to the running total (``add``): tensors are added as they come, so no
step's log-det is held longer than in a plain loop, and plain numbers (a permutation's 0.0) are added
apart and joined to the tensor once at the end. ``runner.source`` shows the code.

An exception escaping a module is annotated with the node it came from (name, class, direction, input
shapes), read from the failing frame after the fact, so the normal path pays nothing. Only then is the
generated source written where tracebacks look for it (``linecache``, and a file in the temporary
directory for the interpreter's own traceback printer), so building graphs leaves nothing behind.

Example of generated code for a split into a coupling and a permutation, merged again::

    def run(modules, inputs, conditions, rev, jac):
        s0, = inputs
        s1, = conditions
        log_det, constant = 0.0, 0.0
        (s0, s2), log_det, constant = add(modules[0]([s0], None, rev, jac), log_det, constant, jac)
        (s0,), log_det, constant = add(modules[1]([s0], [s1], rev, jac), log_det, constant, jac)
        (s2,), log_det, constant = add(modules[2]([s2], None, rev, jac), log_det, constant, jac)
        (s2,), log_det, constant = add(modules[3]([s0, s2], None, rev, jac), log_det, constant, jac)
        return [s2], (log_det + constant if constant else log_det)

With ``return_all_slots`` (for ``intermediate_outputs``) each step's log-det is kept in a list
``log_dets`` instead, and every slot's value is returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import linecache
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import Tensor

from freia_graph.framework.call_form import CallForm, call_in_form
from freia_graph.framework.calls import add_log_det, as_tuple, raised_by_checks
from freia_graph.framework.plan import Plan, Step

__all__ = ["PlanRunner", "interpret_plan"]


def _names(slots: Iterable[int]) -> str:
    return ", ".join(f"s{slot}" for slot in slots)


def _targets(slots: tuple[int, ...]) -> str:
    return _names(slots) + ("," if len(slots) == 1 else "")


def _call(step: Step) -> str:
    module, inputs = f"modules[{step.module_index}]", f"[{_names(step.inputs)}]"
    conditions = "None" if step.conditions is None else f"[{_names(step.conditions)}]"
    if step.call is CallForm.POSITIONAL:
        return f"{module}({inputs}, {conditions}, rev, jac)"
    if step.call is CallForm.KEYWORD:
        return f"{module}({inputs}, c={conditions}, rev=rev, jac=jac)"
    return f"{module}({inputs}, rev=rev, jac=jac)"


def _source(plan: Plan, return_all_slots: bool) -> tuple[str, dict[int, Step]]:
    """The code, and the step run on each line (for naming the node of a failure)."""
    lines = ["def run(modules, inputs, conditions, rev, jac):"]
    if plan.input_slots:
        lines.append(f"    {_targets(plan.input_slots)} = inputs")
    if plan.condition_slots:
        lines.append(f"    {_targets(plan.condition_slots)} = conditions")
    lines.append(f"    log_dets = [None] * {len(plan.invertible_steps)}" if return_all_slots
                 else "    log_det, constant = 0.0, 0.0")
    step_of_line: dict[int, Step] = {}
    log_det_index = 0
    for step in plan.steps:
        step_of_line[len(lines) + 1] = step
        if step.feed_forward:
            call = f"modules[{step.module_index}]({_names(step.inputs)})"
            lines.append(f"    {_targets(step.outputs)} = as_tuple({call})")
        elif return_all_slots:
            lines.append(f"    ({_targets(step.outputs)}), log_dets[{log_det_index}] = {_call(step)}")
            log_det_index += 1
        else:
            call = f"add({_call(step)}, log_det, constant, jac)"
            lines.append(f"    ({_targets(step.outputs)}), log_det, constant = {call}")
    if return_all_slots:
        lines.append(f"    return [{_names(range(plan.n_slots))}], log_dets")
    else:
        lines.append(f"    return [{_names(plan.output_slots)}], (log_det + constant if constant else log_det)")
    return "\n".join(lines) + "\n", step_of_line


def _add(answer: tuple[Any, Any], log_det: Any, constant: Any, jac: bool) -> tuple[Any, Any, Any]:
    """A step's outputs, and the running totals with its log-det added (``calls.add_log_det``); with
    jac=False a module may return None. A function rather than generated lines: compiling code costs
    about 10 µs a line."""
    outputs, step_log_det = answer
    if not jac:
        return outputs, log_det, constant
    log_det, constant = add_log_det(log_det, constant, step_log_det)
    return outputs, log_det, constant


def interpret_plan(plan: Plan, modules: Sequence[Any], inputs: Sequence[Any], conditions: Sequence[Any],
                   rev: bool, jac: bool) -> tuple[list[Any], Any]:
    """Run a plan step by step; what ``torch.compile`` traces (it unrolls the loop, so speed is the same).

    Tracing this rather than the generated code keeps compiled graphs independent of which runners the
    eager calls have generated so far (nothing for dynamo to guard on). Returns what ``PlanRunner.run``
    returns: the output values and the summed log-det.

    Example:
        >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(4); p = Ff.Node(x, Fm.PermuteRandom, {"seed": 0})
        >>> inn = Ff.GraphINN([x, p, Ff.OutputNode(p)])
        >>> values, log_det = interpret_plan(inn.plans[0], list(inn.module_list), [torch.ones(2, 4)], [], False, True)
        >>> [tuple(value.shape) for value in values], log_det
        ([(2, 4)], 0.0)
    """
    slots: list[Any] = [None] * plan.n_slots
    for slot, value in zip(plan.input_slots + plan.condition_slots, [*inputs, *conditions]):
        slots[slot] = value
    log_det, constant = 0.0, 0.0
    for step in plan.steps:
        module, values = modules[step.module_index], [slots[slot] for slot in step.inputs]
        if step.feed_forward:
            outputs = as_tuple(module(*values))
        else:
            condition = None if step.conditions is None else [slots[slot] for slot in step.conditions]
            outputs, log_det, constant = _add(call_in_form(step.call, module, values, condition, rev, jac),
                                              log_det, constant, jac)
        for slot, value in zip(step.outputs, outputs):
            slots[slot] = value
    return [slots[slot] for slot in plan.output_slots], (log_det + constant if constant else log_det)


def _shapes(frame_locals: dict[str, Any], slots: tuple[int, ...]) -> str:
    shapes = [tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
              for value in (frame_locals.get(f"s{slot}") for slot in slots)]
    return ", ".join(map(str, shapes))


class PlanRunner:
    """A plan compiled into a Python function ``run(modules, inputs, conditions, rev, jac)``.

    It returns ``(values, log_det)``: the output values and the summed log-det (a tensor or a number;
    meaningless with ``jac=False``), or, with ``return_all_slots``, every slot's value and each step's
    log-det in plan order. Modules are passed in on every call,
    so DataParallel replicas run their own. Pickling keeps the plan and regenerates the function.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(4); p = Ff.Node(x, Fm.PermuteRandom, {"seed": 0})
        >>> inn = Ff.GraphINN([x, p, Ff.OutputNode(p)])
        >>> print(PlanRunner(inn.plans[0]).source.splitlines()[3])
            (s0,), log_det, constant = add(modules[0]([s0], None, rev, jac), log_det, constant, jac)
    """

    def __init__(self, plan: Plan, return_all_slots: bool = False):
        self.plan = plan
        self.return_all_slots = return_all_slots
        self.source, self._step_of_line = _source(plan, return_all_slots)
        digest = hashlib.sha1(self.source.encode()).hexdigest()[:16]
        # a real path, written only when a failure needs it (see explain_failure)
        self.filename = os.path.join(tempfile.gettempdir(), "freia_graph_plans", f"plan_{digest}.py")
        namespace: dict[str, Any] = {"as_tuple": as_tuple, "add": _add}
        exec(compile(self.source, self.filename, "exec"), namespace)  # noqa: S102 - our own generated code
        self.run: Callable[..., tuple[list[Any], Any]] = namespace["run"]

    def explain_failure(self, error: BaseException, rev: bool) -> None:
        """Add a note to ``error`` naming the node whose module raised it, and make the code visible in tracebacks.

        Called only when a run raised: finds the generated function's frame in the traceback, the step
        on the failing line, and the shapes of the tensors that step was given.
        """
        traceback = error.__traceback__
        while traceback is not None and traceback.tb_frame.f_code.co_filename != self.filename:
            traceback = traceback.tb_next
        if traceback is None:
            return
        if raised_by_checks(error):
            self._publish_source()
            return  # the framework's own checks name the node already
        self._publish_source()
        step = self._step_of_line.get(traceback.tb_lineno)
        if step is None:
            return
        node, frame_locals = step.node, traceback.tb_frame.f_locals
        kind = "FeedForwardNode" if step.feed_forward else "Node"
        direction = "forward" if step.feed_forward or not rev else "reverse"
        conditions = f", conditions of shape {_shapes(frame_locals, step.conditions)}" if step.conditions else ""
        error.add_note(f"(raised in {kind} '{node.name}' ({type(node.module).__name__}), {direction}, "
                       f"inputs of shape {_shapes(frame_locals, step.inputs)}{conditions})")

    def _publish_source(self) -> None:
        lines = self.source.splitlines(True)
        linecache.cache[self.filename] = (len(self.source), None, lines, self.filename)
        weakref.finalize(self, linecache.cache.pop, self.filename, None)  # the entry goes with the runner
        with contextlib.suppress(OSError):  # the note still names the node without it
            os.makedirs(os.path.dirname(self.filename), exist_ok=True)
            if not os.path.exists(self.filename):
                with open(self.filename, "w", encoding="utf-8") as file:
                    file.write(self.source)

    def __getstate__(self) -> dict[str, Any]:
        return {"plan": self.plan, "return_all_slots": self.return_all_slots}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)
