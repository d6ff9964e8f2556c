"""The coupling blocks' memory-saving fast path: the normal mode's gradients, one subnet call per stage.

Each case builds a small chain of one block type (two blocks around a permutation, so that the first
block's outputs are themselves rebuilt), perturbs every parameter away from the near-identity init, and
compares the gradients w.r.t. inputs, conditions and every parameter with the normal mode in float64, in
both directions. Subnet calls are counted to prove the fast path ran: in backward the generic path calls
every subnet twice (inversion, then recomputation), the fast path once.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.testing import perturb_parameters
from tests.framework.test_memory_saving import _assert_same_gradients

WIDTH, CONDITION, BATCH = 6, 3, 5

AFFINE = [Fm.GLOWCouplingBlock, Fm.RNVPCouplingBlock, Fm.GINCouplingBlock, Fm.AffineCouplingOneSided]
CLAMPS = [{}, {"clamp": 0.7, "clamp_activation": "TANH"}, {"clamp": 3.0, "clamp_activation": "SIGMOID"},
          {"clamp_activation": lambda u: torch.sin(u)}]


class CountingSubnet(nn.Module):
    """A small MLP that counts its calls (class-wide, so that counts survive ``deepcopy``)."""

    calls = 0

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(c_in, 8), nn.Tanh(), nn.Linear(8, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CountingSubnet.calls += 1
        return self.layers(x)


def _chain(block: type, conditioned: bool, **kwargs) -> Ff.SequenceINN:
    torch.manual_seed(0)
    inn = Ff.SequenceINN(WIDTH)
    cond = {"cond": 0, "cond_shape": (CONDITION,)} if conditioned else {}
    inn.append(block, subnet_constructor=CountingSubnet, **cond, **kwargs)
    inn.append(Fm.PermuteRandom, seed=1)
    inn.append(block, subnet_constructor=CountingSubnet, **cond, **kwargs)
    inn = inn.double()
    perturb_parameters(inn, scale=0.3, seed=2)
    return inn


def _data(conditioned: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(BATCH, WIDTH, dtype=torch.float64, generator=generator)
    c = torch.randn(BATCH, CONDITION, dtype=torch.float64, generator=generator)
    return [x], ([c] if conditioned else [])


def _backward_subnet_calls(inn: Ff.SequenceINN, x: list[torch.Tensor], c: list[torch.Tensor], rev: bool) -> tuple:
    """(subnet calls in the memory-saving forward, in its backward)."""
    inn.memory_saving = True
    CountingSubnet.calls = 0
    z, log_det = inn(x[0], c=c or None, rev=rev)
    forward = CountingSubnet.calls
    (z.sin().sum() + log_det.sum()).backward()
    inn.memory_saving = False
    return forward, CountingSubnet.calls - forward


def _check(inn: Ff.SequenceINN, conditioned: bool, rev: bool, outputs_weight: float = 1.0,
           fast: bool = True) -> None:
    x, c = _data(conditioned)
    if rev:
        with torch.no_grad():
            x = [inn(x[0], c=c or None)[0]]
    _assert_same_gradients(inn, x, c, rev=rev, outputs_weight=outputs_weight)
    forward, backward = _backward_subnet_calls(inn, x, c, rev)
    assert backward == (forward if fast else 2 * forward), "fast path not taken" if fast else "fast path taken"


@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("conditioned", [False, True])
@pytest.mark.parametrize("clamp", range(len(CLAMPS)))
@pytest.mark.parametrize("block", AFFINE, ids=lambda b: b.__name__)
def test_affine_couplings(block, clamp, conditioned, rev):
    _check(_chain(block, conditioned, **CLAMPS[clamp]), conditioned, rev)


@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("conditioned", [False, True])
def test_nice(conditioned, rev):
    _check(_chain(Fm.NICECouplingBlock, conditioned), conditioned, rev)


@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("clamp", range(len(CLAMPS)))
def test_conditional_affine_transform(clamp, rev):
    _check(_chain(Fm.ConditionalAffineTransform, True, **CLAMPS[clamp]), True, rev)


@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("block", [*AFFINE, Fm.ConditionalAffineTransform], ids=lambda b: b.__name__)
def test_log_det_only_loss(block, rev):
    _check(_chain(block, True), True, rev, outputs_weight=0.0)


def test_uneven_split_and_images():
    torch.manual_seed(0)
    inn = Ff.SequenceINN(5, 4, 4)
    conv = lambda c_in, c_out: nn.Conv2d(c_in, c_out, 3, padding=1)  # noqa: E731
    inn.append(Fm.GLOWCouplingBlock, subnet_constructor=conv, split_len=2, cond=0, cond_shape=(2, 4, 4))
    inn.append(Fm.AffineCouplingOneSided, subnet_constructor=conv, split_len=0.6)
    inn = perturb_parameters(inn.double(), scale=0.2, seed=1)
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    c = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    for rev in (False, True):
        _assert_same_gradients(inn, [x], [c], rev=rev)


class ScaledGLOW(Fm.GLOWCouplingBlock):
    """Overrides forward with other maths: y = 2 * glow(x). The fast path would silently drop the 2."""

    def forward(self, x_or_z, c=None, rev=False, jac=True):
        if rev:
            (x,), log_det = super().forward([x_or_z[0] / 2], c, rev=True, jac=jac)
            return (x,), (log_det - self.channels * torch.log(torch.tensor(2.0)) if jac else None)
        (y,), log_det = super().forward(x_or_z, c, jac=jac)
        return (2 * y,), (log_det + self.channels * torch.log(torch.tensor(2.0)) if jac else None)


class SteeperGLOW(Fm.GLOWCouplingBlock):
    """Overrides a private helper the fast path relies on."""

    def _log_scale(self, raw_scale, rev):
        return 1.5 * super()._log_scale(raw_scale, rev)


class RenamedGLOW(Fm.GLOWCouplingBlock):
    """Changes nothing the fast path relies on: keeps the fast path."""


@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("block", [ScaledGLOW, SteeperGLOW])
def test_subclass_changing_the_maths_gets_the_generic_path(block, rev):
    _check(_chain(block, True), True, rev, fast=False)


def test_subclass_changing_nothing_keeps_the_fast_path():
    _check(_chain(RenamedGLOW, True), True, rev=False)


def test_forward_hook_on_the_block_gets_the_generic_path():
    # hooks that make the block compute g(x) = 2 f(x), and g^-1(z) = f^-1(z / 2) in reverse
    def halve_reverse_input(module, args):
        return ([args[0][0] / 2], *args[1:]) if args[2] else None

    def double_forward_output(module, args, output):
        return None if args[2] else ((2 * output[0][0],), output[1])

    inn = _chain(Fm.GLOWCouplingBlock, False)
    for block in inn:
        if isinstance(block, Fm.GLOWCouplingBlock):
            block.register_forward_pre_hook(halve_reverse_input)
            block.register_forward_hook(double_forward_output)
    _check(inn, False, rev=False, fast=False)


def test_hook_declines_a_conditional_block_called_without_conditions():
    block = Fm.GLOWCouplingBlock([(4,)], [(2,)], subnet_constructor=CountingSubnet)
    y = torch.randn(3, 4)
    assert block.memory_saving_backward([y], None, False, [torch.ones_like(y)], None, None) is None


def test_without_log_det_gradient():
    inn = _chain(Fm.GLOWCouplingBlock, True)
    x, c = _data(True)
    expected, got = [], []
    for mode, grads in ((False, expected), (True, got)):
        inn.memory_saving = mode
        inn.zero_grad(set_to_none=True)
        x0 = x[0].clone().requires_grad_()
        z, _ = inn(x0, c=c)
        z.sin().sum().backward()
        grads.extend([x0.grad] + [p.grad for p in inn.parameters()])
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_autograd_grad_returns_the_parameter_gradients():
    """``.backward()`` hands parameter gradients over step by step; ``autograd.grad`` must still get them all."""
    inn = _chain(Fm.GLOWCouplingBlock, True)
    x, c = _data(True)
    parameters = list(inn.parameters())
    results = []
    for mode in (False, True):
        inn.memory_saving = mode
        z, log_det = inn(x[0], c=c)
        results.append(torch.autograd.grad(z.sin().sum() + log_det.sum(), parameters))
        assert all(p.grad is None for p in parameters)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_backward_with_some_inputs_returns_those_parameter_gradients():
    """``.backward(inputs=...)`` naming some parameters: exactly those get gradients, the normal mode's."""
    inn = _chain(Fm.GLOWCouplingBlock, True)
    x, c = _data(True)
    chosen = list(inn.module_list[0].parameters())[:2]
    grads = []
    for mode in (False, True):
        inn.memory_saving = mode
        inn.zero_grad(set_to_none=True)
        z, log_det = inn(x[0], c=c)
        (z.sin().sum() + log_det.sum()).backward(inputs=chosen)
        grads.append([p.grad for p in chosen])
        assert all(p.grad is None for p in inn.parameters() if all(p is not q for q in chosen))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rev", [False, True])
