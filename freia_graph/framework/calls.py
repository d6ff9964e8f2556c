"""Checks shared by GraphINN and SequenceINN: the caller's tensors, and each module's answer.

Call checks run before any module does; module answers are verified on the first call in each
direction, so a module breaking the contract is named.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from freia_graph.modules._linalg import LOW_PRECISION
from freia_graph.modules.base import Shape

__all__ = [
    "as_tuple",
    "raised_by_checks",
    "as_tensor_list",
    "check_tensors",
    "verified_answer",
    "CheckedModule",
    "add_log_det",
    "per_sample_log_det",
    "first_tensor",
    "floating_dtype",
    "DtypeGuard",
    "check_finite_values",
    "MAX_NESTING_DEPTH",
    "nesting_depth",
]


def as_tensor_list(values: Any, names: Sequence[str], what: str) -> list[Tensor]:
    """The caller's tensors as a list in node order: from a tensor, a list/tuple or a dict keyed by name.

    Only the container and the count are checked here; :func:`check_tensors` checks the tensors.

    Example:
        >>> import torch
        >>> x = torch.zeros(2, 3)
        >>> as_tensor_list({"b": x, "a": x}, ["a", "b"], "input") == [x, x], as_tensor_list(x, ["a"], "input")[0] is x
        (True, True)
    """
    if isinstance(values, Tensor):
        values = [values]
    elif isinstance(values, (list, tuple)):
        values = list(values)
    elif values is None:
        values = []
    elif isinstance(values, Mapping):
        unknown = sorted(set(values) - set(names))
        missing = [name for name in names if name not in values]
        if unknown or missing:
            raise ValueError(f"{what}: dict keys must be the node names {list(names)}; "
                             f"missing {missing}, unknown {unknown}")
        values = [values[name] for name in names]
    else:
        raise TypeError(f"{what} must be a tensor, a list of tensors or a dict keyed by node name, "
                        f"got {type(values).__name__}")
    if len(values) != len(names):
        raise ValueError(f"{what}: expected {len(names)} tensor(s) for {list(names)}, got {len(values)}")
    return values


def check_tensors(tensors: Sequence[Tensor], shapes: Sequence[Shape] | None, labels: Sequence[str]) -> None:
    """Shapes (all but batch), batch agreement, dtype and device of every tensor of a call.

    Args:
        tensors: the inputs and conditions of the call.
        shapes: the expected shape of each, without batch; None checks only batch, dtype and device.
        labels: how to name each in an error, e.g. ``"input 'x'"``.

    The common case is one cheap comparison per tensor; messages are only built on failure.

    Example:
        >>> import torch
        >>> check_tensors([torch.zeros(2, 3), torch.zeros(5, 1)], [(3,), (1,)], ["input 'x'", "condition 'c'"])
        Traceback (most recent call last):
        ...
        ValueError: condition 'c' has batch size 5, but input 'x' has 2
    """
    for label, tensor in zip(labels, tensors):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{label} must be a tensor, got {type(tensor).__name__}")
    first = tensors[0]
    batch, dtype, device = (first.shape[0] if first.dim() else -1), first.dtype, first.device
    for tensor, shape in zip(tensors, shapes or [t.shape[1:] for t in tensors]):
        if tensor.shape[1:] != shape or tensor.shape[0] != batch or tensor.dtype != dtype or tensor.device != device:
            _explain_mismatch(tensors, shapes, labels)
    if not dtype.is_floating_point:
        raise TypeError(f"the tensors of a call must be floating point, got {dtype}")


def _explain_mismatch(tensors: Sequence[Tensor], shapes: Sequence[Shape] | None, labels: Sequence[str]) -> None:
    for label, tensor, shape in zip(labels, tensors, shapes or [tuple(t.shape[1:]) for t in tensors]):
        if tuple(tensor.shape[1:]) != shape or tensor.dim() == 0:
            raise ValueError(f"{label} must have shape (batch, {', '.join(map(str, shape))}), "
                             f"got {tuple(tensor.shape)}")
    first, first_label = tensors[0], labels[0]
    for label, tensor in zip(labels, tensors):
        if tensor.shape[0] != first.shape[0]:
            raise ValueError(f"{label} has batch size {tensor.shape[0]}, but {first_label} has {first.shape[0]}")
        # under autocast, outputs of a forward call can be bfloat16 next to float32 conditions
        autocast_dtypes = tensor.device == first.device and torch.is_autocast_enabled(first.device.type)
        if (tensor.dtype != first.dtype and not autocast_dtypes) or tensor.device != first.device:
            raise ValueError(f"{label} is {tensor.dtype} on {tensor.device}, but {first_label} is "
                             f"{first.dtype} on {first.device}; all tensors of a call must agree")


def floating_dtype(module: nn.Module) -> torch.dtype | None:
    """The one floating dtype of a module's parameters (of its floating buffers if it has no
    parameters), or None when there are none or several (then no dtype is enforced).

    Example:
        >>> from torch import nn
        >>> floating_dtype(nn.Linear(2, 2)), floating_dtype(nn.Linear(2, 2).double()), floating_dtype(nn.ReLU())
        (torch.float32, torch.float64, None)
    """
    dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()}
    if not dtypes:
        dtypes = {b.dtype for b in module.buffers() if b.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


# Each level of nesting costs about seven Python frames per call (more with the first-call and finite
# checks): 100 levels stay well inside Python's default recursion limit of 1000.
MAX_NESTING_DEPTH = 100


def nesting_depth(modules: Iterable[nn.Module], what: str) -> int:
    """How deep a graph or chain of ``modules`` nests graphs (1: none nested), checked against the limit.

    Args:
        modules: the modules of the graph or chain.
        what: how to name it in the error.

    Raises:
        ValueError: beyond :data:`MAX_NESTING_DEPTH` levels, which a call could not run without
            exceeding Python's recursion limit.

    Example:
        >>> from torch import nn
        >>> nesting_depth([nn.Linear(2, 2)], "GraphINN")
        1
    """
    depth = 1 + max((vars(module).get("nesting_depth", 0) for module in modules), default=0)
    if depth > MAX_NESTING_DEPTH:
        raise ValueError(f"{what} would nest graphs {depth} levels deep; at most {MAX_NESTING_DEPTH} are supported "
                         "(each level costs several Python frames of the recursion limit in every call); declare "
                         "the inner graphs' nodes in the outer graph instead")
    return depth


_UNKNOWN: Any = object()


class DtypeGuard(nn.Module):
    """Mixin for graphs and chains: the call's dtype is checked against the parameters' dtype.

    The parameters' dtype is remembered; ``.to()``, ``.double()`` and the like go through ``_apply``,
    which forgets it. A call of the remembered dtype costs one comparison; a different dtype looks at
    the parameters again before failing, so a stale memory never gives a false error. Graphs without
    parameters or with several floating dtypes, and calls under ``torch.autocast``, are not checked.

    Example:
        >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> inn = Ff.SequenceINN(2)
        >>> inn.append(Fm.ActNorm)
        >>> inn(torch.zeros(1, 2, dtype=torch.float64))
        Traceback (most recent call last):
        ...
        ValueError: input 'x' is torch.float64, but the graph's parameters are torch.float32; call inn.to(...
    """

    _parameter_dtype: Any = _UNKNOWN

    def _check_dtype(self, tensor: Tensor, label: str) -> None:
        expected = self._parameter_dtype
        if tensor.dtype is expected or expected is None:
            return
        if torch.is_autocast_enabled(tensor.device.type):
            return  # autocast casts inside the modules: other dtypes are expected there
        self._parameter_dtype = expected = floating_dtype(self)
        if expected is not None and tensor.dtype != expected:
            raise ValueError(f"{label} is {tensor.dtype}, but the graph's parameters are {expected}; call "
                             f"inn.to({tensor.dtype}) or pass the tensors .to({expected})")

    def _forget_parameter_dtype(self) -> None:
        """Look at the parameters again on the next call (after modules were converted or replaced)."""
        self.__dict__.pop("_parameter_dtype", None)

    def _apply(self, *args: Any, **kwargs: Any) -> Any:
        self._forget_parameter_dtype()
        return super()._apply(*args, **kwargs)


def check_finite_values(tensors: Sequence[Any], labels: Sequence[str], where: str) -> None:
    """Raise naming ``where`` and the first label whose tensor has a NaN or an infinity.

    Example:
        >>> import torch
        >>> check_finite_values([torch.ones(2), torch.tensor([1.0, float("nan")])], ["out0", "out1"], "Node 'a'")
        Traceback (most recent call last):
        ...
        ValueError: Node 'a': non-finite value (NaN or inf) in out1
    """
    for value, label in zip(tensors, labels):
        finite = bool(torch.isfinite(value).all()) if isinstance(value, Tensor) else (
            not isinstance(value, float) or math.isfinite(value))
        if not finite:
            raise ValueError(f"{where}: non-finite value (NaN or inf) in {label}")


class CheckedModule:
    """Calls a module and verifies its answer: used on first calls, for intermediate outputs and with
    ``check_finite``.

    Args:
        module: the module to call.
        where: what to name in errors (a node, or a description of a position in a chain).
        n_outputs: how many tensors it must return.
        batch, jac: of the current call.
        finite_labels: with ``check_finite``, how to name each output in an error (else None: no check).
    """

    def __init__(self, module: Any, where: str, n_outputs: int, batch: int, jac: bool,
                 finite_labels: Sequence[str] | None = None):
        self.module, self.where, self.n_outputs = module, where, n_outputs
        self.batch, self.jac = batch, jac
        self.finite_labels = finite_labels

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[tuple, Any]:
        outputs, log_det = verified_answer(self.module(*args, **kwargs), self.where, self.n_outputs, self.batch,
                                           self.jac)
        if self.finite_labels is not None:
            check_finite_values([*outputs, log_det], [*self.finite_labels, "its log-det"], self.where)
        return outputs, log_det


def verified_answer(answer: Any, where: str, n_outputs: int, batch: int, jac: bool) -> tuple[tuple, Any]:
    """Check that a module's answer honours the contract; returns it unpacked.

    Example:
        >>> import torch
        >>> verified_answer(torch.zeros(2, 3), "Node 'a'", 1, 2, True)
        Traceback (most recent call last):
        ...
        ValueError: Node 'a' must return (outputs, log_det), got Tensor

    Raises:
        ValueError: naming ``where`` (the node) and what was wrong.
    """
    if not (isinstance(answer, tuple) and len(answer) == 2):
        raise ValueError(f"{where} must return (outputs, log_det), got {type(answer).__name__}")
    outputs, log_det = answer
    if not isinstance(outputs, (tuple, list)) or not all(isinstance(o, Tensor) for o in outputs):
        raise ValueError(f"{where} must return its outputs as a tuple of tensors, got {type(outputs).__name__}")
    if len(outputs) != n_outputs:
        raise ValueError(f"{where} returned {len(outputs)} output(s), but its output_dims declares {n_outputs}")
    if jac:
        per_sample = isinstance(log_det, Tensor) and tuple(log_det.shape) in ((batch,), ())
        if not (per_sample or isinstance(log_det, (int, float))):
            shape = tuple(log_det.shape) if isinstance(log_det, Tensor) else type(log_det).__name__
            raise ValueError(f"{where} returned a log-det of shape {shape}; expected ({batch},) (one per "
                             "sample), a 0-dim tensor or a number")
    return tuple(outputs), log_det


def as_tuple(result: Any) -> tuple:
    """A feed-forward module's result as a tuple: a single tensor, or its sequence of tensors.

    Example:
        >>> len(as_tuple(torch.ones(2))), len(as_tuple([torch.ones(2), torch.zeros(1)]))
        (1, 2)
    """
    return (result,) if isinstance(result, Tensor) else tuple(result)


def add_log_det(total: Any, constant: Any, step_log_det: Any) -> tuple[Any, Any]:
    """The running log-det totals ``(total, constant)`` with one step's log-det added.

    Tensors go into ``total`` as they come, so no step's log-det is held longer than in a plain loop;
    plain numbers (a permutation's 0.0) go into ``constant``, so they launch no tensor operation, and are
    added once at the end (``total + constant if constant else total``). Under ``torch.autocast`` blocks
    may return float16/bfloat16 log-dets: these are up-cast, so the total is accumulated in float32 and
    does not lose precision block after block.

    Example:
        >>> import torch
        >>> total, constant = 0.0, 0.0
        >>> for step in (0.5, torch.tensor([1.0, 2.0], dtype=torch.bfloat16), torch.tensor([1.0, 1.0])):
        ...     total, constant = add_log_det(total, constant, step)
        >>> total + constant
        tensor([2.5000, 3.5000])
    """
    if not isinstance(step_log_det, Tensor):
        return total, constant + step_log_det
    if step_log_det.dtype in LOW_PRECISION:  # a float32 0-dim total would not promote a bfloat16 vector
        step_log_det = step_log_det.float()
    if isinstance(total, Tensor):
        return total + step_log_det, constant
    return step_log_det, constant + total  # the first tensor is taken as it is


def per_sample_log_det(log_det: Any, reference: Tensor, jac: bool) -> Tensor:
    """The summed log-det as a ``(batch,)`` tensor (zeros with ``jac=False``), without host-device copies.

    For float16/bfloat16 ``reference`` tensors (reverse calls on autocast outputs) the log-det is float32,
    like :func:`add_log_det`'s totals.

    Example:
        >>> import torch
        >>> per_sample_log_det(0.5, torch.zeros(3, 2), jac=True)
        tensor([0.5000, 0.5000, 0.5000])
    """
    batch = reference.shape[0]
    if isinstance(log_det, Tensor) and log_det.shape == (batch,) and jac:
        return log_det
    zeros = reference.new_zeros(batch, dtype=torch.float32 if reference.dtype in LOW_PRECISION else None)
    if not jac:
        return zeros
    total = zeros + log_det
    if total.shape != (batch,):
        raise ValueError(f"the summed log-det has shape {tuple(total.shape)}, expected ({batch},): "
                         "a module returned a log-det of the wrong shape (run with check_inputs=True to name it)")
    return total


def first_tensor(*groups: Sequence[Tensor]) -> Tensor:
    """The first tensor of a call, to take batch size, dtype and device from.

    Example:
        >>> import torch
        >>> first_tensor([], [torch.ones(1)])
        tensor([1.])
    """
    for group in groups:
        if group:
            return group[0]
    raise ValueError("the call has no tensors")


_FRAMEWORK = os.path.dirname(__file__)


def raised_by_checks(error: BaseException) -> bool:
    """Whether ``error`` was raised by the framework's own checks (which name the node already), rather than
    inside a module.

    Example:
        >>> raised_by_checks(ValueError("raised outside any traceback"))
        False
    """
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return os.path.dirname(traceback.tb_frame.f_code.co_filename).startswith(_FRAMEWORK)
