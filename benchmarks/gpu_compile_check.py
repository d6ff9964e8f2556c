"""Compile time and speed-up of a whole flow under torch.compile, on CUDA with CUDA graphs.

A 16-block GLOW flow on 64-dim vectors (batch 256): eager vs ``torch.compile(fullgraph=True,
mode=...)`` for a training step (forward + backward) and for sampling (reverse, no grad), both
directions compiled once. ``--mode reduce-overhead`` (the default on CUDA) records CUDA graphs; on the
CPU the default mode is used, as a smoke test. Part of ``benchmarks/gpu_check.sh``.

    python benchmarks/gpu_compile_check.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from freia_graph.nn import MLPSubnet
from freia_graph.presets import coupling_flow


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_time(step, device: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        step()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _steps(inn, x: torch.Tensor, device: str, cuda_graphs: bool):
    def train() -> None:
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        z, log_det = inn(x)
        (0.5 * z.square().sum(dim=1) - log_det).mean().backward()

    def sample() -> None:
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.no_grad():
            inn(torch.randn_like(x), rev=True)

    return {"training step": train, "sampling": sample}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--mode", default=None, help="torch.compile mode (default: reduce-overhead on CUDA)")
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    mode = args.mode or ("reduce-overhead" if args.device == "cuda" else "default")
    torch.manual_seed(0)
    inn = coupling_flow(64, depth=args.depth, subnet_constructor=MLPSubnet(hidden=128, depth=1)).to(args.device)
    x = torch.randn(256, 64, device=args.device)
    eager = _steps(inn, x, args.device, cuda_graphs=False)
    compiled_inn = torch.compile(inn, fullgraph=True, mode=mode)
    compiled = _steps(compiled_inn, x, args.device, cuda_graphs=mode == "reduce-overhead")
    print(f"device {args.device}, mode {mode}, {args.depth} GLOW blocks, 64 dims, batch 256")
    for name in eager:
        eager[name]()  # warm-up (and data-dependent initialisation)
        start = time.perf_counter()
        for _ in range(3):  # compile, then the runs CUDA graphs record on
            compiled[name]()
        _synchronize(args.device)
        compile_time = time.perf_counter() - start
        eager_time = _median_time(eager[name], args.device, args.repeats)
        compiled_time = _median_time(compiled[name], args.device, args.repeats)
        print(f"{name:14s} compile {compile_time:6.1f} s   eager {1e3 * eager_time:8.3f} ms   "
              f"compiled {1e3 * compiled_time:8.3f} ms   speed-up {eager_time / compiled_time:5.2f}x")


if __name__ == "__main__":
    main()
