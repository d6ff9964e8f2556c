"""The failure type of every check, and the tolerance comparison that produces it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ContractViolation", "Tolerance", "assert_close"]


class ContractViolation(AssertionError):
    """A module or graph broke a property of the invertible-module contract.

    The message names the property, the subject (module class and shapes, or the graph), and the size of
    the violation. ``property`` holds the property's name (e.g. ``"log_det"``), so tests can tell
    violations apart without parsing the message. When several properties fail at once (see
    ``check_module_contract``), ``property`` is the first of them and ``violations`` lists them all.

    Example:
        >>> error = ContractViolation("round_trip", "x -> z -> x differs by 0.5", "Scale(dims_in=[(3,)])")
        >>> error.property
        'round_trip'
        >>> print(error)
        [round_trip] Scale(dims_in=[(3,)]): x -> z -> x differs by 0.5
    """

    def __init__(self, property: str, detail: str, subject: str = ""):
        self.property = property
        self.detail = detail
        self.subject = subject
        self.violations: list[ContractViolation] = [self]
        prefix = f"[{property}] {subject}: " if subject else f"[{property}] "
        super().__init__(prefix + detail)


@dataclass(frozen=True)
class Tolerance:
    """Absolute and relative tolerance: ``|actual - expected| <= atol + rtol * |expected|``."""

    atol: float
    rtol: float

    def __str__(self) -> str:
        return f"atol={self.atol:g}, rtol={self.rtol:g}"


def _error_summary(actual: Tensor, expected: Tensor, tolerance: Tolerance) -> str | None:
    """A description of the worst violation, or None when every element is within tolerance."""
    actual, expected = torch.broadcast_tensors(actual.detach(), expected.detach())
    error = (actual - expected).abs()
    bound = tolerance.atol + tolerance.rtol * expected.abs()
    # NaN never compares as within bound, so NaNs count as violations.
    bad = ~(error <= bound)
    if not bool(bad.any()):
        return None
    excess = torch.where(bad, error.nan_to_num(float("inf")) - bound, torch.full_like(error, -float("inf")))
    worst = int(excess.flatten().argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), error.shape)) if error.dim() else ()
    where = f" at index {index}" if index else ""
    max_error = error.nan_to_num(float("inf")).max().item()
    return (
        f"max abs error {max_error:.3g} ({int(bad.sum())} of {error.numel()} elements outside {tolerance})"
        f"{where}: got {actual[index].item():.6g}, expected {expected[index].item():.6g}"
    )


def assert_close(
    property: str, what: str, actual: Tensor, expected: Tensor, tolerance: Tolerance, subject: str = ""
) -> None:
    """Raise :class:`ContractViolation` unless ``actual`` matches ``expected`` within ``tolerance``.

    Args:
        property: the name of the property being checked.
        what: what is compared, in words (starts the message).
        actual: the value produced.
        expected: the value it should equal (shapes must broadcast).
        tolerance: the allowed error.
        subject: the module or graph, for the message.

    Example:
        >>> assert_close("round_trip", "x -> z -> x", torch.ones(3), torch.ones(3), Tolerance(1e-6, 0))
        >>> reported, exact = torch.tensor([1.0, 2.0]), torch.zeros(2)
        >>> try:
        ...     assert_close("log_det", "log-det", reported, exact, Tolerance(0.1, 0))
        ... except ContractViolation as error:
        ...     print(error)
        [log_det] log-det: max abs error 2 (2 of 2 elements outside atol=0.1, rtol=0)
        at index (1,): got 2, expected 0
    """
    if actual.shape != expected.shape and actual.dim() and expected.dim():
        raise ContractViolation(
            property, f"{what}: shape {tuple(actual.shape)} differs from {tuple(expected.shape)}", subject
        )
    summary = _error_summary(actual, expected, tolerance)
    if summary is not None:
        raise ContractViolation(property, f"{what}: {summary}", subject)
