"""Graphs, chains and the presets under ``torch.autocast``: float32 log-dets, finite training steps.

Blocks may return bfloat16 log-dets under autocast (a coupling's scale comes from a bfloat16 subnet);
the graph's total must still be float32, accumulated in float32, and close to the float32 total.
"""

from __future__ import annotations

import pytest
import torch

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.nn import ConvSubnet, MLPSubnet
from freia_graph.presets import coupling_flow, multiscale_flow
from freia_graph.testing import perturb_parameters

BF16_RTOL = 0.05  # as in tests/modules/test_autocast.py


def glow_chain(depth: int = 6, dims: int = 6, conditional: bool = False) -> Ff.GraphINN:
    """GLOW couplings (bfloat16 log-dets under autocast) with permutations (number log-dets) between them."""
    torch.manual_seed(0)
    nodes: list = [Ff.InputNode(dims, name="x")]
    conditions = [Ff.ConditionNode(3, name="c")] if conditional else []
    for k in range(depth):
        nodes.append(Ff.Node(nodes[-1], Fm.GLOWCouplingBlock, {"subnet_constructor": MLPSubnet(hidden=8, depth=1)},
                             conditions=conditions or None, name=f"coupling{k}"))
        nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": k}, name=f"permute{k}"))
    inn = Ff.GraphINN([*nodes, *conditions, Ff.OutputNode(nodes[-1], name="z")])
    perturb_parameters(inn, 0.05, seed=1)
    return inn


def close(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    return bool((actual - expected).abs().max() <= BF16_RTOL * max(1.0, expected.abs().max().item()))


def check_float32_total(inn: Ff.GraphINN | Ff.SequenceINN) -> None:
    """Under bfloat16 autocast: float32 total log-dets both ways, close to float32's; outputs and round trip too."""
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    z32, log_det32 = inn(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # with grad: memory saving runs only then
        z, log_det = inn(x)
        x_back, log_det_rev = inn(z, rev=True)
    assert log_det.dtype == log_det_rev.dtype == torch.float32
    assert close(log_det, log_det32) and close(-log_det_rev, log_det32)
    assert close(z, z32) and close(x_back, x)


@pytest.mark.parametrize("memory_saving", [False, True])
def test_graph_log_det_is_float32_under_autocast(memory_saving: bool):
    inn = glow_chain()
    inn.memory_saving = memory_saving
    check_float32_total(inn)


def test_sequence_log_det_is_float32_under_autocast():
    inn = Ff.SequenceINN(6)
    for k in range(4):
        inn.append(Fm.RNVPCouplingBlock, subnet_constructor=MLPSubnet(hidden=8, depth=1))
        inn.append(Fm.PermuteRandom, seed=k)
    perturb_parameters(inn, 0.05, seed=1)
    check_float32_total(inn)


def test_memory_saving_gradients_under_autocast():
    """Memory-saving backprop under autocast (backward recomputes the blocks) gives the normal mode's gradients."""
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    gradients = []
    for memory_saving in (False, True):
        inn = glow_chain()
        inn.memory_saving = memory_saving
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z, log_det = inn(x)
            loss = (0.5 * z.float().square().sum(dim=1) - log_det).mean()
        loss.backward()
        gradients.append(torch.cat([p.grad.flatten() for p in inn.parameters()]))
    assert gradients[1].dtype == torch.float32
    # backward recomputes under autocast too, and couplings scale in float32, so inversion rebuilds the
    # activations exactly: the modes agree to float32 round-off (recomputing in float32 instead, or
    # scaling in bfloat16, differs by ~3e-2 of scale)
    torch.testing.assert_close(gradients[1], gradients[0], rtol=1e-5, atol=1e-6 * gradients[0].abs().max().item())


def test_reverse_of_bfloat16_outputs_with_float32_conditions():
    """Under autocast a forward call can return bfloat16 outputs; reversing them with the float32 conditions
    is not refused as a dtype mismatch."""
    inn = Ff.SequenceINN(4)
    inn.append(Fm.FixedLinearTransform, M=2 * torch.eye(4))  # a matrix product: bfloat16 output
    inn.append(Fm.GLOWCouplingBlock, cond=0, cond_shape=(3,), subnet_constructor=MLPSubnet(hidden=8, depth=1))
    x, c = torch.randn(3, 4), torch.randn(3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, _ = inn(x, c=[c])
        x_back, log_det = inn(z, c=[c], rev=True)
    assert torch.isfinite(x_back).all() and log_det.dtype == torch.float32


PRESETS = {
    "GLOW": lambda: coupling_flow(6, depth=2, subnet_constructor=MLPSubnet(hidden=8, depth=1), actnorm=True),
    "RNVP-conditional": lambda: coupling_flow(6, depth=2, coupling="RNVP", dims_c=[(3,)], permutation="learned",
                                              subnet_constructor=MLPSubnet(hidden=8, depth=1)),
    "AllInOne": lambda: coupling_flow(6, depth=2, coupling="AllInOne", permutation="orthogonal",
                                      subnet_constructor=MLPSubnet(hidden=8, depth=1)),
    "RationalQuadraticSpline": lambda: coupling_flow(6, depth=2, coupling="RationalQuadraticSpline",
                                                     subnet_constructor=MLPSubnet(hidden=8, depth=1)),
    "multiscale": lambda: multiscale_flow((1, 8, 8), levels=2, blocks_per_level=1, dims_c=[(3,)],
                                          subnet_constructor=ConvSubnet(hidden=4, depth=1)),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_training_step_under_autocast(preset: str):
    torch.manual_seed(0)
    flow = PRESETS[preset]()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(8, *flow.dims_in[0], generator=generator)
    c = [torch.randn(8, *shape, generator=generator) for shape in flow.dims_c] or None
    optimizer = torch.optim.SGD(flow.parameters(), lr=1e-3)
    for _ in range(2):  # the second step runs after data-dependent initialisation and one update
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z, log_det = flow(x, c)
            latents = z if isinstance(z, tuple) else (z,)
            loss = (sum(t.float().square().flatten(1).sum(1) for t in latents) / 2 - log_det).mean()
        assert log_det.dtype == torch.float32 and torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        for name, parameter in flow.named_parameters():
            assert parameter.dtype == torch.float32, name
            if parameter.grad is not None:
                assert parameter.grad.dtype == torch.float32 and torch.isfinite(parameter.grad).all(), name
        optimizer.step()
