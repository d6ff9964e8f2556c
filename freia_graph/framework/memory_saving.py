"""Memory-saving backprop: keep a region's outputs only, rebuild its activations by inversion in backward.

An invertible network need not store its activations for the backward pass: each step's input can be
recomputed from its output by running the step in reverse. :class:`MemorySavingRun` is a
``torch.autograd.Function`` over a plan (see ``plan.py``): its forward runs the plan without recording a
graph and keeps only the outputs, the values that feed-forward nodes and conditions read (small), and, with
``every=k``, the outputs of every k-th invertible step (checkpoints that bound the drift of repeated
inversion in float32). Its backward walks the steps in reverse: it rebuilds each step's inputs by inverting
the step (no grad), recomputes the step under ``enable_grad`` and backpropagates the outputs' gradients
*and* the log-det's gradient to the step's inputs, conditions and parameters.

Fast path: a module may offer ``memory_saving_backward(outputs, c, rev, output_grads, log_det_grad,
backprop)``, returning ``(inputs, input_grads, condition_grads)`` (``inputs`` detached, a gradient None
where it is zero), or None to decline. It backpropagates through what it recomputes with
``backprop(roots, root_grads, leaves, module)`` (a :class:`Backprop`), which returns the leaves' gradients
and takes care of ``module``'s parameters; parameter gradients it derives in closed form go to
``backprop.accumulate(parameter, grad)``. Where present and accepting, the hook replaces the generic
inversion + recomputation: the coupling blocks (GLOW, RealNVP, GIN, NICE, one-sided and conditional
affine) evaluate each subnet once there, since the conditioning half that the inversion and the
recomputation feed it is the same, making a training step cost a no-grad forward plus a normal one (the
affine map's own gradients in closed form, autograd running through the subnet only); ActNorm, the
learned channel matrices (InvertibleConv1x1, InvertibleLinear), the Haar and i-RevNet resamplings, Split
and Concat are affine per position, so their hooks rebuild the input and derive every gradient in closed
form, with no recomputation and no autograd call (on small tensors, autograd's fixed cost per call is
what such a step would pay). A
hook must decline whenever it might not compute exactly what the module's ``forward`` does: the couplings
decline for subclasses that override ``forward`` or any helper the hook relies on, for modules with
forward hooks, and for a conditional block called without conditions (see
``freia_graph.modules._coupling_tools.fast_backward_fits``). Steps whose inputs are kept (checkpoints,
random steps) take the generic path.

Parameter gradients reach every parameter once, through its hooks, as in the normal mode. Where ``.grad``
is None (after ``zero_grad()``, the default) the region returns them when its backward ends, and each
returned tensor becomes ``.grad`` without a copy: no more memory than the normal mode. Where ``.grad``
already holds a gradient (micro-batches), each step's gradients are added into it at once (returning them
would hold a gradient-sized buffer until the region's backward ends); autograd, visiting the parameter
after the region, runs its accumulator's hooks (DDP's, ``register_post_accumulate_grad_hook``) on the
complete ``.grad``. A parameter with tensor hooks (``register_hook``), which must see its gradient, or one
that ``torch.autograd.grad`` or ``.backward(inputs=...)`` asks for, always has its gradients returned.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from freia_graph.framework.call_form import call_in_form
from freia_graph.framework.calls import add_log_det, as_tuple, per_sample_log_det
from freia_graph.framework.plan import Plan, Step
from freia_graph.modules._coupling_tools import _leaf

try:  # what torch.autograd.grad runs after checking its arguments (see _grad)
    from torch.autograd.graph import _engine_run_backward
except ImportError:  # a torch that moved it: torch.autograd.grad does the same, 70 us slower per call
    _engine_run_backward = None

__all__ = [
    "Backprop", "EAGER_REASON", "eager_under_compile", "MemorySavingRun", "memory_saving_every",
    "check_exactly_invertible", "kept_slots",
]

#: why torch.compile does not trace a memory-saving region (shown by fullgraph=True's refusal)
EAGER_REASON = ("memory-saving backprop runs eagerly (an autograd.Function that rebuilds activations by "
                "inversion); compile with fullgraph=False, or set memory_saving=False")


def eager_under_compile(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a method so that ``torch.compile`` runs it eagerly (a graph break that ``fullgraph=True``
    refuses, giving :data:`EAGER_REASON`).

    Like ``torch.compiler.disable(reason=EAGER_REASON)``, but it imports ``torch._dynamo`` only when a call
    is traced (importing it costs about a second, on every ``import freia_graph`` otherwise).

    Example:
        >>> class Model:
        ...     @eager_under_compile
        ...     def run(self, x):
        ...         return x + 1
        >>> Model().run(1)
        2
    """
    disabled: list[Callable[..., Any]] = []

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not torch.compiler.is_compiling():
            return method(*args, **kwargs)
        if not disabled:
            disabled.append(torch.compiler.disable(method, reason=EAGER_REASON))
        return disabled[0](*args, **kwargs)

    return run


