"""``check_module_contract``: every property of the invertible-module contract, for one block class."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from freia_graph.modules.base import Shape, normalize_shapes

from .calling import call, per_sample_log_det, random_like_dims, run_model
from .checks import prepare_model
from .describe import short_repr
from .jacobian import exact_log_det
from .violations import ContractViolation, Tolerance, assert_close

__all__ = ["PROPERTIES", "ContractReport", "PreparedModule", "check_module_contract", "prepare_module"]

PROPERTIES: dict[str, str] = {
    "runs": "forward and reverse run on random inputs without raising",
    "output_types": "both directions return (tuple of tensors of the inputs' dtype, log-det)",
    "output_dims": "forward output shapes equal output_dims(dims_in); reverse outputs have dims_in's shapes",
    "log_det_shape": "the log-det has shape (batch,), or is a 0-dim tensor or number (sample-independent)",
    "finite": "outputs and log-dets are finite",
    "no_in_place": "the caller's inputs and conditions are not modified (values and tensor versions)",
    "determinism": "two calls with the same inputs give the same results",
    "round_trip": "x -> z -> x and z -> x -> z give back what went in",
    "log_det_symmetry": "reverse log-det at f(x) == -(forward log-det at x)",
    "log_det": "forward and reverse log-det equal log|det J| of the exact autograd Jacobian",
    "batch_independence": "each sample's outputs and log-det equal those of the sample run alone",
    "jac_false": "jac=False runs and gives the same outputs as jac=True",
    "gradients": "every trainable parameter gets a finite, non-zero gradient from outputs and log-det",
    "state_dict": "a freshly built module loading the state_dict gives the same results",
    "conditions_used": "changing any condition changes the results, forward and reverse",
}
_STRUCTURAL = ("runs", "output_types", "output_dims", "log_det_shape", "finite")


@dataclass
class PreparedModule:
    """A block built in a given dtype, initialised on data, with perturbed parameters, and its inputs."""

    module: nn.Module
    x: list[Tensor]
    c: list[Tensor]


@dataclass
class ContractReport:
    """What :func:`check_module_contract` checked: the properties that hold and those skipped (with why)."""

    subject: str
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.subject}: {len(self.passed)} properties hold"]
        lines += [f"  ok    {name:<20} {PROPERTIES[name]}" for name in self.passed]
        lines += [f"  skip  {name:<20} {reason}" for name, reason in self.skipped.items()]
        return "\n".join(lines)


def _subject_name(module_class: type, dims_in: list[Shape], dims_c: list[Shape], kwargs: Mapping[str, Any]) -> str:
    parts = [f"dims_in={dims_in}"] + ([f"dims_c={dims_c}"] if dims_c else [])
    parts += [f"{key}={short_repr(value)}" for key, value in kwargs.items()]
    return f"{module_class.__name__}({', '.join(parts)})"


def _build(
    module_class: type,
    dims_in: list[Shape],
    dims_c: list[Shape],
    kwargs: Mapping[str, Any],
    seed: int,
    dtype: torch.dtype,
    train: bool,
) -> nn.Module:
    """Build under a fixed seed without disturbing the caller's global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = module_class(dims_in, **({"dims_c": dims_c} if dims_c else {}), **kwargs)
    return module.to(dtype).train(train)


@contextlib.contextmanager
def _reraise_as(property: str, what: str, subject: str) -> Iterator[None]:
    """Turn any exception other than a violation into a violation of ``property``."""
    try:
        yield
    except ContractViolation:
        raise
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise ContractViolation(property, f"{what} raised {type(error).__name__}: {first_line}", subject) from error


