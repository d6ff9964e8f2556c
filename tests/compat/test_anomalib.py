"""anomalib's FrEIA-based models (FastFlow, CFlow, CS-Flow, U-Flow) run unmodified with FrEIA aliased to freia_graph.

Needs ``pip install -e ".[compat]"`` (skipped otherwise). Backbones get random weights (nothing is downloaded);
models are built small (tests/compat/anomalib_cases.py). The checkpoints under fixtures/ were saved by the same
anomalib classes running on real FrEIA; ``make_anomalib_fixtures.py`` beside this file says how to remake them.
"""

from __future__ import annotations

import copy
import importlib.util
import io
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import freia_graph
from tests.compat.anomalib_cases import CASES, Case, flatten, import_torchvision

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("anomalib-*.pt"))

pytestmark = [
    pytest.mark.compat,
    pytest.mark.skipif(importlib.util.find_spec("anomalib") is None,
                       reason="anomalib is not installed (pip install -e '.[compat]')"),
]

def _case(name: str, *marks: pytest.MarkDecorator) -> object:
    return pytest.param(CASES[name], id=name, marks=marks)


def _fixture(path: Path) -> object:
    return pytest.param(path, id=path.stem)


ALL = [_case(name) for name in CASES]



@pytest.fixture(scope="module")
def built(freia_alias: None) -> Callable[[Case], torch.nn.Module]:
    """Builds each case once (CS-Flow's efficientnet_b5 is slow to build); tests change copies only."""
    import_torchvision()
    from anomalib.models.image.fastflow import torch_model

    if torch_model.SequenceINN is not freia_graph.SequenceINN:
        pytest.fail("anomalib was imported before FrEIA was aliased to freia_graph; run this file on its own")
    cache: dict[str, torch.nn.Module] = {}

    def build(case: Case) -> torch.nn.Module:
        if case.name not in cache:
            cache[case.name] = case.build(seed=0).eval()
        return copy.deepcopy(cache[case.name])

    return build


def _flow_outputs(case: Case, model: torch.nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return flatten(case.run_flow(getattr(model, case.flow_attribute), case.features(model, images)))


@pytest.mark.parametrize("case", ALL)
def test_flow_is_built_by_freia_graph(case: Case, built: Callable) -> None:
    flow = getattr(built(case), case.flow_attribute)
    graph_types = (freia_graph.GraphINN, freia_graph.SequenceINN)
    graphs = [module for module in flow.modules() if isinstance(module, graph_types)]
    assert graphs, f"{case.name}.{case.flow_attribute} holds no freia_graph GraphINN/SequenceINN"


@pytest.mark.parametrize("case", ALL)
def test_trains(case: Case, built: Callable) -> None:
    model = built(case).train()
    flow = getattr(model, case.flow_attribute)
    before = [parameter.detach().clone() for parameter in flow.parameters()]
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-3)
    for step in range(3):
        loss = case.loss(model, case.images(seed=step))
        assert torch.isfinite(loss), f"step {step}: loss {loss}"
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = [not torch.equal(old, new) for old, new in zip(before, flow.parameters())]
    assert sum(changed) > len(changed) // 2, f"only {sum(changed)} of {len(changed)} flow parameters were trained"


@pytest.mark.parametrize("case", ALL)
def test_evaluates(case: Case, built: Callable) -> None:
    model = built(case).eval()
    with torch.no_grad():
        result = model(case.images())
    assert result.pred_score.shape[0] == 2 and torch.isfinite(result.pred_score).all()
    assert result.anomaly_map.shape[0] == 2 and torch.isfinite(result.anomaly_map).all()


@pytest.mark.parametrize("case", ALL)
def test_state_dict_round_trip(case: Case, built: Callable) -> None:
    model = built(case).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = case.build(seed=1).eval()
    fresh.load_state_dict(torch.load(buffer), strict=True)
    images = case.images()
    for ours, theirs in zip(_flow_outputs(case, fresh, images), _flow_outputs(case, model, images), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(fresh(images).pred_score, model(images).pred_score, rtol=0, atol=0)


@pytest.mark.parametrize("path", [_fixture(path) for path in FIXTURES])
def test_loads_freia_checkpoint_strictly(path: Path, built: Callable) -> None:
    saved = torch.load(path, weights_only=False)
    case = CASES[saved["case"]]
    flow = getattr(built(case), case.flow_attribute).eval()
    flow.load_state_dict(saved["state_dict"], strict=True)
    with torch.no_grad():
        outputs = flatten(case.run_flow(flow, saved["features"]))
    for index, (ours, theirs) in enumerate(zip(outputs, flatten(saved["outputs"]), strict=True)):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4, msg=lambda m, i=index: f"output {i}: {m}")
