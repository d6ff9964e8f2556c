"""Memory-saving fast paths in closed form: ActNorm, the learned channel matrices, the 2x2 resamplings,
Split and Concat rebuild their inputs and derive every gradient without recomputation.

Each case compares the gradients w.r.t. inputs and every parameter with the normal mode in float64, after
perturbing the parameters, in both directions, with a loss on the outputs and the log-det and with the
log-det alone; a spy proves every hook accepted.
"""

from __future__ import annotations

import collections
import math

import pytest
import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.modules.permutations import _LearnedChannelMatrix
from freia_graph.modules.reshapes import _SpaceToDepth
from freia_graph.modules.topology import _Sections
from freia_graph.testing import perturb_parameters
from tests.framework.test_memory_saving import _assert_same_gradients

HOOKED = (Fm.ActNorm, _LearnedChannelMatrix, _SpaceToDepth, _Sections)


@pytest.fixture
def accepted(monkeypatch) -> collections.Counter:
    """Counts, per module class, the hook calls that accepted (True) and declined (False)."""
    counts: collections.Counter = collections.Counter()
    for owner in HOOKED:
        hook = owner.__dict__["memory_saving_backward"]

        def spy(self, *args, _hook=hook):
            result = _hook(self, *args)
            counts[type(self).__name__, result is not None] += 1
            return result

        monkeypatch.setattr(owner, "memory_saving_backward", spy)
    return counts


def _conv(c_in: int, c_out: int) -> nn.Module:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


def _image_graph(lu: bool, rebalance: float, by_wavelet: bool, legacy: bool) -> Ff.GraphINN:
    """ActNorm, 1x1 conv, Haar, Split into a coupling branch and an i-RevNet squeeze, Concat, both upsamplings."""
    x = Ff.InputNode(4, 4, 4, name="x")
    norm = Ff.Node(x, Fm.ActNorm, {}, name="actnorm")
    mix = Ff.Node(norm, Fm.InvertibleConv1x1, {"LU_decomposed": lu}, name="conv1x1")
    haar = Ff.Node(mix, Fm.HaarDownsampling, {"rebalance": rebalance, "order_by_wavelet": by_wavelet}, name="haar")
    split = Ff.Node(haar, Fm.Split, {"section_sizes": [6, 10]}, name="split")
    coupled = Ff.Node(split.out0, Fm.GLOWCouplingBlock, {"subnet_constructor": _conv}, name="glow")
    norm_b = Ff.Node(split.out1, Fm.ActNorm, {}, name="actnorm_b")
    joined = Ff.Node([coupled.out0, norm_b.out0], Fm.Concat, {}, name="concat")
    up = Ff.Node(joined, Fm.IRevNetUpsampling, {"legacy_backend": legacy}, name="irevnet_up")
    down = Ff.Node(up, Fm.IRevNetDownsampling, {"legacy_backend": legacy}, name="irevnet_down")
    mix_b = Ff.Node(down, Fm.InvertibleConv1x1, {"LU_decomposed": lu}, name="conv1x1_b")
    haar_up = Ff.Node(mix_b, Fm.HaarUpsampling, {"rebalance": rebalance, "order_by_wavelet": by_wavelet},
                      name="haar_up")
    nodes = [x, norm, mix, haar, split, coupled, norm_b, joined, up, down, mix_b, haar_up, Ff.OutputNode(haar_up)]
    return _initialised(Ff.GraphINN(nodes), torch.randn(7, 4, 4, 4, dtype=torch.float64))


def _vector_chain(lu: bool) -> Ff.SequenceINN:
    inn = Ff.SequenceINN(5)
    inn.append(Fm.ActNorm)
    inn.append(Fm.InvertibleLinear, LU_decomposed=lu)
    inn.append(Fm.RNVPCouplingBlock, subnet_constructor=lambda c_in, c_out: nn.Linear(c_in, c_out))
    inn.append(Fm.ActNorm)
    inn.append(Fm.InvertibleLinear, LU_decomposed=lu)
    return _initialised(inn, torch.randn(9, 5, dtype=torch.float64))


def _initialised(inn: nn.Module, x: torch.Tensor) -> nn.Module:
    torch.manual_seed(0)
    inn = inn.double()
    with torch.no_grad():
        inn(x)  # ActNorm's data-dependent initialisation
    return perturb_parameters(inn, scale=0.3, seed=1)


