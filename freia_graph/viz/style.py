"""Colours, fonts and text measurement shared by the SVG and matplotlib renderers.

Text is measured with the advance widths of DejaVu Sans (matplotlib's default font), so boxes fit their
labels in both renderers without asking any font library at drawing time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "KIND_STYLES",
    "BADGE_COLORS",
    "DATA_EDGE_COLOR",
    "CONDITION_EDGE_COLOR",
    "FONT_FAMILY",
    "KindStyle",
    "text_width",
    "format_shape",
    "format_shapes",
    "format_count",
    "printable",
]

FONT_FAMILY = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif"

# Advance widths in thousandths of an em for the printable ASCII characters ' ' (32) to '~' (126).
_REGULAR = (
    "318 401 460 838 636 950 780 275 390 390 500 838 318 361 318 337 636 636 636 636 636 636 636 636 "
    "636 636 337 337 838 838 838 531 1000 684 686 698 770 632 575 775 752 295 295 656 557 863 748 787 "
    "603 787 695 635 611 732 684 989 685 611 685 390 337 390 838 500 500 613 635 550 635 615 352 635 "
    "634 278 278 579 278 974 634 612 635 635 411 521 392 634 592 818 592 592 525 636 337 636 838"
)
_BOLD = (
    "348 456 521 838 696 1002 872 306 457 457 523 838 380 415 380 365 696 696 696 696 696 696 696 696 "
    "696 696 400 400 838 838 838 580 1000 774 762 734 830 683 683 821 837 372 372 775 637 995 837 850 "
    "733 850 770 720 682 812 774 1103 771 724 725 457 365 457 838 500 500 675 716 593 716 678 435 716 "
    "712 343 343 665 343 1042 712 687 716 716 493 595 478 712 652 924 645 652 582 712 365 712 838"
)
_WIDTHS = {False: tuple(map(int, _REGULAR.split())), True: tuple(map(int, _BOLD.split()))}
_OTHER_WIDTH = 1000  # arrows, ellipses, CJK: generous so that boxes never clip


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Width in pixels of ``text`` set in DejaVu Sans at ``size`` pixels.

    Example:
        >>> round(text_width("GLOWCouplingBlock", 12))
        123
    """
    table = _WIDTHS[bold]
    total = sum(table[ord(ch) - 32] if 32 <= ord(ch) < 127 else _OTHER_WIDTH for ch in text)
    return total * size / 1000


@dataclass(frozen=True)
class KindStyle:
    """How one kind of node is drawn: fill and stroke colours, corner rounding, dashes."""

    fill: str
    stroke: str
    rounding: str  # "pill" (fully rounded ends), "round" or "square"
    dashed: bool = False


KIND_STYLES: dict[str, KindStyle] = {
    "input": KindStyle("#e8f5e9", "#2e7d32", "pill"),
    "output": KindStyle("#ffebee", "#c62828", "pill"),
    "condition": KindStyle("#fff3e0", "#e65100", "round", dashed=True),
    "feed_forward": KindStyle("#f3e5f5", "#6a1b9a", "square"),
    "invertible": KindStyle("#e3f2fd", "#1565c0", "round"),
    "unknown": KindStyle("#f5f5f5", "#616161", "square"),
}
BADGE_COLORS = ("#e65100", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4527a0", "#8d6e63", "#37474f")
DATA_EDGE_COLOR = "#546e7a"
CONDITION_EDGE_COLOR = "#e65100"


def format_shape(shape: tuple[int, ...]) -> str:
    """A compact shape label.

    Example:
        >>> format_shape((3, 8, 8)), format_shape((16,))
        ('(3,8,8)', '(16,)')
    """
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ",".join(str(d) for d in shape) + ")"


def format_shapes(shapes: list[tuple[int, ...]]) -> str:
    """Several shapes, comma separated; ``-`` for none.

    Example:
        >>> format_shapes([(4,), (2, 3)]), format_shapes([])
        ('(4,) (2,3)', '-')
    """
    return " ".join(format_shape(s) for s in shapes) or "-"


def format_count(count: int) -> str:
    """A parameter count in a few characters.

    Example:
        >>> format_count(532), format_count(12345), format_count(2_500_000)
        ('532', '12.3k', '2.5M')
    """
    if count < 1000:
        return str(count)
    exponent = min(int(math.log10(count)) // 3, 3)
    if round(count / 10 ** (3 * exponent), 1) >= 1000 and exponent < 3:
        exponent += 1
    return f"{count / 10 ** (3 * exponent):.1f}{'kMG'[exponent - 1]}"


def printable(text: object) -> str:
    """``str(text)`` with the characters XML, DOT and Mermaid reject (control characters, lone
    surrogates) replaced by U+FFFD.

    Example:
        >>> printable("a" + chr(0) + "b") == "a\ufffdb"
        True
    """
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]", "\ufffd", str(text))
