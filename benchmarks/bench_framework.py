"""Framework overhead: GraphINN and SequenceINN against a plain loop over the very same modules.

The plain loop is the zero-overhead bound: whatever a graph runner adds shows as a ratio above 1.
FrEIA 0.2 (``pip install freia==0.2``) is measured the same way against a loop over its own modules
when it is installed. Everything runs in one process on one thread; candidates are interleaved and
the median of the repeats is reported, because these machines are noisy.

Run: ``python benchmarks/bench_framework.py [--repeats 15] [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm

try:
    import FrEIA.framework as FrEIA_framework
    import FrEIA.modules as FrEIA_modules
except ImportError:  # FrEIA is optional
    FrEIA_framework = FrEIA_modules = None

DIM, BATCH = 8, 32


def subnet(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(c_in, 32), nn.ReLU(), nn.Linear(32, c_out))


def median_times(candidates: dict[str, Callable[[], object]], repeats: int, number: int) -> dict[str, float]:
    """Median seconds per call of each candidate, the candidates interleaved in every repeat."""
    for run in candidates.values():  # warm up
        run()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            start = time.perf_counter()
            for _ in range(number):
                run()
            samples[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(values) for name, values in samples.items()}


def direct_loop(modules: list[nn.Module]) -> Callable[..., tuple]:
    """The zero-overhead bound for a chain: call each module in turn, sum the log-dets."""

    def run(x: torch.Tensor, rev: bool = False) -> tuple:
        values, total = (x,), 0.0
        for module in (reversed(modules) if rev else modules):
            values, log_det = module(values, rev=rev, jac=True)
            total = total + log_det
        return values[0], total

    return run


def chain_blocks(framework, modules_lib, kind: str, n_blocks: int, dim: int = DIM) -> tuple[list, list]:
    """Nodes and modules of a chain of ``n_blocks`` GLOW+PermuteRandom pairs or AllInOneBlocks."""
    nodes = [framework.InputNode(dim, name="x")]
    for i in range(n_blocks):
        if kind == "glow":
            nodes.append(framework.Node(nodes[-1], modules_lib.GLOWCouplingBlock,
                                        {"subnet_constructor": subnet, "clamp": 2.0}, name=f"glow{i}"))
            nodes.append(framework.Node(nodes[-1], modules_lib.PermuteRandom, {"seed": i}, name=f"perm{i}"))
        else:
            nodes.append(framework.Node(nodes[-1], modules_lib.AllInOneBlock,
                                        {"subnet_constructor": subnet}, name=f"aio{i}"))
    nodes.append(framework.OutputNode(nodes[-1], name="z"))
    return nodes, [node.module for node in nodes[1:-1]]


def sequence_of(modules: list[nn.Module], dim: int = DIM) -> Ff.SequenceINN:
    sequence = Ff.SequenceINN(dim)
    for module in modules:
        sequence.append(module)
    return sequence


def directions(name: str, runners: dict[str, Callable], x: torch.Tensor, repeats: int, number: int) -> list[str]:
    """Rows for forward, reverse and forward+backward of each runner, as ratios to the direct loop."""
    rows = []
    z = runners["direct"](x)[0].detach()
    x_grad = x.clone().requires_grad_(True)

    def backward(run: Callable) -> Callable:
        def step() -> None:
            out, log_det = run(x_grad)
            (out.square().sum() - log_det.sum()).backward()
        return step

    for direction, make in (
        ("forward", lambda run: (lambda: run(x))),
        ("reverse", lambda run: (lambda: run(z, rev=True))),
        ("fwd+bwd", backward),
    ):
        with torch.no_grad() if direction != "fwd+bwd" else torch.enable_grad():
            times = median_times({k: make(v) for k, v in runners.items()}, repeats, number)
        base = times["direct"]
        ratios = ", ".join(f"{k} {times[k] / base:.3f}" for k in runners if k != "direct")
        rows.append(f"| {name} | {direction} | {base * 1e6:.0f} µs | {ratios} |")
    return rows


def chain_rows(kind: str, n_blocks: int, repeats: int, number: int) -> list[str]:
    torch.manual_seed(0)
    nodes, modules = chain_blocks(Ff, Fm, kind, n_blocks)
    graph = Ff.GraphINN(nodes)
    runners = {"direct": direct_loop(modules), "GraphINN": graph, "SequenceINN": sequence_of(modules)}
    x = torch.randn(BATCH, DIM)
    rows = directions(f"{kind} chain, {n_blocks} blocks", runners, x, repeats, number)
    if FrEIA_framework is not None:
        freia_nodes, freia_modules = chain_blocks(FrEIA_framework, FrEIA_modules, kind, n_blocks)
        freia_runners = {"direct": direct_loop(freia_modules), "FrEIA GraphINN": FrEIA_framework.GraphINN(freia_nodes)}
        rows += directions(f"{kind} chain, {n_blocks} blocks (FrEIA 0.2)", freia_runners, x, repeats, number)
    return rows


def deep_rows(n_nodes: int, repeats: int) -> list[str]:
    """A very deep GLOW+PermuteRandom chain (dim 4, batch 2), where per-step bookkeeping dominates."""
    torch.manual_seed(0)
    nodes, modules = chain_blocks(Ff, Fm, "glow", n_nodes // 2, dim=4)
    runners = {"direct": direct_loop(modules), "GraphINN": Ff.GraphINN(nodes), "SequenceINN": sequence_of(modules, 4)}
    x = torch.randn(2, 4)
    rows = []
    for direction, grad in (("forward", False), ("fwd+bwd", True)):
        def make(run: Callable, grad: bool = grad) -> Callable:
            if not grad:
                return lambda: run(x)
            x_grad = x.clone().requires_grad_(True)
            return lambda: (lambda out: (out[0].square().sum() - out[1].sum()).backward())(run(x_grad))
        with torch.enable_grad() if grad else torch.no_grad():
            times = median_times({k: make(v) for k, v in runners.items()}, repeats, 1)
        ratios = ", ".join(f"{k} {times[k] / times['direct']:.3f}" for k in runners if k != "direct")
        rows.append(f"| deep chain, {n_nodes} nodes, dim 4, batch 2 | {direction} | {times['direct'] * 1e3:.1f} ms "
                    f"| {ratios} |")
    return rows


def two_branch_nodes(framework, modules_lib) -> list:
    """The README's conditional two-branch graph."""
    x_in = framework.InputNode(16, name="x")
    cond = framework.ConditionNode(8, name="c")
    split = framework.Node(x_in, modules_lib.Split, {"section_sizes": [10, 6]}, name="split")
    a = framework.Node(split.out0, modules_lib.GLOWCouplingBlock, {"subnet_constructor": subnet, "clamp": 2.0},
                       conditions=cond, name="a")
    b = framework.Node(split.out1, modules_lib.PermuteRandom, {"seed": 0}, name="b")
    merge = framework.Node([a.out0, b.out0], modules_lib.Concat, {}, name="merge")
    return [x_in, cond, split, a, b, merge, framework.OutputNode(merge, name="z")]


