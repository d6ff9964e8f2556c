"""Peer benchmarks: freia_graph against FrEIA 0.2, FrEIA HEAD, zuko, normflows and nflows on the same flows.

Four cases, each built with the same architecture and parameter count in every library that has the
blocks (the parameter counts are printed, and every place where a library cannot match is said):

* ``affine``: 16 Glow-style affine coupling blocks on 64-dim vectors, batch 256;
* ``spline``: 8 rational-quadratic spline coupling blocks on 16 dims;
* ``multiscale``: a Glow-like multi-scale flow on 3x32x32 images (Haar squeeze, couplings, splits);
* ``conditional``: 8 conditional affine coupling blocks on 16 dims with an 8-dim condition.

A *block* is a two-sided coupling (freia_graph's and FrEIA's ``GLOWCouplingBlock`` and
``RationalQuadraticSpline``: both halves are transformed, by two subnets), preceded by a fixed random
permutation; the one-sided libraries express it as two couplings with complementary halves. Every subnet
is the same MLP (two hidden layers, ReLU) or, for images, the same small CNN.

For each case the script times a training step (``-log_prob(x).mean()`` forward and backward), sampling
(a batch, no gradients) and ``log_prob`` (no gradients), on one torch thread, as medians of repeats in
which the libraries take turns (round-robin, because the machines are shared and noisy), and reports each
peer's time as a ratio to freia_graph's measured in the same run. FrEIA HEAD shares the import name
``FrEIA`` with FrEIA 0.2, so it runs in a subprocess with the Python of ``FREIA_HEAD_PYTHON`` (default
``/work/envs/freiahead/bin/python``; empty to skip), which times freia_graph again for its own ratio.
Peers that are not installed are skipped with a line saying so (``pip install -e ".[bench]"``).

Run: ``python benchmarks/bench_peers.py [--quick] [--device cuda] [--repeats 9] [--cases affine,spline]``;
prints a Markdown table. ``--quick`` uses fewer repeats and smaller sizes (under a minute).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch
from torch import nn

import freia_graph
from freia_graph.distributions import Flow
from freia_graph.presets import coupling_flow, multiscale_flow

__all__ = ["CASES", "FULL", "QUICK", "Model", "Sizes", "main", "measure_case", "render"]

FREIA_HEAD_PYTHON = os.environ.get("FREIA_HEAD_PYTHON", "/work/envs/freiahead/bin/python")
CLAMP = 2.0  # soft clamp of the log-scales (atan in freia_graph and FrEIA)
TAIL_BOUND = 3.0  # spline domain [-3, 3], the default of freia_graph and FrEIA
OPERATIONS = ("train step", "sample", "log_prob")


def _optional(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


PEER_MODULES: dict[str, object] = {
    "FrEIA": _optional("FrEIA.framework") and _optional("FrEIA.modules"),
    "zuko": _optional("zuko"),
    "normflows": _optional("normflows"),
    "nflows": _optional("nflows"),
}
LIBRARIES = ("freia_graph", "FrEIA", "zuko", "normflows", "nflows")
INSTALL_NAMES = {"FrEIA": "FrEIA", "zuko": "zuko", "normflows": "normflows", "nflows": "nflows"}


def freia_label() -> str:
    """``FrEIA HEAD`` if the importable FrEIA has splines (0.2 has none), else ``FrEIA 0.2``."""
    modules = PEER_MODULES["FrEIA"]
    return "FrEIA HEAD" if modules is not None and hasattr(modules, "RationalQuadraticSpline") else "FrEIA 0.2"


def label(library: str) -> str:
    """The column name of a library (FrEIA as 0.2 or HEAD)."""
    return freia_label() if library == "FrEIA" else library


@dataclass(frozen=True)
class Sizes:
    """Every size the cases use."""

    batch: int = 256
    affine_dim: int = 64
    affine_blocks: int = 16
    affine_hidden: int = 128
    spline_dim: int = 16
    spline_blocks: int = 8
    bins: int = 8
    spline_hidden: int = 64
    image: tuple[int, int, int] = (3, 32, 32)
    image_batch: int = 16
    levels: int = 3
    blocks_per_level: int = 4
    conv_hidden: int = 64
    conditional_dim: int = 16
    condition_dim: int = 8
    conditional_blocks: int = 8
    conditional_hidden: int = 64


FULL = Sizes()
QUICK = replace(FULL, batch=64, affine_blocks=4, affine_hidden=64, spline_blocks=2, image=(3, 16, 16),
                image_batch=4, levels=2, blocks_per_level=2, conv_hidden=16, conditional_blocks=2)


@dataclass
class Model:
    """One library's flow for one case and the three timed operations (closures without arguments)."""

    module: nn.Module
    train_step: Callable[[], object]
    sample: Callable[[], object]
    log_prob: Callable[[], object]

    def parameter_count(self) -> int:
        """Trainable parameters (FrEIA 0.2 keeps its permutations as frozen parameters)."""
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)

    def operations(self) -> dict[str, Callable[[], object]]:
        return dict(zip(OPERATIONS, (self.train_step, self.sample, self.log_prob)))


