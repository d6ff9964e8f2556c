"""Run code written for FrEIA unmodified: make ``import FrEIA...`` resolve to freia_graph.

After :func:`alias_freia`, ``FrEIA`` is the ``freia_graph`` package and every ``FrEIA.<path>`` the module
``freia_graph.<path>``: the same module objects, so classes imported through either name are identical
(``isinstance`` checks, pickles and ``state_dict`` keys agree). freia_graph offers FrEIA's module paths
of both FrEIA 0.2 and FrEIA HEAD (:data:`FREIA_MODULE_PATHS`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

__all__ = ["FREIA_MODULE_PATHS", "alias_freia"]

#: Every module path of FrEIA HEAD and FrEIA 0.2 (0.2's are a subset; its ``framework.graph_inn`` is a
#: module where HEAD has a package). ``FrEIA.distributions`` and its submodules are aliased only where
#: ``freia_graph.distributions`` exists.
FREIA_MODULE_PATHS: tuple[str, ...] = (
    "FrEIA",
    "FrEIA.framework",
    "FrEIA.framework.graph_inn",
    "FrEIA.framework.graph_inn.graph_inn",
    "FrEIA.framework.graph_inn.nodes",
    "FrEIA.framework.reversible_graph_net",
    "FrEIA.framework.reversible_sequential_net",
    "FrEIA.framework.sequence_inn",
    "FrEIA.modules",
    "FrEIA.modules.all_in_one_block",
    "FrEIA.modules.base",
    "FrEIA.modules.coupling_layers",
    "FrEIA.modules.fixed_transforms",
    "FrEIA.modules.gaussian_mixture",
    "FrEIA.modules.graph_topology",
    "FrEIA.modules.inv_auto_layers",
    "FrEIA.modules.inverse",
    "FrEIA.modules.invertible_resnet",
    "FrEIA.modules.orthogonal",
    "FrEIA.modules.reshapes",
    "FrEIA.modules.splines",
    "FrEIA.modules.splines.binned",
    "FrEIA.modules.splines.linear",
    "FrEIA.modules.splines.rational_quadratic",
    "FrEIA.utils",
    "FrEIA.distributions",
    "FrEIA.distributions.normal",
    "FrEIA.distributions.transformed",
)

_OPTIONAL_PREFIX = "FrEIA.distributions"


def _target(name: str) -> str:
    """``FrEIA.x.y`` -> ``freia_graph.x.y``."""
    return "freia_graph" + name[len("FrEIA"):]


def _is_freia_name(name: str) -> bool:
    return name == "FrEIA" or name.startswith("FrEIA.")


class _AliasLoader(importlib.abc.Loader):
    """Hands out the freia_graph module itself under the FrEIA name."""

    def __init__(self, module: ModuleType):
        self.module = module
        self.own_spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.own_spec  # the import system has just set the alias's spec on it


class _FrEIAFinder(importlib.abc.MetaPathFinder):
    """Finds ``FrEIA[.path]`` as ``freia_graph[.path]``, ahead of any installed FrEIA."""

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if not _is_freia_name(fullname):
            return None
        name = _target(fullname)
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: freia_graph (aliased as FrEIA by alias_freia()) has no {name!r}",
                name=fullname,
            )
        module = importlib.import_module(name)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(module), is_package=hasattr(module, "__path__"))


def _foreign_freia_modules() -> list[str]:
    return sorted(
        name for name, module in list(sys.modules.items())
        if _is_freia_name(name) and module is not None
        and not getattr(module, "__name__", "").startswith("freia_graph")
    )


def _available(name: str) -> bool:
    if not name.startswith(_OPTIONAL_PREFIX):
        return True
    try:
        return importlib.util.find_spec(_target(name)) is not None
    except ModuleNotFoundError:  # freia_graph.distributions itself is missing
        return False


def alias_freia() -> None:
    """Make ``import FrEIA`` and every ``FrEIA.<path>`` import freia_graph's module of the same path.

    Call it before importing code that imports FrEIA (e.g. anomalib). It installs an import hook ahead
    of any installed FrEIA and imports every path in :data:`FREIA_MODULE_PATHS` under its FrEIA name, as
    ``import FrEIA`` does. Calling it again does nothing.

    Raises:
        ImportError: when the real FrEIA is already imported in this interpreter; call ``alias_freia()``
            before anything imports FrEIA.

    Example (in a fresh interpreter, as the alias lasts for the whole process):
        >>> import subprocess, sys
        >>> program = (
        ...     "from freia_graph.compat import alias_freia; alias_freia(); "
        ...     "import FrEIA.modules.coupling_layers as coupling_layers, freia_graph.modules; "
        ...     "print(coupling_layers.GLOWCouplingBlock is freia_graph.modules.GLOWCouplingBlock)"
        ... )
        >>> print(subprocess.run([sys.executable, "-c", program], capture_output=True, text=True).stdout.strip())
        True
    """
    foreign = _foreign_freia_modules()
    if foreign:
        location = getattr(sys.modules[foreign[0]], "__file__", None) or "an unknown location"
        raise ImportError(
            f"alias_freia(): the real FrEIA is already imported ({foreign[0]!r} from {location}), so FrEIA "
            f"cannot be aliased to freia_graph any more; call freia_graph.compat.alias_freia() before "
            f"anything imports FrEIA"
        )
    if not any(isinstance(finder, _FrEIAFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FrEIAFinder())
    for name in FREIA_MODULE_PATHS:
        if _available(name):
            importlib.import_module(name)
