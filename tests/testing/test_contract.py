"""check_module_contract passes correct blocks and catches every planted bug with a readable message."""

from __future__ import annotations

import pytest
import torch

from freia_graph.modules import PermuteRandom
from freia_graph.testing import (
    PROPERTIES,
    ContractViolation,
    check_invertible,
    check_log_det,
    check_module_contract,
    perturb_parameters,
)
from tests.testing.planted import (
    CORRECT,
    PLANTED,
    Coupling,
    LogDetOnlyRightAtIdentity,
    PlantedBug,
    WrongInversePermutation,
    WrongLogDetSign,
)


@pytest.mark.parametrize("case", CORRECT, ids=lambda case: f"{case.id}-{len(case.dims_c)}c")
def test_correct_blocks_pass(case: PlantedBug):
    report = check_module_contract(case.module, case.dims_in, case.dims_c)
    assert set(report.passed) | set(report.skipped) == set(PROPERTIES)
    assert case.module.__name__ in str(report)


@pytest.mark.parametrize("case", PLANTED, ids=lambda case: case.id)
def test_planted_bug_is_caught(case: PlantedBug):
    with pytest.raises(ContractViolation) as caught:
        check_module_contract(case.module, case.dims_in, case.dims_c)
    error = caught.value
    caught_by = [violation.property for violation in error.violations]
    assert case.catches in caught_by, str(error)
    message = str(error)
    assert f"[{case.catches}]" in message
    assert f"{case.module.__name__}(dims_in={case.dims_in}" in message


def test_message_gives_the_size_of_the_violation():
    with pytest.raises(ContractViolation, match=r"max abs error \d") as caught:
        check_module_contract(WrongLogDetSign, [(6,)])
    assert isinstance(caught.value, AssertionError)
    assert caught.value.property == "log_det"
    assert "exact Jacobian" in str(caught.value)


def test_identity_initialisation_hides_the_bug_that_perturbation_reveals():
    check_module_contract(LogDetOnlyRightAtIdentity, [(6,)], perturbation=0.0)
    with pytest.raises(ContractViolation, match=r"\[log_det\]"):
        check_module_contract(LogDetOnlyRightAtIdentity, [(6,)])


def test_skipped_properties_are_reported_with_their_reason():
    report = check_module_contract(WrongInversePermutation, [(5,)], skip={"round_trip": "known bug"})
    assert report.skipped["round_trip"] == "known bug"
    assert "round_trip" not in report.passed
    assert "skip  round_trip" in str(report)


def test_tolerances_per_property():
    check_module_contract(WrongLogDetSign, [(6,)], tolerances={"log_det": (100.0, 0.0)})


def test_module_arguments_are_passed_on():
    first = check_module_contract(PermuteRandom, [(6,)], module_kwargs={"seed": 3})
    second = check_module_contract(PermuteRandom, [(3, 4, 4)], batch_size=2, seed=5)
    assert "seed=3" in first.subject and "seed=" not in second.subject


@pytest.mark.parametrize(
    "options, error",
    [
        ({"skip": {"log_determinant": "typo"}}, ValueError),
        ({"tolerances": {"roundtrip": (1.0, 1.0)}}, ValueError),
        ({"reverse_inputs": "latent"}, ValueError),
    ],
)
def test_bad_options_raise(options, error):
    with pytest.raises(error):
        check_module_contract(Coupling, [(4,)], **options)


def _perturbed(module_class, dims_in, dims_c=None):
    torch.manual_seed(0)
    return perturb_parameters(module_class(dims_in, dims_c).double())


def test_round_trip_alone_misses_a_wrong_log_det_sign():
    module = _perturbed(WrongLogDetSign, [(6,)])
    x = torch.randn(4, 6, dtype=torch.float64)
    check_invertible(module, x, z=torch.randn(4, 6, dtype=torch.float64))
    with pytest.raises(ContractViolation, match=r"\[log_det\] WrongLogDetSign\(dims_in=\[\(6,\)\]\): forward"):
        check_log_det(module, x)


def test_checks_accept_single_tensors_and_lists():
    module = _perturbed(Coupling, [(6,)], [(3,)])
    x, c = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    check_invertible(module, [x], [c])
    check_log_det(module, x, c)
    with pytest.raises(ContractViolation, match=r"\[round_trip\].*x -> z -> x"):
        check_invertible(_perturbed(WrongInversePermutation, [(6,)]), x)