def make_model(module: nn.Module, log_prob: Callable, sample: Callable, x: torch.Tensor,
               c: torch.Tensor | None) -> Model:
    """Closures over the data: a training step (forward and backward of the NLL), sampling and log_prob."""

    def train_step() -> None:
        module.zero_grad(set_to_none=True)
        (-log_prob(x, c).mean()).backward()

    def no_grad(function: Callable, *args: object) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return function(*args)
        return run

    return Model(module, train_step, no_grad(sample, x.shape[0], c), no_grad(log_prob, x, c))


def mlp(c_in: int, c_out: int, hidden: int) -> nn.Module:
    """The subnet of every vector case, in every library: two hidden layers with ReLU."""
    return nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, c_out))


def cnn(c_in: int, c_out: int, hidden: int) -> nn.Module:
    """The subnet of the image case (Glow's): 3x3, 1x1 and 3x3 convolutions with ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                         nn.Conv2d(hidden, c_out, 3, padding=1))


class ContextNet(nn.Module):
    """A subnet called as ``net(x, context)`` (nflows, normflows): the context is appended to the input."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x if context is None else torch.cat([x, context], dim=1))


def halves(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the two one-sided couplings of a block: True on the half that is transformed."""
    first = torch.arange(dim) < dim - dim // 2
    return first, ~first


# freia_graph and FrEIA ------------------------------------------------------------------------------


def freia_graph_model(inn: nn.Module, x: torch.Tensor, c: torch.Tensor | None) -> Model:
    """freia_graph as a user writes it: a ``Flow`` (standard normal base) around the GraphINN."""
    flow = Flow(inn).to(x.device)
    conditions = (lambda c: None if c is None else [c])
    return make_model(flow, lambda x, c: flow.log_prob(x, conditions(c)),
                      lambda n, c: flow.sample(n, conditions(c)), x, c)


def freia_chain(dim: int, blocks: int, coupling: str, coupling_args: dict, condition_dim: int = 0) -> nn.Module:
    """FrEIA's graph of freia_graph's ``coupling_flow`` preset: per block a PermuteRandom, then the coupling."""
    framework, modules = _optional("FrEIA.framework"), PEER_MODULES["FrEIA"]
    nodes = [framework.InputNode(dim, name="x")]
    conditions = [framework.ConditionNode(condition_dim, name="c0")] if condition_dim else []
    for k in range(1, blocks + 1):
        nodes.append(framework.Node(nodes[-1], modules.PermuteRandom, {"seed": k}, name=f"permute{k}"))
        nodes.append(framework.Node(nodes[-1], getattr(modules, coupling), coupling_args,
                                    conditions=conditions or None, name=f"coupling{k}"))
    nodes.append(framework.OutputNode(nodes[-1], name="z"))
    return framework.GraphINN(nodes + conditions)


def freia_multiscale(sizes: Sizes, coupling_args: dict) -> nn.Module:
    """FrEIA's graph of freia_graph's ``multiscale_flow`` preset (Haar squeeze, steps, half the channels split off)."""
    framework, modules = _optional("FrEIA.framework"), PEER_MODULES["FrEIA"]
    nodes, outputs = [framework.InputNode(*sizes.image, name="x")], []
    port = (nodes[0], 0)
    for level in range(1, sizes.levels + 1):
        nodes.append(framework.Node(port, modules.HaarDownsampling, {"order_by_wavelet": True}))
        for k in range(1, sizes.blocks_per_level + 1):
            seed = (level - 1) * sizes.blocks_per_level + k
            nodes.append(framework.Node(nodes[-1], modules.PermuteRandom, {"seed": seed}))
            nodes.append(framework.Node(nodes[-1], modules.GLOWCouplingBlock, coupling_args))
        port = (nodes[-1], 0)
        if level < sizes.levels:
            channels = nodes[-1].output_dims[0][0]
            off = round(channels * 0.5)
            nodes.append(framework.Node(port, modules.Split, {"section_sizes": [channels - off, off]}))
            outputs.append(framework.OutputNode((nodes[-1], 1)))
            port = (nodes[-1], 0)
    outputs.append(framework.OutputNode(port))
    return framework.GraphINN(nodes + outputs)


def freia_model(inn: nn.Module, x: torch.Tensor, c: torch.Tensor | None) -> Model:
    """Log-density and sampling with a standard normal on every output, as a FrEIA user writes them."""
    inn = inn.to(x.device)
    conditions = (lambda c: [] if c is None else [c])
    with torch.no_grad():
        latents, _ = inn(x, c=conditions(c))
    shapes = [z.shape[1:] for z in (latents if isinstance(latents, (list, tuple)) else [latents])]
    constant = -0.5 * math.log(2 * math.pi) * sum(math.prod(shape) for shape in shapes)

    def log_prob(x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        latents, log_det = inn(x, c=conditions(c))
        latents = latents if isinstance(latents, (list, tuple)) else [latents]
        return constant + log_det - 0.5 * sum(z.square().flatten(1).sum(1) for z in latents)

    def sample(n: int, c: torch.Tensor | None) -> object:
        latents = [torch.randn(n, *shape, device=x.device) for shape in shapes]
        return inn(latents if len(latents) > 1 else latents[0], c=conditions(c), rev=True, jac=False)[0]

    return make_model(inn, log_prob, sample, x, c)


# zuko, normflows, nflows ----------------------------------------------------------------------------


def zuko_model(dim: int, blocks: int, hidden: int, univariate: Callable, shapes: list, x: torch.Tensor,
               c: torch.Tensor | None) -> Model:
    """A zuko Flow: per block a permutation and two GeneralCouplingTransforms on complementary halves."""
    zuko = PEER_MODULES["zuko"]
    context = 0 if c is None else c.shape[1]
    transforms = []
    for _ in range(blocks):
        transforms.append(zuko.lazy.UnconditionalTransform(zuko.transforms.PermutationTransform,
                                                           torch.randperm(dim), buffer=True))
        for transformed in halves(dim):  # zuko's mask marks the half that conditions the other
            transforms.append(zuko.flows.GeneralCouplingTransform(
                dim, context, mask=~transformed, univariate=univariate, shapes=shapes,
                hidden_features=(hidden, hidden), activation=nn.ReLU))
    base = zuko.lazy.UnconditionalDistribution(zuko.distributions.DiagNormal, torch.zeros(dim), torch.ones(dim),
                                               buffer=True)
    flow = zuko.lazy.Flow(transforms, base).to(x.device)
    return make_model(flow, lambda x, c: flow(c).log_prob(x),
                      lambda n, c: flow().sample((n,)) if c is None else flow(c).sample(), x, c)


class NormflowsCoupling(nn.Module):
    """A normflows flow layer (``forward`` samples, ``inverse`` evaluates) around a one-sided spline coupling."""

    def __init__(self, coupling: nn.Module):
        super().__init__()
        self.coupling = coupling

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z, log_det = self.coupling.inverse(z, context)
        return z, log_det.view(-1)

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z, log_det = self.coupling(z, context)
        return z, log_det.view(-1)


def normflows_model(dim: int, blocks: int, hidden: int, kind: str, bins: int, x: torch.Tensor) -> Model:
    """A normflows NormalizingFlow: per block a permutation and two couplings on complementary halves."""
    nf = PEER_MODULES["normflows"]
    half = dim // 2
    steps: list[nn.Module] = []
    for _ in range(blocks):
        steps.append(nf.flows.Permute(dim, mode="shuffle"))
        if kind == "affine":  # AffineCouplingBlock always transforms the second half: swap in between
            steps += [nf.flows.AffineCouplingBlock(mlp(half, 2 * half, hidden), scale_map="exp"),
                      nf.flows.Permute(dim, mode="swap"),
                      nf.flows.AffineCouplingBlock(mlp(half, 2 * half, hidden), scale_map="exp")]
        else:
            net = lambda c_in, c_out: ContextNet(mlp(c_in, c_out, hidden))
            steps += [NormflowsCoupling(nf.flows.neural_spline.coupling.PiecewiseRationalQuadraticCoupling(
                mask.int(), net, num_bins=bins, tails="linear", tail_bound=TAIL_BOUND)) for mask in halves(dim)]
    flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False), steps[::-1]).to(x.device)
    return make_model(flow, lambda x, c: flow.log_prob(x), lambda n, c: flow.sample(n)[0], x, None)


def nflows_model(dim: int, blocks: int, hidden: int, kind: str, bins: int, x: torch.Tensor,
                 c: torch.Tensor | None) -> Model:
    """An nflows Flow: per block a permutation and two couplings on complementary halves."""
    transforms = importlib.import_module("nflows.transforms")
    context = 0 if c is None else c.shape[1]
    net = lambda c_in, c_out: ContextNet(mlp(c_in + context, c_out, hidden))
    steps = []
    for _ in range(blocks):
        steps.append(transforms.RandomPermutation(dim))
        for mask in halves(dim):
            if kind == "affine":
                steps.append(transforms.AffineCouplingTransform(mask.int(), net))
            else:
                steps.append(transforms.PiecewiseRationalQuadraticCouplingTransform(
                    mask.int(), net, num_bins=bins, tails="linear", tail_bound=TAIL_BOUND))
    flow = importlib.import_module("nflows.flows").Flow(
        transforms.CompositeTransform(steps), importlib.import_module("nflows.distributions").StandardNormal([dim]))
    flow = flow.to(x.device)
    return make_model(flow, lambda x, c: flow.log_prob(x, context=c),
                      lambda n, c: flow.sample(n) if c is None else flow.sample(1, context=c)[:, 0], x, c)


# the cases ------------------------------------------------------------------------------------------


def _affine(library: str, sizes: Sizes, x: torch.Tensor, c: torch.Tensor | None, dim: int, blocks: int,
            hidden: int) -> Model:
    subnet = partial(mlp, hidden=hidden)
    args = {"subnet_constructor": subnet, "clamp": CLAMP}
    condition_dim = 0 if c is None else c.shape[1]
    if library == "freia_graph":
        inn = coupling_flow(dim, depth=blocks, coupling="GLOW", subnet_constructor=subnet,
                            coupling_args={"clamp": CLAMP}, dims_c=[(condition_dim,)] if condition_dim else None)
        return freia_graph_model(inn, x, c)
    if library == "FrEIA":
        return freia_model(freia_chain(dim, blocks, "GLOWCouplingBlock", args, condition_dim), x, c)
    if library == "zuko":  # log-scale soft clamp a / (1 + |a| / CLAMP): same bound as atan's, other shape
        univariate = partial(PEER_MODULES["zuko"].transforms.MonotonicAffineTransform, slope=math.exp(-CLAMP))
        return zuko_model(dim, blocks, hidden, univariate, [(), ()], x, c)
    if library == "normflows":
        return normflows_model(dim, blocks, hidden, "affine", 0, x)
    return nflows_model(dim, blocks, hidden, "affine", 0, x, c)


def affine_case(library: str, sizes: Sizes, device: torch.device) -> Model:
    """Case (a): Glow-style affine coupling blocks on vectors."""
    x = torch.randn(sizes.batch, sizes.affine_dim, device=device)
    return _affine(library, sizes, x, None, sizes.affine_dim, sizes.affine_blocks, sizes.affine_hidden)


def conditional_case(library: str, sizes: Sizes, device: torch.device) -> Model:
    """Case (d): conditional affine coupling blocks, the condition appended to every subnet's input."""
    x = torch.randn(sizes.batch, sizes.conditional_dim, device=device)
    c = torch.randn(sizes.batch, sizes.condition_dim, device=device)
    return _affine(library, sizes, x, c, sizes.conditional_dim, sizes.conditional_blocks, sizes.conditional_hidden)


def spline_case(library: str, sizes: Sizes, device: torch.device) -> Model:
    """Case (b): rational-quadratic spline coupling blocks on vectors."""
    dim, blocks, hidden, bins = sizes.spline_dim, sizes.spline_blocks, sizes.spline_hidden, sizes.bins
    x = torch.randn(sizes.batch, dim, device=device)
    subnet = partial(mlp, hidden=hidden)
    if library == "freia_graph":
        inn = coupling_flow(dim, depth=blocks, coupling="RationalQuadraticSpline", subnet_constructor=subnet,
                            coupling_args={"bins": bins})
        return freia_graph_model(inn, x, None)
    if library == "FrEIA":
        args = {"subnet_constructor": subnet, "bins": bins}
        return freia_model(freia_chain(dim, blocks, "RationalQuadraticSpline", args), x, None)
    if library == "zuko":
        univariate = partial(PEER_MODULES["zuko"].transforms.MonotonicRQSTransform, bound=TAIL_BOUND)
        return zuko_model(dim, blocks, hidden, univariate, [(bins,), (bins,), (bins - 1,)], x, None)
    if library == "normflows":
        return normflows_model(dim, blocks, hidden, "spline", bins, x)
    return nflows_model(dim, blocks, hidden, "spline", bins, x, None)


def multiscale_case(library: str, sizes: Sizes, device: torch.device) -> Model:
    """Case (c): the multi-scale image flow of freia_graph's ``multiscale_flow`` preset (and FrEIA's copy)."""
    x = torch.randn(sizes.image_batch, *sizes.image, device=device)
    subnet = partial(cnn, hidden=sizes.conv_hidden)
    if library == "freia_graph":
        inn = multiscale_flow(sizes.image, levels=sizes.levels, blocks_per_level=sizes.blocks_per_level,
                              subnet_constructor=subnet, coupling_args={"clamp": CLAMP})
        return freia_graph_model(inn, x, None)
    return freia_model(freia_multiscale(sizes, {"subnet_constructor": subnet, "clamp": CLAMP}), x, None)


@dataclass(frozen=True)
class Case:
    """A benchmark case: its title, its builder, and what each library does differently (or why it is skipped)."""

    title: Callable[[Sizes], str]
    build: Callable[[str, Sizes, torch.device], Model]
    notes: dict[str, str]
    skip: dict[str, str]


_AFFINE_NOTES = {
    "FrEIA": "GLOWCouplingBlock, clamp 2 (atan), as freia_graph",
    "zuko": "2 GeneralCouplingTransforms per block; log-scale soft clamp a/(1+|a|/2) (same bound 2 as atan)",
    "normflows": "2 AffineCouplingBlocks per block with a half swap between; scale exp(a), no clamp option",
    "nflows": "2 AffineCouplingTransforms per block; scale sigmoid(a+2)+1e-3 (fixed in nflows)",
}
CASES: dict[str, Case] = {
    "affine": Case(
        lambda s: f"(a) affine, {s.affine_blocks} blocks, dim {s.affine_dim}, hidden {s.affine_hidden}, "
                  f"batch {s.batch}",
        affine_case, _AFFINE_NOTES, {}),
    "spline": Case(
        lambda s: f"(b) RQ spline, {s.spline_blocks} blocks, dim {s.spline_dim}, {s.bins} bins, "
                  f"hidden {s.spline_hidden}, batch {s.batch}",
        spline_case,
        {"freia_graph": "fixed domain [-3, 3], unit-slope tails, 3K-1 subnet outputs per element",
         "FrEIA": "learned domain, affine tails: 3K+1 subnet outputs per element (more parameters)",
         "zuko": "2 couplings per block, MonotonicRQSTransform bound 3, identity tails, 3K-1 outputs",
         "normflows": "2 PiecewiseRationalQuadraticCouplings per block (linear tails, bound 3, 3K-1 outputs)",
         "nflows": "2 PiecewiseRationalQuadraticCouplingTransforms per block (linear tails, bound 3, 3K-1)"},
        {"FrEIA 0.2": "FrEIA 0.2 has no spline couplings"}),
    "multiscale": Case(
        lambda s: f"(c) multi-scale {'x'.join(map(str, s.image))}, {s.levels} levels x {s.blocks_per_level} "
                  f"GLOW blocks, CNN hidden {s.conv_hidden}, batch {s.image_batch}",
        multiscale_case, {"FrEIA": "the same graph as freia_graph's multiscale_flow preset"},
        {"zuko": "zuko has no image couplings or squeezes",
         "normflows": "normflows' GlowBlock/MultiscaleFlow fix their own subnets and priors: not matched here",
         "nflows": "nflows' multi-scale transforms are not matched to this graph here"}),
    "conditional": Case(
        lambda s: f"(d) conditional affine, {s.conditional_blocks} blocks, dim {s.conditional_dim}, "
                  f"condition {s.condition_dim}, hidden {s.conditional_hidden}, batch {s.batch}",
        conditional_case, {**_AFFINE_NOTES, "nflows": _AFFINE_NOTES["nflows"] + "; context appended to the input"},
        {"normflows": "normflows' affine couplings take no context"}),
}


# timing ---------------------------------------------------------------------------------------------


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(run: Callable[[], object], number: int, device: torch.device) -> float:
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(number):
        run()
    _synchronize(device)
    return (time.perf_counter() - start) / number


def median_times(candidates: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                 budget: float = 0.05) -> dict[str, float]:
    """Median seconds per call of each candidate; every repeat runs the candidates in turn (round-robin)."""
    numbers = {}
    for name, run in candidates.items():  # warm up, then as many calls per measurement as fill ``budget``
        run()
        numbers[name] = max(1, min(100, round(budget / max(_seconds(run, 1, device), 1e-6))))
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            samples[name].append(_seconds(run, numbers[name], device))
    return {name: statistics.median(values) for name, values in samples.items()}


def measure_case(name: str, sizes: Sizes, libraries: list[str], repeats: int, device: torch.device,
                 budget: float = 0.05) -> dict:
    """Build the case in each library and time its operations: rows, parameter counts and notes.

    Each measurement repeats a call until about ``budget`` seconds have passed (at most 100 calls).
    """
    case = CASES[name]
    models, notes = {}, []
    for library in libraries:
        reason = case.skip.get(label(library), case.skip.get(library))
        if library != "freia_graph" and PEER_MODULES[library] is None:
            reason = f"not installed (pip install {INSTALL_NAMES[library]}, or the bench extra)"
        if reason is None:
            try:
                torch.manual_seed(0)
                models[label(library)] = case.build(library, sizes, device)
            except Exception as error:  # a peer that breaks must not stop the others
                if library == "freia_graph":
                    raise
                reason = f"failed: {type(error).__name__}: {error}"
        if reason is not None:
            notes.append(f"{label(library)} skipped: {reason}")
        elif library in case.notes:
            notes.append(f"{label(library)}: {case.notes[library]}")
    rows = []
    for operation in OPERATIONS:
        candidates = {lib: model.operations()[operation] for lib, model in models.items()}
        times = median_times(candidates, repeats, device, budget)
        rows.append({"operation": operation, "seconds": times})
    return {"case": name, "title": case.title(sizes), "rows": rows, "notes": notes,
            "parameters": {lib: model.parameter_count() for lib, model in models.items()}}


def run_head_worker(args: argparse.Namespace) -> list[dict] | str:
    """FrEIA HEAD's results from a subprocess (its own freia_graph times included), or why there are none."""
    python = FREIA_HEAD_PYTHON
    if not python or not Path(python).exists():
        return f"FrEIA HEAD skipped: no Python with FrEIA HEAD at FREIA_HEAD_PYTHON={python!r}"
    command = [python, __file__, "--worker", "--device", args.device, "--repeats", str(args.repeats),
               "--cases", ",".join(args.cases)] + (["--quick"] if args.quick else [])
    environment = {**os.environ, "PYTHONPATH": str(Path(freia_graph.__file__).resolve().parents[1])}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if done.returncode != 0:
        return f"FrEIA HEAD skipped: its subprocess failed: {done.stderr.strip().splitlines()[-1:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def merge_head(results: list[dict], head: list[dict]) -> None:
    """Add FrEIA HEAD's columns; its ratio is to the freia_graph time measured in its own process."""
    for result, other in zip(results, head):
        result["notes"] += [note for note in other["notes"] if note.startswith("FrEIA HEAD")]
        if "FrEIA HEAD" not in other["parameters"]:
            continue
        result["parameters"]["FrEIA HEAD"] = other["parameters"]["FrEIA HEAD"]
        for row, other_row in zip(result["rows"], other["rows"]):
            times = other_row["seconds"]
            row.setdefault("head", (times["FrEIA HEAD"], times["freia_graph"]))


# output ---------------------------------------------------------------------------------------------


def _milliseconds(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} µs"


def machine_line(device: torch.device, repeats: int, quick: bool) -> str:
    """Date, machine, load, torch version, device and threads: the header of the table."""
    load = " ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    mode = "QUICK mode (fewer repeats, smaller sizes: not the reference numbers)" if quick else "full sizes"
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.platform()}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs, load average {load}; torch {torch.__version__}, device {device}{gpu}, "
            f"{torch.get_num_threads()} thread(s); median of {repeats} interleaved repeats; {mode}")


