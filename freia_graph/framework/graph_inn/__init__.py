"""GraphINN: an invertible network given as a graph of nodes, run forward or in reverse."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import networkx as nx
import torch
from torch import Tensor, nn

from freia_graph.framework.calls import (
    CheckedModule,
    DtypeGuard,
    as_tensor_list,
    check_finite_values,
    check_tensors,
    first_tensor,
    nesting_depth,
    per_sample_log_det,
)
from freia_graph.framework.display import Displayable
from freia_graph.framework.graph import execution_orders, garbage_collector_paused, graph_of
from freia_graph.framework.memory_saving import (
    MemorySavingRun,
    check_exactly_invertible,
    eager_under_compile,
    kept_slots,
    memory_saving_every,
)
from freia_graph.framework.nodes import BaseNode, nodes_from_table, nodes_to_table
from freia_graph.framework.plan import compile_plan
from freia_graph.framework.runner import PlanRunner, interpret_plan
from freia_graph.modules._linalg import log_abs_det
from freia_graph.modules.base import INDEX_SHAPE, InvertibleModule, Shape, normalize_shapes

__all__ = ["GraphINN"]


# Attributes rebuilt from the node list when a GraphINN is copied or loaded (see __getstate__).
_DERIVED_FROM_NODES = ("graph", "input_nodes", "condition_nodes", "output_nodes", "_orders", "plans", "_runners",
                       "_recording_runners", "_memory_plans")


class GraphINN(Displayable, DtypeGuard, InvertibleModule):
    """An invertible network built from nodes; itself an :class:`InvertibleModule`, so graphs nest.

    Building validates the graph (every error names the node, port and shapes), orders it for both
    directions and compiles one plan per direction. A call only checks its arguments and runs the plan.

    Tensors are passed and returned in the order of the InputNodes, ConditionNodes and OutputNodes in
    ``node_list`` (or as dicts keyed by node name). Forward takes the inputs and returns the outputs;
    ``rev=True`` takes the outputs and returns the inputs.

    Args:
        node_list: every node of the graph (``collect_nodes`` gathers them from any one node).
        force_tuple_output: return a tuple even when the graph has a single output.
        verbose: print the execution order when building.
        check_inputs: check the shape, batch size, dtype and device of every call's tensors before
            any module runs (the dtype also against the parameters'), and, on the first eager call in
            each direction, that every module's answer honours the contract (turn off for the last bit of
            speed). Under ``torch.compile`` the answers are not verified, so that the first call does not
            change what is compiled.

        memory_saving: train without storing activations: ``True`` keeps only the graph's outputs (and
            the values conditions and feed-forward nodes read) for backward and rebuilds every other
            activation by running the steps in reverse, then recomputes each step to backpropagate the
            outputs' and the log-det's gradients; an int ``k`` also keeps every k-th step's outputs, which
            bounds the float32 drift of repeated inversion. Activation memory is then constant in depth
            (about 1.3-1.5x the time of a normal training step). Active only in training mode with grad
            enabled; otherwise the normal plan runs. A GraphINN or SequenceINN nested in a graph with its
            own ``memory_saving`` is a memory-saving region of that graph. Settable later
            (``inn.memory_saving = 8``).
        allow_inexact_inverse: allow memory saving over blocks whose inverse is not exact
            (``exactly_invertible = False``, e.g. IResNetLayer); their gradients are then approximate.

    Graphs nest (a GraphINN or SequenceINN as a node's module) up to ``MAX_NESTING_DEPTH`` (100) levels;
    a deeper one is refused when built, because calling it would exceed Python's recursion limit.

    Example:
        >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(6, name="x")
        >>> split = Ff.Node(x, Fm.Split, {"section_sizes": [4, 2]}, name="split")
        >>> perm = Ff.Node(split.out0, Fm.PermuteRandom, {"seed": 0}, name="perm")
        >>> merge = Ff.Node([perm.out0, split.out1], Fm.Concat, {}, name="merge")
        >>> inn = Ff.GraphINN([x, split, perm, merge, Ff.OutputNode(merge, name="z")])
        >>> z, log_det = inn(torch.randn(3, 6))
        >>> x_back, _ = inn(z, rev=True)
        >>> tuple(z.shape), tuple(log_det.shape)
        ((3, 6), (3,))
    """

    takes_index_conditions = True  # passed on to the nodes that read them

    def __init__(
        self,
        node_list: Sequence[BaseNode],
        force_tuple_output: bool = False,
        verbose: bool = False,
        check_inputs: bool = True,
        memory_saving: bool | int = False,
        allow_inexact_inverse: bool = False,
    ):
        node_list = list(node_list)
        with garbage_collector_paused():
            self._build(node_list, force_tuple_output, verbose, check_inputs)
        self.allow_inexact_inverse = allow_inexact_inverse
        self.memory_saving = memory_saving

    @property
    def memory_saving(self) -> bool | int:
        """The memory-saving mode: False, True (keep only the outputs) or k (also every k-th activation).

        Example:
            >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
            >>> x = Ff.InputNode(4); p = Ff.Node(x, Fm.PermuteRandom, {})
            >>> inn = Ff.GraphINN([x, p, Ff.OutputNode(p)], memory_saving=True)
            >>> inn.memory_saving = 4; inn.memory_saving
            4
        """
        return self._memory_saving

    @memory_saving.setter
    def memory_saving(self, value: bool | int) -> None:
        every = memory_saving_every(value)
        if every:
            nodes = [node for node in self.node_list if node.module is not None]
            check_exactly_invertible(((f"Node '{n.name}'", n.module) for n in nodes), self.allow_inexact_inverse)
        self._memory_saving, self._memory_every = value, every
        self._memory_plans: dict[bool, tuple] = {}

    def _build(self, node_list: list[BaseNode], force_tuple_output: bool, verbose: bool, check_inputs: bool) -> None:
        orders = execution_orders(node_list)
        super().__init__([n.output_dims[0] for n in node_list if n.kind == "input"],
                         [n.output_dims[0] for n in node_list if n.kind == "condition"])
        self.force_tuple_output = force_tuple_output
        self.check_inputs = check_inputs
        self.module_list = nn.ModuleList([n.module for n in node_list if n.module is not None])
        self.nesting_depth = nesting_depth(self.module_list, "this GraphINN")
        self._compile(node_list, orders)
        self._verified: set[tuple[bool, bool]] = set()  # directions whose module answers were checked
        # the names of the tensors a call takes, per direction: InputNodes forward, OutputNodes in reverse
        self._input_names = {False: [n.name for n in self.input_nodes], True: [n.name for n in self.output_nodes]}
        self._condition_names = [n.name for n in self.condition_nodes]
        self._expected = {
            rev: self._expected_tensors(shapes, [f"{what} '{name}'" for name in names])
            for rev, shapes, names, what in (
                (False, self.dims_in, self._input_names[False], "input"),
                (True, self.output_dims(self.dims_in), self._input_names[True], "reverse input"),
            )
        }
        if verbose:
            for rev, order in enumerate(self._orders):
                print(f"{'reverse' if rev else 'forward'} order: " + " -> ".join(n.name for n in order))

    def _expected_tensors(self, shapes: list[Shape], labels: list[str]) -> tuple:
        """For check_tensors, per direction: the shapes and labels of a call's tensors, and which of the
        call's values to check (None: all); index conditions are not checked, and shapes are not where a
        module varies them."""
        shapes = shapes + self.dims_c
        labels = labels + [f"condition '{name}'" for name in self._condition_names]
        positions = [i for i, shape in enumerate(shapes) if shape != INDEX_SHAPE]
        if len(positions) == len(shapes):
            positions = None
        else:
            shapes, labels = [shapes[i] for i in positions], [labels[i] for i in positions]
        if any(getattr(module, "varies_shapes", False) for module in self.module_list):
            shapes = None
        return shapes, labels, positions

    @property
    def dims_out(self) -> list[Shape]:
        """The shapes of the graph's outputs without the batch dimension, in OutputNode order (the
        counterpart of ``dims_in``).

        Example:
            >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
            >>> x = Ff.InputNode(6, name="x")
            >>> split = Ff.Node(x, Fm.Split, {"section_sizes": [4, 2]}, name="split")
            >>> inn = Ff.GraphINN([x, split, Ff.OutputNode(split.out0), Ff.OutputNode(split.out1)])
            >>> inn.dims_in, inn.dims_out
            ([(6,)], [(4,), (2,)])
        """
        return [n.input_dims[0] for n in self.output_nodes]

    def _compile(self, node_list: list[BaseNode], orders: tuple[list[BaseNode], list[BaseNode]]) -> None:
        """Everything derived from the nodes: the orders, the plans and their runners."""
        self.node_list = node_list
        self.input_nodes = [n for n in node_list if n.kind == "input"]
        self.condition_nodes = [n for n in node_list if n.kind == "condition"]
        self.output_nodes = [n for n in node_list if n.kind == "output"]
        self._orders = orders
        self.plans = tuple(compile_plan(order, node_list, rev=bool(rev)) for rev, order in enumerate(self._orders))
        self._runners: list[PlanRunner | None] = [None, None]  # see _runner
        self._recording_runners: dict[bool, PlanRunner] = {}
        self._memory_plans = {}

    def __getstate__(self) -> dict[str, Any]:
        # Flat: nodes become records linked by position and everything derived from them is rebuilt on
        # load, so deepcopy, pickle, torch.save and AveragedModel work at any depth (linked nodes
        # recurse once per node).
        state = super().__getstate__()
        for key in _DERIVED_FROM_NODES:
            state.pop(key, None)
        with garbage_collector_paused():
            state["node_list"] = nodes_to_table(self.node_list)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        with garbage_collector_paused():
            node_list = nodes_from_table(state.pop("node_list"))
            super().__setstate__(state)
            self._compile(node_list, execution_orders(node_list))

    @functools.cached_property
    def graph(self) -> nx.MultiDiGraph:
        """The nodes as a ``networkx.MultiDiGraph`` (see ``freia_graph.framework.graph.graph_of``), built on
        first use.

        Example:
            >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
            >>> x = Ff.InputNode(4, name="x"); p = Ff.Node(x, Fm.PermuteRandom, {}, name="p")
            >>> inn = Ff.GraphINN([x, p, Ff.OutputNode(p, name="z")])
            >>> [(u.name, v.name) for u, v in inn.graph.edges()]
            [('x', 'p'), ('p', 'z')]
        """
        return graph_of(self.node_list)

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The shapes of the graph's outputs, checking ``input_dims`` against the InputNodes."""
        if normalize_shapes(input_dims) != self.dims_in:
            raise ValueError(f"this GraphINN takes inputs of shapes {self.dims_in}, got {input_dims}")
        return [n.input_dims[0] for n in self.output_nodes]

    def forward(
        self,
        x_or_z: Tensor | Sequence[Tensor] | dict[str, Tensor],
        c: Tensor | Sequence[Tensor] | dict[str, Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
        intermediate_outputs: bool = False,
        check_finite: bool = False,
    ) -> tuple[Any, Any]:
        """Run the graph forward (inputs -> outputs) or, with ``rev=True``, backwards.

        ``check_finite=True`` is a debugging mode: it checks the call's tensors and then every node's
        outputs and log-det as they are computed, and raises a ``ValueError`` naming the first node,
        the direction and the port holding a NaN or an infinity (each check waits for the device, so
        use it to find a problem, not to train). When False it costs nothing.

        Returns:
            ``(outputs, log_det)``: the output tensor (a tuple if there are several, or with
            ``force_tuple_output``) and log|det J| per sample, shape ``(batch,)``; in reverse, the
            inputs and the log-det of the inverse (the negative of the forward one). With ``jac=False``
            the log-det is zeros.

            With ``intermediate_outputs=True``: ``(values, log_dets)`` instead, where ``values`` maps
            every port ``(node, index)`` to its tensor and ``log_dets`` maps every invertible node to the
            log-det it contributed. Ports are named by the node that produces them in the forward
            direction, in both directions, so ``values[(node, i)]`` is the same quantity forward and
            backwards; in reverse ``log_dets[node]`` is that node's reverse log-det.
        """
        inputs = as_tensor_list(x_or_z, self._input_names[rev], "input" if not rev else "reverse input")
        conditions = as_tensor_list(c, self._condition_names, "condition")
        values = inputs + conditions
        if self.check_inputs:
            inputs, conditions = self._checked_call(inputs, conditions, rev)
            values = inputs + conditions
        reference = first_tensor(inputs, conditions)
        shapes, labels, positions = self._expected[rev]
        # the steady state is one comparison; not under torch.compile, where the lazily remembered dtype
        # would become a guard that changes after the first call
        if self.check_inputs and not torch.compiler.is_compiling() and reference.dtype is not self._parameter_dtype:
            self._check_dtype(reference, labels[0])
        if check_finite:
            check_finite_values(values if positions is None else [values[i] for i in positions], labels,
                                "the call's tensors")
        if intermediate_outputs:
            return self._run_recording(inputs, conditions, rev, jac, check_finite)
        if self._memory_every and self.training and torch.is_grad_enabled():
            return self._run_memory_saving(inputs, conditions, rev, jac)
        if torch.compiler.is_compiling():  # traced whole, the same for every instance state (see runner.py)
            outputs, log_det = interpret_plan(self.plans[rev], tuple(self.module_list), inputs, conditions, rev, jac)
            return self._result(outputs, per_sample_log_det(log_det, reference, jac))
        runner = self._runner(rev)
        try:
            if check_finite or (self.check_inputs and (rev, jac) not in self._verified):
                modules = self._checked_modules(reference, rev, jac, check_finite)
                outputs, log_det = runner.run(modules, inputs, conditions, rev, jac)
                self._verified.add((rev, jac))
            else:
                outputs, log_det = runner.run(tuple(self.module_list), inputs, conditions, rev, jac)
        except Exception as error:
            runner.explain_failure(error, rev)
            raise
        return self._result(outputs, per_sample_log_det(log_det, reference, jac))

    def _runner(self, rev: bool) -> PlanRunner:
        """The generated code of a direction, made on its first eager call (generating and compiling it is a
        large part of building a long chain, and many graphs never run in reverse)."""
        runner = self._runners[rev]
        if runner is None:
            runner = self._runners[rev] = PlanRunner(self.plans[rev])
        return runner

    def _result(self, outputs: list[Tensor], log_det: Tensor) -> tuple[Any, Tensor]:
        if len(outputs) == 1 and not self.force_tuple_output:
            return outputs[0], log_det
        return tuple(outputs), log_det

    def _checked_call(self, inputs: list[Tensor], conditions: list[Tensor], rev: bool) -> tuple[list, list]:
        """Check a call's tensors. A ``(batch,)`` tensor where a node of shape ``(1,)`` is expected is taken as
        ``(batch, 1)``, a view (FrEIA passes tensors on unchecked, and its docs pass such conditions)."""
        shapes, labels, positions = self._expected[rev]
        values = inputs + conditions
        try:
            check_tensors(values if positions is None else [values[i] for i in positions], shapes, labels)
        except ValueError:
            if shapes is None or positions is not None:
                raise
            promoted = [value.unsqueeze(1) if isinstance(value, Tensor) and value.dim() == 1 and shape == (1,)
                        else value for value, shape in zip(values, shapes)]
            if all(a is b for a, b in zip(promoted, values)):
                raise
            check_tensors(promoted, shapes, labels)
            values = promoted
        return values[:len(inputs)], values[len(inputs):]

    @eager_under_compile
    def _run_memory_saving(self, inputs: list[Tensor], conditions: list[Tensor], rev: bool, jac: bool) -> tuple:
        """Run the plan through MemorySavingRun (see ``memory_saving.py``); eager under torch.compile."""
        if rev not in self._memory_plans:
            plan = compile_plan(self._orders[rev], self.node_list, rev=rev, reuse_slots=False)
            self._memory_plans[rev] = (plan, kept_slots(plan, self._memory_every))
        plan, kept = self._memory_plans[rev]
        reference = first_tensor(inputs, conditions)
        modules = tuple(self.module_list)
        verify = self.check_inputs and (rev, jac) not in self._verified
        forward_modules = self._checked_modules(reference, rev, jac) if verify else modules
        outputs, log_det = MemorySavingRun.run(plan, kept, modules, forward_modules, inputs, conditions,
                                               rev, jac, reference)
        if verify:
            self._verified.add((rev, jac))
        return self._result(outputs, log_det)

    def _checked_modules(self, reference: Tensor, rev: bool, jac: bool, check_finite: bool = False) -> tuple:
        """The modules, each wrapped to verify its answer (and that it is finite, with ``check_finite``)."""
        # Fetched through the module tree, so DataParallel/DDP replicas run their own copies.
        nodes = [node for node in self.node_list if node.module is not None]
        direction = (", reverse" if rev else ", forward") if check_finite else ""
        checked = []
        for module, node in zip(self.module_list, nodes):
            where = f"Node '{node.name}' ({type(module).__name__}{direction})"
            if node.kind == "feed_forward":
                checked.append(_CheckedFeedForward(module, node, where, check_finite))
                continue
            if not check_finite:
                labels = None
            elif rev:  # a reverse pass recovers the node's inputs
                labels = [f"input {i} (the value of '{source.name}'.out{port})"
                          for i, (source, port) in enumerate(node.inputs)]
            else:
                labels = [f"'{node.name}'.out{i}" for i in range(len(node.output_dims))]
            checked.append(CheckedModule(module, where, len(node.input_dims if rev else node.output_dims),
                                         reference.shape[0], jac, labels))
        return tuple(checked)

    def _run_recording(
        self, inputs: list[Tensor], conditions: list[Tensor], rev: bool, jac: bool, check_finite: bool = False
    ) -> tuple:
        if rev not in self._recording_runners:
            plan = compile_plan(self._orders[rev], self.node_list, rev=rev, reuse_slots=False)
            self._recording_runners[rev] = PlanRunner(plan, return_all_slots=True)
        runner = self._recording_runners[rev]
        reference = first_tensor(inputs, conditions)
        modules = self._checked_modules(reference, rev, jac, check_finite)
        try:
            values, step_log_dets = runner.run(modules, inputs, conditions, rev, jac)
        except Exception as error:
            runner.explain_failure(error, rev)
            raise
        nodes = [step.node for step in runner.plan.invertible_steps]
        log_dets = {node: per_sample_log_det(ld, reference, jac) for node, ld in zip(nodes, step_log_dets)}
        return dict(zip(runner.plan.slot_values, values)), log_dets

    def plot(self, path: str, filename: str) -> None:
        """Draw the graph into ``<path>/<filename>`` (DOT text) and ``<path>/<filename>.pdf``, as FrEIA's
        ``plot_graph`` does, without Graphviz (see :func:`freia_graph.utils.plot_graph`)."""
        from freia_graph.utils import plot_graph

        plot_graph(self, path, filename)

    def get_node_by_name(self, name: str) -> BaseNode | None:
        """The node called ``name``, or None (as in FrEIA)."""
        return next((node for node in self.node_list if node.name == name), None)

    def get_module_by_name(self, name: str) -> nn.Module | None:
        """The module of the node called ``name``, or None."""
        node = self.get_node_by_name(name)
        return None if node is None else node.module

    @torch.no_grad()
    def log_jacobian_numerical(
        self,
        x: Tensor | Sequence[Tensor],
        c: Tensor | Sequence[Tensor] | None = None,
        rev: bool = False,
        h: float = 1e-4,
    ) -> Tensor:
        """log|det J| per sample by central finite differences (for checking; use float64).

        Every input element is perturbed by ``±h`` in all samples at once (samples are independent),
        so it costs two passes per input element.
        """
        inputs = as_tensor_list(x, self._input_names[rev], "input")
        sizes = [t[0].numel() for t in inputs]
        flat = torch.cat([t.flatten(1) for t in inputs], dim=1)
        shapes = [t.shape for t in inputs]

        def outputs_at(point: Tensor) -> Tensor:
            pieces = [p.reshape(s) for p, s in zip(point.split(sizes, dim=1), shapes)]
            result, _ = self.forward(pieces, c=c, rev=rev, jac=False)
            result = (result,) if isinstance(result, Tensor) else result
            return torch.cat([t.flatten(1) for t in result], dim=1)

        columns = []
        for element in range(flat.shape[1]):
            step = torch.zeros_like(flat)
            step[:, element] = h
            columns.append((outputs_at(flat + step) - outputs_at(flat - step)) / (2 * h))
        jacobian = torch.stack(columns, dim=2)
        return log_abs_det(jacobian)





class _CheckedFeedForward:
    """Calls a FeedForwardNode's module and checks the number and shapes of its outputs."""

    def __init__(self, module: nn.Module, node: BaseNode, where: str, check_finite: bool):
        self.module, self.node, self.where, self.check_finite = module, node, where, check_finite

    def __call__(self, *conditions: Tensor) -> tuple[Tensor, ...]:
        result = self.module(*conditions)
        node = self.node
        result = (result,) if isinstance(result, Tensor) else result
        if not isinstance(result, (tuple, list)) or len(result) != len(node.output_dims):
            raise ValueError(f"FeedForwardNode '{node.name}' must return {len(node.output_dims)} tensor(s), "
                             f"got {type(result).__name__}")
        for index, (tensor, shape) in enumerate(zip(result, node.output_dims)):
            if not isinstance(tensor, Tensor) or tuple(tensor.shape[1:]) != shape:
                got = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
                raise ValueError(f"FeedForwardNode '{node.name}' output {index} must have shape "
                                 f"(batch, {', '.join(map(str, shape))}), got {got}")
        if self.check_finite:
            check_finite_values(result, [f"'{node.name}'.out{i}" for i in range(len(result))], self.where)
        return tuple(result)


# FrEIA's ``FrEIA.framework.graph_inn`` offers the node classes too (one module in FrEIA 0.2, a package in HEAD)
from freia_graph.framework.graph import collect_nodes  # noqa: E402, F401
from freia_graph.framework.nodes import ConditionNode, FeedForwardNode, InputNode, Node, OutputNode  # noqa: E402, F401