def two_branch_direct(nodes: list) -> Callable:
    _, _, split, a, b, merge, _ = (node.module for node in nodes)

    def run(x: torch.Tensor, c: torch.Tensor, rev: bool = False) -> tuple:
        if not rev:
            (x0, x1), ld0 = split([x])
            (y0,), ld1 = a([x0], c=[c])
            (y1,), ld2 = b([x1])
            (z,), ld3 = merge([y0, y1])
        else:
            (y0, y1), ld3 = merge([x], rev=True)
            (x0,), ld1 = a([y0], c=[c], rev=True)
            (x1,), ld2 = b([y1], rev=True)
            (z,), ld0 = split([x0, x1], rev=True)
        return z, ld0 + ld1 + ld2 + ld3

    return run


def two_branch_rows(repeats: int, number: int) -> list[str]:
    torch.manual_seed(0)
    batch = 256
    x, c = torch.randn(batch, 16), torch.randn(batch, 8)
    rows = []
    libraries = [("", Ff, Fm)] + ([(" (FrEIA 0.2)", FrEIA_framework, FrEIA_modules)] if FrEIA_framework else [])
    for suffix, framework, modules_lib in libraries:
        nodes = two_branch_nodes(framework, modules_lib)
        graph, direct = framework.GraphINN(nodes), two_branch_direct(nodes)
        runners = {
            "direct": lambda x_, rev=False, d=direct: d(x_, c, rev=rev),
            ("GraphINN" if not suffix else "FrEIA GraphINN"): lambda x_, rev=False, g=graph: g(x_, c=[c], rev=rev),
        }
        rows += directions(f"conditional two-branch, batch {batch}{suffix}", runners, x, repeats, number)
    return rows


