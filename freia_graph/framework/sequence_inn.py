"""SequenceINN: the simple chain of invertible modules."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from freia_graph.framework.call_form import CallForm, call_form
from freia_graph.framework.calls import (
    CheckedModule,
    DtypeGuard,
    add_log_det,
    as_tensor_list,
    check_finite_values,
    check_tensors,
    nesting_depth,
    per_sample_log_det,
    raised_by_checks,
)
from freia_graph.framework.display import Displayable
from freia_graph.framework.memory_saving import (
    MemorySavingRun,
    check_exactly_invertible,
    eager_under_compile,
    kept_slots,
    memory_saving_every,
)
from freia_graph.framework.plan import Plan, Step
from freia_graph.modules.base import InvertibleModule, Shape, normalize_shapes

__all__ = ["SequenceINN"]


class SequenceINN(Displayable, DtypeGuard, InvertibleModule):
    """A chain of invertible modules, each feeding the next; itself an :class:`InvertibleModule`.

    Modules are added with :meth:`append`. Conditions are given by index: ``append(block, cond=0,
    cond_shape=(8,))`` makes that block read ``c[0]`` of every call.

    Indexing returns a module; slicing returns a new SequenceINN sharing the same modules, and a
    slice with a negative step runs backwards (``inn[::-1](z)`` computes ``inn(z, rev=True)``).

    Args:
        *dims: the input shape (without batch), e.g. ``SequenceINN(3, 32, 32)``.
        force_tuple_output: return a 1-tuple instead of a tensor.
        check_inputs: check every call's tensors (shape, batch, device, and dtype also against the
            parameters') before any module runs, and, on the first eager call in each direction, every
            module's answer (not under ``torch.compile``).
        memory_saving: train without storing activations (``True``), or keeping every k-th (an int k);
            see :class:`GraphINN`. Settable later (``inn.memory_saving = True``).
        allow_inexact_inverse: allow memory saving over blocks whose inverse is not exact (IResNetLayer).

    Example:
        >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> inn = Ff.SequenceINN(6)
        >>> inn.append(Fm.PermuteRandom, seed=1)
        >>> inn.append(Fm.PermuteRandom, seed=2)
        >>> x = torch.randn(4, 6)
        >>> z, log_det = inn(x)
        >>> bool(torch.equal(inn(z, rev=True)[0], x)), len(inn)
        (True, 2)
    """

    def __init__(self, *dims: int, force_tuple_output: bool = False, check_inputs: bool = True,
                 memory_saving: bool | int = False, allow_inexact_inverse: bool = False):
        if len(dims) == 1 and not isinstance(dims[0], int):
            dims = tuple(dims[0])
        super().__init__([dims])
        self.module_list = nn.ModuleList()
        self.shapes: list[Shape] = [self.dims_in[0]]
        self.conditions: list[int | None] = []
        self.force_tuple_output = force_tuple_output
        self.check_inputs = check_inputs
        self._call_forms: list[CallForm] = []  # how each module is called, decided when it is added
        self._backwards = False
        self.nesting_depth = 1
        self._verified: set[tuple[bool, bool]] = set()  # directions whose module answers were checked
        self.allow_inexact_inverse = allow_inexact_inverse
        self.memory_saving = memory_saving

    @property
    def memory_saving(self) -> bool | int:
        """The memory-saving mode: False, True (keep only the output) or k (also every k-th activation).

        Example:
            >>> import freia_graph.framework as Ff
            >>> Ff.SequenceINN(4, memory_saving=8).memory_saving
            8
        """
        return self._memory_saving

    @memory_saving.setter
    def memory_saving(self, value: bool | int) -> None:
        every = memory_saving_every(value)
        if every:
            self._check_exactly_invertible(self.module_list)
        self._memory_saving, self._memory_every = value, every
        self._memory_plans: dict[bool, tuple[Plan, frozenset[int]]] = {}

    def _check_exactly_invertible(self, modules: Sequence[nn.Module], first: int = 0) -> None:
        check_exactly_invertible(((f"module {first + i}", m) for i, m in enumerate(modules)),
                                 self.allow_inexact_inverse)

    def append(
        self,
        module_class: type[InvertibleModule] | InvertibleModule,
        cond: int | None = None,
        cond_shape: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        """Add a module at the end, built as ``module_class([last_shape], dims_c=[cond_shape], **kwargs)``.

        Args:
            module_class: an InvertibleModule class, or an instance built for the current last shape.
            cond: index of the condition this module reads, or None.
            cond_shape: the shape of that condition (needed with ``cond`` unless it was given before).
        """
        position = len(self.module_list)
        condition_dims = self._condition_dims(cond, cond_shape, position)
        dims_in = [self.shapes[-1]]
        if isinstance(module_class, nn.Module):
            if kwargs:
                raise TypeError(f"module {position}: keyword arguments must be empty when appending a built module")
            module = module_class
            self._check_module_dims(module, position, dims_in, condition_dims)
        elif isinstance(module_class, type) and issubclass(module_class, InvertibleModule):
            if condition_dims:
                if "dims_c" not in inspect.signature(module_class.__init__).parameters:
                    raise ValueError(f"module {position}: {module_class.__name__} takes no conditions")
                kwargs["dims_c"] = condition_dims
            module = module_class(dims_in, **kwargs)
        else:
            raise TypeError(f"module {position}: expected an InvertibleModule class or instance, got {module_class!r}")
        output_dims = normalize_shapes(module.output_dims(dims_in), f"{type(module).__name__}.output_dims()")
        if len(output_dims) != 1:
            raise ValueError(f"module {position}: {type(module).__name__} has {len(output_dims)} outputs; "
                             "a SequenceINN needs one (use GraphINN for branches)")
        self.nesting_depth = max(self.nesting_depth, nesting_depth([module], f"module {position}"))
        self._call_forms.append(call_form(module, cond is not None, f"module {position} ({type(module).__name__})"))
        if self._memory_every:
            self._check_exactly_invertible([module], position)
        self.module_list.append(module)
        self._verified.clear()
        self._forget_parameter_dtype()
        self._memory_plans.clear()
        self.conditions.append(cond)
        self.shapes.append(output_dims[0])
        if cond is not None and cond == len(self.dims_c):
            self.dims_c.append(condition_dims[0])

    def _condition_dims(self, cond: int | None, cond_shape: Sequence[int] | None, position: int) -> list[Shape]:
        if cond is None:
            if cond_shape is not None:
                raise ValueError(f"module {position}: cond_shape given without cond (the condition's index)")
            return []
        if not isinstance(cond, int) or not 0 <= cond <= len(self.dims_c):
            raise ValueError(f"module {position}: cond must be an index from 0 to {len(self.dims_c)} (conditions "
                             f"are numbered in the order they first appear), got {cond!r}")
        if cond < len(self.dims_c):
            known = self.dims_c[cond]
            if cond_shape is not None and tuple(cond_shape) != known:
                raise ValueError(
                    f"module {position}: condition {cond} has shape {known}, got cond_shape {tuple(cond_shape)}"
                )
            return [known]
        if cond_shape is None:
            raise ValueError(f"module {position}: condition {cond} is new, so cond_shape is needed")
        return normalize_shapes([cond_shape], "cond_shape")

    def _check_module_dims(
        self, module: nn.Module, position: int, dims_in: list[Shape], condition_dims: list[Shape]
    ) -> None:
        if not isinstance(module, InvertibleModule):
            raise TypeError(f"module {position}: {type(module).__name__} is not an InvertibleModule")
        if module.dims_in != dims_in or module.dims_c != condition_dims:
            raise ValueError(f"module {position}: {type(module).__name__} was built for inputs {module.dims_in} "
                             f"and conditions {module.dims_c}, but here it gets {dims_in} and {condition_dims}")

    @property
    def dims_out(self) -> list[Shape]:
        """The output shape without the batch dimension, as a one-element list (the counterpart of ``dims_in``).

        Example:
            >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
            >>> inn = Ff.SequenceINN(3, 4, 4)
            >>> inn.append(Fm.IRevNetDownsampling)
            >>> inn.dims_in, inn.dims_out, inn[::-1].dims_out
            ([(3, 4, 4)], [(12, 2, 2)], [(3, 4, 4)])
        """
        return self.output_dims(self.dims_in)

    def output_dims(self, input_dims: list[Shape] | None = None) -> list[Shape]:
        """The output shape, checking ``input_dims`` when given (FrEIA code calls ``inn.output_dims()``
        to build the next block).

        Example:
            >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
            >>> inn = Ff.SequenceINN(2, 4, 4)
            >>> inn.append(Fm.HaarDownsampling)
            >>> inn.output_dims()
            [(8, 2, 2)]
        """
        expected = [self.shapes[-1]] if self._backwards else [self.shapes[0]]
        if input_dims is not None and normalize_shapes(input_dims) != expected:
            raise ValueError(f"this SequenceINN takes inputs of shape {expected}, got {input_dims}")
        return [self.shapes[0]] if self._backwards else [self.shapes[-1]]

    def forward(
        self,
        x_or_z: Tensor | Sequence[Tensor],
        c: Tensor | Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
        check_finite: bool = False,
    ) -> tuple[Any, Tensor]:
        """Run the chain forward, or backwards with ``rev=True``.

        Args:
            x_or_z: a tensor, or a 1-tuple/list holding one.
            c: the conditions, a tensor or a list indexed by the ``cond`` given to :meth:`append`.
            check_finite: a debugging mode: raise a ``ValueError`` naming the first module (its position,
                class and the direction) whose output or log-det holds a NaN or an infinity.

        Returns:
            ``(output, log_det)`` with log|det J| per sample (zeros with ``jac=False``).
        """
        backwards = rev != self._backwards
        inputs = as_tensor_list(x_or_z, ["x"], "input")
        conditions = as_tensor_list(c, [f"c[{i}]" for i in range(len(self.dims_c))], "condition")
        if self.check_inputs or check_finite:
            labels = ["input 'x'"] + [f"condition 'c[{i}]'" for i in range(len(conditions))]
        if self.check_inputs:
            check_tensors(inputs + conditions, [self.shapes[-1] if backwards else self.shapes[0]] + self.dims_c, labels)
            # the steady state is one comparison; not under torch.compile (see GraphINN.forward)
            if not torch.compiler.is_compiling() and inputs[0].dtype is not self._parameter_dtype:
                self._check_dtype(inputs[0], labels[0])
        # verification is a debugging aid that changes after the first call: dynamo would guard on it
        verify = check_finite or (self.check_inputs and not torch.compiler.is_compiling()
                                  and (backwards, jac) not in self._verified)
        modules = tuple(self.module_list)  # through the module tree, so DataParallel replicas use their own
        if verify:
            if check_finite:
                check_finite_values(inputs + conditions, labels, "the call's tensors")
            direction = (", reverse" if backwards else ", forward") if check_finite else ""
            output = ["its output"] if check_finite else None
            modules = tuple(CheckedModule(module, f"module {position} ({type(module).__name__}{direction})", 1,
                                          inputs[0].shape[0], jac, output) for position, module in enumerate(modules))
        if self._memory_every and self.training and torch.is_grad_enabled():
            return self._run_memory_saving(modules, inputs, conditions, backwards, jac, verify)
        steps = list(enumerate(zip(modules, self.conditions, self._call_forms)))
        if backwards:
            steps.reverse()
        values: tuple[Tensor, ...] = tuple(inputs)
        log_det: Any = 0.0
        constant: Any = 0.0
        try:
            for position, (module, cond, form) in steps:  # noqa: B007 - position names a failure below
                condition = None if cond is None else [conditions[cond]]
                if form is CallForm.POSITIONAL:  # keyword arguments cost a dict per call
                    values, step_log_det = module(values, condition, backwards, jac)
                elif form is CallForm.KEYWORD:
                    values, step_log_det = module(values, c=condition, rev=backwards, jac=jac)
                else:
                    values, step_log_det = module(values, rev=backwards, jac=jac)
                if jac:
                    log_det, constant = add_log_det(log_det, constant, step_log_det)
        except Exception as error:
            if raised_by_checks(error):
                raise
            shapes = ", ".join(str(tuple(v.shape)) if isinstance(v, Tensor) else type(v).__name__ for v in values)
            error.add_note(f"(raised in module {position} ({type(self.module_list[position]).__name__}) of the "
                           f"SequenceINN, {'reverse' if backwards else 'forward'}, inputs of shape {shapes})")
            raise
        if verify:
            self._verified.add((backwards, jac))
        log_det = per_sample_log_det(log_det + constant if constant else log_det, inputs[0], jac)
        return (tuple(values) if self.force_tuple_output else values[0]), log_det

    @eager_under_compile
    def _run_memory_saving(self, forward_modules: tuple, inputs: list[Tensor], conditions: list[Tensor],
                           backwards: bool, jac: bool, verify: bool) -> tuple[Any, Tensor]:
        """Run the chain through MemorySavingRun (see ``memory_saving.py``); eager under torch.compile."""
        if backwards not in self._memory_plans:
            plan = self._chain_plan(backwards)
            self._memory_plans[backwards] = (plan, kept_slots(plan, self._memory_every))
        plan, kept = self._memory_plans[backwards]
        values, log_det = MemorySavingRun.run(plan, kept, tuple(self.module_list), forward_modules, inputs,
                                              conditions, backwards, jac, inputs[0])
        if verify:
            self._verified.add((backwards, jac))
        return (tuple(values) if self.force_tuple_output else values[0]), log_det

    def _chain_plan(self, backwards: bool) -> Plan:
        """The chain as a plan without slot reuse: slot 0 is the input, then the conditions, then each value."""
        n_conditions, n_modules = len(self.dims_c), len(self.module_list)

        def slot(position: int) -> int:
            return 0 if position == 0 else n_conditions + position

        steps = []
        for index, (cond, form) in enumerate(zip(self.conditions, self._call_forms)):
            before, after = (slot(index + 1), slot(index)) if backwards else (slot(index), slot(index + 1))
            steps.append(Step(index, (before,), None if cond is None else (1 + cond,), (after,), None, form))
        if backwards:
            steps.reverse()
        ends = (slot(n_modules), slot(0)) if backwards else (slot(0), slot(n_modules))
        return Plan(n_slots=1 + n_conditions + n_modules, input_slots=ends[:1],
                    condition_slots=tuple(range(1, 1 + n_conditions)), steps=tuple(steps),
                    output_slots=ends[1:], slot_values=())

    def __len__(self) -> int:
        return len(self.module_list)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.module_list)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._slice(index)
        return self.module_list[index]

    def _slice(self, index: slice) -> SequenceINN:
        positions = range(len(self))[index]
        step = index.step or 1
        if step not in (1, -1):
            raise ValueError(f"a SequenceINN slice must have step 1 or -1, got {step}")
        if not positions:
            raise ValueError(f"the slice {index} of a SequenceINN of length {len(self)} is empty")
        ordered = sorted(positions)
        part = SequenceINN(*self.shapes[ordered[0]], force_tuple_output=self.force_tuple_output,
                           check_inputs=self.check_inputs, memory_saving=self.memory_saving,
                           allow_inexact_inverse=self.allow_inexact_inverse)
        part.module_list.extend(self.module_list[i] for i in ordered)
        part.conditions = [self.conditions[i] for i in ordered]
        part._call_forms = [self._call_forms[i] for i in ordered]
        part.shapes = self.shapes[ordered[0]:ordered[-1] + 2]
        part.dims_c = list(self.dims_c)
        part._backwards = self._backwards != (step == -1)
        part.nesting_depth = self.nesting_depth
        if part._backwards:
            part.dims_in = [part.shapes[-1]]
        return part

    def __setitem__(self, index: int, module: InvertibleModule) -> None:
        position = range(len(self))[index]
        cond = self.conditions[position]
        self._check_module_dims(module, position, [self.shapes[position]],
                                [] if cond is None else [self.dims_c[cond]])
        output_dims = normalize_shapes(module.output_dims(module.dims_in))
        if output_dims != [self.shapes[position + 1]]:
            raise ValueError(f"module {position}: {type(module).__name__} outputs {output_dims}, but the chain "
                             f"needs {[self.shapes[position + 1]]} there")
        form = call_form(module, cond is not None, f"module {position} ({type(module).__name__})")
        self.nesting_depth = max(self.nesting_depth, nesting_depth([module], f"module {position}"))
        if self._memory_every:
            self._check_exactly_invertible([module], position)
        self.module_list[position] = module
        self._call_forms[position] = form
        self._verified.clear()
        self._forget_parameter_dtype()
        self._memory_plans.clear()
