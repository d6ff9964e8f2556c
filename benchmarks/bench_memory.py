"""Memory-saving backprop: activation memory, peak memory, training-step time and gradient drift.

Activation memory is the bytes of the tensors autograd saves for backward during one forward pass (each
storage counted once, via ``torch.autograd.graph.saved_tensors_hooks``). Peak memory is the peak above
parameters and gradients during one training step (after a first, warm-up step), each configuration in a fresh
subprocess: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the process's resident-set high-water mark
(``VmHWM``, reset to the current RSS just before the step through ``/proc/self/clear_refs``; where that is not
allowed, ``ru_maxrss``), with glibc's mmap threshold fixed at 16 KiB so that freed tensors leave the RSS.
Times are medians of interleaved repeats (the modes alternate within each repeat), in CPU time of this process
on CPU (steadier than wall time on a shared machine) and wall time on CUDA. Run ``python
benchmarks/bench_memory.py`` (``--device cuda`` on a GPU, ``--quick`` for a smoke run); about three minutes on
a loaded 2-core CPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.presets import multiscale_flow
from freia_graph.testing import saved_tensor_bytes

__all__ = ["vector_chain", "image_graph", "main"]

FREIA_HEAD = Path("/work/envs/freiahead/bin/python")
PEERS = Path("/work/envs/peers/venv/bin/python")  # torch + zuko, normflows, nflows (not a project dependency)
MIB = 2**20
IMAGE_DIMS = (3, 32, 32)


def _mlp(hidden: int):
    def subnet(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(nn.Linear(c_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, c_out))
    return subnet


def vector_chain(depth: int, width: int = 64, hidden: int = 256, memory_saving: bool | int = False) -> Ff.SequenceINN:
    """The issue's chain: ``depth`` x (GLOW coupling with MLP subnets, random permutation) on vectors.

    Example:
        >>> len(vector_chain(2, width=4, hidden=8))
        4
    """
    inn = Ff.SequenceINN(width, memory_saving=memory_saving)
    for index in range(depth):
        inn.append(Fm.GLOWCouplingBlock, subnet_constructor=_mlp(hidden), clamp=2.0)
        inn.append(Fm.PermuteRandom, seed=index)
    return inn


def image_graph(depth: int, dims: tuple[int, ...] = IMAGE_DIMS, memory_saving: bool | int = False) -> Ff.GraphINN:
    """A Glow-like multi-scale graph (Haar squeeze, ActNorm, learned 1x1 conv, split-off latents).

    Two levels of ``depth // 2`` steps each (ActNorm, InvertibleConv1x1, GLOW coupling with a 3x3 conv
    subnet of 32 hidden channels).

    Example:
        >>> flow = image_graph(2, dims=(3, 8, 8))
        >>> [tuple(z.shape) for z in flow(torch.randn(1, 3, 8, 8))[0]]
        [(1, 6, 4, 4), (1, 24, 2, 2)]
    """
    flow = multiscale_flow(dims, levels=2, blocks_per_level=depth // 2, actnorm=True, permutation="learned",
                           subnet_constructor=lambda c_in, c_out: nn.Sequential(
                               nn.Conv2d(c_in, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, c_out, 3, padding=1)))
    flow.memory_saving = memory_saving
    return flow


def _loss(outputs, log_det):
    outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
    return sum(0.5 * o.square().sum() for o in outputs) - log_det.sum()


MODELS: dict[str, tuple[str, Callable[[int], nn.Module], tuple[int, ...]]] = {
    "vector": ("vector chain 64-d (GLOW + PermuteRandom, MLP 64->256->256), batch 256", vector_chain, (256, 64)),
    "image": ("Glow-like 3x32x32 (Haar, ActNorm, learned 1x1 conv, GLOW, split-off latents), batch 16",
              image_graph, (16, *IMAGE_DIMS)),
}


def _status_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _reset_peak_rss() -> str:
    """Reset the RSS high-water mark to the current RSS; the name of the counter that then holds the peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return "VmHWM"
    except OSError:
        return "ru_maxrss"


