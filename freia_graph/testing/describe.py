"""``describe``: a graph as readable text, one line per node, as used in failure messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

__all__ = ["describe", "describe_node", "short_repr"]


def _port(port: tuple[Any, int]) -> str:
    node, index = port
    return node.name if len(node.output_dims) == 1 else f"{node.name}.out{index}"


def short_repr(value: Any, limit: int = 40) -> str:
    """A constructor argument as short text: classes and functions by name, long reprs cut.

    Example:
        >>> short_repr(len), short_repr([1, 2]), short_repr(list(range(30)), limit=12)
        ('len', '[1, 2]', '[0, 1, 2,...')
    """
    if isinstance(value, type) or (callable(value) and hasattr(value, "__name__")):
        return value.__name__
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _arguments(module_args: Mapping[str, Any] | None) -> list[str]:
    return [f"{key}={short_repr(value)}" for key, value in (module_args or {}).items()]


def _type_name(node: Any) -> str:
    module_type = node.module_type
    if isinstance(module_type, type):
        return module_type.__name__
    return type(node.module).__name__


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join(str(shape) for shape in shapes)


def describe_node(node: Any) -> str:
    """One line: ``name = Kind(sources, c=[conditions], arguments) -> shapes``.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(4, name="x")
        >>> describe_node(Ff.Node(x, Fm.PermuteRandom, {"seed": 1}, name="permute"))
        'permute = PermuteRandom(x, seed=1) -> (4,)'
    """
    if node.kind in ("input", "condition"):
        return f"{node.name} = {type(node).__name__}{node.output_dims[0]}"
    if node.kind == "output":
        return f"{node.name} = OutputNode({_port(node.inputs[0])}) {node.input_dims[0]}"
    sources = [_port(port) for port in node.inputs] if node.kind != "feed_forward" else []
    if node.conditions:
        condition_ports = ", ".join(_port(port) for port in node.conditions)
        sources.append(f"c=[{condition_ports}]" if node.kind != "feed_forward" else condition_ports)
    arguments = ", ".join(sources + _arguments(node.module_args))
    return f"{node.name} = {_type_name(node)}({arguments}) -> {_shapes(node.output_dims)}"


def describe(inn: nn.Module, indent: str = "") -> str:
    """A GraphINN as text, one line per node in ``node_list`` order; nested graphs are indented below.

    Args:
        inn: a GraphINN (anything with a ``node_list``).
        indent: prefix of every line.

    Returns:
        The description, e.g. ``split = Split(x, section_sizes=[4, 2]) -> (4,), (2,)``.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(6, name="x")
        >>> split = Ff.Node(x, Fm.Split, {"section_sizes": [4, 2]}, name="split")
        >>> merge = Ff.Node([split.out1, split.out0], Fm.Concat, name="merge")
        >>> print(describe(Ff.GraphINN([x, split, merge, Ff.OutputNode(merge, name="z")])))
        x = InputNode(6,)
        split = Split(x, section_sizes=[4, 2]) -> (4,), (2,)
        merge = Concat(split.out1, split.out0) -> (6,)
        z = OutputNode(merge) (6,)
    """
    lines = []
    for node in inn.node_list:
        lines.append(indent + describe_node(node))
        if hasattr(node.module, "node_list"):
            lines.append(describe(node.module, indent + "    "))
    return "\n".join(lines)