def prepare_module(
    module_class: type,
    dims_in: Sequence[Sequence[int]],
    dims_c: Sequence[Sequence[int]] | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    batch_size: int = 4,
    seed: int = 0,
    perturbation: float = 0.2,
    input_scale: float = 1.0,
    train: bool = True,
    module_kwargs: Mapping[str, Any] | None = None,
) -> PreparedModule:
    """Build a block for checking: fixed seed, ``dtype``, data-dependent initialisation, perturbed parameters.

    The block is built under ``torch.manual_seed(seed)`` (the caller's random state is restored), moved
    to ``dtype``, run once forward on the inputs (so data-dependent initialisation such as ActNorm's
    happens first), and then every parameter gets ``N(0, perturbation²)`` noise.

    Returns:
        The module and random inputs ``x`` and conditions ``c`` (standard normal times ``input_scale``).

    Example:
        >>> from freia_graph.modules import PermuteRandom
        >>> prepared = prepare_module(PermuteRandom, [(4,)], module_kwargs={"seed": 0}, batch_size=2)
        >>> prepared.x[0].shape, prepared.x[0].dtype
        (torch.Size([2, 4]), torch.float64)
    """
    dims_in, dims_c = normalize_shapes(dims_in, "dims_in"), normalize_shapes(dims_c, "dims_c")
    module = _build(module_class, dims_in, dims_c, module_kwargs or {}, seed, dtype, train)
    generator = torch.Generator().manual_seed(seed)
    x = random_like_dims(dims_in, batch_size, generator, dtype, input_scale)
    c = random_like_dims(dims_c, batch_size, generator, dtype, input_scale)
    with _reraise_as("runs", "the first forward call", module_class.__name__):
        prepare_model(module, dtype=dtype, perturbation=perturbation, seed=seed, x=x, c=c)
    return PreparedModule(module, x, c)


