"""Declare + build time of long GLOW+PermuteRandom chains: freia_graph against FrEIA HEAD, side by side.

Each library runs in its own worker process (FrEIA from another virtual environment, ``--freia-python``);
the parent asks the workers in turn to declare and build a chain of N nodes, so both are measured at the
same moments of a noisy machine, and reports medians of the interleaved repeats and their ratio.

Most of declaring a chain is building its modules (the user's subnets: ``nn.Linear`` initialisation),
which is the same work in both libraries; the last columns subtract the time of building the same modules
directly, leaving the framework's own share (nodes, shape inference, validation, sorting, planning).

Run: ``python benchmarks/bench_build.py [--sizes 10 100 1000 5000 30000] [--repeats 5]
[--freia-python /path/to/venv/bin/python]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

# The worker: reads a node count per line, answers the seconds that declaring and building took, that building
# the GraphINN took, and the framework's share (declare+build minus building the same modules directly).
WORKER = r"""
import gc, sys, time
import torch
from torch import nn
if sys.argv[1] == "freia_graph":
    import freia_graph.framework as Ff, freia_graph.modules as Fm
else:
    import FrEIA.framework as Ff, FrEIA.modules as Fm
torch.set_num_threads(1)

def subnet(c_in, c_out):
    return nn.Sequential(nn.Linear(c_in, 32), nn.ReLU(), nn.Linear(32, c_out))

def modules_alone(n_nodes):
    # the same modules built directly, without nodes or a graph: the cost both libraries share
    modules = []
    for i in range((n_nodes - 2) // 2):
        modules.append(Fm.GLOWCouplingBlock([(8,)], subnet_constructor=subnet, clamp=2.0))
        modules.append(Fm.PermuteRandom([(8,)], seed=i))
    return modules

def declare(n_nodes):
    nodes = [Ff.InputNode(8, name="x")]
    for i in range((n_nodes - 2) // 2):
        nodes.append(Ff.Node(nodes[-1], Fm.GLOWCouplingBlock, {"subnet_constructor": subnet, "clamp": 2.0},
                             name=f"glow{i}"))
        nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": i}, name=f"perm{i}"))
    nodes.append(Ff.OutputNode(nodes[-1], name="z"))
    return nodes

Ff.GraphINN(declare(10))
print("ready", flush=True)
for line in sys.stdin:
    gc.collect()
    start = time.perf_counter()
    nodes = declare(int(line))
    middle = time.perf_counter()
    inn = Ff.GraphINN(nodes)
    end = time.perf_counter()
    del inn, nodes
    gc.collect()
    before = time.perf_counter()
    modules = modules_alone(int(line))
    alone = time.perf_counter() - before
    del modules
    print(end - start, end - middle, end - start - alone, flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 5000, 30000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--freia-python", default="/work/envs/freiahead/bin/python",
                        help="a Python with FrEIA installed (skipped when missing)")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    pythons = {"freia_graph": sys.executable}
    if Path(args.freia_python).exists():
        pythons["FrEIA"] = args.freia_python
    workers = {name: subprocess.Popen([python, "-c", WORKER, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, env=env, cwd="/") for name, python in pythons.items()}
    for worker in workers.values():
        assert worker.stdout.readline().strip() == "ready"
    print("| nodes | declare+build: freia_graph | FrEIA HEAD | ratio | GraphINN(): freia_graph | FrEIA HEAD | ratio "
          "| framework share: freia_graph | FrEIA HEAD | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        times: dict[str, list[list[float]]] = {name: [] for name in workers}
        for _ in range(args.repeats if size < 30000 else max(1, args.repeats // 2)):
            for name, worker in workers.items():
                worker.stdin.write(f"{size}\n")
                worker.stdin.flush()
                times[name].append([float(word) for word in worker.stdout.readline().split()])
        cells = []
        for part in (0, 1, 2):  # declare+build, GraphINN construction alone, the framework's share
            medians = {name: statistics.median(t[part] for t in values) for name, values in times.items()}
            freia = medians.get("FrEIA")
            ratio = f"{medians['freia_graph'] / freia:.2f}" if freia else "—"
            cells.append(f"{medians['freia_graph']:.3f} s | {freia or float('nan'):.3f} s | {ratio}")
        print(f"| {size} | {' | '.join(cells)} |", flush=True)
    for worker in workers.values():
        worker.stdin.close()
        worker.wait()


if __name__ == "__main__":
    main()
