"""FrEIA's ``FrEIA.utils`` helpers, with the same names and call conventions.

FrEIA 0.2 has no ``utils`` module; FrEIA HEAD has these functions. ``plot_graph`` draws with
:mod:`freia_graph.viz` instead of Graphviz, so it needs no ``dot`` binary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "output_dims_compatible",
    "f_except",
    "sum_except",
    "sum_except_batch",
    "force_to",
    "tuple_free_forward",
    "tuple_free_batch_forward",
    "plot_graph",
]


def output_dims_compatible(invertible_module: Any) -> list[tuple[int, ...]]:
    """The output shapes of a built block or graph, for its own input shapes.

    Args:
        invertible_module: any :class:`~freia_graph.InvertibleModule`, ``GraphINN`` or ``SequenceINN``
            (with or without ``force_tuple_output``).

    Returns:
        ``invertible_module.output_dims(invertible_module.dims_in)``.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> inn = Ff.SequenceINN(6)
        >>> _ = inn.append(Fm.PermuteRandom, seed=0)
        >>> output_dims_compatible(inn)
        [(6,)]
    """
    dims_in = getattr(invertible_module, "dims_in", None)
    if dims_in is None or not callable(getattr(invertible_module, "output_dims", None)):
        raise TypeError(
            f"output_dims_compatible needs a built invertible module or graph with dims_in and output_dims(), "
            f"got {type(invertible_module).__name__}"
        )
    return invertible_module.output_dims(dims_in)


def f_except(f: Callable[..., Tensor], x: Tensor, *dim: int, **kwargs: Any) -> Tensor:
    """Apply a reduction ``f(x, dim=[...], **kwargs)`` over every dimension of ``x`` except ``dim``.

    Args:
        f: a reduction taking ``dim`` as a list, such as ``torch.sum`` or ``torch.mean``.
        x: the tensor.
        *dim: the dimensions to keep; negative indices count from the end.
        **kwargs: passed on to ``f``.

    Returns:
        The reduced tensor.

    Example:
        >>> f_except(torch.mean, torch.ones(2, 3, 4), 0).shape
        torch.Size([2])
    """
    outside = [d for d in dim if not -x.dim() <= d < x.dim()]
    if outside:
        raise ValueError(f"f_except: dims {outside} are out of range for x of shape {tuple(x.shape)}")
    keep = {d % x.dim() for d in dim}
    reduced = [d for d in range(x.dim()) if d not in keep]
    if not reduced:
        raise ValueError(f"f_except: keeping dims {dim} of x with shape {tuple(x.shape)} leaves nothing to reduce")
    return f(x, dim=reduced, **kwargs)


def sum_except(x: Tensor, *dim: int) -> Tensor:
    """Sum ``x`` over every dimension except ``dim``.

    Example:
        >>> sum_except(torch.ones(2, 3, 4), 1).tolist()
        [8.0, 8.0, 8.0]
    """
    return f_except(torch.sum, x, *dim)


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum ``x`` over every dimension except the first (the batch).

    Example:
        >>> sum_except_batch(torch.ones(2, 3, 4)).tolist()
        [12.0, 12.0]
    """
    return sum_except(x, 0)


