"""Every block takes the full contract signature, in order: graphs call ``module(x_or_z, c, rev, jac)``."""

import inspect

import pytest

from tests.modules.registry import all_cases

BLOCKS = sorted({case.module for case in all_cases()}, key=lambda block: block.__name__)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.__name__)
def test_forward_takes_the_contract_arguments_in_order(block):
    parameters = list(inspect.signature(block.forward).parameters.values())[1:5]
    assert [p.name for p in parameters] == ["x_or_z", "c", "rev", "jac"]
    assert [p.default for p in parameters[1:]] == [None, False, True]
