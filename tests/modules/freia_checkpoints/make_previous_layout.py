"""Fixtures saved by the previous freia_graph (before it saved FrEIA's layouts), so that its checkpoints keep
loading: the cases of part A's generators, built with an earlier freia_graph standing in for FrEIA.

    git archive 8a6e3b1 freia_graph | tar -x -C /tmp/previous
    PYTHONPATH=/tmp/previous python -m tests.modules.freia_checkpoints.make_previous_layout

writes ``<case>-freia_graph-previous.pt`` (the fixture format's ``-freia<version>`` naming).
"""

import sys

import freia_graph.modules
from tests.modules.freia_checkpoints import (
    make_all_in_one,
    make_invertible_autoencoders,
    make_normalization,
    make_permutations,
    make_reshapes,
)
from tests.modules.freia_checkpoints.fixture_format import generate

SAVES = "the previous freia_graph layout loads; we save FrEIA's"

CASES = [
    {**case, "by_version": {}, "saves_other_layout": SAVES}
    for module in (make_normalization, make_permutations, make_reshapes, make_invertible_autoencoders, make_all_in_one)
    for case in module.CASES
]

if __name__ == "__main__":
    print(f"freia_graph from {freia_graph.__file__}")
    sys.modules["FrEIA"] = sys.modules["freia_graph"]
    sys.modules["FrEIA.modules"] = freia_graph.modules
    generate(CASES, "_graph-previous")