def force_to(obj: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``.to(*args, **kwargs)`` on every tensor reachable from ``obj``, as FrEIA's ``force_to``.

    Tensors inside dicts and lists are replaced in those containers, tuples are rebuilt, and plain
    objects are searched through their ``__dict__`` (so a tensor stored as a plain attribute of a module,
    which ``Module.to`` misses, is moved too). The containers are changed in place; the tensors are not.

    Args:
        obj: a tensor, or any structure holding tensors.
        *args, **kwargs: the arguments of ``Tensor.to`` (device, dtype, ...).

    Returns:
        ``obj`` with its tensors moved (a new object when ``obj`` is a tensor or a tuple).

    Raises:
        ValueError: when ``obj`` contains itself.

    Example:
        >>> moved = force_to({"a": [torch.ones(2)], "b": (torch.zeros(1),)}, torch.float64)
        >>> moved["a"][0].dtype, moved["b"][0].dtype
        (torch.float64, torch.float64)
    """
    visiting: set[int] = set()

    def move(value: Any) -> Any:
        if torch.is_tensor(value):
            return value.to(*args, **kwargs)
        if not isinstance(value, (dict, list, tuple)) and not hasattr(value, "__dict__"):
            return value
        if id(value) in visiting:
            raise ValueError(f"force_to: {type(value).__name__} object contains itself; cannot move a cycle")
        visiting.add(id(value))
        try:
            if isinstance(value, tuple):
                return tuple(move(item) for item in value)
            if isinstance(value, (dict, list)):
                for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
                    value[key] = move(item)
                return value
            move(value.__dict__)
            return value
        finally:
            visiting.discard(id(value))

    return move(obj)


def tuple_free_forward(module: Any, data: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor | None]:
    """Run a one-input, one-output block or graph on a bare tensor and return a bare tensor.

    Blocks (and graphs built with ``force_tuple_output=True``) get ``[data]`` and their 1-tuple output
    is unpacked; graphs without ``force_tuple_output`` take and give tensors directly.

    Args:
        module: the block or graph.
        data: the input tensor.
        *args, **kwargs: passed on to the call (``c``, ``rev``, ``jac``).

    Returns:
        ``(output, log_det)``.

    Example:
        >>> import freia_graph.modules as Fm
        >>> out, log_det = tuple_free_forward(Fm.PermuteRandom([(3,)], seed=0), torch.ones(2, 3))
        >>> out.shape
        torch.Size([2, 3])
    """
    wraps_tuples = getattr(module, "force_tuple_output", True)
    outputs, log_det = module([data] if wraps_tuples else data, *args, **kwargs)
    if wraps_tuples:
        if len(outputs) != 1:
            raise ValueError(
                f"tuple_free_forward needs a module with one output, {type(module).__name__} gave {len(outputs)}"
            )
        (outputs,) = outputs
    return outputs, log_det


def tuple_free_batch_forward(
    module: Any,
    data: Tensor,
    batch_size: int,
    loader_kwargs: dict | None = None,
    device: torch.device | str | None = None,
    **forward_kwargs: Any,
) -> tuple[Tensor, Tensor | None]:
    """Run :func:`tuple_free_forward` over ``data`` in batches, on ``device``, and join the results.

    Each batch is moved to ``device`` (when given) and the results back to ``data``'s device. CPU data
    goes through a ``torch.utils.data.DataLoader`` built with ``loader_kwargs`` (workers, pinned
    memory, ...); data already on an accelerator is split directly and takes no ``loader_kwargs``.

    Args:
        module: the block or graph.
        data: all the inputs, batch first.
        batch_size: samples per call.
        loader_kwargs: extra ``DataLoader`` arguments for CPU data.
        device: where to run; None runs where each batch already is.
        **forward_kwargs: passed on to the call (``rev``, ``jac``, ...).

    Returns:
        ``(outputs, log_dets)`` for all samples; ``log_dets`` is None when any call returned None.

    Example:
        >>> import freia_graph.modules as Fm
        >>> out, log_det = tuple_free_batch_forward(Fm.PermuteRandom([(3,)], seed=0), torch.ones(10, 3), 4)
        >>> out.shape, log_det.shape
        (torch.Size([10, 3]), torch.Size([10]))
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"tuple_free_batch_forward: batch_size must be a positive int, got {batch_size!r}")
    loader_kwargs = dict(loader_kwargs or {})
    if data.device.type == "cpu":
        from torch.utils.data import DataLoader, TensorDataset

        batches = (batch for (batch,) in DataLoader(TensorDataset(data), batch_size=batch_size, **loader_kwargs))
    elif loader_kwargs:
        raise ValueError(f"tuple_free_batch_forward: loader_kwargs only apply to CPU data, data is on {data.device}")
    else:
        batches = data.split(batch_size)
    outputs, log_dets = [], []
    for batch in batches:
        output, log_det = tuple_free_forward(module, batch if device is None else batch.to(device), **forward_kwargs)
        outputs.append(output.to(data.device))
        log_dets.append(None if log_det is None else _per_sample(log_det, output.shape[0]).to(data.device))
    log_det = None if any(ld is None for ld in log_dets) else torch.cat(log_dets)
    return torch.cat(outputs), log_det


def _per_sample(log_det: Tensor | float, batch: int) -> Tensor:
    log_det = torch.as_tensor(log_det)
    return log_det.expand(batch) if log_det.dim() == 0 else log_det


def plot_graph(nodes: Iterable[Any], path: str | os.PathLike, filename: str) -> None:
    """Draw a graph of nodes into the folder ``path``, as FrEIA's ``plot_graph`` does, without Graphviz.

    Writes the files FrEIA writes, ``<path>/<filename>`` (Graphviz DOT text) and ``<path>/<filename>.pdf``,
    drawn by :mod:`freia_graph.viz`; without matplotlib (which the PDF needs) ``<path>/<filename>.svg``
    instead. ``GraphINN.plot(path, filename)`` does the same.

    Args:
        nodes: the graph's nodes (a list of nodes, or a built ``GraphINN``).
        path: an existing folder.
        filename: the file name, without extension.

    Example:
        >>> import tempfile, freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(4, name="x")
        >>> perm = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="perm")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     plot_graph([x, perm, Ff.OutputNode(perm, name="z")], folder, "graph")
        ...     print((Path(folder) / "graph").read_text()[:7], (Path(folder) / "graph.pdf").exists())
        digraph True
    """
    from freia_graph import viz

    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"plot_graph: the folder {str(folder)!r} does not exist; create it first")
    if not isinstance(filename, str) or not filename:
        raise TypeError(f"plot_graph: filename must be a non-empty string, got {filename!r}")
    graph = nodes if hasattr(nodes, "node_list") else list(nodes)
    target = folder / filename
    target.write_text(viz.to_dot(graph), encoding="utf-8")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        viz.save(graph, target.with_name(filename + ".svg"))
        return
    viz.save(graph, target.with_name(filename + ".pdf"))