def memory_saving_every(memory_saving: bool | int) -> int:
    """The checkpoint interval for a ``memory_saving`` argument: 0 (off), or keep every k-th step's outputs.

    ``True`` means no checkpoints inside the region (only its outputs are kept); an int ``k >= 1`` keeps
    the outputs of every k-th invertible step as well.

    Example:
        >>> memory_saving_every(False), memory_saving_every(True), memory_saving_every(16)
        (0, 1000000000, 16)
    """
    if isinstance(memory_saving, bool):
        return 10**9 if memory_saving else 0
    if isinstance(memory_saving, int) and memory_saving >= 1:
        return memory_saving
    raise ValueError(f"memory_saving must be True, False or an int k >= 1 (keep every k-th activation), "
                     f"got {memory_saving!r}")


def check_exactly_invertible(named_modules: Iterable[tuple[str, nn.Module]], allow_inexact: bool) -> None:
    """Refuse memory saving over modules whose inverse is not exact in finite precision.

    A module (or any submodule) declaring ``exactly_invertible = False`` (e.g. IResNetLayer, whose inverse
    is a fixed-point iteration) would make the rebuilt activations, and so the gradients, approximate.

    Raises:
        ValueError: naming the module, unless ``allow_inexact``.

    Example:
        >>> import freia_graph.modules as Fm
        >>> check_exactly_invertible([("p", Fm.PermuteRandom([(3,)]))], allow_inexact=False)
    """
    if allow_inexact:
        return
    for name, module in named_modules:
        for inner in module.modules():
            if getattr(inner, "exactly_invertible", True) is False:
                raise ValueError(
                    f"memory_saving: {name} contains {type(inner).__name__}, whose inverse is not exact, so "
                    "the activations rebuilt by inversion (and the gradients) would be approximate; pass "
                    "allow_inexact_inverse=True to accept that, or leave memory_saving off"
                )


def kept_slots(plan: Plan, every: int) -> frozenset[int]:
    """The slots a memory-saving run keeps for backward (the plan must not reuse slots).

    The outputs, everything read as a condition or by a feed-forward step, feed-forward outputs, and the
    outputs of every ``every``-th invertible step.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> from freia_graph.framework.graph import execution_orders
        >>> from freia_graph.framework.plan import compile_plan
        >>> x = Ff.InputNode(4); a = Ff.Node(x, Fm.PermuteRandom, {}); b = Ff.Node(a, Fm.PermuteRandom, {})
        >>> nodes = [x, a, b, Ff.OutputNode(b)]
        >>> plan = compile_plan(execution_orders(nodes)[0], nodes, rev=False, reuse_slots=False)
        >>> sorted(kept_slots(plan, 10**9)), sorted(kept_slots(plan, 1))
        ([2], [1, 2])
    """
    kept = set(plan.output_slots) | set(plan.condition_slots)
    invertible = 0
    for step in plan.steps:
        if step.feed_forward:
            kept.update(step.inputs + step.outputs)
            continue
        kept.update(step.conditions or ())
        invertible += 1
        if invertible % every == 0:
            kept.update(step.outputs)
    return frozenset(kept)