def wide_nodes(framework, modules_lib, pieces: int = 1500) -> list:
    """One Split into ``pieces`` parts, each permuted and sent to its own OutputNode (3002 nodes)."""
    x = framework.InputNode(2 * pieces, name="x")
    split = framework.Node(x, modules_lib.Split, {"section_sizes": [2] * pieces}, name="split")
    nodes = [x, split]
    for i in range(pieces):
        permute = framework.Node((split, i), modules_lib.PermuteRandom, {"seed": i}, name=f"perm{i}")
        nodes += [permute, framework.OutputNode(permute, name=f"z{i}")]
    return nodes


def wide_rows(repeats: int, number: int) -> list[str]:
    torch.manual_seed(0)
    gc.collect()  # time declaring and building, not collecting the earlier benchmarks' garbage
    start = time.perf_counter()
    nodes = wide_nodes(Ff, Fm)
    graph = Ff.GraphINN(nodes)
    build_seconds = time.perf_counter() - start
    split, permutes = nodes[1].module, [n.module for n in nodes[2::2]]
    x = torch.randn(BATCH, 3000)

    def direct(x_: torch.Tensor) -> tuple:
        pieces, total = split([x_])
        outs = []
        for piece, permute in zip(pieces, permutes):
            (out,), log_det = permute([piece])
            outs.append(out)
            total = total + log_det
        return outs, total

    runners = {"direct": direct, "GraphINN": lambda x_: graph(x_)}
    if FrEIA_framework is not None:
        freia_graph_inn = FrEIA_framework.GraphINN(wide_nodes(FrEIA_framework, FrEIA_modules))
        runners["FrEIA GraphINN"] = lambda x_: freia_graph_inn(x_)
    with torch.no_grad():
        times = median_times({k: (lambda r=r: r(x)) for k, r in runners.items()}, repeats, number)
    ratios = ", ".join(f"{k} {times[k] / times['direct']:.2f}" for k in runners if k != "direct")
    return [f"| wide graph, 3002 nodes (declare+build {build_seconds:.3f} s) | forward | "
            f"{times['direct'] * 1e3:.1f} ms | {ratios} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats, for a smoke test")
    parser.add_argument("--deep", type=int, nargs="*", metavar="NODES",
                        help="only the very deep chains, of these node counts (e.g. 1000 5000 20000)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 3 if args.quick else args.repeats
    sizes = (8,) if args.quick else (8, 32, 128)
    print(f"torch {torch.__version__}, {platform.machine()}, {platform.processor() or 'cpu'}, 1 thread, "
          f"median of {repeats} interleaved repeats")
    print("| case | direction | direct loop | ratio to the direct loop |")
    print("|---|---|---|---|")
    if args.deep:
        for n_nodes in args.deep:
            for row in deep_rows(n_nodes, repeats):
                print(row, flush=True)
        return
    for kind in ("glow", "allinone"):
        for n_blocks in sizes:
            for row in chain_rows(kind, n_blocks, repeats, max(1, 256 // n_blocks)):
                print(row, flush=True)
    for row in two_branch_rows(repeats, 50):
        print(row, flush=True)
    for row in wide_rows(max(3, repeats // 3), 1):
        print(row, flush=True)


if __name__ == "__main__":
    main()
