"""Training under DistributedDataParallel (2 gloo processes on CPU) keeps the ranks identical and equals
training in one process on the concatenated batch, ActNorm's data-dependent initialisation included, in the
normal mode and with memory-saving backprop."""

from __future__ import annotations

import datetime
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm

WORLD_SIZE = 2
STEPS = 20
LOCAL_BATCH = 16
DIMS, COND_DIMS = 6, 3
TIME_LIMIT_S = 300  # only a guard against hangs: the test takes about 30 s of CPU time in all

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def _subnet(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(c_in, 16), nn.Tanh(), nn.Linear(16, c_out))


def _model(memory_saving: bool = False) -> Ff.GraphINN:
    """A conditional flow with every block whose state could drift apart between ranks."""
    torch.manual_seed(0)
    x = Ff.InputNode(DIMS, name="x")
    cond = Ff.ConditionNode(COND_DIMS, name="c")
    norm = Ff.Node(x, Fm.ActNorm, {"sync_init": True}, name="actnorm")
    aio = Ff.Node(norm, Fm.AllInOneBlock, {"subnet_constructor": _subnet}, conditions=cond, name="all_in_one")
    perm = Ff.Node(aio, Fm.PermuteRandom, {"seed": 1}, name="permute")
    glow = Ff.Node(perm, Fm.GLOWCouplingBlock, {"subnet_constructor": _subnet, "clamp": 2.0}, conditions=cond,
                   name="glow")
    return Ff.GraphINN([x, cond, norm, aio, perm, glow, Ff.OutputNode(glow, name="z")], memory_saving=memory_saving)


def _global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + step)
    x = 2.0 + 3.0 * torch.randn(WORLD_SIZE * LOCAL_BATCH, DIMS, generator=generator)
    return x, torch.randn(WORLD_SIZE * LOCAL_BATCH, COND_DIMS, generator=generator)


def _train(model: nn.Module, rank: int | None) -> None:
    """SGD on the negative log-likelihood; ``rank`` None trains on the whole batch, else on the rank's slice."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(STEPS):
        x, c = _global_batch(step)
        if rank is not None:
            x, c = x.chunk(WORLD_SIZE)[rank], c.chunk(WORLD_SIZE)[rank]
        z, log_det = model(x, c=[c])
        loss = (0.5 * z.square().sum(1) - log_det).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _train_in_micro_batches(model: nn.Module, rank: int) -> None:
    """SGD with gradients kept allocated (``zero_grad(set_to_none=False)``) and two micro-batches per step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(STEPS):
        x, c = (t.chunk(WORLD_SIZE)[rank] for t in _global_batch(step))
        optimizer.zero_grad(set_to_none=False)
        for half in (slice(0, LOCAL_BATCH // 2), slice(LOCAL_BATCH // 2, None)):
            z, log_det = model(x[half], c=[c[half]])
            ((0.5 * z.square().sum(1) - log_det).sum() / LOCAL_BATCH).backward()
        optimizer.step()


def _run_rank(rank: int, port: int, out_dir: str, memory_saving: bool, micro_batches: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE,
                            timeout=datetime.timedelta(seconds=60))
    try:
        model = nn.parallel.DistributedDataParallel(_model(memory_saving), gradient_as_bucket_view=micro_batches)
        (_train_in_micro_batches if micro_batches else _train)(model, rank)
        torch.save(model.module.state_dict(), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _spawn_ranks(out_dir: Path, memory_saving: bool, micro_batches: bool = False) -> None:
    context = mp.start_processes(_run_rank, args=(_free_port(), str(out_dir), memory_saving, micro_batches),
                                 nprocs=WORLD_SIZE, join=False, start_method="spawn")
    deadline = time.monotonic() + TIME_LIMIT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD_SIZE} DDP ranks did not finish within {TIME_LIMIT_S} s")


@pytest.mark.parametrize("memory_saving", [False, True], ids=["normal", "memory-saving"])
def test_ddp_ranks_stay_identical_and_match_one_process_on_the_global_batch(tmp_path, memory_saving):
    """With memory saving too: its parameter gradients reach DDP's hooks once each, as in the normal mode."""
    _spawn_ranks(tmp_path, memory_saving)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    reference = _model()
    _train(reference, rank=None)
    expected = reference.state_dict()
    initial = _model().state_dict()
    assert ranks[0].keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), f"ranks differ in {name}"
        torch.testing.assert_close(ranks[0][name], value, atol=1e-5, rtol=1e-5, msg=f"{name} differs from one process")
    initialised = [name for name in expected if name.endswith("is_initialized")]
    assert initialised and all(bool(ranks[rank][name]) for name in initialised for rank in range(WORLD_SIZE))
    moved = [name for name, value in expected.items() if not torch.equal(value, initial[name])]
    assert any("subnet" in name for name in moved) and any(name.endswith("log_scale") for name in moved)


def test_ddp_micro_batches_into_bucket_views_memory_saving_matches_normal_mode(tmp_path):
    """Gradients kept allocated as views of DDP's buckets, two micro-batches per step: memory saving adds each
    step's parameter gradients into them in place, and training ends where the normal mode's does."""
    states = {}
    for memory_saving in (False, True):
        _spawn_ranks(tmp_path, memory_saving, micro_batches=True)
        states[memory_saving] = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]
    for name, value in states[False][0].items():
        assert torch.equal(states[True][0][name], states[True][1][name]), f"ranks differ in {name}"
        torch.testing.assert_close(states[True][0][name], value, atol=1e-5, rtol=1e-5, msg=f"{name} differs")
