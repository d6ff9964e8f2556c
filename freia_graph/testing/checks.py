"""Invertibility and exact log-determinant checks for blocks and whole graphs (no hypothesis needed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .calling import Inputs, as_tensor_list, call, describe_subject, per_sample_log_det, random_like_dims, run_model
from .jacobian import exact_log_det
from .violations import ContractViolation, Tolerance, assert_close

__all__ = ["check_compiles", "check_invertible", "check_log_det", "perturb_parameters", "prepare_model"]


def perturb_parameters(model: nn.Module, scale: float = 0.2, seed: int | None = 0) -> nn.Module:
    """Add Gaussian noise ``N(0, scale²)`` to every floating-point parameter, in place.

    Blocks are often initialised at the identity (zero last layers, unit scales), where many wrong
    log-dets happen to be right; checks should run on perturbed parameters. Buffers are left alone:
    they hold fixed structure (permutations) or running state, not learned values.

    Args:
        model: the block or graph.
        scale: the noise's standard deviation; 0 leaves the parameters as they are.
        seed: seed of the private generator that draws the noise (None: drawn from torch's global RNG).

    Returns:
        ``model``, for chaining.

    Example:
        >>> layer = perturb_parameters(nn.Linear(2, 2).requires_grad_(False), scale=0.1)
        >>> layer.bias.abs().max().item() > 0
        True
    """
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.is_floating_point():
                noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
                parameter.add_(scale * noise.to(parameter.device))
    return model


def prepare_model(
    model: nn.Module,
    *,
    dtype: torch.dtype = torch.float64,
    perturbation: float = 0.2,
    seed: int = 0,
    x: Inputs = None,
    c: Inputs = None,
    batch_size: int = 4,
) -> nn.Module:
    """Make a block or graph ready for checking: ``dtype``, data-dependent initialisation, perturbation.

    Runs one forward pass without gradients (on ``x`` and ``c``, or standard normal tensors fitting
    ``model.dims_in`` and ``model.dims_c``), so that data-dependent initialisation such as ActNorm's
    happens first, then perturbs every parameter (:func:`perturb_parameters`).

    Returns:
        ``model``, for chaining.

    Example:
        >>> from freia_graph.modules import ActNorm
        >>> block = prepare_model(ActNorm([(3,)]), perturbation=0.1)
        >>> next(block.parameters()).dtype
        torch.float64
    """
    model = model.to(dtype)
    generator = torch.Generator().manual_seed(seed)
    xs = as_tensor_list(x) or random_like_dims(model.dims_in, batch_size, generator, dtype)
    cs = as_tensor_list(c, "c") or random_like_dims(model.dims_c, batch_size, generator, dtype)
    with torch.no_grad():
        run_model(model, xs, cs)
    return perturb_parameters(model, perturbation, seed)


def _compare_outputs(
    property: str,
    what: str,
    actual: Sequence[Tensor],
    expected: Sequence[Tensor],
    tolerance: Tolerance,
    subject: str,
) -> None:
    if len(actual) != len(expected):
        raise ContractViolation(property, f"{what}: {len(actual)} tensors instead of {len(expected)}", subject)
    for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
        label = f"{what} (tensor {index})" if len(expected) > 1 else what
        assert_close(property, label, a, e, tolerance, subject)


def _round_trip(model: nn.Module, xs: list[Tensor], cs: list[Tensor], zs: list[Tensor], tolerance: Tolerance) -> None:
    subject = describe_subject(model)
    with torch.no_grad():
        outputs, _ = call(model, xs, cs)
        back, _ = call(model, outputs, cs, rev=True)
        _compare_outputs("round_trip", "x -> z -> x", back, xs, tolerance, subject)
        if zs:
            inverse, _ = call(model, zs, cs, rev=True)
            again, _ = call(model, inverse, cs)
            _compare_outputs("round_trip", "z -> x -> z", again, zs, tolerance, subject)


def _log_dets(model: nn.Module, xs: list[Tensor], cs: list[Tensor], zs: list[Tensor], tolerance: Tolerance) -> None:
    subject, batch = describe_subject(model), xs[0].shape[0]
    with torch.no_grad():
        outputs, log_det = call(model, xs, cs)
        _, log_det_rev = call(model, outputs, cs, rev=True)
    log_det = per_sample_log_det(log_det, batch, xs[0], subject)
    log_det_rev = per_sample_log_det(log_det_rev, batch, xs[0], subject, rev=True)
    for rev, inputs in ((False, xs), (True, list(outputs))):
        direction = "reverse" if rev else "forward"
        try:
            expected = exact_log_det(model, inputs, cs, rev=rev)
        except ValueError as error:
            raise ContractViolation("log_det", f"{direction}: {error}", subject) from error
        assert_close(
            "log_det",
            f"{direction} log-det vs log|det J| of the exact Jacobian",
            log_det_rev if rev else log_det,
            expected,
            tolerance,
            subject,
        )
    assert_close(
        "log_det_symmetry",
        "reverse log-det at f(x) vs -(forward log-det at x)",
        log_det_rev,
        -log_det,
        tolerance,
        subject,
    )


Check = Callable[[nn.Module, list[Tensor], list[Tensor], list[Tensor], Tolerance], None]


def _node_points(model: nn.Module, xs: list[Tensor], cs: list[Tensor], zs: list[Tensor]) -> list[dict]:
    """Every port's value when the graph runs forward from ``xs`` (and in reverse from ``zs``)."""
    points = []
    with torch.no_grad():
        for rev, inputs in ((False, xs), (True, zs)):
            if inputs:
                values, _ = model(inputs, c=cs or None, rev=rev, intermediate_outputs=True)
                points.append(values)
    return points


def _blame_node(
    model: nn.Module, xs: list[Tensor], cs: list[Tensor], zs: list[Tensor], tolerance: Tolerance, check: Check
) -> ContractViolation | None:
    """For a GraphINN, the violation of the first node whose module alone fails ``check`` where it runs."""
    if not hasattr(model, "node_list"):
        return None
    try:
        points = _node_points(model, xs, cs, zs)
    except Exception:  # the graph-level violation is reported anyway
        return None
    for node in model.node_list:
        if node.kind != "invertible":
            continue
        for values in points:
            node_x = [values[port] for port in node.inputs]
            node_c = [values[port] for port in node.conditions]
            try:
                _run_check(check, node.module, node_x, node_c, None, tolerance)
            except ContractViolation as violation:
                return ContractViolation(
                    violation.property, violation.detail, f"node '{node.name}' {violation.subject}"
                )
    return None


def _run_check(check: Check, model: nn.Module, x: Inputs, c: Inputs, z: Inputs, tolerance: Tolerance) -> None:
    """Run ``check`` on the model; when a graph fails, name the node that fails on its own, if any."""
    xs, cs, zs = as_tensor_list(x), as_tensor_list(c, "c"), as_tensor_list(z, "z")
    try:
        check(model, xs, cs, zs, tolerance)
    except ContractViolation as violation:
        culprit = _blame_node(model, xs, cs, zs, tolerance, check)
        if culprit is None:
            raise
        detail = f"{violation.detail}\n  caused by [{culprit.property}] {culprit.subject}: {culprit.detail}"
        raise ContractViolation(violation.property, detail, violation.subject) from violation


def check_invertible(
    model: nn.Module, x: Inputs, c: Inputs = None, *, z: Inputs = None, atol: float = 1e-6, rtol: float = 1e-6
) -> None:
    """Check that ``model`` inverts: ``f⁻¹(f(x)) == x`` and, when ``z`` is given, ``f(f⁻¹(z)) == z``.

    Works for blocks (list-of-tensors contract), GraphINNs and SequenceINNs (single tensors or lists).
    Use float64 and perturbed parameters (:func:`perturb_parameters`) for a meaningful check. When a
    GraphINN fails, its nodes are checked one by one on the values they see, and the message names the
    first node that fails on its own ("caused by ...").

    Args:
        model: the block or graph.
        x: the input tensor(s), each of shape ``(batch, ...)``.
        c: the condition tensor(s), or None.
        z: latent tensor(s) for the reverse-first round trip, or None to skip it.
        atol: absolute tolerance.
        rtol: relative tolerance.

    Raises:
        ContractViolation: ("round_trip") naming the direction, the tensor and the largest error.

    Example:
        >>> from freia_graph.modules import PermuteRandom
        >>> check_invertible(PermuteRandom([(4,)], seed=0), torch.randn(3, 4, dtype=torch.float64))
    """
    _run_check(_round_trip, model, x, c, z, Tolerance(atol, rtol))


def check_log_det(model: nn.Module, x: Inputs, c: Inputs = None, *, atol: float = 1e-6, rtol: float = 1e-6) -> None:
    """Check the log-determinants that ``model`` reports against the exact Jacobian.

    Three properties: the forward log-det at ``x`` equals ``log|det J_f(x)|`` ("log_det"); the reverse
    log-det at ``z = f(x)`` equals ``log|det J_{f⁻¹}(z)|`` ("log_det"); and the reverse log-det is the
    negative of the forward one ("log_det_symmetry"). The Jacobian comes from automatic differentiation,
    so run this in float64 on perturbed parameters (:func:`perturb_parameters`). When a GraphINN fails,
    the message names the first node that fails on its own ("caused by ...").

    Args:
        model: a block, GraphINN or SequenceINN.
        x: the input tensor(s), each of shape ``(batch, ...)``.
        c: the condition tensor(s), or None.
        atol: absolute tolerance.
        rtol: relative tolerance.

    Raises:
        ContractViolation: ("log_det", "log_det_symmetry" or "log_det_shape") with the largest error and
            the sample where it occurs.

    Example:
        >>> from freia_graph.modules import PermuteRandom
        >>> check_log_det(PermuteRandom([(4,)], seed=0), torch.randn(3, 4, dtype=torch.float64))
    """
    _run_check(_log_dets, model, x, c, None, Tolerance(atol, rtol))


def check_compiles(model: nn.Module, x: Inputs, c: Inputs = None, *, atol: float = 1e-6, rtol: float = 1e-6) -> None:
    """Check that ``torch.compile(model, fullgraph=True, backend="eager")`` traces both directions.

    The compiled model must run forward on ``x`` and in reverse on its outputs without graph breaks and
    give the same outputs and log-dets as the eager model. Call ``torch._dynamo.reset()`` between
    unrelated models to stay clear of recompilation limits.

    Args:
        model: a block, GraphINN or SequenceINN.
        x: the input tensor(s).
        c: the condition tensor(s), or None.
        atol: absolute tolerance of the comparison with eager mode.
        rtol: relative tolerance of the comparison with eager mode.

    Raises:
        ContractViolation: ("compile") with the tracing error, or the largest difference to eager mode.

    Example:
        >>> from freia_graph.modules import PermuteRandom
        >>> torch._dynamo.reset()
        >>> check_compiles(PermuteRandom([(4,)], seed=0), torch.randn(2, 4))
    """
    xs, cs, subject, tolerance = (
        as_tensor_list(x),
        as_tensor_list(c, "c"),
        describe_subject(model),
        Tolerance(atol, rtol),
    )
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    batch = xs[0].shape[0]
    with torch.no_grad():
        for rev in (False, True):
            direction = "reverse" if rev else "forward"
            eager_out, eager_ld = call(model, xs, cs, rev=rev)
            try:
                out, ld = call(compiled, xs, cs, rev=rev)
            except Exception as error:
                message = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise ContractViolation(
                    "compile",
                    f"{direction} does not compile with fullgraph=True: {type(error).__name__}: {message}",
                    subject,
                ) from error
            _compare_outputs("compile", f"compiled {direction} outputs vs eager", out, eager_out, tolerance, subject)
            assert_close(
                "compile",
                f"compiled {direction} log-det vs eager",
                per_sample_log_det(ld, batch, xs[0], subject, rev),
                per_sample_log_det(eager_ld, batch, xs[0], subject, rev),
                tolerance,
                subject,
            )
            xs = list(eager_out)
