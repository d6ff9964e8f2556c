"""FrEIA's module path ``FrEIA.modules.gaussian_mixture``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from .mixtures import GaussianMixtureModel

__all__ = ["GaussianMixtureModel"]