def _peak_above_parameters(model: nn.Module, x: torch.Tensor, accumulating: bool) -> tuple[float, str]:
    """Peak MiB above parameters and gradients during one training step, and how it was measured.

    ``accumulating``: the gradients exist before the step (micro-batches adding into ``.grad``); otherwise
    they are None (``zero_grad()``'s default) and what the step leaves allocated (the gradients, as the
    allocator holds them) is subtracted from the peak.
    """
    for p in model.parameters():
        p.grad = torch.zeros_like(p) if accumulating else None
    if x.device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        _loss(*model(x)).backward()
        torch.cuda.synchronize()
        after = base if accumulating else torch.cuda.memory_allocated()
        return (torch.cuda.max_memory_allocated() - after) / MIB, "torch.cuda.max_memory_allocated"
    base = _status_kib("VmRSS")
    counter = _reset_peak_rss()
    _loss(*model(x)).backward()
    peak = _status_kib("VmHWM") if counter == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    after = base if accumulating else _status_kib("VmRSS")
    return (peak - after) / 1024, f"{counter} - VmRSS before the step (after it, without gradients before)"


def measure_one(model_name: str, depth: int, memory_saving: bool | int, device: str) -> dict:
    """One configuration's saved-tensor MiB and peak MiB (gradients None, then existing), in this (fresh)
    process."""
    torch.manual_seed(0)
    _, build, shape = MODELS[model_name]
    model = build(depth).to(device)
    x = torch.randn(shape, device=device)
    with torch.no_grad():
        model(x)  # ActNorm's initialisation
    model.memory_saving = memory_saving
    # the steady state: the first step also pays once-per-process costs (the autograd engine's first
    # backward called from within a backward adds ~35 MiB of RSS on CPU)
    _loss(*model(x)).backward()
    peak, how = _peak_above_parameters(model, x, accumulating=False)
    peak_accumulating, _ = _peak_above_parameters(model, x, accumulating=True)
    return {"saved": saved_tensor_bytes(model, x)[0] / MIB, "peak": peak, "peak_accumulating": peak_accumulating,
            "how": how}


def _in_subprocess(model_name: str, depth: int, memory_saving: bool | int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", model_name, str(depth), json.dumps(memory_saving),
               "--device", args.device, "--threads", str(args.threads)]
    # a fixed mmap threshold makes glibc return freed large blocks at once, so RSS tracks what torch holds
    # rather than the allocator's slack (its default threshold adapts upwards after frees)
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "16384"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)
    if result.returncode:
        raise RuntimeError(f"worker {model_name} depth {depth} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def memory_rows(args: argparse.Namespace) -> None:
    depths = (8, 32) if args.quick else (8, 32, 128)
    print("\n## Activation memory: saved-tensor MiB and peak MiB above params+grads (fresh process each)\n")
    print("Peak: gradients None before the step, the peak counted above the RSS after it (parameters and "
          "gradients); accumulating: gradients allocated before the step, the peak above the RSS before it.\n")
    print("| model | depth | normal saved | memory-saving saved | normal peak | memory-saving peak | "
          "normal peak, accumulating | memory-saving peak, accumulating |")
    print("|---|---|---|---|---|---|---|---|")
    how = ""
    for name, (label, _, _) in MODELS.items():
        for depth in depths:
            normal, saving = (_in_subprocess(name, depth, mode, args) for mode in (False, True))
            how = normal["how"]
            print(f"| {label} | {depth} | {normal['saved']:.1f} | {saving['saved']:.2f} | {normal['peak']:.1f} | "
                  f"{saving['peak']:.1f} | {normal['peak_accumulating']:.1f} | {saving['peak_accumulating']:.1f} |")
    print(f"\n(peak measured as {how})")


def _run_peer(python: Path, script: str, what: str) -> list[tuple[str, float]]:
    result = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=300)
    if result.returncode:
        print(f"({what} failed: {result.stderr.strip().splitlines()[-1:]})")
    return [(line.split()[0], float(line.split()[1])) for line in result.stdout.splitlines() if line.strip()]


