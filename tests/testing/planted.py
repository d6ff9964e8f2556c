"""Test-only blocks: two correct ones, and copies of them with one planted bug each.

Each entry of ``PLANTED`` names the contract property whose check must catch the bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from freia_graph.modules.base import InvertibleModule


class Coupling(InvertibleModule):
    """A correct affine coupling on vectors: ``z2 = x2 * exp(s(x1, c)) + t(x1, c)``, ``log_det = sum(s)``.

    Initialised at the identity (zero subnet), like most real couplings.
    """

    def __init__(self, dims_in, dims_c=None):
        super().__init__(dims_in, dims_c)
        self.channels = self.dims_in[0][0]
        self.split = self.channels // 2
        condition_size = sum(d[0] for d in self.dims_c)
        self.subnet = nn.Linear(self.split + condition_size, 2 * (self.channels - self.split))
        nn.init.zeros_(self.subnet.weight)
        nn.init.zeros_(self.subnet.bias)

    def scale_and_shift(self, x1: Tensor, c: list[Tensor], rev: bool) -> tuple[Tensor, Tensor]:
        scale, shift = self.subnet(torch.cat([x1, *c], dim=1)).chunk(2, dim=1)
        return torch.tanh(scale), shift

    def log_det(self, scale: Tensor, rev: bool) -> Tensor:
        log_det = scale.sum(dim=1)
        return -log_det if rev else log_det

    def forward(self, x_or_z, c=None, rev=False, jac=True):
        x = x_or_z[0]
        x1, x2 = x[:, : self.split], x[:, self.split :]
        scale, shift = self.scale_and_shift(x1, list(c or []), rev)
        y2 = (x2 - shift) * torch.exp(-scale) if rev else x2 * torch.exp(scale) + shift
        return (torch.cat([x1, y2], dim=1),), self.log_det(scale, rev)

    def output_dims(self, input_dims):
        return list(input_dims)


class Permutation(InvertibleModule):
    """A correct fixed random permutation of vector entries, kept in buffers."""

    def __init__(self, dims_in, dims_c=None):
        super().__init__(dims_in, dims_c)
        perm = torch.randperm(self.dims_in[0][0])
        self.register_buffer("perm", perm)
        self.register_buffer("perm_inv", torch.argsort(perm))

    def forward(self, x_or_z, c=None, rev=False, jac=True):
        return (x_or_z[0][:, self.perm_inv if rev else self.perm],), 0.0

    def output_dims(self, input_dims):
        return list(input_dims)


class WrongLogDetSign(Coupling):
    def log_det(self, scale, rev):
        return -super().log_det(scale, rev)


class ConstantLogDetOffset(Coupling):
    def log_det(self, scale, rev):
        offset = -0.1 if rev else 0.1
        return super().log_det(scale, rev) + offset


class LogDetOnlyRightAtIdentity(Coupling):
    def log_det(self, scale, rev):
        return torch.zeros_like(scale[:, 0])


class LogDetSummedOverBatch(Coupling):
    def log_det(self, scale, rev):
        return super().log_det(scale, rev).sum()


class LogDetWrongShape(Coupling):
    def log_det(self, scale, rev):
        return super().log_det(scale, rev)[:, None]


class ReverseLogDetNotNegated(Coupling):
    def log_det(self, scale, rev):
        return scale.sum(dim=1)


class WrongInversePermutation(Permutation):
    def forward(self, x_or_z, c=None, rev=False, jac=True):
        return (x_or_z[0][:, self.perm],), 0.0


class ModifiesInputInPlace(Coupling):
    def forward(self, x_or_z, c=None, rev=False, jac=True):
        x_or_z[0].clamp_(-100.0, 100.0)
        return super().forward(x_or_z, c, rev, jac)


class OutputDimsLies(Coupling):
    def output_dims(self, input_dims):
        return [(input_dims[0][0] + 1,)]


class ConditionIgnoredInReverse(Coupling):
    def scale_and_shift(self, x1, c, rev):
        return super().scale_and_shift(x1, [torch.zeros_like(t) for t in c] if rev else c, rev)


class ConditionIgnored(Coupling):
    def scale_and_shift(self, x1, c, rev):
        return super().scale_and_shift(x1, [torch.zeros_like(t) for t in c], rev)


class BatchStatisticsCoupleSamples(Coupling):
    def scale_and_shift(self, x1, c, rev):
        scale, shift = super().scale_and_shift(x1, c, rev)
        return scale, shift + x1.mean(dim=0)[: shift.shape[1]]


class ParameterWithoutGradient(Coupling):
    def __init__(self, dims_in, dims_c=None):
        super().__init__(dims_in, dims_c)
        self.temperature = nn.Parameter(torch.ones(1))


class NonDeterministic(Coupling):
    def scale_and_shift(self, x1, c, rev):
        scale, shift = super().scale_and_shift(x1, c, rev)
        return scale + 1e-3 * torch.randn_like(scale), shift


class CrashesWithoutJacobian(Coupling):
    def forward(self, x_or_z, c=None, rev=False, jac=True):
        if jac:
            outputs, log_det = super().forward(x_or_z, c, rev, jac)
        return outputs, log_det


class StateNotInStateDict(Permutation):
    def __init__(self, dims_in, dims_c=None):
        InvertibleModule.__init__(self, dims_in, dims_c)
        # plain attributes: not saved, not moved by .to(), redrawn by every construction
        self.perm = torch.randperm(self.dims_in[0][0])
        self.perm_inv = torch.argsort(self.perm)


class ReturnsListOfOutputs(Coupling):
    def forward(self, x_or_z, c=None, rev=False, jac=True):
        outputs, log_det = super().forward(x_or_z, c, rev, jac)
        return list(outputs), log_det


class OutputsInFloat32(Coupling):
    def forward(self, x_or_z, c=None, rev=False, jac=True):
        (z,), log_det = super().forward(x_or_z, c, rev, jac)
        return (z.float(),), log_det


class NaNLogDet(Coupling):
    def log_det(self, scale, rev):
        return super().log_det(scale, rev) + torch.log(scale.sum(dim=1)) * 0


class ReverseForgetsShift(Coupling):
    def forward(self, x_or_z, c=None, rev=False, jac=True):
        if not rev:
            return super().forward(x_or_z, c, rev, jac)
        x = x_or_z[0]
        scale, _ = self.scale_and_shift(x[:, : self.split], list(c or []), rev)
        return (torch.cat([x[:, : self.split], x[:, self.split :] * torch.exp(-scale)], dim=1),), -scale.sum(1)


@dataclass(frozen=True)
class PlantedBug:
    """A block with a planted bug, the shapes to check it on, and the property that must catch it."""

    module: type
    catches: str
    dims_in: list = field(default_factory=lambda: [(6,)])
    dims_c: list = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.module.__name__


CONDITION = [(3,)]
PLANTED = [
    PlantedBug(WrongLogDetSign, "log_det"),
    PlantedBug(ConstantLogDetOffset, "log_det"),
    PlantedBug(LogDetOnlyRightAtIdentity, "log_det"),
    PlantedBug(LogDetSummedOverBatch, "log_det"),
    PlantedBug(LogDetWrongShape, "log_det_shape"),
    PlantedBug(ReverseLogDetNotNegated, "log_det_symmetry"),
    PlantedBug(WrongInversePermutation, "round_trip"),
    PlantedBug(ReverseForgetsShift, "round_trip"),
    PlantedBug(ModifiesInputInPlace, "no_in_place"),
    PlantedBug(OutputDimsLies, "output_dims"),
    PlantedBug(ConditionIgnoredInReverse, "conditions_used", dims_c=CONDITION),
    PlantedBug(ConditionIgnored, "conditions_used", dims_c=CONDITION),
    PlantedBug(BatchStatisticsCoupleSamples, "batch_independence"),
    PlantedBug(ParameterWithoutGradient, "gradients"),
    PlantedBug(NonDeterministic, "determinism"),
    PlantedBug(CrashesWithoutJacobian, "jac_false"),
    PlantedBug(StateNotInStateDict, "state_dict"),
    PlantedBug(ReturnsListOfOutputs, "output_types"),
    PlantedBug(OutputsInFloat32, "output_types"),
    PlantedBug(NaNLogDet, "finite"),
]
CORRECT = [PlantedBug(Coupling, ""), PlantedBug(Coupling, "", dims_c=CONDITION), PlantedBug(Permutation, "")]
