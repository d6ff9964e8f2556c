"""Memory-saving backprop: activation memory, training-step time and gradient drift vs the normal mode.

Activation memory is the bytes of the tensors autograd saves for backward during one forward pass (each
storage counted once, via ``torch.autograd.graph.saved_tensors_hooks``), plus on CUDA the peak allocation
above parameters and gradients during a training step. Run ``python benchmarks/bench_memory.py``
(``--device cuda`` on a GPU); it takes about two minutes on a loaded CPU.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import time
from pathlib import Path

import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.presets import multiscale_flow

__all__ = ["vector_chain", "saved_bytes", "main"]

FREIA_HEAD = Path("/work/envs/freiahead/bin/python")
MIB = 2**20


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


def image_graph(depth: int, dims=(3, 16, 16), memory_saving: bool | int = False) -> Ff.GraphINN:
    """A small Glow-like multi-scale graph (Haar squeeze, ActNorm, 1x1 conv permutation, split-off latents)."""
    flow = multiscale_flow(dims, levels=2, blocks_per_level=depth // 2, actnorm=True, permutation="learned",
                           subnet_constructor=lambda c_in, c_out: nn.Sequential(
                               nn.Conv2d(c_in, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, c_out, 3, padding=1)))
    flow.memory_saving = memory_saving
    return flow


def _loss(outputs, log_det):
    outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
    return sum(0.5 * o.square().sum() for o in outputs) - log_det.sum()


def saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd saves for backward during one forward pass of ``model`` on ``x``.

    Example:
        >>> saved_bytes(nn.Linear(4, 4), torch.zeros(2, 4)) > 0
        True
    """
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x)
    return sum(storages.values())


def _peak_above_parameters(model: nn.Module, x: torch.Tensor) -> float | None:
    if x.device.type != "cuda":
        return None
    model.zero_grad(set_to_none=False)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    _loss(*model(x)).backward()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / MIB


def _step_time(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        _loss(*model(x)).backward()
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def memory_rows(device: str) -> None:
    print("\n## Activation memory (saved-tensor MiB; CUDA: peak MiB above params+grads)\n")
    print("| model | depth | normal saved | memory-saving saved | normal peak | memory-saving peak |")
    print("|---|---|---|---|---|---|")
    cases = [("vector chain 64-d, batch 256", vector_chain, torch.randn(256, 64)),
             ("Glow-like 3x16x16, batch 16", image_graph, torch.randn(16, 3, 16, 16))]
    for label, build, x in cases:
        x = x.to(device)
        for depth in (8, 32, 128):
            torch.manual_seed(0)
            model = build(depth).to(device)
            with torch.no_grad():
                model(x)  # ActNorm's initialisation
            row = []
            for mode in (False, True):
                model.memory_saving = mode
                row.append(saved_bytes(model, x) / MIB)
            peaks = []
            for mode in (False, True):
                model.memory_saving = mode
                peaks.append(_peak_above_parameters(model, x))
            peak = [f"{p:.1f}" if p is not None else "n/a (CPU)" for p in peaks]
            print(f"| {label} | {depth} | {row[0]:.1f} | {row[1]:.2f} | {peak[0]} | {peak[1]} |")


def freia_rows() -> None:
    if not FREIA_HEAD.exists():
        print("\n(FrEIA HEAD venv not found; no comparison row)")
        return
    script = f"""
import torch, FrEIA.framework as Ff, FrEIA.modules as Fm
from torch import nn
def sub(i, o):
    return nn.Sequential(nn.Linear(i, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, o))
for depth in (8, 32, 128):
    torch.manual_seed(0)
    inn = Ff.SequenceINN(64)
    for k in range(depth):
        inn.append(Fm.GLOWCouplingBlock, subnet_constructor=sub, clamp=2.0)
        inn.append(Fm.PermuteRandom, seed=k)
    storages = {{}}
    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes(); return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        inn(torch.randn(256, 64))
    print(depth, sum(storages.values()) / {MIB})
"""
    result = subprocess.run([str(FREIA_HEAD), "-c", script], capture_output=True, text=True, timeout=120)
    print("\n## FrEIA HEAD, same vector chain (saved-tensor MiB; it keeps every activation)\n")
    print("| depth | FrEIA HEAD saved |\n|---|---|")
    for line in result.stdout.split("\n"):
        if line.strip():
            depth, mib = line.split()
            print(f"| {depth} | {float(mib):.1f} |")
    if result.returncode:
        print(f"(FrEIA HEAD failed: {result.stderr.strip().splitlines()[-1:]})")


def time_rows(device: str, repeats: int) -> None:
    print("\n## Training-step time (forward + backward, best of "
          f"{repeats}; ratio memory-saving / normal)\n")
    print("| model | depth | normal ms | memory_saving=True ms (ratio) | memory_saving=1 ms (ratio) |")
    print("|---|---|---|---|---|")
    for label, build, x, depth in (("vector chain, batch 128", vector_chain, torch.randn(128, 64), 16),
                                   ("Glow-like 3x16x16, batch 8", image_graph, torch.randn(8, 3, 16, 16), 8)):
        torch.manual_seed(0)
        x = x.to(device)
        model = build(depth).to(device)
        with torch.no_grad():
            model(x)
        times = []
        for mode in (False, True, 1):
            model.memory_saving = mode
            _step_time(model, x, 1)  # warm-up, and the first call's checks
            times.append(_step_time(model, x, repeats) * 1e3)
        print(f"| {label} | {depth} | {times[0]:.1f} | {times[1]:.1f} ({times[1] / times[0]:.2f}) | "
              f"{times[2]:.1f} ({times[2] / times[0]:.2f}) |")


def _gradients(model: nn.Module, x: torch.Tensor, mode: bool | int) -> torch.Tensor:
    model.memory_saving = mode
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    _loss(*model(x)).backward()
    return torch.cat([x.grad.flatten()] + [p.grad.flatten() for p in model.parameters()])


def drift_rows(device: str) -> None:
    print("\n## Gradient drift: max |g_saving - g_normal| / max |g_normal| over inputs and parameters\n")
    print("| depth | float64 | float32 | float32, memory_saving=16 |\n|---|---|---|---|")
    for depth in (8, 32, 128, 512):
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-freia", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    memory_rows(args.device)
    if not args.skip_freia:
        freia_rows()
    time_rows(args.device, args.repeats)
    drift_rows(args.device)


if __name__ == "__main__":
    main()
