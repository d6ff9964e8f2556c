"""The README's examples run as written, in order, as a reader would paste them into one session."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict = {}
    for index, block in enumerate(BLOCKS):
        exec(compile(block, f"README.md block {index}", "exec"), namespace)
    torch.testing.assert_close(namespace["x_rec"], namespace["x"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(namespace["log_jac_det_rev"], -namespace["log_jac_det"], atol=1e-5, rtol=1e-5)
    assert namespace["log_jac_det"].shape == (32,)
    assert namespace["samples"].shape == (100, 16) and namespace["bits"].shape == (4,)
    assert torch.isfinite(namespace["log_q"]).all()
    assert "<svg" in (tmp_path / "graph.svg").read_text()
    assert len(BLOCKS) >= 2