_SAVED_BYTES_SNIPPET = f"""
def saved(run):
    storages = {{}}
    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes(); return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(storages.values()) / {MIB}
def sub(i, o):
    return nn.Sequential(nn.Linear(i, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, o))
"""


def peer_rows(depths: tuple[int, ...]) -> None:
    """Saved-tensor MiB of FrEIA HEAD and zuko on the same vector chain (both keep every activation)."""
    rows: dict[str, list[tuple[str, float]]] = {}
    if FREIA_HEAD.exists():
        rows["FrEIA HEAD"] = _run_peer(FREIA_HEAD, f"""
import torch, FrEIA.framework as Ff, FrEIA.modules as Fm
from torch import nn
{_SAVED_BYTES_SNIPPET}
for depth in {depths}:
    torch.manual_seed(0)
    inn = Ff.SequenceINN(64)
    for k in range(depth):
        inn.append(Fm.GLOWCouplingBlock, subnet_constructor=sub, clamp=2.0)
        inn.append(Fm.PermuteRandom, seed=k)
    x = torch.randn(256, 64)
    print(depth, saved(lambda: inn(x)))
""", "FrEIA HEAD")
    else:
        print(f"\n(FrEIA HEAD venv {FREIA_HEAD} not found: no FrEIA row)")
    zuko_ok = PEERS.exists() and subprocess.run([str(PEERS), "-c", "import zuko"], capture_output=True).returncode == 0
    if zuko_ok:
        # zuko's closest equivalent: per block a permutation and two affine couplings on complementary halves
        rows["zuko"] = _run_peer(PEERS, f"""
import torch, zuko
from torch import nn
{_SAVED_BYTES_SNIPPET}
for depth in {depths}:
    torch.manual_seed(0)
    mask = torch.arange(64) < 32
    transforms = []
    for k in range(depth):
        order = torch.randperm(64, generator=torch.Generator().manual_seed(k))
        transforms.append(zuko.lazy.UnconditionalTransform(zuko.transforms.PermutationTransform, order, buffer=True))
        for m in (mask, ~mask):
            transforms.append(zuko.flows.GeneralCouplingTransform(64, mask=m, hidden_features=(256, 256)))
    base = zuko.lazy.UnconditionalDistribution(zuko.distributions.DiagNormal, torch.zeros(64), torch.ones(64),
                                               buffer=True)
    flow = zuko.lazy.Flow(transforms, base)
    x = torch.randn(256, 64)
    print(depth, saved(lambda: flow().log_prob(x)))
""", "zuko")
    else:
        print(f"\n(zuko not available: {PEERS} missing or without zuko; no zuko row)")
    if rows:
        print("\n## Peers on the same vector chain, batch 256 (saved-tensor MiB; they keep every activation)\n")
        print("| depth | " + " | ".join(rows) + " |")
        print("|---" * (len(rows) + 1) + "|")
        for index, depth in enumerate(depths):
            cells = [f"{values[index][1]:.1f}" if index < len(values) else "n/a" for values in rows.values()]
            print(f"| {depth} | " + " | ".join(cells) + " |")


def _clock(device: str) -> Callable[[], float]:
    if device == "cuda":
        def wall() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()
        return wall
    return time.process_time


