"""A griffe extension for the API reference: our docstrings head their doctests ``Example:``, which the
Google style parser reads as an admonition (so ``>>>`` lines render as prose); rename it ``Examples:``."""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["ExampleSections"]

_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:$", flags=re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename each docstring's ``Example:`` section ``Examples:`` before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_HEADING.sub(r"\1Examples:", obj.docstring.value)
