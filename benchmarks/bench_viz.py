"""Time the pictures of a 300-node conditional multi-scale graph (layout + SVG, exports, summary), and
the displays of huge graphs (``str``, ``_repr_mimebundle_``, ``to_svg`` of 3,000 and 30,000 nodes).

Run from the repository root: ``python benchmarks/bench_viz.py [--repeats N] [--sizes 3000 30000]``.
Prints the median and the fastest of N repeats for each step, single-threaded; for the huge graphs one
timed run of each display and its peak Python memory (tracemalloc, in a separate run).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import freia_graph.framework as Ff  # noqa: E402
import freia_graph.modules as Fm  # noqa: E402
from freia_graph import viz  # noqa: E402
from tests.viz.graphs import multiscale_graph  # noqa: E402


def wide_graph(nodes: int) -> Ff.GraphINN:
    """A split into ``nodes - 4`` pieces, a PermuteRandom on each, one Concat: ``nodes`` nodes."""
    pieces = nodes - 4
    x = Ff.InputNode(2 * pieces, name="x")
    split = Ff.Node(x, Fm.Split, {"section_sizes": [2] * pieces}, name="split")
    blocks = [Ff.Node(split.port(i), Fm.PermuteRandom, {"seed": i}, name=f"perm{i}") for i in range(pieces)]
    merge = Ff.Node([block.out0 for block in blocks], Fm.Concat, {}, name="merge")
    return Ff.GraphINN([x, split, *blocks, merge, Ff.OutputNode(merge, name="z")])


def deep_graph(nodes: int) -> Ff.GraphINN:
    """A chain of ``nodes - 2`` blocks, PermuteRandom and ActNorm alternating: ``nodes`` nodes."""
    x = Ff.InputNode(4, name="x")
    chain, node = [x], x
    for i in range(nodes - 2):
        node = Ff.Node(node, Fm.PermuteRandom if i % 2 else Fm.ActNorm, {}, name=f"block{i}")
        chain.append(node)
    return Ff.GraphINN(chain + [Ff.OutputNode(node, name="z")])


def once(work: Callable[[], object]) -> tuple[float, float]:
    """Seconds of one run, and the peak Python memory in MB of a second run under tracemalloc."""
    gc.collect()
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    gc.collect()
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak


def huge_graphs(sizes: list[int]) -> None:
    print("huge graphs: one run each (s), peak Python memory of another run (MB)")
    for size in sizes:
        for shape, build in (("wide", wide_graph), ("deep", deep_graph)):
            start = time.perf_counter()
            inn = build(size)
            built = time.perf_counter() - start
            cells = [f"{shape} {size:,} nodes (built in {built:.1f} s)"]
            for name, work in (("str", str), ("_repr_mimebundle_", type(inn)._repr_mimebundle_),
                               ("to_svg", viz.to_svg)):
                seconds, peak = once(lambda work=work, inn=inn: work(inn))
                cells.append(f"{name} {seconds:.2f} s {peak:.1f} MB")
            print("  " + " | ".join(cells), flush=True)


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
    parser.add_argument("--sizes", type=int, nargs="*", default=[3000, 30000], help="huge graphs' node counts")
    parser.add_argument("--skip-small", action="store_true", help="only the huge graphs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.skip_small:
        huge_graphs(args.sizes)
        return
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
    huge_graphs(args.sizes)


if __name__ == "__main__":
    main()
