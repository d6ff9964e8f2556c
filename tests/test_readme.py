"""The README's examples run as written."""

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index):
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)


def test_main_example_inverts():
    namespace: dict = {}
    exec(compile(BLOCKS[0], "README.md block 0", "exec"), namespace)
    torch.testing.assert_close(namespace["x_rec"], namespace["x"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(namespace["log_jac_det_rev"], -namespace["log_jac_det"], atol=1e-5, rtol=1e-5)
    assert namespace["log_jac_det"].shape == (32,)
