"""Nodes: the declarative pieces of a graph, and the port references that connect them.

A *port* is one tensor of a node: ``(node, index)``. ``node`` alone means ``(node, 0)`` and ``node.out1``
means ``(node, 1)``. Every node infers its output shapes when it is declared, so a shape mistake fails on
the line that made it.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from torch import nn

from freia_graph.framework.collector import garbage_collector_paused
from freia_graph.framework.display import Displayable
from freia_graph.modules.base import INDEX_SHAPE, InvertibleModule, Shape, normalize_shapes

__all__ = [
    "Port",
    "BaseNode",
    "InputNode",
    "ConditionNode",
    "Node",
    "FeedForwardNode",
    "OutputNode",
    "nodes_to_table",
    "nodes_from_table",
]

Port = tuple["BaseNode", int]

_serial_numbers = itertools.count()
_name_counters: dict[str, itertools.count] = defaultdict(itertools.count)


def _default_name(prefix: str) -> str:
    return f"{prefix}_{next(_name_counters[prefix])}"


def _shape_from_dims(dims: Sequence[Any], what: str) -> Shape:
    """``InputNode(3, 8, 8)`` and ``InputNode((3, 8, 8))`` both mean the shape (3, 8, 8)."""
    if len(dims) == 1 and not isinstance(dims[0], int):
        dims = tuple(dims[0])
    return normalize_shapes([dims], what)[0]


class BaseNode(Displayable):
    """What every node has: a name, its ports and their shapes.

    Attributes:
        name: unique within a graph.
        kind: ``"input"``, ``"condition"``, ``"invertible"``, ``"feed_forward"`` or ``"output"``.
        inputs: the ports this node reads, as ``(node, index)``.
        conditions: the condition ports this node reads.
        outputs: who consumes this node's ports, as ``(consumer, consumer's input or condition index)``.
        input_dims, condition_dims, output_dims: shapes without the batch dimension.
        module: the ``nn.Module`` it runs, or None.
    """

    kind: ClassVar[str] = "node"

    def __init__(
        self,
        name: str,
        inputs: list[Port],
        conditions: list[Port],
        output_dims: list[Shape],
        module: nn.Module | None = None,
        module_type: Any = None,
        module_args: dict[str, Any] | None = None,
    ):
        if not isinstance(name, str) or not name:
            raise TypeError(f"a node name must be a non-empty string, got {name!r}")
        self.name = name
        self.inputs = inputs
        self.conditions = conditions
        self.input_dims = [source.output_dims[port] for source, port in inputs]
        self.condition_dims = [source.output_dims[port] for source, port in conditions]
        self.output_dims = output_dims
        self.outputs: list[Port] = []
        self.module = module
        self.module_type = module_type
        self.module_args = module_args
        self.serial = next(_serial_numbers)
        for index, (source, _) in enumerate(itertools.chain(inputs, conditions)):
            source.outputs.append((self, index if index < len(inputs) else index - len(inputs)))

    def __getattr__(self, attribute: str) -> Port:
        # Only called when normal lookup fails: gives node.out0, node.out1, ...
        if attribute.startswith("out") and attribute[3:].isdigit() and "output_dims" in self.__dict__:
            return self.port(int(attribute[3:]))
        raise AttributeError(f"{type(self).__name__} '{self.__dict__.get('name', '?')}' has no attribute {attribute!r}")

    def port(self, index: int) -> Port:
        """The port ``(self, index)``, checked to exist."""
        if not 0 <= index < len(self.output_dims):
            available = ", ".join(f"out{i}" for i in range(len(self.output_dims))) or "none"
            raise ValueError(f"{type(self).__name__} '{self.name}' has no output {index} (outputs: {available})")
        return (self, index)

    def __repr__(self) -> str:
        shapes = ", ".join(str(s) for s in self.output_dims)
        return f"{type(self).__name__}('{self.name}' -> [{shapes}])"



NodeTable = list[tuple[type, dict[str, Any]]]


def nodes_to_table(node_list: Sequence[BaseNode]) -> NodeTable:
    """The nodes as flat records, each port ``(node, index)`` written as ``(position in node_list, index)``.

    Nodes link to each other, so pickling or deep-copying them directly recurses once per node along a
    chain (RecursionError from about a hundred nodes); the table has no links and a fixed depth. The
    records keep each node's built module but not its ``module_args`` or a constructor function given
    as ``module_type`` (often lambdas, which cannot be pickled; the module is built already).

    Example:
        >>> x = InputNode(4, name="x"); z = OutputNode(x, name="z")
        >>> [(cls.__name__, state["inputs"]) for cls, state in nodes_to_table([x, z])]
        [('InputNode', []), ('OutputNode', [(0, 0)])]
    """
    position = {id(node): index for index, node in enumerate(node_list)}

    def flat(ports: list[Port], node: BaseNode) -> list[tuple[int, int]]:
        missing = [other.name for other, _ in ports if id(other) not in position]
        if missing:
            raise ValueError(f"Node '{node.name}' is linked to {missing}, which are not in node_list")
        return [(position[id(other)], index) for other, index in ports]

    table = []
    for node in node_list:
        state = dict(node.__dict__)
        for key in ("inputs", "conditions", "outputs"):
            state[key] = flat(state[key], node)
        state["module_args"] = None
        if not isinstance(state["module_type"], (type, nn.Module)):
            state["module_type"] = None
        table.append((type(node), state))
    return table


def nodes_from_table(table: NodeTable) -> list[BaseNode]:
    """The nodes of :func:`nodes_to_table`, linked again, without recursion.

    They get fresh serial numbers in their original declaration order, so they sort after every node
    alive in this process, as if declared now.

    Example:
        >>> x = InputNode(4, name="x"); z = OutputNode(x, name="z")
        >>> x2, z2 = nodes_from_table(nodes_to_table([x, z]))
        >>> z2.inputs[0][0] is x2, x2.outputs[0][0] is z2, x2 is x
        (True, True, False)
    """
    nodes = []
    for cls, state in table:
        node = cls.__new__(cls)
        node.__dict__.update(state)
        nodes.append(node)
    for node in nodes:
        for key in ("inputs", "conditions", "outputs"):
            setattr(node, key, [(nodes[position], index) for position, index in getattr(node, key)])
    for node in sorted(nodes, key=lambda node: node.serial):
        node.serial = next(_serial_numbers)
    return nodes


def _as_port(reference: Any, owner: str, role: str, index: int) -> Port:
    if isinstance(reference, BaseNode):
        reference = (reference, 0)
    if not (
        isinstance(reference, tuple)
        and len(reference) == 2
        and isinstance(reference[0], BaseNode)
        and isinstance(reference[1], int)
    ):
        raise TypeError(
            f"Node '{owner}' {role} {index}: expected a node, (node, index) or node.outN, got {reference!r}"
        )
    node, port = reference
    if isinstance(node, OutputNode):
        raise TypeError(f"Node '{owner}' {role} {index}: OutputNode '{node.name}' has no outputs to read")
    if not 0 <= port < len(node.output_dims):
        raise ValueError(
            f"Node '{owner}' {role} {index}: '{node.name}' has {len(node.output_dims)} output(s) "
            f"(out0..out{len(node.output_dims) - 1}), but port {port} was requested"
        )
    return node, port


def _as_ports(references: Any, owner: str, role: str) -> list[Port]:
    """Accept a node, ``(node, index)``, ``node.outN`` or a list of those."""
    if references is None:
        return []
    single = isinstance(references, BaseNode) or (
        isinstance(references, tuple) and len(references) == 2 and isinstance(references[1], int)
    )
    if single:
        references = [references]
    if not isinstance(references, Iterable):
        raise TypeError(f"Node '{owner}': {role}s must be a node, (node, index) or a list of those")
    return [_as_port(reference, owner, role, index) for index, reference in enumerate(references)]


def _check_sources(ports: list[Port], owner: str, role: str) -> None:
    """Conditions come from condition-kind nodes, inputs from the others."""
    for index, (source, port) in enumerate(ports):
        is_condition = source.kind in ("condition", "feed_forward")
        if role == "input" and is_condition:
            raise TypeError(
                f"Node '{owner}' input {index}: '{source.name}' is a {type(source).__name__}; "
                f"pass it as conditions=..., not as an input"
            )
        if role == "condition" and not is_condition:
            raise TypeError(
                f"Node '{owner}' condition {index}: conditions must come from a ConditionNode or "
                f"FeedForwardNode, but '{source.name}'.out{port} belongs to a {type(source).__name__}"
            )


def _rethrow_with_context(error: Exception, context: str) -> None:
    if isinstance(error, TypeError):
        raise TypeError(f"{context}: {error}") from error
    if isinstance(error, (ValueError, AssertionError, IndexError, KeyError)):
        raise ValueError(f"{context}: {error}") from error
    error.add_note(context)
    raise error


def _accepts_conditions(module_class: type) -> bool:
    parameters = inspect.signature(module_class.__init__).parameters.values()
    return any(p.name == "dims_c" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _type_name(module_type: Any) -> str:
    return module_type.__name__ if isinstance(module_type, type) else type(module_type).__name__


def _build_invertible(
    name: str, module_type: Any, module_args: Any, input_dims: list[Shape], condition_dims: list[Shape]
) -> InvertibleModule:
    if isinstance(module_type, nn.Module):
        return _check_instance(name, module_type, module_args, input_dims, condition_dims)
    if not (isinstance(module_type, type) and issubclass(module_type, InvertibleModule)):
        raise TypeError(
            f"Node '{name}': module_type must be an InvertibleModule subclass or instance, got {module_type!r}"
        )
    if module_args is not None and not isinstance(module_args, dict):
        raise TypeError(f"Node '{name}': module_args must be a dict or None, got {type(module_args).__name__}")
    if INDEX_SHAPE in condition_dims and not getattr(module_type, "takes_index_conditions", False):
        position = condition_dims.index(INDEX_SHAPE)
        raise ValueError(f"Node '{name}' condition {position} is an index condition (ConditionNode(0)), but "
                         f"{module_type.__name__} takes none; give the ConditionNode a shape")
    if condition_dims and not _accepts_conditions(module_type):
        raise ValueError(
            f"Node '{name}': {module_type.__name__} takes no conditions (its __init__ has no dims_c), "
            f"but {len(condition_dims)} condition(s) of shape {condition_dims} were given"
        )
    arguments = dict(module_args or {})
    if condition_dims:
        arguments["dims_c"] = condition_dims
    try:
        return module_type(input_dims, **arguments)
    except Exception as error:  # noqa: BLE001 - re-raised with the node's name
        _rethrow_with_context(error, f"Node '{name}' ({module_type.__name__}) with input shapes {input_dims}")


def _check_instance(
    name: str, module: nn.Module, module_args: Any, input_dims: list[Shape], condition_dims: list[Shape]
) -> InvertibleModule:
    kind = type(module).__name__
    if not isinstance(module, InvertibleModule):
        raise TypeError(f"Node '{name}': {kind} is not an InvertibleModule; wrap it or use a FeedForwardNode")
    if module_args is not None:
        raise TypeError(f"Node '{name}': module_args must be None when passing an already built {kind}")
    if module.dims_in != input_dims:
        raise ValueError(f"Node '{name}': the {kind} instance was built for inputs {module.dims_in}, "
                         f"but the node's inputs give {input_dims}")
    if module.dims_c != condition_dims:
        raise ValueError(f"Node '{name}': the {kind} instance was built for conditions {module.dims_c}, "
                         f"but the node's conditions give {condition_dims}")
    if getattr(module, "force_tuple_output", True) is False:
        raise TypeError(f"Node '{name}': a nested {kind} must be built with force_tuple_output=True, "
                        "so that it returns a tuple of tensors like every module")
    return module


def _checked_output_dims(name: str, module: InvertibleModule, input_dims: list[Shape]) -> list[Shape]:
    kind = type(module).__name__
    try:
        output_dims = normalize_shapes(module.output_dims(input_dims), f"{kind}.output_dims()")
    except Exception as error:  # noqa: BLE001 - re-raised with the node's name
        _rethrow_with_context(error, f"Node '{name}' ({kind}) output_dims({input_dims})")
    size_in = sum(math.prod(shape) for shape in input_dims)
    size_out = sum(math.prod(shape) for shape in output_dims)
    if size_in != size_out:
        raise ValueError(
            f"Node '{name}' ({kind}): output_dims gives {output_dims} ({size_out} elements per sample) for "
            f"inputs {input_dims} ({size_in} elements); an invertible block must keep the number of elements"
        )
    return output_dims


class InputNode(BaseNode):
    """A graph input: one tensor of the given shape (without batch).

    Example:
        >>> InputNode(3, 8, 8, name="image")
        InputNode('image' -> [(3, 8, 8)])
    """

    kind = "input"

    def __init__(self, *dims: int, name: str | None = None):
        shape = _shape_from_dims(dims, type(self).__name__)
        super().__init__(name or _default_name(type(self).__name__), [], [], [shape])


class ConditionNode(InputNode):
    """A condition input: a tensor given with ``c=...``, read by nodes through ``conditions=``.

    ``ConditionNode(0)`` declares an index condition (FrEIA's convention for GaussianMixtureModel's component
    choice): its value may be an integer tensor of shape ``(batch,)``, an int or None, is passed on as given
    and is not shape-checked; only modules with ``takes_index_conditions`` accept it.

    Example:
        >>> ConditionNode(10, name="label")
        ConditionNode('label' -> [(10,)])
    """

    kind = "condition"

    def __init__(self, *dims: int, name: str | None = None):
        if dims in ((0,), ((0,),)):
            BaseNode.__init__(self, name or _default_name(type(self).__name__), [], [], [INDEX_SHAPE])
        else:
            super().__init__(*dims, name=name)


class Node(BaseNode):
    """An invertible node: runs an :class:`InvertibleModule` on its inputs (and conditions).

    Args:
        inputs: a node, ``(node, index)``, ``node.outN``, or a list of those.
        module_type: an InvertibleModule subclass, built as ``module_type(input_dims, dims_c=...,
            **module_args)``, or an already built instance (then ``module_args`` must be None).
        module_args: keyword arguments for the module's constructor.
        conditions: ports of ConditionNodes or FeedForwardNodes, in the order the module expects them.
        name: unique within a graph; a deterministic default is made from the class and declaration order.

    Example:
        >>> import freia_graph.modules as Fm
        >>> x = InputNode(6, name="x")
        >>> split = Node(x, Fm.Split, {"section_sizes": [4, 2]}, name="split")
        >>> split.output_dims, split.out1[1]
        ([(4,), (2,)], 1)
    """

    kind = "invertible"

    def __init__(
        self,
        inputs: Any,
        module_type: type[InvertibleModule] | InvertibleModule,
        module_args: dict[str, Any] | None = None,
        conditions: Any = None,
        name: str | None = None,
    ):
        name = name or _default_name(_type_name(module_type))
        input_ports = _as_ports(inputs, name, "input")
        if not input_ports:
            raise ValueError(f"Node '{name}' needs at least one input")
        condition_ports = _as_ports(conditions, name, "condition")
        _check_sources(input_ports, name, "input")
        _check_sources(condition_ports, name, "condition")
        input_dims = [source.output_dims[port] for source, port in input_ports]
        condition_dims = [source.output_dims[port] for source, port in condition_ports]
        with garbage_collector_paused():  # a long declaration would otherwise collect over all earlier modules
            module = _build_invertible(name, module_type, module_args, input_dims, condition_dims)
        output_dims = _checked_output_dims(name, module, input_dims)
        super().__init__(name, input_ports, condition_ports, output_dims, module, module_type, module_args)


class FeedForwardNode(BaseNode):
    """A plain (not invertible) ``nn.Module`` that computes condition values, e.g. a label embedding.

    It reads ConditionNodes, other FeedForwardNodes, or any port of the flow itself (e.g. one branch of a
    split, to condition couplings on the other branch): a port is consumed by one invertible node or
    OutputNode, and read by any number of feed-forward nodes. The node runs as soon as what it reads
    exists, in both directions. In reverse a port of the flow exists only once the node consuming it has
    been inverted, so a feed-forward node must not condition that node or anything before it: such a
    graph has a cycle in reverse, and building it raises a ValueError naming the cycle.

    Args:
        conditions: the ports it reads, passed positionally to the module.
        output_dims: the shape of its output (an int, a shape, or a list of shapes for several outputs).
        module_type: an ``nn.Module`` class, built as ``module_type(**module_args)``, or an instance.
        module_args: keyword arguments for the module's constructor.
        name: unique within a graph.

    Example:
        >>> from torch import nn
        >>> label = ConditionNode(3, name="label")
        >>> embedding = FeedForwardNode(label, 8, nn.Linear, {"in_features": 3, "out_features": 8})
        >>> embedding.output_dims
        [(8,)]
    """

    kind = "feed_forward"

    def __init__(
        self,
        conditions: Any,
        output_dims: int | Sequence[int] | Sequence[Sequence[int]],
        module_type: type[nn.Module] | nn.Module | Callable[..., nn.Module],
        module_args: dict[str, Any] | None = None,
        name: str | None = None,
    ):
        name = name or _default_name(_type_name(module_type))
        condition_ports = _as_ports(conditions, name, "condition")
        if not condition_ports:
            raise ValueError(f"FeedForwardNode '{name}' needs at least one condition to compute from")
        with garbage_collector_paused():
            module = self._build(name, module_type, module_args)
        if isinstance(output_dims, int) or (output_dims and all(isinstance(d, int) for d in output_dims)):
            output_dims = [output_dims if not isinstance(output_dims, int) else (output_dims,)]
        shapes = normalize_shapes(output_dims, f"FeedForwardNode '{name}' output_dims")
        super().__init__(name, [], condition_ports, shapes, module, module_type, module_args)

    @staticmethod
    def _build(name: str, module_type: Any, module_args: Any) -> nn.Module:
        if isinstance(module_type, nn.Module):
            if module_args is not None:
                raise TypeError(f"FeedForwardNode '{name}': module_args must be None when passing a module")
            return module_type
        if not callable(module_type):
            raise TypeError(f"FeedForwardNode '{name}': module_type must be an nn.Module class or instance")
        try:
            module = module_type(**(module_args or {}))
        except Exception as error:  # noqa: BLE001 - re-raised with the node's name
            _rethrow_with_context(error, f"FeedForwardNode '{name}' ({_type_name(module_type)})")
        if not isinstance(module, nn.Module):
            raise TypeError(f"FeedForwardNode '{name}': module_type built a {type(module).__name__}, not an nn.Module")
        return module


class OutputNode(BaseNode):
    """A graph output: marks one port as a result of the graph.

    Example:
        >>> x = InputNode(4, name="x")
        >>> OutputNode(x, name="z").input_dims
        [(4,)]
    """

    kind = "output"

    def __init__(self, inputs: Any, name: str | None = None):
        name = name or _default_name(type(self).__name__)
        ports = _as_ports(inputs, name, "input")
        if len(ports) != 1:
            raise ValueError(f"OutputNode '{name}' takes exactly one port, got {len(ports)}")
        _check_sources(ports, name, "input")
        super().__init__(name, ports, [], [])
