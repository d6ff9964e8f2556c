"""Save anomalib flow checkpoints made with REAL FrEIA, for tests/compat/test_anomalib.py.

Run from the repository root in an environment that has anomalib and real FrEIA (never freia_graph's alias):

    python -m tests.compat.make_anomalib_fixtures --freia 0.2                 # FrEIA 0.2 from PyPI
    PYTHONPATH=/path/to/FrEIA-HEAD python -m tests.compat.make_anomalib_fixtures --freia head

Each file ``fixtures/anomalib-<model>-freia<version>.pt`` holds the flow part's ``state_dict`` (the backbone
is left out to keep the file small), the flow's inputs (backbone features of fixed random images) and what
the FrEIA-built flow computed from them. pytest does not collect this script (tests/compat/conftest.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tests.compat.anomalib_cases import CASES, import_torchvision

__all__ = ["FIXTURE_DIR", "main"]

FIXTURE_DIR = Path(__file__).parent / "fixtures"


def main() -> None:
    """Build every case with the installed FrEIA, run its flow once and save a fixture per case."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--freia", required=True, choices=["0.2", "head"], help="which FrEIA is importable")
    parser.add_argument("--only", nargs="*", default=sorted(CASES), help="case names")
    version = parser.parse_args().freia
    import_torchvision()
    import FrEIA.framework

    if FrEIA.framework.SequenceINN.__module__.startswith("freia_graph"):
        raise SystemExit("FrEIA is aliased to freia_graph here; run with real FrEIA installed")
    FIXTURE_DIR.mkdir(exist_ok=True)
    for name in parser.parse_args().only:
        case = CASES[name]
        model = case.build(seed=0).eval()
        images = case.images()
        flow = getattr(model, case.flow_attribute)
        with torch.no_grad():
            features = case.features(model, images)
            outputs = case.run_flow(flow, features)
        path = FIXTURE_DIR / f"anomalib-{name}-freia{version}.pt"
        torch.save({"case": name, "freia": version, "kwargs": case.kwargs, "state_dict": flow.state_dict(),
                    "features": features, "outputs": outputs}, path)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
