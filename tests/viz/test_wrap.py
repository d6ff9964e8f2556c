"""Long chains drawn expanded wrap into several columns (rows left to right) instead of one tall strip."""

from __future__ import annotations

import itertools

import pytest

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.viz import to_networkx
from freia_graph.viz.layout import LayoutOptions, compute_layout
from freia_graph.viz.wrap import WRAP_DEPTH


def long_chain(blocks: int) -> Ff.SequenceINN:
    inn = Ff.SequenceINN(6)
    for i in range(blocks):
        inn.append(Fm.PermuteRandom, seed=i)
    return inn


def _layout(inn, **options):
    return compute_layout(to_networkx(inn), LayoutOptions(collapse=False, **options))


@pytest.mark.parametrize("direction", ["TB", "LR"])
@pytest.mark.parametrize("blocks", [30, 120])
def test_a_long_chain_wraps_into_a_roughly_square_drawing(blocks, direction):
    inn = long_chain(blocks)
    wrapped, strip = _layout(inn, direction=direction), _layout(inn, direction=direction, wrap=False)
    depth = (lambda layout: layout.height) if direction == "TB" else (lambda layout: layout.width)
    breadth = (lambda layout: layout.width) if direction == "TB" else (lambda layout: layout.height)
    assert depth(strip) > WRAP_DEPTH and breadth(strip) < 300
    assert depth(wrapped) < depth(strip) / 2.5
    assert 1 / 3 < wrapped.width / wrapped.height < 3
    boxes = {box.key: box for box in wrapped.boxes}
    assert not [(a.key, b.key) for a, b in itertools.combinations(wrapped.boxes, 2)
                if abs(a.x - b.x) < (a.width + b.width) / 2 and abs(a.y - b.y) < (a.height + b.height) / 2]
    axis = 1 if direction == "TB" else 0
    breaks = 0
    for route in wrapped.routes:
        source, target = boxes[route.source], boxes[route.target]
        exit_side = source.y + source.height / 2 if axis else source.x + source.width / 2
        entry_side = target.y - target.height / 2 if axis else target.x - target.width / 2
        assert route.points[0][axis] == pytest.approx(exit_side) and route.points[-1][axis] == pytest.approx(entry_side)
        if len(route.points) == 4:  # a column break: down, along the gutter, into the next column
            breaks += 1
            gutter = route.points[1][1 - axis]
            assert route.points[2][1 - axis] == gutter
            if axis:  # between the columns, clear of both boxes
                assert source.x + source.width / 2 < gutter < target.x - target.width / 2
            else:
                assert source.y + source.height / 2 < gutter < target.y - target.height / 2
    assert breaks >= 2
    assert all(0 <= b.x - b.width / 2 and b.x + b.width / 2 <= wrapped.width for b in wrapped.boxes)
    assert all(0 <= b.y - b.height / 2 and b.y + b.height / 2 <= wrapped.height for b in wrapped.boxes)


def test_short_or_broad_drawings_are_not_wrapped():
    short = long_chain(6)
    assert _layout(short) == _layout(short, wrap=False)
