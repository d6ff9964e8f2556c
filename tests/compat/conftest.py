"""Fixtures for running third-party FrEIA code on freia_graph: ``import FrEIA...`` resolves to freia_graph."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.compat.anomalib_cases import FREIA_IMPORTS

collect_ignore = ["make_anomalib_fixtures.py"]


def _alias_freia_locally() -> None:
    """Stand-in for ``freia_graph.compat.alias_freia()`` until it lands: FrEIA's import paths -> freia_graph."""
    import freia_graph
    import freia_graph.framework
    import freia_graph.modules

    for name in [name for name in sys.modules if name.split(".")[0] == "FrEIA"]:
        del sys.modules[name]
    sys.modules.update({"FrEIA": freia_graph, "FrEIA.framework": freia_graph.framework,
                        "FrEIA.modules": freia_graph.modules})


@pytest.fixture(scope="session")
def freia_alias() -> Iterator[None]:
    """While the session runs, ``import FrEIA``, ``FrEIA.framework`` and ``FrEIA.modules`` give freia_graph."""
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "FrEIA"}
    _alias_freia_locally()  # swap for freia_graph.compat.alias_freia() once it lands
    missing = [f"{path}.{name}" for path, names in FREIA_IMPORTS.items() for name in names
               if not hasattr(sys.modules[path], name)]
    assert not missing, f"the FrEIA alias lacks {missing}"
    yield
    for name in [name for name in sys.modules if name.split(".")[0] == "FrEIA"]:
        del sys.modules[name]
    sys.modules.update(saved)