def test_permutation_is_undone_by_indexing(monkeypatch, rev):
    """PermuteRandom's hook permutes values and gradients back; the gradients equal the normal mode's."""
    calls = []
    hook = Fm.PermuteRandom.memory_saving_backward

    def counting(self, *args):
        result = hook(self, *args)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(Fm.PermuteRandom, "memory_saving_backward", counting)
    inn = _chain(Fm.GLOWCouplingBlock, conditioned=False)
    x, _ = _data(conditioned=False)
    if rev:
        with torch.no_grad():
            x = [inn(x[0])[0]]
    _assert_same_gradients(inn, x, [], rev=rev)
    assert calls and all(calls)


class ShiftedPermutation(Fm.PermuteRandom):
    def forward(self, x_or_z, c=None, rev=False, jac=True):
        (y,), log_det = super().forward(x_or_z, c, rev, jac)
        return ((y - 1.0 if rev else y + 1.0),), log_det


def test_permutation_subclass_changing_forward_gets_the_generic_path():
    torch.manual_seed(0)
    inn = Ff.SequenceINN(WIDTH)
    inn.append(Fm.GLOWCouplingBlock, subnet_constructor=CountingSubnet)
    inn.append(ShiftedPermutation, seed=1)
    inn.append(Fm.GLOWCouplingBlock, subnet_constructor=CountingSubnet)
    inn = inn.double()
    perturb_parameters(inn, scale=0.3, seed=2)
    assert inn.module_list[1].memory_saving_backward([torch.zeros(1, WIDTH)], None, False, [None], None, None) is None
    _assert_same_gradients(inn, _data(conditioned=False)[0], [])
