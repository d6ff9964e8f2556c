"""The documentation site's own code runs, and its pages include only README sections that exist."""

import re
from pathlib import Path

import pytest

from freia_graph import InvertibleModule
from freia_graph.testing import check_module_contract

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))


def test_the_contract_page_example_honours_the_contract():
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "contract.md").read_text(), flags=re.DOTALL):
        exec(compile(block, "docs/contract.md", "exec"), namespace)
    blocks = [value for value in namespace.values() if isinstance(value, type) and issubclass(value, InvertibleModule)]
    assert blocks, "docs/contract.md defines no block"
    for block in blocks:
        if block is not InvertibleModule:
            check_module_contract(block, [(5,)])


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_included_readme_sections_exist(page):
    readme = (ROOT / "README.md").read_text()
    for section in re.findall(r'--8<-- "README.md:(\w+)"', page.read_text()):
        assert f"--8<-- [start:{section}]" in readme and f"--8<-- [end:{section}]" in readme, section