def _check(inn: nn.Module, shape: tuple[int, ...], rev: bool, outputs_weight: float,
           accepted: collections.Counter) -> None:
    x = torch.randn(3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    if rev:
        with torch.no_grad():
            x = inn(x)[0]
    accepted.clear()
    _assert_same_gradients(inn, [x], [], rev=rev, outputs_weight=outputs_weight)
    assert accepted and not any(took is False for _, took in accepted), accepted


@pytest.mark.parametrize("outputs_weight", [1.0, 0.0])
@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("options", [(True, 1.0, False, False), (False, 0.5, True, True), (True, -2.0, False, True)],
                         ids=["lu", "dense-rebalanced-reordered", "lu-negative-rebalance"])
def test_image_graph(accepted, options, rev, outputs_weight):
    _check(_image_graph(*options), (4, 4, 4), rev, outputs_weight, accepted)
    names = {name for name, _ in accepted}
    assert names >= {"ActNorm", "InvertibleConv1x1", "HaarDownsampling", "HaarUpsampling", "Split", "Concat",
                     "IRevNetUpsampling", "IRevNetDownsampling"}


@pytest.mark.parametrize("outputs_weight", [1.0, 0.0])
@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("lu", [True, False])
def test_vector_chain(accepted, lu, rev, outputs_weight):
    _check(_vector_chain(lu), (5,), rev, outputs_weight, accepted)
    assert {name for name, _ in accepted} == {"ActNorm", "InvertibleLinear"}


def test_frozen_parameters_get_no_gradient(accepted):
    inn = _vector_chain(lu=True)
    for block in (inn[0], inn[1]):
        block.requires_grad_(False)
    _check(inn, (5,), rev=False, outputs_weight=1.0, accepted=accepted)
    assert all(p.grad is None for block in (inn[0], inn[1]) for p in block.parameters())


def test_micro_batches_accumulate_in_place(accepted):
    """With ``.grad`` already set, the closed-form gradients are added into it, as the normal mode adds."""
    inn = _vector_chain(lu=True)
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    results = []
    for mode in (False, True):
        inn.memory_saving = mode
        inn.zero_grad(set_to_none=False)
        for micro_batch in x:
            z, log_det = inn(micro_batch)
            (z.sin().sum() - log_det.sum()).backward()
        results.append([p.grad.clone() for p in inn.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert accepted["ActNorm", True] == 4


class OffsetActNorm(Fm.ActNorm):
    """ActNorm followed by adding 1 (the hook would drop the offset)."""

    def forward(self, x_or_z, c=None, rev=False, jac=True):
        if rev:
            return super().forward([x_or_z[0] - 1.0], c, rev, jac)
        (y,), log_det = super().forward(x_or_z, c, rev, jac)
        return (y + 1.0,), log_det


class SteeperConv(Fm.InvertibleConv1x1):
    """Mixes with 2 W (the hook, building W from the LU factors, would drop the 2)."""

    def _weight(self):
        return 2 * super()._weight()

    def _inverse_weight(self):
        return super()._inverse_weight() / 2

    def _log_det(self):
        return super()._log_det() + self.positions * self.lower.shape[0] * math.log(2.0)


@pytest.mark.parametrize("rev", [False, True])
def test_subclasses_changing_the_maths_get_the_generic_path(accepted, rev):
    torch.manual_seed(0)
    inn = Ff.SequenceINN(3, 2, 2)
    inn.append(OffsetActNorm)
    inn.append(SteeperConv)
    inn.append(Fm.GLOWCouplingBlock, subnet_constructor=_conv)
    inn = _initialised(inn, torch.randn(6, 3, 2, 2, dtype=torch.float64))
    x = torch.randn(3, 3, 2, 2, dtype=torch.float64)
    if rev:
        with torch.no_grad():
            x = inn(x)[0]
    _assert_same_gradients(inn, [x], [], rev=rev)
    assert accepted == {("OffsetActNorm", False): 1, ("SteeperConv", False): 1}


def test_hooks_decline_under_autocast():
    norm = Fm.ActNorm([(3, 2, 2)], init_data=torch.randn(4, 3, 2, 2))
    mix = Fm.InvertibleConv1x1([(3, 2, 2)])
    y = torch.randn(2, 3, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for block in (norm, mix):
            assert block.memory_saving_backward([y], None, False, [torch.ones_like(y)], None, None) is None
    assert mix.memory_saving_backward([y], None, False, [None], torch.ones(2), _NoBackprop()) is not None


def test_actnorm_declines_before_initialisation():
    norm = Fm.ActNorm([(3,)])
    assert norm.memory_saving_backward([torch.randn(2, 3)], None, False, [None], torch.ones(2), None) is None


class _NoBackprop:
    def accumulate(self, parameter, grad):
        pass
