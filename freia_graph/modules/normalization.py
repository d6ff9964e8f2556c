"""Normalisation layers: ActNorm, with data-dependent initialisation that survives saving and loading."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from .base import InvertibleModule, Shape
from .permutations import single_input_shape

__all__ = ["ActNorm"]

# Channels whose initialisation batch has a smaller standard deviation (e.g. a batch of one vector)
# keep scale 1: dividing by a near-zero spread would blow the outputs up.
_MIN_INIT_STD = 1e-6


class ActNorm(InvertibleModule):
    r"""Per-channel affine normalisation with data-dependent initialisation (Glow's ActNorm).

    :math:`z = (x - \mu) \, e^{-\log\sigma}` per channel, with learned ``loc`` :math:`\mu` and
    ``log_scale`` :math:`\log\sigma` of shape ``(C, 1, ..., 1)``, so
    :math:`\log|\det J| = -H W \sum_c \log\sigma_c` (one value for all samples, returned as a 0-dim
    tensor). From Kingma & Dhariwal 2018, "Glow: Generative flow with invertible 1x1 convolutions".

    Initialisation: the first forward pass (or ``init_data``, or an explicit :meth:`initialize`) sets
    :math:`\mu` and :math:`\sigma` to the per-channel mean and (biased) standard deviation of the batch over
    the batch and all spatial positions, so that batch comes out with zero mean and unit variance per
    channel. A channel whose standard deviation is below ``1e-6`` (e.g. a batch of one vector) keeps
    :math:`\sigma = 1` and is only centred, so outputs stay finite.

    The initialised state is the bool buffer ``is_initialized``: it is saved in the ``state_dict``, so a
    module that loads a trained state never re-initialises. The forward pass checks a Python mirror of it
    (``initialized``), so the check is a plain Python branch outside the traced kernel: initialise (one
    forward pass, :meth:`initialize` or loading a state) *before* ``torch.compile``, otherwise the
    initialisation is traced and the graph breaks.

    Reverse before initialisation raises ``RuntimeError``: initialising from latent codes would fit the
    layer to the wrong distribution, so sampling from an untrained, uninitialised layer is refused.

    Differences from FrEIA: statistics are per channel for images (FrEIA's current code computes them per
    position); the standard deviation is the biased one with a floor, so a batch of one gives finite
    outputs (FrEIA gives NaN, issues #76, #89, #121); reverse before initialisation raises instead of
    initialising from ``z``.

    Args:
        dims_in: one shape, ``[(C,)]`` or ``[(C, H, W)]`` (any number of trailing dimensions).
        dims_c: must be empty.
        init_data: optional batch ``(N, *dims_in[0])`` to initialise from right away.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> block = ActNorm([(3,)])
        >>> x = 5 + 2 * torch.randn(100, 3)
        >>> (z,), log_det = block([x])
        >>> z.mean(0).abs().max().item() < 1e-5, [round(s, 4) for s in z.std(0, correction=0).tolist()]
        (True, [1.0, 1.0, 1.0])
        >>> (x_back,), _ = block([z], rev=True)
        >>> torch.allclose(x_back, x, atol=1e-5), block.initialized
        (True, True)
    """

    is_initialized: Tensor

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        init_data: Tensor | None = None,
    ):
        super().__init__(dims_in, dims_c)
        shape = single_input_shape(self)
        parameter_shape = (shape[0], *[1] * (len(shape) - 1))
        self.positions = math.prod(shape[1:])
        self.log_scale = nn.Parameter(torch.zeros(parameter_shape))
        self.loc = nn.Parameter(torch.zeros(parameter_shape))
        self.register_buffer("is_initialized", torch.tensor(False))
        self.initialized = False
        self.register_load_state_dict_post_hook(_sync_initialized_flag)
        if init_data is not None:
            self.initialize(init_data)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``loc`` and ``log_scale`` so that ``x`` comes out with zero mean and unit variance per channel.

        For multi-process training, either call this on every rank with the same batch, or call it on rank
        0 and broadcast the parameters and the ``is_initialized`` buffer (e.g. DDP does so when it wraps
        an initialised model); otherwise each rank initialises from its own batch.

        Args:
            x: a batch of shape ``(N, *dims_in[0])``.
        """
        expected = self.dims_in[0]
        if not isinstance(x, Tensor):
            raise TypeError(f"ActNorm.initialize expects a tensor of shape (N, *{expected}), got {x!r}")
        if tuple(x.shape[1:]) != expected or x.shape[0] < 1:
            raise ValueError(f"ActNorm.initialize expects shape (N, *{expected}), got {tuple(x.shape)}")
        per_channel = x.detach().movedim(1, 0).reshape(expected[0], -1)
        std, mean = torch.std_mean(per_channel, dim=1, correction=0)
        log_std = torch.where(std > _MIN_INIT_STD, std.clamp_min(_MIN_INIT_STD).log(), 0.0)
        self.loc.copy_(mean.reshape(self.loc.shape))
        self.log_scale.copy_(log_std.reshape(self.log_scale.shape))
        self.is_initialized.fill_(True)
        self.initialized = True

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        x = x_or_z[0]
        if not self.initialized:
            if rev:
                raise RuntimeError(
                    "ActNorm is not initialised: run a forward pass on data, call initialize(x), or load a "
                    "state_dict before running it in reverse"
                )
            self.initialize(x)
        log_det = self.log_scale.sum() * self.positions
        if rev:
            return (x * self.log_scale.exp() + self.loc,), log_det
        return ((x - self.loc) * torch.exp(-self.log_scale),), -log_det

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The shapes are unchanged."""
        return list(input_dims)


def _sync_initialized_flag(module: nn.Module, incompatible_keys: object) -> None:
    module.initialized = bool(module.is_initialized)
