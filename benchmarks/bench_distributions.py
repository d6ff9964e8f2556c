"""Flow's overhead: ``log_prob``, ``nll_loss`` and ``sample`` against hand-written code over the same GraphINN.

The hand-written code is what users wrote before ``Flow`` existed: call the graph, then the standard
normal log-density of every latent written out, plus the log-det; for samples, ``torch.randn`` per
latent and the graph in reverse with ``jac=False``. A ratio above 1 is what ``Flow`` adds. Candidates
are interleaved in every repeat (in rotating order) and the median is reported, on one thread; the
hand-written code runs twice, and the ratio of its two times shows the noise of the measurement.
Times are the thread's CPU time (``time.thread_time``), not wall time: on a machine shared with other
busy processes, time spent waiting for a core then does not count.

Run: ``python benchmarks/bench_distributions.py [--repeats 15] [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable

import torch
from bench_framework import two_branch_nodes
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.distributions import Flow, nll_loss

LOG_2PI = math.log(2 * math.pi)


def conv(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, c_out, 3, padding=1))


def multi_scale_graph() -> Ff.GraphINN:
    """(3, 16, 16) images to three latents: couplings, Haar downsampling, split-off outputs."""
    x = Ff.InputNode(3, 16, 16, name="x")
    a = Ff.Node(x, Fm.AllInOneBlock, {"subnet_constructor": conv}, name="a")
    down_1 = Ff.Node(a, Fm.HaarDownsampling, {}, name="down_1")
    split_1 = Ff.Node(down_1, Fm.Split, {"section_sizes": [6, 6]}, name="split_1")
    b = Ff.Node(split_1.out1, Fm.AllInOneBlock, {"subnet_constructor": conv}, name="b")
    down_2 = Ff.Node(b, Fm.HaarDownsampling, {}, name="down_2")
    split_2 = Ff.Node(down_2, Fm.Split, {"section_sizes": [12, 12]}, name="split_2")
    c = Ff.Node(split_2.out1, Fm.AllInOneBlock, {"subnet_constructor": conv}, name="c")
    outputs = [Ff.OutputNode(split_1.out0, name="z1"), Ff.OutputNode(split_2.out0, name="z2"),
               Ff.OutputNode(c, name="z3")]
    return Ff.GraphINN([x, a, down_1, split_1, b, down_2, split_2, c, *outputs])


def cpu_times(candidates: dict[str, Callable[[], object]], repeats: int, number: int) -> dict[str, list[float]]:
    """CPU seconds per call of each candidate in every repeat.

    The candidates are interleaved, and their order rotates from one repeat to the next, so that none
    profits from always running first (after the previous candidate warmed the caches for it, or not).
    """
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats + 1):  # the first round warms up
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            run = candidates[name]
            start = time.thread_time()
            for _ in range(number):
                run()
            if repeat:
                samples[name].append((time.thread_time() - start) / number)
    return samples


def by_hand(inn: Ff.GraphINN, conditions: list[torch.Tensor] | None) -> tuple[Callable, Callable]:
    """Hand-written log-density and sampler for ``inn`` under standard normal latents."""
    shapes = [tuple(shape) for shape in inn.output_dims(inn.dims_in)]
    constant = 0.5 * sum(math.prod(shape) for shape in shapes) * LOG_2PI
    dims = [tuple(range(1, len(shape) + 1)) for shape in shapes]

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        z, log_det = inn(x, c=conditions)
        latents = z if isinstance(z, tuple) else (z,)
        squares = sum((latent**2).sum(dim) for latent, dim in zip(latents, dims))
        return -0.5 * squares - constant + log_det

    def sample(n: int) -> torch.Tensor:
        with torch.no_grad():
            latents = [torch.randn(n, *shape) for shape in shapes]
            return inn(latents, c=conditions, rev=True, jac=False)[0]

    return log_prob, sample


def rows(name: str, inn: Ff.GraphINN, x: torch.Tensor, conditions: list | None, repeats: int,
         number: int) -> list[str]:
    flow = Flow(inn)
    hand_log_prob, hand_sample = by_hand(inn, conditions)
    dims = x[0].numel()
    inn(x, c=conditions)  # initialise ActNorm-like state, verify modules

    def train_step(loss: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            inn.zero_grad(set_to_none=True)
            loss().backward()
        return step

    hand_loss = train_step(lambda: -hand_log_prob(x).mean() / dims)
    cases = {  # the hand-written code runs twice: the second ratio shows the noise of the measurement
        "log_prob": {"hand-written": lambda: hand_log_prob(x), "Flow": lambda: flow.log_prob(x, conditions),
                     "again": lambda: hand_log_prob(x)},
        "loss fwd+bwd": {"hand-written": hand_loss, "Flow": train_step(lambda: nll_loss(flow, x, conditions)),
                         "again": hand_loss},
        "sample": {"hand-written": lambda: hand_sample(len(x)), "Flow": lambda: flow.sample(len(x), conditions),
                   "again": lambda: hand_sample(len(x))},
    }
    lines = []
    for what, candidates in cases.items():
        with torch.no_grad() if what == "log_prob" else torch.enable_grad():
            samples = cpu_times(candidates, repeats, number)
        times = {name: statistics.median(values) for name, values in samples.items()}
        fastest = {name: min(values) for name, values in samples.items()}
        hand = times["hand-written"]
        lines.append(f"| {name} | {what} | {hand * 1e6:.0f} µs | {times['Flow'] * 1e6:.0f} µs "
                     f"| {times['Flow'] / hand:.3f} | {times['again'] / hand:.3f} "
                     f"| {fastest['Flow'] / fastest['hand-written']:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke test")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 3 if args.quick else args.repeats
    print(f"torch {torch.__version__}, {platform.machine()}, 1 thread, CPU time, "
          f"median of {3 * repeats} (small graphs) and {repeats} (multi-scale) interleaved repeats")
    print("| graph | call | hand-written | Flow | ratio | hand-written again (noise) | ratio of the fastest repeats |")
    print("|---|---|---|---|---|---|---|")
    torch.manual_seed(0)
    two_branch = Ff.GraphINN(two_branch_nodes(Ff, Fm))
    for line in rows("README's conditional two-branch graph, batch 256", two_branch, torch.randn(256, 16),
                     [torch.randn(256, 8)], 3 * repeats, 3):
        print(line, flush=True)
    x = Ff.InputNode(16, name="x")
    permute = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="permute")
    trivial = Ff.GraphINN([x, permute, Ff.OutputNode(permute, name="z")])
    leaf = torch.randn(1, 16, requires_grad=True)  # no parameters: the loss needs something to differentiate
    for line in rows("one PermuteRandom, batch 1 (the overhead alone)", trivial, leaf, None, 3 * repeats, 20):
        print(line, flush=True)
    for line in rows("multi-scale (3, 16, 16), 3 latents, batch 32", multi_scale_graph(), torch.randn(32, 3, 16, 16),
                     None, repeats, 1):
        print(line, flush=True)


if __name__ == "__main__":
    main()