@dataclass
class _Subject:
    """Everything the property checks share: the module, its inputs, how to rebuild it, tolerances."""

    module: nn.Module
    rebuild: Callable[[], nn.Module]
    dims_in: list[Shape]
    expected_dims: list[Shape]
    x: list[Tensor]
    c: list[Tensor]
    z: list[Tensor]
    name: str
    generator: torch.Generator
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    default_tolerance: Tolerance = Tolerance(1e-6, 1e-6)

    def tol(self, property: str) -> Tolerance:
        return self.tolerances.get(property, self.default_tolerance)

    def run(
        self,
        inputs: Sequence[Tensor],
        rev: bool = False,
        c: Sequence[Tensor] | None = None,
        module: nn.Module | None = None,
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        """Outputs and per-sample log-det of one call, without gradients."""
        with torch.no_grad():
            outputs, log_det = call(module or self.module, inputs, self.c if c is None else c, rev=rev)
        return outputs, per_sample_log_det(log_det, inputs[0].shape[0], inputs[0], self.name, rev)

    def compare(self, property: str, what: str, actual: Sequence[Tensor], expected: Sequence[Tensor]) -> None:
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            label = f"{what}, tensor {index}" if len(expected) > 1 else what
            assert_close(property, label, a, e, self.tol(property), self.name)

    def compare_results(self, property: str, what: str, actual: tuple, expected: tuple) -> None:
        """Compare ``(outputs, log_det)`` pairs."""
        self.compare(property, f"{what}: outputs", actual[0], expected[0])
        assert_close(property, f"{what}: log-det", actual[1], expected[1], self.tol(property), self.name)


def _direction(rev: bool) -> str:
    return "reverse" if rev else "forward"


def _check_structure(s: _Subject, skip: Mapping[str, str]) -> None:
    """runs, output_types, output_dims, log_det_shape, finite: in both directions, stopping at the first."""
    for rev, inputs, dims in ((False, s.x, s.expected_dims), (True, s.z, s.dims_in)):
        direction = _direction(rev)
        with torch.no_grad(), _reraise_as("runs", f"{direction}()", s.name):
            result = run_model(s.module, inputs, s.c, rev=rev)
        if "output_types" not in skip:
            _check_types(s, result, inputs[0].dtype, direction)
        outputs, log_det = result
        if "output_dims" not in skip:
            shapes = [tuple(t.shape[1:]) for t in outputs]
            if shapes != [tuple(d) for d in dims]:
                what = "output_dims(dims_in)" if not rev else "dims_in"
                raise ContractViolation(
                    "output_dims",
                    f"{direction} outputs have shapes {shapes}, {what} says {[tuple(d) for d in dims]}",
                    s.name,
                )
        if "log_det_shape" not in skip:
            log_det = per_sample_log_det(log_det, inputs[0].shape[0], inputs[0], s.name, rev)
        if "finite" not in skip:
            _check_finite(s, outputs, log_det, direction)


def _check_finite(s: _Subject, outputs: Sequence[Tensor], log_det: object, direction: str) -> None:
    labelled = [(f"output {i}", t) for i, t in enumerate(outputs)] + [("log-det", log_det)]
    for label, value in labelled:
        if isinstance(value, Tensor) and not bool(torch.isfinite(value).all()):
            count = int((~torch.isfinite(value)).sum())
            raise ContractViolation(
                "finite", f"{direction} {label} has {count} non-finite values of {value.numel()}", s.name
            )


def _check_types(s: _Subject, result: object, dtype: torch.dtype, direction: str) -> None:
    if not isinstance(result, tuple) or len(result) != 2:
        raise ContractViolation(
            "output_types", f"{direction} must return (outputs, log_det), got {type(result).__name__}", s.name
        )
    outputs = result[0]
    if not isinstance(outputs, tuple):
        raise ContractViolation(
            "output_types",
            f"{direction} outputs must be a tuple of tensors, got {type(outputs).__name__}",
            s.name,
        )
    for index, tensor in enumerate(outputs):
        if not isinstance(tensor, Tensor):
            raise ContractViolation(
                "output_types",
                f"{direction} output {index} is a {type(tensor).__name__}, not a tensor",
                s.name,
            )
        if tensor.dtype != dtype:
            raise ContractViolation(
                "output_types",
                f"{direction} output {index} has dtype {tensor.dtype}, but the inputs are {dtype}",
                s.name,
            )


def _check_round_trip(s: _Subject) -> None:
    z, _ = s.run(s.x)
    s.compare("round_trip", "x -> z -> x", s.run(z, rev=True)[0], s.x)
    x, _ = s.run(s.z, rev=True)
    s.compare("round_trip", "z -> x -> z", s.run(x)[0], s.z)


def _check_log_det_symmetry(s: _Subject) -> None:
    z, log_det = s.run(s.x)
    _, log_det_rev = s.run(z, rev=True)
    assert_close(
        "log_det_symmetry",
        "reverse log-det at f(x) vs -(forward log-det at x)",
        log_det_rev,
        -log_det,
        s.tol("log_det_symmetry"),
        s.name,
    )


def _check_log_det(s: _Subject) -> None:
    for rev, inputs in ((False, s.x), (True, s.z)):
        _, reported = s.run(inputs, rev=rev)
        try:
            expected = exact_log_det(s.module, inputs, s.c, rev=rev)
        except ValueError as error:
            raise ContractViolation("log_det", f"{_direction(rev)}: {error}", s.name) from error
        assert_close(
            "log_det",
            f"{_direction(rev)} log-det vs log|det J| of the exact Jacobian",
            reported,
            expected,
            s.tol("log_det"),
            s.name,
        )


def _check_batch_independence(s: _Subject) -> None:
    for rev, inputs in ((False, s.x), (True, s.z)):
        outputs, log_det = s.run(inputs, rev=rev)
        for i in range(inputs[0].shape[0]):
            alone = s.run([t[i : i + 1] for t in inputs], rev=rev, c=[t[i : i + 1] for t in s.c])
            s.compare_results(
                "batch_independence",
                f"{_direction(rev)}, sample {i} in the batch vs alone",
                ([t[i : i + 1] for t in outputs], log_det[i : i + 1]),
                alone,
            )


def _check_determinism(s: _Subject) -> None:
    for rev, inputs in ((False, s.x), (True, s.z)):
        s.compare_results(
            "determinism", f"{_direction(rev)}, second call vs first", s.run(inputs, rev), s.run(inputs, rev)
        )


def _check_jac_false(s: _Subject) -> None:
    for rev, inputs in ((False, s.x), (True, s.z)):
        with torch.no_grad():
            outputs, _ = call(s.module, inputs, s.c, rev=rev, jac=False)
        s.compare(
            "jac_false",
            f"{_direction(rev)} outputs with jac=False vs jac=True",
            outputs,
            s.run(inputs, rev)[0],
        )


def _check_no_in_place(s: _Subject) -> None:
    for rev, inputs in ((False, s.x), (True, s.z)):
        given = [*inputs, *s.c]
        copies, versions = [t.clone() for t in given], [t._version for t in given]
        s.run(inputs, rev=rev)
        for index, (tensor, copy, version) in enumerate(zip(given, copies, versions, strict=True)):
            what = f"input {index}" if index < len(inputs) else f"condition {index - len(inputs)}"
            if tensor._version != version or not torch.equal(tensor, copy):
                change = (tensor - copy).abs().max().item()
                how = f"max change {change:.3g}" if change else "same values, but an in-place operation ran on it"
                raise ContractViolation(
                    "no_in_place", f"{_direction(rev)} modified the caller's {what} in place ({how})", s.name
                )


def _check_gradients(s: _Subject) -> None:
    s.module.zero_grad(set_to_none=True)
    with torch.enable_grad():
        for rev, inputs in ((False, s.x), (True, s.z)):
            outputs, log_det = call(s.module, inputs, s.c, rev=rev)
            weights = [torch.randn(t.shape, generator=s.generator, dtype=t.dtype) for t in outputs]
            loss = sum((w * t).sum() for w, t in zip(weights, outputs, strict=True))
            if isinstance(log_det, Tensor):
                loss = loss + log_det.sum()
            if loss.requires_grad:
                loss.backward()
    for name, parameter in s.module.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.grad is None:
            raise ContractViolation("gradients", f"parameter '{name}' gets no gradient (grad is None)", s.name)
        if not bool(torch.isfinite(parameter.grad).all()):
            raise ContractViolation("gradients", f"parameter '{name}' gets a non-finite gradient", s.name)
        if not bool(parameter.grad.any()):
            raise ContractViolation("gradients", f"parameter '{name}' gets an all-zero gradient", s.name)
    s.module.zero_grad(set_to_none=True)


def _check_state_dict(s: _Subject) -> None:
    fresh = s.rebuild()
    try:
        fresh.load_state_dict(s.module.state_dict())
    except Exception as error:
        raise ContractViolation(
            "state_dict",
            f"the state_dict does not load into a freshly built module: {type(error).__name__}: {error}",
            s.name,
        ) from error
    for rev, inputs in ((False, s.x), (True, s.z)):
        s.compare_results(
            "state_dict",
            f"{_direction(rev)}, fresh module after load_state_dict vs original",
            s.run(inputs, rev, module=fresh),
            s.run(inputs, rev),
        )


def _check_conditions_used(s: _Subject) -> None:
    for rev, inputs in ((False, s.x), (True, s.z)):
        outputs, log_det = s.run(inputs, rev)
        for k, condition in enumerate(s.c):
            changed = list(s.c)
            changed[k] = torch.randn(condition.shape, generator=s.generator, dtype=condition.dtype)
            new_outputs, new_log_det = s.run(inputs, rev, c=changed)
            change = max(
                (a - b).abs().max().item()
                for a, b in zip((*new_outputs, new_log_det), (*outputs, log_det), strict=True)
            )
            if change <= s.tol("conditions_used").atol:
                raise ContractViolation(
                    "conditions_used",
                    f"{_direction(rev)} results do not change when condition {k} changes (max change {change:.3g})",
                    s.name,
                )


# Order matters for the report: the first violation is the headline, so checks whose failure explains
# others (in-place changes, non-determinism) come first.
_SEMANTIC_CHECKS: dict[str, Callable[[_Subject], None]] = {
    "no_in_place": _check_no_in_place,
    "determinism": _check_determinism,
    "round_trip": _check_round_trip,
    "log_det_symmetry": _check_log_det_symmetry,
    "log_det": _check_log_det,
    "batch_independence": _check_batch_independence,
    "jac_false": _check_jac_false,
    "gradients": _check_gradients,
    "state_dict": _check_state_dict,
    "conditions_used": _check_conditions_used,
}


def _validate_names(names: Mapping[str, object], what: str) -> None:
    unknown = sorted(set(names) - set(PROPERTIES))
    if unknown:
        raise ValueError(f"{what} names unknown properties {unknown}; the properties are {list(PROPERTIES)}")


def _raise_all(failures: list[ContractViolation]) -> None:
    first = failures[0]
    detail = first.detail + "".join(f"\n  also violated: [{f.property}] {f.detail}" for f in failures[1:])
    error = ContractViolation(first.property, detail, first.subject)
    error.violations = failures
    raise error from first


def check_module_contract(
    module_class: type,
    dims_in: Sequence[Sequence[int]],
    dims_c: Sequence[Sequence[int]] | None = None,
    *,
    batch_size: int = 4,
    seed: int = 0,
    atol: float = 1e-6,
    rtol: float = 1e-6,
    tolerances: Mapping[str, tuple[float, float]] | None = None,
    skip: Mapping[str, str] | None = None,
    perturbation: float = 0.2,
    input_scale: float = 1.0,
    reverse_inputs: str = "random",
    train: bool = True,
    module_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> ContractReport:
    r"""Check every property of the invertible-module contract for one block class, in float64.

    The block is built with ``module_class(dims_in, dims_c=dims_c, **module_kwargs)`` under a fixed seed,
    moved to float64, run once forward (data-dependent initialisation happens there), and then every
    parameter is perturbed with ``N(0, perturbation²)`` noise, because identity-initialised parameters
    hide many wrong log-dets. Buffers are not perturbed. Inputs ``x`` and latents ``z`` are standard
    normal. The properties (names as in :data:`PROPERTIES`):

    * structural, checked first, stopping at the first failure: ``runs``, ``output_types``,
      ``output_dims``, ``log_det_shape``, ``finite``;
    * then all of ``no_in_place``, ``determinism``, ``round_trip``, ``log_det_symmetry``, ``log_det``
      (against :math:`\log|\det J|` of the exact autograd Jacobian, forward at ``x`` and reverse at ``z``),
      ``batch_independence``, ``jac_false``, ``gradients``, ``state_dict`` and ``conditions_used`` (only
      when ``dims_c`` is given).

    Args:
        module_class: the block class.
        dims_in: one shape per input tensor, without batch, e.g. ``[(8,)]``.
        dims_c: one shape per condition tensor, or None.
        batch_size: samples per batch.
        seed: seeds construction, inputs and perturbation (module arguments of the same name, such as
            PermuteRandom's ``seed``, must go through ``module_kwargs``).
        atol: absolute tolerance of every comparison.
        rtol: relative tolerance of every comparison.
        tolerances: per-property ``(atol, rtol)`` overriding the above, e.g. ``{"round_trip": (1e-4, 0)}``.
        skip: properties not to check, each with the reason, e.g. ``{"log_det": "estimated log-det"}``.
        perturbation: standard deviation of the parameter noise (0 checks the initialisation).
        input_scale: standard deviation of the random inputs and latents.
        reverse_inputs: ``"random"`` (standard normal latents) or ``"forward"`` (latents are ``f(x')`` for
            fresh ``x'``, for blocks whose reverse accepts only their forward's range).
        train: check in training mode (True) or evaluation mode.
        module_kwargs: constructor arguments; ``**kwargs`` are added to them.

    Returns:
        A :class:`ContractReport` of the properties that hold and those skipped.

    Raises:
        ContractViolation: naming the first violated property (and listing the others), the size of the
            violation, the block and its shapes.

    Example:
        >>> from freia_graph.modules import PermuteRandom
        >>> report = check_module_contract(PermuteRandom, [(6,)], module_kwargs={"seed": 1})
        >>> report.passed[:3], report.skipped
        (['runs', 'output_types', 'output_dims'], {'conditions_used': 'no conditions'})
    """
    skip = dict(skip or {})
    _validate_names(skip, "skip")
    _validate_names(tolerances or {}, "tolerances")
    if reverse_inputs not in ("random", "forward"):
        raise ValueError(f"reverse_inputs must be 'random' or 'forward', got {reverse_inputs!r}")
    dims_in, dims_c = normalize_shapes(dims_in, "dims_in"), normalize_shapes(dims_c, "dims_c")
    if not dims_c:
        skip.setdefault("conditions_used", "no conditions")
    prepare_options = dict(
        batch_size=batch_size,
        seed=seed,
        perturbation=perturbation,
        input_scale=input_scale,
        train=train,
        module_kwargs={**(module_kwargs or {}), **kwargs},
    )
    subject = _make_subject(module_class, dims_in, dims_c, prepare_options, reverse_inputs)
    subject.default_tolerance = Tolerance(atol, rtol)
    subject.tolerances = {name: Tolerance(*pair) for name, pair in (tolerances or {}).items()}
    report = ContractReport(subject.name, skipped=skip)
    _check_structure(subject, skip)
    report.passed += [name for name in _STRUCTURAL if name not in skip]
    failures = []
    for property, check in _SEMANTIC_CHECKS.items():
        if property in skip:
            continue
        try:
            with _reraise_as(property, "the check", subject.name):
                check(subject)
            report.passed.append(property)
        except ContractViolation as violation:
            failures.append(violation)
    if failures:
        _raise_all(failures)
    return report


def _make_subject(
    module_class: type,
    dims_in: list[Shape],
    dims_c: list[Shape],
    prepare_options: dict[str, Any],
    reverse_inputs: str,
) -> _Subject:
    """Prepare the module (see :func:`prepare_module`), its output shapes and latents."""
    module_kwargs, seed = prepare_options["module_kwargs"], prepare_options["seed"]
    name = _subject_name(module_class, dims_in, dims_c, module_kwargs)
    with _reraise_as("runs", "building and initialising the module", name):
        prepared = prepare_module(module_class, dims_in, dims_c, **prepare_options)
    with _reraise_as("output_dims", "output_dims(dims_in)", name):
        expected_dims = normalize_shapes(prepared.module.output_dims(list(dims_in)), "output_dims")
    generator = torch.Generator().manual_seed(seed + 1)
    batch_size, scale = prepare_options["batch_size"], prepare_options["input_scale"]
    if reverse_inputs == "random":
        z = random_like_dims(expected_dims, batch_size, generator, torch.float64, scale)
    else:
        fresh_x = random_like_dims(dims_in, batch_size, generator, torch.float64, scale)
        with torch.no_grad(), _reraise_as("runs", "forward()", name):
            z = list(call(prepared.module, fresh_x, prepared.c)[0])
    train = prepare_options["train"]
    return _Subject(
        module=prepared.module,
        rebuild=lambda: _build(module_class, dims_in, dims_c, module_kwargs, seed + 1, torch.float64, train),
        dims_in=dims_in,
        expected_dims=expected_dims,
        x=prepared.x,
        c=prepared.c,
        z=z,
        name=name,
        generator=generator,
    )
