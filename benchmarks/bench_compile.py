"""torch.compile of whole flows: compile time and the speed-up of a compiled training step over eager.

Each case runs in a fresh worker process with its own empty inductor cache (so compile times are cold, as
a user's first run), one torch thread. A worker builds the flow, times eager training steps (forward,
negative log-likelihood, backward), then compiles the module with ``torch.compile(model, dynamic=True)``
(the batch dimension symbolic, as the README recommends), times the first compiled step (the compile
time: forward and backward graphs) and then compiled steps. With ``--freia-python`` the same code runs on
FrEIA HEAD (the cases use only the API both libraries share), in the same run, for the compile-time
comparison. Steps alternate eager and compiled within each repeat (this machine is noisy).

Cases:
  deep-narrow   64 x (GLOW coupling + random permutation) on 8-dim vectors, batch 64, subnets 8->32->8:
                framework and Python overhead dominate, which is what compiling removes;
  vector-64     16 x (GLOW + permutation) on 64-dim vectors, batch 256, subnets 64->256->256->64;
  glow-32       a Glow-like multi-scale flow on 3x32x32 images (Haar downsampling, ActNorm, GLOW couplings
                with 3x3 convolutions, permutations, half the channels split off per level), batch 16.

Run: ``python benchmarks/bench_compile.py [--cases ...] [--repeats 7] [--freia-python PATH]``; prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The worker: argv = library, case, repeats; prints "compile_s eager_ms compiled_ms".
WORKER = r"""
import statistics, sys, time
import torch
from torch import nn
if sys.argv[1] == "freia_graph":
    import freia_graph.framework as Ff, freia_graph.modules as Fm
else:
    import FrEIA.framework as Ff, FrEIA.modules as Fm
torch.set_num_threads(1)
torch.manual_seed(0)

def mlp(hidden, layers):
    def subnet(c_in, c_out):
        widths = [c_in] + [hidden] * layers + [c_out]
        modules = []
        for a, b in zip(widths[:-1], widths[1:]):
            modules += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*modules[:-1])
    return subnet

def conv(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, c_out, 3, padding=1))

def chain(dim, blocks, subnet):
    inn = Ff.SequenceINN(dim)
    for k in range(blocks):
        inn.append(Fm.GLOWCouplingBlock, subnet_constructor=subnet, clamp=2.0)
        inn.append(Fm.PermuteRandom, seed=k)
    return inn

def glow_like(blocks_per_level=4):
    nodes = [Ff.InputNode(3, 32, 32, name="x")]
    outputs = []
    for level in range(2):
        nodes.append(Ff.Node(nodes[-1], Fm.HaarDownsampling, {}, name=f"haar{level}"))
        for k in range(blocks_per_level):
            nodes.append(Ff.Node(nodes[-1], Fm.ActNorm, {}, name=f"actnorm{level}_{k}"))
            nodes.append(Ff.Node(nodes[-1], Fm.GLOWCouplingBlock, {"subnet_constructor": conv, "clamp": 2.0},
                                 name=f"glow{level}_{k}"))
            nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": 10 * level + k}, name=f"perm{level}_{k}"))
        channels = nodes[-1].output_dims[0][0]
        split = Ff.Node(nodes[-1], Fm.Split, {"section_sizes": [channels // 2, channels // 2], "dim": 0},
                        name=f"split{level}")
        flat = Ff.Node(split.out1, Fm.Flatten, {}, name=f"flat{level}")
        nodes += [split, flat]
        outputs.append(flat)
        nodes.append(split)  # the kept half continues
    last = Ff.Node(nodes[-1].out0, Fm.Flatten, {}, name="flat_last")
    nodes.append(last)
    merged = Ff.Node([o.out0 for o in outputs] + [last.out0], Fm.Concat, {"dim": 0}, name="concat")
    nodes += [merged, Ff.OutputNode(merged, name="z")]
    unique = list(dict.fromkeys(nodes))
    return Ff.GraphINN(unique)

case = sys.argv[2]
if case == "deep-narrow":
    model, x = chain(8, 64, mlp(32, 1)), torch.randn(64, 8)
elif case == "vector-64":
    model, x = chain(64, 16, mlp(256, 2)), torch.randn(256, 64)
else:
    model, x = glow_like(), torch.randn(16, 3, 32, 32)
for p in model.parameters():  # away from the identity initialisation, as after some training
    if p.requires_grad:
        p.data.add_(0.01 * torch.randn_like(p))
with torch.no_grad():
    model(x)  # ActNorm's data-dependent initialisation, and the first-call checks

def step(m):
    z, log_det = m(x)
    z = z if isinstance(z, torch.Tensor) else z[0]
    loss = (0.5 * z.square().flatten(1).sum(1) - log_det).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)

compiled = torch.compile(model, dynamic=True)
start = time.perf_counter()
step(compiled)
compile_s = time.perf_counter() - start
eager, fast = [], []
for _ in range(int(sys.argv[3])):
    for m, times in ((model, eager), (compiled, fast)):
        start = time.perf_counter()
        step(m)
        times.append(time.perf_counter() - start)
print(compile_s, statistics.median(eager) * 1e3, statistics.median(fast) * 1e3)
"""

CASES = ("deep-narrow", "vector-64", "glow-32")


def run_case(python: str, library: str, case: str, repeats: int) -> list[float] | str:
    """Run one case in a fresh process with a fresh inductor cache; its three figures, or the error."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "TORCHINDUCTOR_CACHE_DIR": cache}
        result = subprocess.run([python, "-c", WORKER, library, case, str(repeats)], capture_output=True,
                                text=True, env=env, cwd="/")
    if result.returncode:
        return (result.stderr.strip().splitlines() or ["failed"])[-1]
    return [float(word) for word in result.stdout.split()[-3:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--freia-python", default="/work/envs/freiahead/bin/python",
                        help="a Python with FrEIA installed (skipped when missing)")
    args = parser.parse_args()
    libraries = {"freia_graph": sys.executable}
    if Path(args.freia_python).exists():
        libraries["FrEIA HEAD"] = args.freia_python
    print("| case | library | compile s | eager step ms | compiled step ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for case in args.cases:
        for library, python in libraries.items():
            figures = run_case(python, "freia_graph" if library == "freia_graph" else "FrEIA", case, args.repeats)
            if isinstance(figures, str):
                print(f"| {case} | {library} | failed: {figures} | | | |", flush=True)
                continue
            compile_s, eager, compiled = figures
            print(f"| {case} | {library} | {compile_s:.1f} | {eager:.2f} | {compiled:.2f} | {eager / compiled:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
