"""Per-block training-step time (forward + backward) against FrEIA 0.2's block of the same name.

Each block is built with the same arguments in both libraries and timed on the same input, one thread,
candidates interleaved, median of the repeats. FrEIA (``pip install freia==0.2``) is optional: without
it only our times are printed. Blocks FrEIA 0.2 lacks, or cannot build with these arguments, are marked.

Run: ``python benchmarks/bench_modules.py [--repeats 15]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable

import torch
from bench_framework import median_times
from torch import nn

import freia_graph.modules as Fm

try:
    import FrEIA.modules as FrEIA_modules
except ImportError:  # FrEIA is optional
    FrEIA_modules = None

BATCH = 64
VECTOR, IMAGE, CONDITION = [(16,)], [(4, 16, 16)], [(8,)]


def fc(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(c_in, 64), nn.ReLU(), nn.Linear(64, c_out))


def conv(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, c_out, 3, padding=1))


def _orthogonal(size: int) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(size, size, generator=torch.Generator().manual_seed(0)))[0]


# (block name, dims_in, dims_c, keyword arguments)
SPECS: list[tuple[str, list, list, dict]] = [
    ("NICECouplingBlock", VECTOR, [], {"subnet_constructor": fc}),
    ("RNVPCouplingBlock", VECTOR, [], {"subnet_constructor": fc}),
    ("GLOWCouplingBlock", VECTOR, [], {"subnet_constructor": fc}),
    ("GLOWCouplingBlock", VECTOR, CONDITION, {"subnet_constructor": fc}),
    ("GLOWCouplingBlock", IMAGE, [], {"subnet_constructor": conv}),
    ("GINCouplingBlock", VECTOR, [], {"subnet_constructor": fc}),
    ("AffineCouplingOneSided", VECTOR, [], {"subnet_constructor": fc}),
    ("ConditionalAffineTransform", VECTOR, CONDITION, {"subnet_constructor": fc}),
    ("AllInOneBlock", VECTOR, [], {"subnet_constructor": fc}),
    ("AllInOneBlock", IMAGE, [], {"subnet_constructor": conv}),
    ("AllInOneBlock", VECTOR, [], {"subnet_constructor": fc, "learned_householder_permutation": 4}),
    ("PermuteRandom", VECTOR, [], {"seed": 0}),
    ("PermuteRandom", IMAGE, [], {"seed": 0}),
    ("FixedLinearTransform", VECTOR, [], {"M": _orthogonal(16), "b": torch.zeros(16)}),
    ("Fixed1x1Conv", IMAGE, [], {"M": _orthogonal(4)}),
    ("ActNorm", IMAGE, [], {}),
    ("HaarDownsampling", IMAGE, [], {}),
    ("IRevNetDownsampling", IMAGE, [], {}),
    ("Flatten", IMAGE, [], {}),
    ("LearnedElementwiseScaling", VECTOR, [], {}),
    ("InvertibleSigmoid", VECTOR, [], {}),
    ("OrthogonalTransform", VECTOR, [], {}),
    ("HouseholderPerm", VECTOR, [], {"n_reflections": 4}),
    ("IResNetLayer", VECTOR, [], {"internal_size": 32, "n_internal_layers": 2, "jacobian_iterations": 10,
                                  "fixed_point_iterations": 20}),
    ("RationalQuadraticSpline", VECTOR, [], {"subnet_constructor": fc}),
]


def training_step(block: nn.Module, x: torch.Tensor, c: list[torch.Tensor]) -> Callable[[], None]:
    def step() -> None:
        outputs, log_det = block([x], c=c) if c else block([x])
        loss = sum(out.square().sum() for out in outputs)
        if isinstance(log_det, torch.Tensor) and log_det.requires_grad:
            loss = loss - log_det.sum()
        if loss.requires_grad:
            loss.backward()
    return step


def build(library, name: str, dims_in: list, dims_c: list, kwargs: dict) -> nn.Module | str:
    """The block, or why it could not be built."""
    block_class = getattr(library, name, None)
    if block_class is None:
        return "not in this library"
    torch.manual_seed(0)
    try:
        return block_class(dims_in, dims_c=dims_c, **kwargs) if dims_c else block_class(dims_in, **kwargs)
    except Exception as error:  # noqa: BLE001 - reported in the table
        return f"fails: {type(error).__name__}"


def row(name: str, dims_in: list, dims_c: list, kwargs: dict, repeats: int) -> str:
    torch.manual_seed(1)
    x = torch.randn(BATCH, *dims_in[0]).requires_grad_(True)
    c = [torch.randn(BATCH, *shape) for shape in dims_c]
    candidates, notes = {}, []
    for label, library in (("ours", Fm), ("FrEIA 0.2", FrEIA_modules)):
        if library is None:
            continue
        block = build(library, name, dims_in, dims_c, kwargs)
        if isinstance(block, str):
            notes.append(f"{label}: {block}")
            continue
        step = training_step(block, x, c)
        try:
            step()
        except Exception as error:  # noqa: BLE001 - reported in the table
            notes.append(f"{label} fails: {type(error).__name__}")
            continue
        candidates[label] = step
    times = median_times(candidates, repeats, 5)
    shapes = "x".join(map(str, dims_in[0])) + (" | c " + "x".join(map(str, dims_c[0])) if dims_c else "")
    ours = f"{times['ours'] * 1e6:.0f} µs" if "ours" in times else "—"
    theirs = f"{times['FrEIA 0.2'] * 1e6:.0f} µs" if "FrEIA 0.2" in times else "—"
    ratio = f"{times['ours'] / times['FrEIA 0.2']:.2f}" if len(times) == 2 else "—"
    extra = next((k for k in kwargs if k not in ("subnet_constructor", "seed", "M", "b")), "")
    return f"| {name}{f' ({extra})' if extra else ''} | {shapes} | {ours} | {theirs} | {ratio} | {'; '.join(notes)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {platform.machine()}, 1 thread, batch {BATCH}, "
          f"median of {args.repeats} interleaved repeats of forward+backward")
    print("| block | shape | ours | FrEIA 0.2 | ours / FrEIA | notes |")
    print("|---|---|---|---|---|---|")
    for spec in SPECS:
        print(row(*spec, args.repeats), flush=True)


if __name__ == "__main__":
    main()
