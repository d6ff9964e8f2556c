"""Fixtures for running third-party FrEIA code on freia_graph: ``import FrEIA...`` resolves to freia_graph."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from freia_graph.compat import alias_freia
from tests.compat.anomalib_cases import FREIA_IMPORTS

collect_ignore = ["make_anomalib_fixtures.py"]


@pytest.fixture(scope="session")
def freia_alias() -> Iterator[None]:
    """While the session runs, ``import FrEIA...`` gives freia_graph (through ``alias_freia()``, as a user would)."""
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "FrEIA"}
    for name in saved:  # anomalib declares freia as a dependency: the real one may be importable
        del sys.modules[name]
    alias_freia()
    missing = [f"{path}.{name}" for path, names in FREIA_IMPORTS.items() for name in names
               if not hasattr(sys.modules[path], name)]
    assert not missing, f"the FrEIA alias lacks {missing}"
    yield
    for name in [name for name in sys.modules if name.split(".")[0] == "FrEIA"]:
        del sys.modules[name]
    sys.modules.update(saved)
