"""Train a small multi-branch conditional flow on a toy dataset and write its pictures and metrics.

``freia-graph demo [--out DIR] [--steps N]`` builds a graph with a label embedding (a FeedForwardNode),
two branches after a Split (GLOW couplings on one, AllInOne blocks on the other) and a Concat; trains it
as a :class:`~freia_graph.distributions.Flow` (with ``nll_loss``) on points whose layout depends on a class
label; checks on held-out data that it inverts and that its log-det matches the exact Jacobian; and
writes to DIR:

* ``graph.svg`` and ``graph.png``: the graph;
* ``samples.png``: data and samples for each class; ``loss.png``: the training loss;
* ``metrics.json``: losses, round-trip error, log-det error, timings.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from freia_graph.distributions import Flow, nll_loss
from freia_graph.testing import exact_log_det

__all__ = ["add_arguments", "run", "build_flow", "toy_data", "LabelEmbedding", "progress_bar"]

CLASSES, FEATURES = 3, 4
DEFAULT_STEPS = 2000
ROUND_TRIP_TOLERANCE, LOG_DET_TOLERANCE = 1e-3, 1e-8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser`` and make it call :func:`run`."""
    parser.add_argument("--out", type=Path, default=Path("freia_graph_demo"),
                        help="folder for the pictures and metrics (default: ./freia_graph_demo)")
    parser.add_argument("--steps", type=_positive_int, default=DEFAULT_STEPS,
                        help=f"training steps (default: {DEFAULT_STEPS}, under a minute on 2 CPU cores)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.set_defaults(run=run)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of steps, got {value}")
    return value


def toy_data(count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Points in 4-D whose first two coordinates depend on a class label, with one-hot labels.

    Class 0 puts the points on a ring of six clusters, class 1 on a 2×2 grid, class 2 along a
    diagonal of three clusters. The last two coordinates depend on the first two (a product and a sine),
    so the flow must carry information between its branches.

    Example:
        >>> x, labels = toy_data(5, torch.Generator().manual_seed(0))
        >>> tuple(x.shape), tuple(labels.shape), labels.sum(dim=1).tolist()
        ((5, 4), (5, 3), [1.0, 1.0, 1.0, 1.0, 1.0])
    """
    label = torch.randint(0, CLASSES, (count,), generator=generator)
    uniform = torch.rand(count, generator=generator)
    angle = (uniform * 6).floor() * (2 * math.pi / 6)
    ring = 2.0 * torch.stack([angle.cos(), angle.sin()], dim=1)
    corner = (uniform * 4).floor()
    grid = 1.5 * torch.stack([(corner % 2) * 2 - 1, (corner // 2) * 2 - 1], dim=1)
    diagonal = ((uniform * 3).floor() - 1).unsqueeze(1) * torch.tensor([2.0, 2.0])
    centres = torch.stack([ring, grid, diagonal])[label, torch.arange(count)]
    plane = centres + 0.2 * torch.randn(count, 2, generator=generator)
    noise = 0.1 * torch.randn(count, 2, generator=generator)
    extra = torch.stack([0.5 * plane[:, 0] * plane[:, 1], torch.sin(plane[:, 0]) + 0.5 * plane[:, 1]], dim=1)
    return torch.cat([plane, extra + noise], dim=1), nn.functional.one_hot(label, CLASSES).float()


class LabelEmbedding(nn.Module):
    """A one-hot label mapped to a learned condition vector (the graph's FeedForwardNode)."""

    def __init__(self, classes: int, features: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(classes, 32), nn.Tanh(), nn.Linear(32, features))

    def forward(self, label: Tensor) -> Tensor:
        return self.layers(label)


def _subnet(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(c_in, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, c_out))


def build_flow() -> Any:
    """The demo's graph: embed the label, mix, split into a GLOW and an AllInOne branch, merge, mix.

    Example:
        >>> flow = build_flow()
        >>> [node.name for node in flow.node_list][:4]
        ['x', 'label', 'embedding', 'mix_in']
    """
    import freia_graph.framework as Ff
    import freia_graph.modules as Fm

    coupling = {"subnet_constructor": _subnet}
    x = Ff.InputNode(FEATURES, name="x")
    label = Ff.ConditionNode(CLASSES, name="label")
    embedding = Ff.FeedForwardNode(label, (8,), LabelEmbedding, {"classes": CLASSES, "features": 8},
                                   name="embedding")
    mix_in = Ff.Node(x, Fm.AllInOneBlock, coupling, conditions=embedding, name="mix_in")
    split = Ff.Node(mix_in, Fm.Split, {"section_sizes": [2, 2]}, name="split")
    glow_1 = Ff.Node(split.out0, Fm.GLOWCouplingBlock, coupling, conditions=embedding, name="glow_1")
    swap = Ff.Node(glow_1, Fm.PermuteRandom, {"seed": 1}, name="swap")
    glow_2 = Ff.Node(swap, Fm.GLOWCouplingBlock, coupling, conditions=embedding, name="glow_2")
    aio_1 = Ff.Node(split.out1, Fm.AllInOneBlock, coupling, conditions=embedding, name="all_in_one_1")
    aio_2 = Ff.Node(aio_1, Fm.AllInOneBlock, coupling, conditions=embedding, name="all_in_one_2")
    merge = Ff.Node([glow_2.out0, aio_2.out0], Fm.Concat, {}, name="merge")
    node = merge
    for i in range(3):
        node = Ff.Node(node, Fm.AllInOneBlock, {**coupling, "permute_soft": True}, conditions=embedding,
                       name=f"mix_out_{i}")
    return Ff.GraphINN(Ff.collect_nodes(Ff.OutputNode(node, name="z")))


def progress_bar(steps: int) -> Any:
    """A tqdm bar over the training steps: at most one update a second, and none unless stdout and the
    bar's own stream (stderr) are terminals, so logs of ``freia-graph demo > log`` stay short.

    Example:
        >>> progress_bar(10).disable  # doctests do not print to a terminal
        True
    """
    from tqdm.auto import tqdm

    return tqdm(range(steps), desc="training", unit="step", mininterval=1.0,
                disable=True if not sys.stdout.isatty() else None)


def _train(flow: Flow, steps: int, generator: torch.Generator) -> list[float]:
    optimizer = torch.optim.Adam(flow.parameters(), lr=2e-3, foreach=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    losses = []
    progress = progress_bar(steps)
    for step in progress:
        x, label = toy_data(256, generator)
        loss = nll_loss(flow, x, [label])  # nats per dimension, standard normal latent
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % 25 == 0:
            progress.set_postfix(loss=f"{loss.item():.3f}")
    return losses


def _log_det_error(inn: nn.Module, x: Tensor, label: Tensor) -> float:
    """Largest difference between the graph's log-det and log|det| of its exact Jacobian (float64)."""
    inn.double()  # in place, and back to float32 below
    x, label = x.double(), label.double()
    try:
        _, log_det = inn(x, c=[label])
        exact = exact_log_det(inn, [x], [label])
        return (log_det - exact).abs().max().item()
    finally:
        inn.float()


def _checks(flow: Flow, generator: torch.Generator) -> dict[str, float]:
    x, label = toy_data(2000, generator)
    inn = flow.inn
    with torch.no_grad():
        test_loss = nll_loss(flow, x, [label]).item()
        z, log_det = inn(x, c=[label])
        x_back, log_det_back = inn(z, c=[label], rev=True)
    return {
        "test_loss": test_loss,
        "round_trip_error": (x_back - x).abs().max().item(),
        "log_det_symmetry_error": (log_det + log_det_back).abs().max().item(),
        "log_det_error": _log_det_error(inn, x[:32], label[:32]),
    }


def _plot_samples(flow: Flow, path: Path, generator: torch.Generator) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6), layout="constrained")
    axes = figure.subplots(1, CLASSES, sharex=True, sharey=True)
    names = ["ring", "grid", "diagonal"]
    for index, ax in enumerate(axes):
        label = nn.functional.one_hot(torch.tensor(index), CLASSES).float()
        samples = flow.sample(1500, c=[label])  # one condition, shared by every sample
        reference = _class_data(index, 1500, generator)
        ax.scatter(reference[:, 0], reference[:, 1], s=2, alpha=0.35, color="#90a4ae", label="data")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, color="#1565c0", label="samples")
        ax.set_title(f"class {index} ({names[index]})")
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-3.5, 3.5)
        ax.set_aspect("equal")
    axes[0].legend(loc="lower left", markerscale=5, fontsize=8)
    figure.suptitle("Samples of the trained flow for each condition")
    figure.savefig(path, dpi=110)


