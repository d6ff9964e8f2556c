"""Graphs on every device (the CPU, and CUDA where present): forward/reverse, memory saving, sampling,
and no host-device synchronisation in a CUDA call.

The CUDA cases skip cleanly without a device; ``benchmarks/gpu_check.sh`` runs them on a CUDA machine.
"""

from __future__ import annotations

import pytest
import torch

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.distributions import Flow
from freia_graph.nn import MLPSubnet
from freia_graph.testing import perturb_parameters
from tests.devices import requires_cuda


def conditional_graph(device: str) -> Ff.GraphINN:
    """A conditional graph with a split, couplings of three kinds, a fixed permutation and a merge."""
    torch.manual_seed(0)
    subnet = MLPSubnet(hidden=8, depth=1)
    x, c = Ff.InputNode(6, name="x"), Ff.ConditionNode(3, name="c")
    norm = Ff.Node(x, Fm.ActNorm, name="actnorm")
    glow = Ff.Node(norm, Fm.GLOWCouplingBlock, {"subnet_constructor": subnet}, conditions=c, name="glow")
    permute = Ff.Node(glow, Fm.PermuteRandom, {"seed": 0}, name="permute")
    split = Ff.Node(permute, Fm.Split, {"section_sizes": [4, 2]}, name="split")
    spline = Ff.Node((split, 0), Fm.RationalQuadraticSpline, {"subnet_constructor": subnet}, name="spline")
    merge = Ff.Node([(spline, 0), (split, 1)], Fm.Concat, name="merge")
    linear = Ff.Node(merge, Fm.InvertibleLinear, name="linear")
    inn = Ff.GraphINN([x, c, norm, glow, permute, split, spline, merge, linear, Ff.OutputNode(linear, name="z")])
    inn(torch.randn(16, 6), torch.randn(16, 3))  # data-dependent initialisation, on the CPU
    perturb_parameters(inn, 0.05, seed=1)
    return inn.to(device)


def inputs(device: str, batch: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return torch.randn(batch, 6, generator=generator).to(device), torch.randn(batch, 3, generator=generator).to(device)


def test_forward_and_reverse(device: str):
    inn = conditional_graph(device)
    x, c = inputs(device)
    z, log_det = inn(x, c)
    x_back, log_det_rev = inn(z, c, rev=True)
    assert z.device.type == log_det.device.type == x_back.device.type == device
    torch.testing.assert_close(x_back, x, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(log_det_rev, -log_det, atol=1e-4, rtol=1e-4)
    if device != "cpu":  # the same answer as on the CPU
        z_cpu, log_det_cpu = conditional_graph("cpu")(x.cpu(), c.cpu())
        torch.testing.assert_close(z.cpu(), z_cpu, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(log_det.cpu(), log_det_cpu, atol=1e-4, rtol=1e-4)


def test_memory_saving_gives_the_same_gradients(device: str):
    x, c = inputs(device)
    gradients = []
    for memory_saving in (False, True):
        inn = conditional_graph(device)
        inn.memory_saving = memory_saving
        z, log_det = inn(x, c)
        (z.square().sum() / 2 - log_det.sum()).backward()
        gradients.append([p.grad for p in inn.parameters()])
    for plain, saving in zip(*gradients):
        assert saving.device.type == device
        torch.testing.assert_close(saving, plain, atol=1e-5, rtol=1e-5)


def test_flow_samples_on_the_device(device: str):
    flow = Flow(conditional_graph(device))
    _, c = inputs(device, batch=4)
    samples, log_prob = flow.sample_with_log_prob(4, c)
    assert samples.device.type == log_prob.device.type == device
    assert samples.shape == (4, 6) and torch.isfinite(log_prob).all()
    torch.testing.assert_close(log_prob, flow.log_prob(samples, c), atol=1e-3, rtol=1e-4)


@requires_cuda
@pytest.mark.parametrize("memory_saving", [False, True])
def test_cuda_calls_do_not_synchronise(memory_saving: bool):
    """Forward and reverse calls (first and steady-state, log-dets accumulated) never wait for the device."""
    inn = conditional_graph("cuda")
    inn.memory_saving = memory_saving
    x, c = inputs("cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):  # the first call verifies the modules' answers, the second is the steady state
            z, log_det = inn(x, c)
            x_back, log_det_rev = inn(z, c, rev=True)
            loss = z.square().sum() - log_det.sum()
        if memory_saving:
            loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.testing.assert_close(x_back, x, atol=1e-4, rtol=1e-4)
