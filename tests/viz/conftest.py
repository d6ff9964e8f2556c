"""Graphs shared by the picture tests, built once per session."""

import pytest
import torch

from tests.viz.graphs import GRAPHS


@pytest.fixture(scope="session")
def graphs() -> dict:
    torch.manual_seed(0)
    return {name: build() for name, build in GRAPHS.items()}
