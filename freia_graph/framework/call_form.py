"""How a graph calls a module: decided once per module from its ``forward`` signature, never per call.

Our blocks take the contract's arguments in order, ``forward(x_or_z, c=None, rev=False, jac=True)``, and are
called positionally: keyword arguments cost a dict per call in ``nn.Module.__call__``. Modules written for
FrEIA are called by keyword there (``module(x, c=c, rev=rev, jac=jac)``, and without ``c`` when the node has no
conditions), so they declare other signatures: ``forward(self, x, rev=False, jac=True)`` (FrEIA's tutorial
template), ``forward(self, x, c=None, jac=True, rev=False)`` (FrEIA's Haar, IRevNet, Flatten, Reshape),
``forward(self, x, *args, **kwargs)``. Calling those positionally would fail, or worse, pass ``rev`` as ``jac``
and silently run the wrong direction. Such modules get FrEIA's keyword call instead.
"""

from __future__ import annotations

import enum
import inspect
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

__all__ = ["CallForm", "call_form", "call_module", "call_in_form"]

_CONTRACT = ("c", "rev", "jac")


class CallForm(enum.Enum):
    """The three ways a module's ``forward`` is called (``x`` is the list of input tensors)."""

    POSITIONAL = "module(x, c, rev, jac)"
    KEYWORD = "module(x, c=c, rev=rev, jac=jac)"
    KEYWORD_WITHOUT_C = "module(x, rev=rev, jac=jac)"


# The form depends only on the forward function, so it is read once per class (inspect.signature costs
# about 0.1 ms, which dominated building long chains); weak keys let dynamically made classes go.
_FORMS: weakref.WeakKeyDictionary[Any, dict[bool, CallForm]] = weakref.WeakKeyDictionary()


def _parameters(module: nn.Module) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C-implemented forward: no signature to read
        return None


def _takes_keyword(parameters: list[inspect.Parameter], name: str) -> bool:
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return any((p.name == name and p.kind in keyword_kinds) or p.kind is inspect.Parameter.VAR_KEYWORD
               for p in parameters)


def _is_positional_contract(parameters: list[inspect.Parameter]) -> bool:
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    head = parameters[:4]
    return (len(head) == 4 and all(p.kind in positional for p in head[:1])
            and all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in head[1:])
            and tuple(p.name for p in head[1:]) == _CONTRACT
            and head[1].default in (None, inspect.Parameter.empty))  # graphs pass c=None without conditions


def call_form(module: nn.Module, has_conditions: bool, where: str | Callable[[], str] = "the module") -> CallForm:
    """How to call ``module``: positionally where its ``forward`` takes the contract's order, else by keyword.

    Positional means ``forward(x_or_z, c=None, rev=..., jac=...)`` in that order with ``c`` defaulting to None
    (or no default); anything else is called as FrEIA calls it, by keyword, leaving ``c`` out when the node
    has no conditions so that the module's own default (e.g. ``c=[]``) applies.

    Args:
        module: the module (its bound ``forward`` is inspected, so instance-level overrides count).
        has_conditions: whether the node passes conditions; without them ``c`` is left out for a
            ``forward`` that has no ``c`` (as FrEIA does).
        where: how to name the module in an error, e.g. ``"Node 'coupling_3' (MyBlock)"``, or a function
            returning that (called only for an error: graphs with thousands of nodes build no strings).

    Raises:
        TypeError: the module needs conditions but its ``forward`` cannot take ``c``, or it cannot take
            ``rev`` or ``jac`` by keyword.

    Example:
        >>> import freia_graph.modules as Fm
        >>> call_form(Fm.PermuteRandom([(4,)], seed=0), has_conditions=False)
        <CallForm.POSITIONAL: 'module(x, c, rev, jac)'>
        >>> class FrEIAStyle(Fm.InvertibleModule):
        ...     def forward(self, x, rev=False, jac=True):
        ...         return x, 0.0
        >>> call_form(FrEIAStyle([(4,)]), has_conditions=False)
        <CallForm.KEYWORD_WITHOUT_C: 'module(x, rev=rev, jac=jac)'>
    """
    function = getattr(module.forward, "__func__", None)  # a plain method, not an instance-level override
    if function is None or function is not getattr(type(module), "forward", None):
        return _read_call_form(module, has_conditions, where)
    known = _FORMS.setdefault(function, {})
    if has_conditions not in known:
        known[has_conditions] = _read_call_form(module, has_conditions, where)
    return known[has_conditions]


def _read_call_form(module: nn.Module, has_conditions: bool, where: str | Callable[[], str]) -> CallForm:
    where = where() if callable(where) else where
    parameters = _parameters(module)
    if parameters is None:
        return CallForm.KEYWORD if has_conditions else CallForm.KEYWORD_WITHOUT_C
    if _is_positional_contract(parameters):
        return CallForm.POSITIONAL
    signature = f"{type(module).__name__}.forward{inspect.signature(module.forward)}"
    for name in ("rev", "jac"):
        if not _takes_keyword(parameters, name):
            raise TypeError(f"{where}: {signature} has no parameter '{name}'; a module's forward must take "
                            "(x_or_z, c=None, rev=False, jac=True)")
    if not has_conditions:
        return CallForm.KEYWORD_WITHOUT_C  # as FrEIA: the module's own default for c applies
    if not _takes_keyword(parameters, "c"):
        raise TypeError(f"{where} is given conditions, but {signature} has no parameter 'c'; "
                        "add c=None to its forward, or remove the node's conditions")
    return CallForm.KEYWORD


def call_module(
    module: nn.Module,
    x_or_z: Sequence[Tensor],
    c: Sequence[Tensor] | None = None,
    rev: bool = False,
    jac: bool = True,
) -> Any:
    """Call a module in the form its ``forward`` accepts (for tools; graphs decide the form once, at build).

    Example:
        >>> import torch, freia_graph.modules as Fm
        >>> (z,), log_det = call_module(Fm.PermuteRandom([(3,)], seed=0), [torch.zeros(2, 3)])
        >>> tuple(z.shape), log_det
        ((2, 3), 0.0)
    """
    form = call_form(module, has_conditions=bool(c), where=type(module).__name__)
    return call_in_form(form, module, x_or_z, c, rev, jac)


def call_in_form(form: CallForm, module: Any, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None,
                 rev: bool, jac: bool) -> Any:
    """Call a module in the given form (``call_form`` decides it).

    Example:
        >>> import torch, freia_graph.modules as Fm
        >>> (z,), log_det = call_in_form(CallForm.KEYWORD_WITHOUT_C, Fm.PermuteRandom([(3,)]), [torch.zeros(2, 3)],
        ...                              None, False, True)
        >>> tuple(z.shape)
        (2, 3)
    """
    if form is CallForm.POSITIONAL:
        return module(x_or_z, c, rev, jac)
    if form is CallForm.KEYWORD:
        return module(x_or_z, c=c, rev=rev, jac=jac)
    return module(x_or_z, rev=rev, jac=jac)
