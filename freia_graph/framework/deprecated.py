"""FrEIA's old names for the graph classes, kept so old programs run; they warn."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from freia_graph.framework.graph_inn import GraphINN
from freia_graph.framework.nodes import BaseNode
from freia_graph.framework.sequence_inn import SequenceINN

__all__ = ["ReversibleGraphNet", "ReversibleSequential"]


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)


class ReversibleGraphNet(GraphINN):
    """Deprecated name of :class:`GraphINN` (``ind_in``/``ind_out`` are ignored: the node kinds say it).

    Example:
        >>> import warnings, freia_graph.framework as Ff
        >>> x = Ff.InputNode(2); z = Ff.OutputNode(x)
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     net = ReversibleGraphNet([x, z], verbose=False)
        >>> isinstance(net, Ff.GraphINN)
        True
    """

    def __init__(self, node_list: Sequence[BaseNode], ind_in: Any = None, ind_out: Any = None,
                 verbose: bool = True, force_tuple_output: bool = False):
        _warn("ReversibleGraphNet", "GraphINN")
        super().__init__(node_list, force_tuple_output=force_tuple_output, verbose=verbose)


class ReversibleSequential(SequenceINN):
    """Deprecated name of :class:`SequenceINN`.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     chain = ReversibleSequential(4)
        >>> len(chain)
        0
    """

    def __init__(self, *dims: int, force_tuple_output: bool = False):
        _warn("ReversibleSequential", "SequenceINN")
        super().__init__(*dims, force_tuple_output=force_tuple_output)