def _class_data(index: int, count: int, generator: torch.Generator) -> Tensor:
    x, label = toy_data(count * CLASSES * 2, generator)
    return x[label[:, index] == 1][:count]


def _plot_loss(losses: list[float], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.2), layout="constrained")
    ax = figure.subplots()
    ax.plot(losses, color="#90a4ae", linewidth=0.8, label="batch")
    window = max(1, len(losses) // 40)
    smooth = np.convolve(losses, np.full(window, 1 / window), mode="valid")
    ax.plot(np.arange(len(smooth)) + (window - 1) / 2, smooth, color="#1565c0", label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("negative log-likelihood per dim (nats)")
    ax.legend()
    figure.savefig(path, dpi=110)


def _output_folder(out: Path) -> Path:
    """The ``--out`` folder, created if missing; a path that is a file or cannot be written is a bad argument."""
    from freia_graph.cli import UsageError

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is an existing file; give a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create the folder ({error.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: the folder is not writable")
    return out


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns 0 when the checks pass, 1 otherwise.

    Raises:
        UsageError: when ``--out`` is a file or a folder that cannot be created or written.
    """
    missing = [name for name in ("matplotlib", "tqdm") if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"the demo needs {' and '.join(missing)}: pip install 'freia_graph[demo]'")
    threads = torch.get_num_threads()
    # The flow is small: one thread is fastest, and immune to busy neighbours on a shared machine.
    torch.set_num_threads(1)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    from freia_graph.viz import save

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    out = _output_folder(Path(args.out))
    inn = build_flow()
    save(inn, out / "graph.svg")
    save(inn, out / "graph.png")
    flow = Flow(inn)
    losses = _train(flow, args.steps, generator)
    metrics = {"steps": args.steps, "parameters": sum(p.numel() for p in flow.parameters()),
               "final_train_loss": sum(losses[-50:]) / len(losses[-50:]), **_checks(flow, generator)}
    _plot_samples(flow, out / "samples.png", generator)
    _plot_loss(losses, out / "loss.png")
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    passed = metrics["round_trip_error"] < ROUND_TRIP_TOLERANCE and metrics["log_det_error"] < LOG_DET_TOLERANCE
    print(f"wrote graph.svg, graph.png, samples.png, loss.png and metrics.json to {out}")
    print(f"test loss {metrics['test_loss']:.3f} nats/dim, round-trip error {metrics['round_trip_error']:.1e}, "
          f"log-det error vs exact Jacobian {metrics['log_det_error']:.1e}: {'ok' if passed else 'FAILED'}")
    return 0 if passed else 1
