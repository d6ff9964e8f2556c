"""The compiled execution plan: flat steps over integer slots, one plan per direction.

Every tensor that flows along an edge is a *value*, named by the port that produces it in the forward
direction, ``(node, index)``; the same name is used in reverse, where the value is recovered by inverting
the consumer. A plan stores values in a flat list of slots. Slots are reused as soon as their value has
been read for the last time, so memory during inference grows no faster than in a hand-written loop,
and the hot path never touches a node object or a dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from freia_graph.framework.call_form import CallForm, call_form
from freia_graph.framework.nodes import BaseNode, Port

__all__ = ["Step", "Plan", "compile_plan"]


@dataclass(frozen=True)
class Step:
    """One module call of a plan.

    Attributes:
        module_index: the module's position in the graph's ``module_list``.
        inputs: the slots it reads as inputs (as conditions, for a feed-forward step).
        conditions: the slots it reads as conditions, or None (always None for a feed-forward step).
        outputs: the slots it writes.
        node: the node it runs (for error messages and intermediate outputs; never on the hot path; None
            in a chain plan of SequenceINN).
        call: how an invertible module is called (see ``call_form``); None for a feed-forward step.
    """

    module_index: int
    inputs: tuple[int, ...]
    conditions: tuple[int, ...] | None
    outputs: tuple[int, ...]
    node: BaseNode | None
    call: CallForm | None

    @property
    def feed_forward(self) -> bool:
        """Whether this step runs a FeedForwardNode (no log-det, no inverse)."""
        return self.call is None


@dataclass(frozen=True)
class Plan:
    """A direction's execution plan.

    Attributes:
        n_slots: length of the slot list.
        input_slots: where the caller's tensors go (InputNodes forward, OutputNodes in reverse).
        condition_slots: where the condition tensors go.
        steps: every module call in execution order; feed-forward steps run as soon as what they read exists.
        output_slots: the slots returned to the caller.
        slot_values: the value held by each slot, when slots are not reused (else empty).
    """

    n_slots: int
    input_slots: tuple[int, ...]
    condition_slots: tuple[int, ...]
    steps: tuple[Step, ...]
    output_slots: tuple[int, ...]
    slot_values: tuple[Port, ...]

    @property
    def invertible_steps(self) -> tuple[Step, ...]:
        """The steps that return a log-det, in order (the runner returns their log-dets in this order)."""
        return tuple(step for step in self.steps if not step.feed_forward)


def _reads_and_writes(node: BaseNode, rev: bool) -> tuple[list[Port], list[Port]]:
    own_ports = [(node, index) for index in range(len(node.output_dims))]
    if node.kind == "feed_forward" or not rev:
        return node.conditions + node.inputs, own_ports
    return node.conditions + own_ports, node.inputs


class _SlotAllocator:
    """Hands out slots, reusing those whose value will not be read again."""

    def __init__(self, reuse: bool):
        self.reuse = reuse
        self.slot_of: dict[tuple[int, int], int] = {}
        self.values: list[Port] = []
        self.free: list[int] = []

    def assign(self, value: Port) -> int:
        slot = self.free.pop() if self.free else len(self.values)
        if slot == len(self.values):
            self.values.append(value)
        else:
            self.values[slot] = value
        self.slot_of[(id(value[0]), value[1])] = slot
        return slot

    def slots(self, values: list[Port]) -> list[int]:
        return [self.slot_of[(id(node), port)] for node, port in values]


def compile_plan(
    order: Sequence[BaseNode],
    node_list: Sequence[BaseNode],
    rev: bool,
    reuse_slots: bool = True,
) -> Plan:
    """Turn a node order into a plan for one direction.

    Args:
        order: the nodes in execution order for this direction (see ``graph.execution_orders``).
        node_list: the user's node list; it fixes the order of inputs, conditions and outputs, and the
            module indices (modules are registered in node_list order).
        rev: whether the plan runs the graph backwards.
        reuse_slots: reuse a slot once its value is dead (False keeps every value, for intermediate outputs).

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> from freia_graph.framework.graph import execution_orders
        >>> x = Ff.InputNode(4); a = Ff.Node(x, Fm.PermuteRandom, {}); b = Ff.Node(a, Fm.PermuteRandom, {})
        >>> nodes = [x, a, b, Ff.OutputNode(b)]
        >>> plan = compile_plan(execution_orders(nodes)[0], nodes, rev=False)
        >>> plan.n_slots, [(step.module_index, step.inputs, step.outputs) for step in plan.steps]
        (1, [(0, (0,), (0,)), (1, (0,), (0,))])
    """
    module_index = {id(n): i for i, n in enumerate(n for n in node_list if n.module is not None)}
    inputs = [(n, 0) for n in node_list if n.kind == "input"]
    conditions = [(n, 0) for n in node_list if n.kind == "condition"]
    outputs = [n.inputs[0] for n in node_list if n.kind == "output"]
    if rev:
        inputs, outputs = outputs, inputs
    running = [n for n in order if n.kind in ("feed_forward", "invertible")]
    accesses = [_reads_and_writes(node, rev) for node in running]
    last_read: dict[tuple[int, int], int] = {}
    for position, (reads, _) in enumerate(accesses):
        for source, port in reads:
            last_read[(id(source), port)] = position
    for node, port in outputs:
        last_read[(id(node), port)] = len(running)  # results stay alive to the end

    slots = _SlotAllocator(reuse_slots)
    input_slots = tuple(slots.assign(value) for value in inputs)
    condition_slots = tuple(slots.assign(value) for value in conditions)
    steps = []
    for position, (node, (reads, writes)) in enumerate(zip(running, accesses)):
        read_slots = slots.slots(reads)
        if reuse_slots:
            dead = {slot for slot, (source, port) in zip(read_slots, reads)
                    if last_read[(id(source), port)] == position}
            slots.free.extend(sorted(dead, reverse=True))
        write_slots = tuple(slots.assign(value) for value in writes)
        index = module_index[id(node)]
        if node.kind == "feed_forward":
            steps.append(Step(index, tuple(read_slots), None, write_slots, node, None))
        else:
            n_conditions = len(node.conditions)
            where = lambda node=node: f"Node '{node.name}' ({type(node.module).__name__})"  # noqa: E731
            form = call_form(node.module, bool(n_conditions), where)
            steps.append(Step(index, tuple(read_slots[n_conditions:]), tuple(read_slots[:n_conditions]) or None,
                              write_slots, node, form))
    return Plan(
        n_slots=len(slots.values),
        input_slots=input_slots,
        condition_slots=condition_slots,
        steps=tuple(steps),
        output_slots=tuple(slots.slots(outputs)),
        slot_values=() if reuse_slots else tuple(slots.values),
    )