def _rng_state(device: torch.device) -> Tensor:
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def _set_rng_state(state: Tensor, device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def _note(error: BaseException, step: Step, phase: str) -> None:
    name = getattr(step.node, "name", None) or f"module {step.module_index}"
    error.add_note(f"(raised in '{name}' while {phase} for memory-saving backprop)")


def _trainable_parameters(module: nn.Module) -> list[Tensor]:
    """The parameters of ``module`` and its submodules that require grad, each once.

    What ``module.parameters()`` yields, without building every submodule's qualified name (about five times
    faster, and it runs on every call).

    Example:
        >>> shared = nn.Linear(2, 2)
        >>> [tuple(p.shape) for p in _trainable_parameters(nn.Sequential(shared, nn.ReLU(), shared))]
        [(2, 2), (2,)]
    """
    found: dict[int, Tensor] = {}

    def visit(module: nn.Module) -> None:
        for parameter in module._parameters.values():
            if parameter is not None and parameter.requires_grad:
                found.setdefault(id(parameter), parameter)
        for child in module._modules.values():
            if child is not None:
                visit(child)

    visit(module)
    return list(found.values())


def _needless_steps(plan: Plan, trainable: Sequence[bool], given: Sequence[Any]) -> frozenset[int]:
    """The steps whose backward nothing needs: no trainable parameters (``trainable``, per module), and
    nothing they read (``given`` inputs and conditions, or earlier steps' outputs) depends on anything
    requiring grad, e.g. the squeeze that starts an image flow. What produced their inputs is needless too,
    so backward neither rebuilds nor recomputes there."""
    depends = {slot for slot, value in zip(plan.input_slots + plan.condition_slots, given)
               if isinstance(value, Tensor) and value.requires_grad}
    needless = set()
    for position, step in enumerate(plan.steps):
        if trainable[step.module_index] or any(slot in depends for slot in step.inputs + (step.conditions or ())):
            depends.update(step.outputs)
        else:
            needless.add(position)
    return frozenset(needless)


class _Region:
    """What a memory-saving run needs besides tensors: the plan, the modules and their trainable parameters,
    the direction, and the steps backward skips."""

    def __init__(self, plan: Plan, kept: frozenset[int], modules: Sequence[Any], forward_modules: Sequence[Any],
                 rev: bool, jac: bool, needless: frozenset[int], parameters_of: dict[int, list[Tensor]]):
        self.plan, self.kept, self.modules, self.forward_modules = plan, kept, modules, forward_modules
        self.rev, self.jac, self.needless = rev, jac, needless
        self.parameters_of = parameters_of  # id(module) -> its trainable parameters, as forward found them
        last_read: dict[int, int] = {}
        for position, step in enumerate(plan.steps):
            for slot in step.inputs + (step.conditions or ()):
                last_read[slot] = position
        self.dead_after: list[list[int]] = [[] for _ in plan.steps]
        for slot, position in last_read.items():
            if slot not in kept:
                self.dead_after[position].append(slot)


class MemorySavingRun(torch.autograd.Function):
    """Runs a plan keeping only what :func:`kept_slots` names; backward rebuilds the rest by inversion.

    Call through :meth:`run`, which returns ``(outputs, log_det)`` like the plan's runner with the log-det
    summed per sample.

    Example:
        >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> inn = Ff.SequenceINN(4, memory_saving=True)
        >>> for _ in range(3):
        ...     inn.append(Fm.RNVPCouplingBlock, subnet_constructor=lambda i, o: torch.nn.Linear(i, o))
        >>> x = torch.randn(5, 4, requires_grad=True)
        >>> z, log_det = inn(x)
        >>> (z.square().sum() - log_det.sum()).backward()
        >>> tuple(x.grad.shape)
        (5, 4)
    """

    @staticmethod
    def run(plan: Plan, kept: frozenset[int], modules: Sequence[nn.Module], forward_modules: Sequence[Any],
            inputs: list[Tensor], conditions: list[Tensor], rev: bool, jac: bool,
            reference: Tensor) -> tuple[list[Tensor], Tensor]:
        """Run ``plan`` in memory-saving mode (``forward_modules``: the modules or checked wrappers)."""
        per_module = [_trainable_parameters(module) for module in modules]
        parameters = list({id(p): p for found in per_module for p in found}.values())
        needless = _needless_steps(plan, [bool(found) for found in per_module], inputs + conditions)
        parameters_of = {id(module): found for module, found in zip(modules, per_module)}
        region = _Region(plan, kept, modules, forward_modules, rev, jac, needless, parameters_of)
        results = MemorySavingRun.apply(region, reference, len(inputs), len(conditions),
                                        *inputs, *conditions, *parameters)
        return list(results[:-1]), results[-1]

    @staticmethod
    def forward(ctx: Any, region: _Region, reference: Tensor, n_inputs: int, n_conditions: int,
                *tensors: Tensor) -> tuple[Tensor, ...]:
        plan = region.plan
        values: dict[int, Tensor] = dict(zip(plan.input_slots, tensors[:n_inputs]))
        # each value's strides, so that backward rebuilds it in the same memory layout: the recomputation then
        # runs the kernels forward ran (a convolution on a channels-last activation rebuilt as NCHW is slower)
        layouts = {slot: value.stride() for slot, value in values.items()}
        values.update(zip(plan.condition_slots, tensors[n_inputs:n_inputs + n_conditions]))
        device = reference.device
        rng_states: dict[int, Tensor] = {}
        random_inputs: set[int] = set()  # inputs of steps that drew random numbers, kept
        log_det: Any = 0.0
        constant: Any = 0.0
        for position, step in enumerate(plan.steps):
            module = region.forward_modules[step.module_index]
            inputs = [values[slot] for slot in step.inputs]
            try:
                if step.feed_forward:
                    outputs = as_tuple(module(*inputs))
                else:
                    conditions = None if step.conditions is None else [values[slot] for slot in step.conditions]
                    state = _rng_state(device)
                    outputs, step_log_det = call_in_form(step.call, module, inputs, conditions, region.rev,
                                                         region.jac)
                    if not torch.equal(state, _rng_state(device)):  # drew random numbers: not invertible
                        rng_states[position] = state  # as drawn, for the recomputation
                        random_inputs.update(step.inputs)
                    if region.jac:
                        log_det, constant = add_log_det(log_det, constant, step_log_det)
            except Exception as error:
                _note(error, step, "running")
                raise
            values.update(zip(step.outputs, outputs))
            if not step.feed_forward:
                layouts.update((slot, value.stride()) for slot, value in zip(step.outputs, outputs))
            for slot in region.dead_after[position]:
                if slot not in random_inputs:
                    del values[slot]
        log_det = per_sample_log_det(log_det + constant if constant else log_det, reference, region.jac)
        kept_order = sorted(slot for slot in values if slot in region.kept or slot in random_inputs)
        ctx.save_for_backward(*(values[slot] for slot in kept_order))
        ctx.kept_order, ctx.region, ctx.rng_states, ctx.layouts = kept_order, region, rng_states, layouts
        ctx.n_inputs, ctx.n_conditions, ctx.n_tensors = n_inputs, n_conditions, len(tensors)
        ctx.parameters = tensors[n_inputs + n_conditions:]
        ctx.device = device
        # backward recomputes the steps as forward ran them: under autocast if it was on (the engine does
        # not carry it into backward), so rebuilt activations use the very coefficients forward used
        ctx.autocast = (torch.is_autocast_enabled(device.type), torch.get_autocast_dtype(device.type))
        return (*(values[slot] for slot in plan.output_slots), log_det)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:
        region, plan = ctx.region, ctx.region.plan
        values: dict[int, Tensor] = dict(zip(ctx.kept_order, ctx.saved_tensors))
        gradients: dict[int, Tensor] = {}
        for slot, grad in zip(plan.output_slots, grads[:-1]):
            _accumulate(gradients, slot, grad)
        log_det_grad = grads[-1] if region.jac else None
        backprop = Backprop(_added_in_place(ctx), region.parameters_of)
        autocast_enabled, autocast_dtype = ctx.autocast
        with torch.autocast(ctx.device.type, dtype=autocast_dtype, enabled=autocast_enabled):
            for position in reversed(range(len(plan.steps))):
                if position in region.needless:
                    continue
                step = plan.steps[position]
                try:
                    _backward_step(ctx, step, position, values, gradients, log_det_grad, backprop)
                except Exception as error:
                    _note(error, step, "recomputing")
                    raise
        n_graph = ctx.n_inputs + ctx.n_conditions
        graph_slots = plan.input_slots + plan.condition_slots
        return (None, None, None, None,
                *(gradients.get(slot) for slot in graph_slots[:n_graph]),
                *(backprop.parameter_grads.get(id(p)) for p in ctx.parameters))


def _added_in_place(ctx: Any) -> frozenset[int]:
    """The ids of the region's parameters whose gradients backward adds straight into their ``.grad``.

    Those with a ``.grad`` already (micro-batches accumulating), dense and of the parameter's dtype, device
    and shape, without tensor hooks (``register_hook``), into which the running backward accumulates (a
    ``.backward()`` not leaving them out with ``inputs=``): adding each step's gradient at once holds no
    gradient-sized buffer, and autograd, visiting the parameter after the region, runs its accumulator's
    hooks (DDP's, ``register_post_accumulate_grad_hook``) once, on the complete ``.grad``. The others'
    gradients are returned by the region, as autograd requires under ``torch.autograd.grad``.
    """
    parameters = ctx.parameters
    will_execute = getattr(torch._C, "_will_engine_execute_node", None)
    if will_execute is None or not any(p.grad is not None for p in parameters):
        return frozenset()
    try:  # the parameters are the last inputs of the Function, each with its gradient accumulator
        accumulated = [will_execute(node) for node, _ in ctx.next_functions[-len(parameters):]]
    except RuntimeError:  # autograd.grad(): the gradients must be returned
        return frozenset()
    return frozenset(id(p) for p, executes in zip(parameters, accumulated) if executes and _addable(p))


def _addable(parameter: Tensor) -> bool:
    grad = parameter.grad
    return (grad is not None and grad.layout == torch.strided and not grad.requires_grad
            and grad.dtype == parameter.dtype and grad.device == parameter.device and grad.shape == parameter.shape
            and not parameter._backward_hooks)


class Backprop:
    """Backpropagates through one recomputed step of a memory-saving region's backward.

    ``backprop(roots, root_grads, leaves, module)`` returns the gradients of ``leaves`` (None where there is
    none) and takes care of those of ``module``'s trainable parameters: added at once into ``.grad`` for the
    parameters in ``in_place`` (see ``_added_in_place``), otherwise summed in :attr:`parameter_grads` (keyed
    by ``id``), which the region returns; autograd then accumulates each once, through its hooks, as in the
    normal mode (where ``.grad`` is None, the returned tensor becomes ``.grad`` without a copy).

    Example:
        >>> layer = torch.nn.Linear(2, 1)
        >>> x = torch.ones(3, 2, requires_grad=True)
        >>> backprop = Backprop()
        >>> (grad_x,) = backprop([layer(x)], [torch.ones(3, 1)], [x], layer)
        >>> grad_x.shape, backprop.parameter_grads[id(layer.bias)].item(), layer.bias.grad
        (torch.Size([3, 2]), 3.0, None)
    """

    def __init__(self, in_place: frozenset[int] = frozenset(), parameters_of: dict[int, list[Tensor]] | None = None):
        self.in_place = in_place
        self.parameter_grads: dict[int, Tensor] = {}
        # id(module) -> its trainable parameters: the region's modules', found when it ran, and those of any
        # other module a hook names, found on first use
        self._parameters_of = dict(parameters_of or {})

    def __call__(self, roots: Sequence[Tensor], root_grads: Sequence[Tensor], leaves: Sequence[Tensor | None],
                 module: nn.Module) -> list[Tensor | None]:
        targets = [leaf for leaf in leaves if leaf is not None and leaf.requires_grad]
        parameters = self._parameters_of.get(id(module))
        if parameters is None:
            parameters = self._parameters_of[id(module)] = _trainable_parameters(module)
        if not roots or (not targets and not parameters):
            return [None] * len(leaves)
        found = _grad(roots, targets + parameters, root_grads)
        for parameter, grad in zip(parameters, found[len(targets):]):
            self.accumulate(parameter, grad)
        leaf_grads = iter(found)
        return [next(leaf_grads) if leaf is not None and leaf.requires_grad else None for leaf in leaves]

    def accumulate(self, parameter: Tensor, grad: Tensor | None) -> None:
        """Take a gradient of a region's ``parameter`` (one a hook computed in closed form, or autograd's);
        nothing if ``grad`` is None or the parameter is frozen."""
        if grad is None or not parameter.requires_grad:
            return
        if id(parameter) in self.in_place:
            parameter.grad.add_(grad)
        else:
            _accumulate(self.parameter_grads, id(parameter), grad)


_PLAIN = (Tensor, nn.Parameter)


def _grad(roots: Sequence[Tensor], inputs: Sequence[Tensor], root_grads: Sequence[Tensor]) -> tuple[Tensor | None, ...]:
    """``torch.autograd.grad(roots, inputs, root_grads, allow_unused=True)``, straight to the engine for plain
    tensors.

    ``torch.autograd.grad`` checks its arguments in Python first (about 70 us per call on a 2-core CPU, 2 ms
    per training step of a 16-block chain, where every coupling stage calls it once). Here the roots are a
    recomputed step's outputs and the gradients were made for them, so only what those checks are for remains:
    tensor subclasses (``__torch_function__``) take ``torch.autograd.grad``; the engine itself still checks
    each gradient's shape, dtype and device against its root.

    Example:
        >>> w = torch.tensor([2.0], requires_grad=True)
        >>> _grad([w * 3], [w], [torch.ones(1)])
        (tensor([3.]),)
    """
    if _engine_run_backward is not None and all(type(t) in _PLAIN for seq in (roots, inputs, root_grads) for t in seq):
        return _engine_run_backward(tuple(roots), tuple(root_grads), False, False, tuple(inputs), True, False)
    return torch.autograd.grad(roots, inputs, root_grads, allow_unused=True)


def _accumulate(gradients: dict[Any, Tensor], key: Any, grad: Tensor | None) -> None:
    if grad is None:
        return
    gradients[key] = grad if key not in gradients else gradients[key] + grad


def _dim_order(strides: Sequence[int]) -> tuple[int, ...]:
    """The dims from the outermost in memory to the innermost (e.g. ``(0, 2, 3, 1)`` channels-last)."""
    return tuple(sorted(range(len(strides)), key=lambda dim: -strides[dim]))


def _in_layout(value: Tensor, strides: Sequence[int]) -> Tensor:
    """``value``, copied into the memory layout (dim order) of a tensor with ``strides`` unless it has it.

    Example:
        >>> x = torch.zeros(2, 3, 4, 5)
        >>> channels_last = x.contiguous(memory_format=torch.channels_last).stride()
        >>> _in_layout(x, channels_last).is_contiguous(memory_format=torch.channels_last)
        True
    """
    if value.stride() == tuple(strides):
        return value
    order = _dim_order(strides)
    if _dim_order(value.stride()) == order:
        return value
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return value.permute(order).contiguous().permute(inverse)


def _backward_step(ctx: Any, step: Step, position: int, values: dict[int, Tensor], gradients: dict[int, Tensor],
                   log_det_grad: Tensor | None, backprop: Backprop) -> None:
    """Rebuild the step's inputs (unless kept), recompute it with grad, and backpropagate through it."""
    region = ctx.region
    module = region.modules[step.module_index]
    output_grads = [gradients.pop(slot, None) for slot in step.outputs]
    wants_log_det = not step.feed_forward and log_det_grad is not None
    wanted = wants_log_det or any(grad is not None for grad in output_grads)
    rebuild = not step.feed_forward and not all(slot in values for slot in step.inputs)
    if rebuild and wanted and _fast_backward(ctx, step, module, values, output_grads, log_det_grad, gradients,
                                             backprop):
        return
    if rebuild:
        conditions = None if step.conditions is None else [values[slot] for slot in step.conditions]
        with torch.no_grad():
            rebuilt, _ = call_in_form(step.call, module, [values[slot] for slot in step.outputs], conditions,
                               not region.rev, False)
        for slot, value in zip(step.inputs, rebuilt):
            values.setdefault(slot, _in_layout(value, ctx.layouts[slot]))
    _drop_outputs(region, step, values)
    if wanted:
        _recompute(ctx, step, position, module, values, output_grads, log_det_grad if wants_log_det else None,
                   gradients, backprop)


def _drop_outputs(region: _Region, step: Step, values: dict[int, Tensor]) -> None:
    for slot in step.outputs:
        if slot not in region.kept:
            values.pop(slot, None)


def _fast_backward(ctx: Any, step: Step, module: Any, values: dict[int, Tensor],
                   output_grads: list[Tensor | None], log_det_grad: Tensor | None, gradients: dict[int, Tensor],
                   backprop: Backprop) -> bool:
    """The module's own ``memory_saving_backward`` hook, where it has one and it accepts; False otherwise."""
    region = ctx.region
    hook = getattr(module, "memory_saving_backward", None)
    if hook is None:
        return False
    conditions = None if step.conditions is None else [values[slot] for slot in step.conditions]
    result = hook([values[slot] for slot in step.outputs], conditions, region.rev, output_grads, log_det_grad,
                  backprop)
    if result is None:
        return False
    inputs, input_grads, condition_grads = result
    for slot, value, grad in zip(step.inputs, inputs, input_grads):
        values.setdefault(slot, _in_layout(value, ctx.layouts[slot]))
        _accumulate(gradients, slot, grad)
    for slot, grad in zip(step.conditions or (), condition_grads):
        _accumulate(gradients, slot, grad)
    _drop_outputs(region, step, values)
    return True


def _recompute(ctx: Any, step: Step, position: int, module: Any, values: dict[int, Tensor],
               output_grads: list[Tensor | None], log_det_grad: Tensor | None, gradients: dict[int, Tensor],
               backprop: Backprop) -> None:
    """The generic path: recompute the step from its inputs under grad and backpropagate through it."""
    region = ctx.region
    wants_log_det = log_det_grad is not None
    read_slots = step.inputs + (step.conditions or ())
    leaves = [_leaf(values[slot]) for slot in read_slots]
    replay = position in ctx.rng_states  # the step drew random numbers: draw them again, as forward did
    rng = torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []) if replay else nullcontext()
    with torch.enable_grad(), rng:
        if replay:
            _set_rng_state(ctx.rng_states[position], ctx.device)
        if step.feed_forward:
            outputs, log_det = as_tuple(module(*leaves)), None
        else:
            n_inputs = len(step.inputs)
            conditions = None if step.conditions is None else leaves[n_inputs:]
            outputs, log_det = call_in_form(step.call, module, leaves[:n_inputs], conditions, region.rev, region.jac)
            if wants_log_det and isinstance(log_det, Tensor):
                log_det = log_det.expand_as(log_det_grad)
    roots, root_grads = [], []
    for output, grad in zip(outputs, output_grads):
        if grad is not None and output.requires_grad:
            roots.append(output)
            root_grads.append(grad)
    if wants_log_det and isinstance(log_det, Tensor) and log_det.requires_grad:
        roots.append(log_det)
        root_grads.append(log_det_grad)
    for slot, grad in zip(read_slots, backprop(roots, root_grads, leaves, module)):
        _accumulate(gradients, slot, grad)
