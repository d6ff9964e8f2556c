"""Time the pictures of a 300-node conditional multi-scale graph: layout + SVG, exports, summary.

Run from the repository root: ``python benchmarks/bench_viz.py [--repeats N]``. Prints the median and
the fastest of N repeats for each step, single-threaded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from freia_graph import viz  # noqa: E402
from tests.viz.graphs import multiscale_graph  # noqa: E402


def timings(work: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and fastest wall time of ``work`` over ``repeats`` runs, in milliseconds."""
    work()  # warm-up: first-call imports and caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    torch.set_num_threads(1)
    inn = multiscale_graph()
    graph = viz.to_networkx(inn)
    print(f"graph: {graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges; "
          f"median / fastest of {args.repeats} (ms)")
    steps = {
        "to_svg (collapsed, default)": lambda: viz.to_svg(inn),
        "to_svg (expanded, badges)": lambda: viz.to_svg(inn, collapse=False),
        "to_svg (expanded, condition edges)": lambda: viz.to_svg(inn, collapse=False, conditions="edges"),
        "to_svg (expanded, LR)": lambda: viz.to_svg(inn, collapse=False, direction="LR"),
        "to_networkx": lambda: viz.to_networkx(inn),
        "to_dot": lambda: viz.to_dot(inn),
        "to_mermaid": lambda: viz.to_mermaid(inn),
        "summary": lambda: viz.summary(inn),
        "_repr_mimebundle_": lambda: inn._repr_mimebundle_(),
    }
    for name, work in steps.items():
        median, fastest = timings(work, args.repeats)
        print(f"  {name:<36} {median:8.1f} {fastest:8.1f}")


if __name__ == "__main__":
    main()