def render(results: list[dict], header: str) -> str:
    """A Markdown table: freia_graph's time, then each peer's time as a ratio to it (same run)."""
    columns = ["freia_graph", "FrEIA 0.2", "FrEIA HEAD", "zuko", "normflows", "nflows"]
    lines = [header, "", "| case | operation | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for result in results:
        for row in result["rows"]:
            times = row["seconds"]
            base = times.get("freia_graph")
            cells = []
            for column in columns:
                if column == "FrEIA HEAD" and "head" in row:
                    seconds, own = row["head"]  # and freia_graph's time in FrEIA HEAD's process
                    cells.append(f"{seconds / own:.2f}× ({_milliseconds(seconds)} vs {_milliseconds(own)})")
                elif column not in times:
                    cells.append("—")
                elif column == "freia_graph" or base is None:
                    cells.append(_milliseconds(times[column]))
                else:
                    cells.append(f"{times[column] / base:.2f}× ({_milliseconds(times[column])})")
            lines.append(f"| {result['title']} | {row['operation']} | " + " | ".join(cells) + " |")
    lines.append("")
    for result in results:
        counts = ", ".join(f"{lib} {count:,}" for lib, count in result["parameters"].items())
        lines.append(f"- {result['title'].split(',')[0]}: parameters {counts}")
        lines += [f"  - {note}" for note in result["notes"]]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes (under a minute)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 9, quick 3)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {list(CASES)}")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated subset of " +
                        ", ".join(LIBRARIES) + " (FrEIA HEAD runs in a subprocess when FrEIA is listed)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 9)
    args.cases = [name for name in args.cases.split(",") if name]
    args.libraries = [name for name in args.libraries.split(",") if name]
    for name in args.cases:
        if name not in CASES:
            parser.error(f"unknown case {name!r}; choose from {list(CASES)}")
    for name in args.libraries:
        if name not in LIBRARIES:
            parser.error(f"unknown library {name!r}; choose from {list(LIBRARIES)}")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False)")
    if "freia_graph" not in args.libraries:
        args.libraries.insert(0, "freia_graph")
    return args


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; print and return the Markdown report."""
    args = parse(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    sizes = QUICK if args.quick else FULL
    libraries = ["freia_graph", "FrEIA"] if args.worker else args.libraries
    budget = 0.02 if args.quick else 0.05
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Inputs to the softmax are not scaled down")  # nflows at init
        results = [measure_case(name, sizes, libraries, args.repeats, device, budget) for name in args.cases]
    if args.worker:
        print(json.dumps(results))
        return ""
    extra = []
    if "FrEIA" in args.libraries and freia_label() != "FrEIA HEAD":
        head = run_head_worker(args)
        if isinstance(head, str):
            extra.append(f"- {head}")
        else:
            merge_head(results, head)
            extra.append("- FrEIA HEAD ran in a subprocess after the others: its ratio is to freia_graph timed again "
                         "in that process (both times shown)")
    report = render(results, machine_line(device, args.repeats, args.quick)) + "\n" + "\n".join(extra)
    print(report)
    return report


if __name__ == "__main__":
    main()
