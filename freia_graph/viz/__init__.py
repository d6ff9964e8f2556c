"""Pictures of graphs without Graphviz: networkx/DOT/Mermaid exports, SVG and matplotlib drawings, and
the notebook display of ``GraphINN``, ``SequenceINN`` and nodes."""

from .display import mimebundle, summary
from .draw import draw, save
from .export import to_dot, to_mermaid, to_networkx
from .svg import to_svg

__all__ = ["to_networkx", "to_dot", "to_mermaid", "to_svg", "draw", "save", "summary", "mimebundle"]