def time_rows(device: str, repeats: int, every: int) -> None:
    clock = "wall time" if device == "cuda" else "process CPU time"
    print(f"\n## Training-step time (forward + backward; median of {repeats} interleaved repeats, {clock})\n")
    print(f"| model | depth | normal ms | memory_saving=True ms (ratio) | memory_saving={every} ms (ratio) |")
    print("|---|---|---|---|---|")
    now = _clock(device)
    # the larger batches show the per-step overhead of backward's Python amortised, the ratio nearing its floor
    for label, build, x, depth in (("vector chain, batch 256", vector_chain, torch.randn(256, 64), 16),
                                   ("vector chain, batch 512", vector_chain, torch.randn(512, 64), 16),
                                   ("Glow-like 3x32x32, batch 16", image_graph, torch.randn(16, *IMAGE_DIMS), 8),
                                   ("Glow-like 3x32x32, batch 64", image_graph, torch.randn(64, *IMAGE_DIMS), 8)):
        torch.manual_seed(0)
        x = x.to(device)
        model = build(depth).to(device)
        with torch.no_grad():
            model(x)
        modes = (False, True, every)
        models = [copy.deepcopy(model) for _ in modes]  # one per mode: switching modes re-plans
        for mode, copy_ in zip(modes, models):
            copy_.memory_saving = mode
        times: list[list[float]] = [[] for _ in modes]
        for repeat in range(repeats + 1):
            order = range(len(modes)) if repeat % 2 else reversed(range(len(modes)))
            for index in order:
                models[index].zero_grad(set_to_none=True)
                start = now()
                _loss(*models[index](x)).backward()
                if repeat:  # the first round is a warm-up (first-call checks)
                    times[index].append(now() - start)
        normal, saving, every_k = (statistics.median(t) * 1e3 for t in times)
        print(f"| {label} | {depth} | {normal:.1f} | {saving:.1f} ({saving / normal:.2f}) | "
              f"{every_k:.1f} ({every_k / normal:.2f}) |")


def _gradients(model: nn.Module, x: torch.Tensor, mode: bool | int) -> torch.Tensor:
    model.memory_saving = mode
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    _loss(*model(x)).backward()
    return torch.cat([x.grad.flatten()] + [p.grad.flatten() for p in model.parameters()])


def drift_rows(device: str, depths: tuple[int, ...]) -> None:
    print("\n## Gradient drift: max |g_saving - g_normal| / max |g_normal| over inputs and parameters\n")
    print("| depth | float64 | float32 | float32, memory_saving=16 |\n|---|---|---|---|")
    for depth in depths:
        torch.manual_seed(0)
        base = vector_chain(depth, width=16, hidden=32)
        with torch.no_grad():
            for p in base.parameters():
                p.add_(torch.randn_like(p) * 0.01)  # away from the identity init (0.02 overflows float32 at 512)
        row = []
        for dtype, mode in ((torch.float64, True), (torch.float32, True), (torch.float32, 16)):
            model = copy.deepcopy(base).to(device=device, dtype=dtype)
            x = torch.randn(32, 16, device=device, dtype=dtype, generator=None)
            normal = _gradients(model, x, False)
            saving = _gradients(model, x, mode)
            row.append(((saving - normal).abs().max() / normal.abs().max()).item())
        print(f"| {depth} | {row[0]:.1e} | {row[1]:.1e} | {row[2]:.1e} |")


def main() -> None:
    """Print the tables of benchmarks/RESULTS.md's memory-saving section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--every", type=int, default=4, help="k of the memory_saving=k timing column")
    parser.add_argument("--quick", action="store_true", help="depths 8 and 32 only, 3 repeats (a smoke run)")
    parser.add_argument("--skip-peers", action="store_true", help="no FrEIA HEAD / zuko rows")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: steadier on a shared machine)")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "DEPTH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        model_name, depth, mode = args.worker
        print(json.dumps(measure_one(model_name, int(depth), json.loads(mode), args.device)))
        return
    print(f"torch {torch.__version__}, {args.device}, {args.threads} thread(s)")
    memory_rows(args)
    if not args.skip_peers:
        peer_rows((8, 32) if args.quick else (8, 32, 128))
    time_rows(args.device, 3 if args.quick else args.repeats, args.every)
    drift_rows(args.device, (8, 32) if args.quick else (8, 32, 128, 512))


if __name__ == "__main__":
    main()
