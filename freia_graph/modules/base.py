"""The contract every invertible block honours."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

from torch import Tensor, nn

__all__ = ["InvertibleModule", "Shape", "INDEX_SHAPE", "normalize_shapes"]

Shape = tuple[int, ...]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


INDEX_SHAPE: Shape = (0,)
"""The shape of an index condition, ``ConditionNode(0)``: a value that is not a feature tensor (component
indices of shape ``(batch,)``, an int, or None), passed to the module as given and not shape-checked.
Only modules whose ``takes_index_conditions`` is True accept one (FrEIA's GaussianMixtureModel convention)."""


def normalize_shapes(
    shapes: Iterable[Iterable[int]] | None, what: str = "dims_in", allow_index: bool = False
) -> list[Shape]:
    """Turn a list of shapes (tuples, lists or ``torch.Size``) into a list of int tuples.

    Args:
        shapes: one shape per tensor, each without the batch dimension; ``None`` means no tensors.
        what: the argument's name, used in error messages.
        allow_index: accept :data:`INDEX_SHAPE` ``(0,)``, the shape of an index condition.

    Returns:
        A list of tuples of ints.

    Example:
        >>> import torch
        >>> normalize_shapes([torch.Size([3, 8, 8]), [4]])
        [(3, 8, 8), (4,)]
    """
    if shapes is None:
        return []
    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, Iterable):
        raise TypeError(f"{what} must be a list of shapes such as [(8,)], got {shapes!r}")
    shapes = list(shapes)
    if shapes and all(_is_int(s) for s in shapes):
        raise TypeError(
            f"{what} must be a list of shapes, one per tensor, but got a single shape {tuple(shapes)}; "
            f"pass [{tuple(shapes)}] instead"
        )
    result = []
    for index, shape in enumerate(shapes):
        if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
            raise TypeError(f"{what}[{index}] must be a shape such as (8,) or (3, 32, 32), got {shape!r}")
        shape = tuple(shape)
        if not all(_is_int(d) for d in shape):
            raise TypeError(f"{what}[{index}] must contain ints, got {shape}")
        if not all(d > 0 for d in shape) and not (allow_index and shape == INDEX_SHAPE):
            raise ValueError(f"{what}[{index}] must contain positive ints, got {shape}")
        result.append(shape)
    return result


def set_plain_attributes(module: nn.Module, **values: object) -> None:
    """Set attributes holding plain values (numbers, shapes, flags, functions) on ``module``.

    What ``setattr`` does for such values, without ``nn.Module.__setattr__``'s checks for parameters,
    buffers and submodules, which cost ten times more: building thousands of blocks spent a fifth of its
    time there. Tensors, modules, and names that are already a parameter, buffer or submodule go through
    ``setattr`` as usual.

    Example:
        >>> block = nn.Module()
        >>> set_plain_attributes(block, channels=4, conditional=False)
        >>> block.channels, block.conditional
        (4, False)
    """
    registered = module._parameters.keys() | module._buffers.keys() | module._modules.keys()
    for name, value in values.items():
        if isinstance(value, (Tensor, nn.Module)) or name in registered:
            setattr(module, name, value)
        else:
            module.__dict__[name] = value


class InvertibleModule(nn.Module):
    r"""Base class of every invertible block and of whole graphs.

    The contract:

    * ``__init__(dims_in, dims_c=None, ...)`` receives one shape per input tensor (``dims_in``) and per
      condition tensor (``dims_c``), each without the batch dimension. Both are stored normalised as lists
      of int tuples in ``self.dims_in`` and ``self.dims_c``.
    * ``forward(x_or_z, c=None, rev=False, jac=True)`` takes a sequence of tensors (and a sequence of
      condition tensors, or None) and returns ``(outputs, log_det)`` where ``outputs`` is a tuple of
      tensors. With ``rev=False`` it computes :math:`z = f(x)` and
      :math:`\log|\det J_f(x)|` per sample, a tensor of shape ``(batch,)``; with ``rev=True`` it computes
      :math:`x = f^{-1}(z)` and :math:`\log|\det J_{f^{-1}}(z)| = -\log|\det J_f(x)|`. Hence
      ``f⁻¹(f(x)) == x`` and ``log_det_forward == -log_det_reverse``. A log-det that does not depend on
      the sample may be returned as a 0-dim tensor or a Python number; with ``jac=False`` a module may
      return ``None`` instead.
    * Graphs call ``forward`` positionally, ``module(x_or_z, c, rev, jac)``, when it takes the parameters in
      this order with ``c=None`` (``c`` is None for a node without conditions): the fastest call. Any other
      signature (FrEIA-era modules declare ``forward(x, rev=False, jac=True)`` or ``forward(x, c=None,
      jac=True, rev=False)``) is called by keyword as FrEIA does, ``module(x, c=c, rev=rev, jac=jac)``,
      without ``c`` when the node has none; the form is decided once when the graph is built.
    * ``output_dims(input_dims)`` returns the output shapes (without batch) for the given input shapes,
      which is how graphs infer every shape before anything runs.
    * A module never modifies its input tensors in place.

    Example:
        >>> import torch
        >>> class Scale(InvertibleModule):
        ...     def forward(self, x_or_z, c=None, rev=False, jac=True):
        ...         x, = x_or_z
        ...         log_det = x.new_full((x.shape[0],), x[0].numel() * 0.6931471805599453)
        ...         return ((x / 2 if rev else x * 2),), (-log_det if rev else log_det)
        ...     def output_dims(self, input_dims):
        ...         return input_dims
        >>> block = Scale([(3,)])
        >>> (z,), log_det = block([torch.ones(2, 3)])
        >>> z[0].tolist(), round(log_det[0].item(), 4)
        ([2.0, 2.0, 2.0], 2.0794)
    """

    #: whether ``dims_c`` may hold :data:`INDEX_SHAPE` (an index condition; see GaussianMixtureModel)
    takes_index_conditions: bool = False
    #: whether the module's tensor shapes may differ from ``output_dims`` at call time (graphs holding
    #: one then check only the batch size, dtype and device of a call's tensors)
    varies_shapes: bool = False
    #: whether the reverse pass inverts the forward pass exactly up to round-off (memory-saving backprop
    #: rebuilds activations by inversion and refuses blocks that declare False, e.g. fixed-point inverses)
    exactly_invertible: bool = True

    dims_in: list[Shape]  #: the input shapes without batch
    dims_c: list[Shape]  #: the condition shapes without batch

    def __init__(self, dims_in: Iterable[Iterable[int]], dims_c: Iterable[Iterable[int]] | None = None):
        super().__init__()
        set_plain_attributes(self, dims_in=normalize_shapes(dims_in, "dims_in"),
                             dims_c=normalize_shapes(dims_c, "dims_c", allow_index=self.takes_index_conditions))

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor, ...], Tensor | float | None]:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """Output shapes (without batch) for the given input shapes."""
        raise NotImplementedError(f"{type(self).__name__} does not implement output_dims()")

    def log_jacobian(self, *args, **kwargs) -> None:
        """Deprecated: the log-det is returned by ``forward``. Does nothing but warn."""
        warnings.warn(
            "log_jacobian() is deprecated: forward() returns (outputs, log_det); use that log_det",
            DeprecationWarning,
            stacklevel=2,
        )
        return None
