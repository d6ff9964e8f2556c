"""Normalisation layers: ActNorm, with data-dependent initialisation that survives saving, loading and DDP."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ._coupling_tools import BackpropFn, FastBackward, fast_backward_fits
from ._state_dict_compat import Entries, register_layout_conversion, reshape_entries
from .base import InvertibleModule, Shape
from .permutations import single_input_shape

__all__ = ["ActNorm"]

# Channels whose initialisation batch has a smaller standard deviation (e.g. a batch of one vector)
# keep scale 1: dividing by a near-zero spread would blow the outputs up.
_MIN_INIT_STD = 1e-6


class ActNorm(InvertibleModule):
    r"""Per-channel affine normalisation with data-dependent initialisation (Glow's ActNorm).

    :math:`z = (x - \mu) \, e^{-\log\sigma}` per channel, with learned ``loc`` :math:`\mu` and
    ``log_scale`` :math:`\log\sigma` of shape ``(1, C, 1, ..., 1)``, so
    :math:`\log|\det J| = -H W \sum_c \log\sigma_c` (one value for all samples, returned as a 0-dim
    tensor). From Kingma & Dhariwal 2018, "Glow: Generative flow with invertible 1x1 convolutions".

    Initialisation: the first forward pass (or ``init_data``, or an explicit :meth:`initialize`) sets
    :math:`\mu` and :math:`\sigma` to the per-channel mean and unbiased standard deviation of the batch
    over the batch and all spatial positions, as FrEIA does, so that batch comes out with zero mean and
    unit (unbiased) standard deviation per channel. Only finite values count: non-finite ones are ignored
    with a ``RuntimeWarning``, and a channel without any finite value raises ``ValueError``, so a NaN
    never becomes a stored scale or offset. A channel whose standard deviation is below ``1e-6`` (e.g. a
    batch of one vector) keeps :math:`\sigma = 1` and is only centred, so outputs stay finite.

    The initialised state is the bool buffer ``is_initialized`` (as in FrEIA HEAD), carried by
    ``state_dict``/``load_state_dict``, ``copy_`` and DDP's broadcasts, so a module that got a trained
    state never re-initialises. The forward pass caches the flag in Python once it is true, so after the
    first call the check is a plain Python branch outside the traced kernel: initialise (one forward
    pass, :meth:`initialize` or loading a state) *before* ``torch.compile``.

    Multi-process training (DDP): build ActNorm with ``sync_init=True``. Then the initialisation
    statistics are all-reduced over the default process group, so every rank initialises from the
    global batch, exactly as one process would on the concatenated batches (all ranks must then run
    their first forward pass together, which DDP training does). Alternatively initialise on rank 0
    before wrapping the model in ``DistributedDataParallel``: DDP broadcasts the parameters and the
    ``is_initialized`` buffer to the other ranks.

    Reverse before initialisation raises ``RuntimeError``: initialising from latent codes would fit the
    layer to the wrong distribution, so sampling from an untrained, uninitialised layer is refused.

    State dicts: the layout is FrEIA HEAD's (``log_scale``, ``loc`` of shape ``(1, C, 1, ..., 1)``,
    ``is_initialized``); FrEIA 0.2's (``scale``, ``bias`` with :math:`z = x e^{s} + b`, converted exactly:
    :math:`\log\sigma = -s`, :math:`\mu = -b e^{-s}`) and earlier freia_graph's (shape ``(C, 1, ..., 1)``)
    load too.

    Differences from FrEIA: a channel with (near) zero spread keeps scale 1 (FrEIA HEAD raises, FrEIA 0.2
    gives NaN, issues #76, #89, #121); non-finite values are ignored when initialising; reverse before
    initialisation raises instead of initialising from ``z``; ``sync_init`` is not in FrEIA.

    Args:
        dims_in: one shape, ``[(C,)]`` or ``[(C, H, W)]`` (any number of trailing dimensions).
        dims_c: must be empty.
        init_data: optional batch ``(N, *dims_in[0])`` to initialise from right away.
        sync_init: all-reduce the initialisation statistics over ``torch.distributed``'s default group
            (when it is initialised), so every rank initialises from the global batch.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> block = ActNorm([(3,)])
        >>> x = 5 + 2 * torch.randn(100, 3)
        >>> (z,), log_det = block([x])
        >>> z.mean(0).abs().max().item() < 1e-5, [round(s, 4) for s in z.std(0).tolist()]
        (True, [1.0, 1.0, 1.0])
        >>> (x_back,), _ = block([z], rev=True)
        >>> torch.allclose(x_back, x, atol=1e-5), block.initialized
        (True, True)
    """

    is_initialized: Tensor
    _memory_saving_vetted = True

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        init_data: Tensor | None = None,
        sync_init: bool = False,
    ):
        super().__init__(dims_in, dims_c)
        shape = single_input_shape(self)
        if not isinstance(sync_init, bool):
            raise TypeError(f"ActNorm sync_init must be a bool, got {sync_init!r}")
        self.sync_init = sync_init
        parameter_shape = (1, shape[0], *[1] * (len(shape) - 1))
        self.positions = math.prod(shape[1:])
        self.log_scale = nn.Parameter(torch.zeros(parameter_shape))
        self.loc = nn.Parameter(torch.zeros(parameter_shape))
        self.register_buffer("is_initialized", torch.tensor(False))
        self._known_initialized = False
        register_layout_conversion(self, load=self._convert_layout)
        self.register_load_state_dict_post_hook(_forget_cached_flag)
        if init_data is not None:
            self.initialize(init_data)

    @property
    def initialized(self) -> bool:
        """Whether the layer has been initialised (the ``is_initialized`` buffer, as a Python bool)."""
        return bool(self.is_initialized)

    def _convert_layout(self, entries: Entries) -> Entries:
        if "scale" in entries and "bias" in entries and "log_scale" not in entries:
            # FrEIA 0.2: z = x exp(scale) + bias, stored only once initialised
            scale, bias = entries.pop("scale"), entries.pop("bias")
            entries["log_scale"], entries["loc"] = -scale, -bias * torch.exp(-scale)
            entries.setdefault("is_initialized", torch.tensor(True))
        return reshape_entries(entries, self, ("log_scale", "loc"))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``loc`` and ``log_scale`` so that ``x`` comes out with zero mean and unit standard deviation
        per channel (statistics over the finite values only; all-reduced over ranks with ``sync_init``).

        Args:
            x: a batch of shape ``(N, *dims_in[0])``.

        Raises:
            ValueError: if ``x`` has the wrong shape or a channel has no finite value.
        """
        expected = self.dims_in[0]
        if not isinstance(x, Tensor):
            raise TypeError(f"ActNorm.initialize expects a tensor of shape (N, *{expected}), got {x!r}")
        if tuple(x.shape[1:]) != expected or x.shape[0] < 1:
            raise ValueError(f"ActNorm.initialize expects shape (N, *{expected}), got {tuple(x.shape)}")
        mean, std = self._finite_statistics(x.detach().movedim(1, 0).reshape(expected[0], -1))
        log_std = torch.where(std > _MIN_INIT_STD, std.clamp_min(_MIN_INIT_STD).log(), 0.0)
        self.loc.copy_(mean.reshape(self.loc.shape))
        self.log_scale.copy_(log_std.reshape(self.log_scale.shape))
        self.is_initialized.fill_(True)
        self._known_initialized = True

    def _finite_statistics(self, per_channel: Tensor) -> tuple[Tensor, Tensor]:
        """Per-channel mean and unbiased std over the finite entries (two passes, summed over ranks)."""
        finite = torch.isfinite(per_channel)
        values = torch.where(finite, per_channel, 0.0)
        sizes = torch.full_like(values[:, 0], per_channel.shape[1])
        counts_and_sums = torch.stack((sizes, finite.sum(1).to(values.dtype), values.sum(1)))
        self._all_reduce(counts_and_sums)
        size, count, total = counts_and_sums
        self._check_finite_count(count, size)
        mean = total / count
        squares = torch.where(finite, values - mean[:, None], 0.0).square().sum(1)
        self._all_reduce(squares)
        return mean, (squares / (count - 1).clamp_min(1)).sqrt()

    def _all_reduce(self, tensor: Tensor) -> None:
        if self.sync_init and dist.is_available() and dist.is_initialized():
            dist.all_reduce(tensor)

    def _check_finite_count(self, count: Tensor, size: Tensor) -> None:
        empty = (count == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"ActNorm with dims_in {self.dims_in} cannot initialise: channel(s) {empty} of the first batch "
                "have no finite value; pass finite data (or call initialize(x) with it)"
            )
        ignored = int((size - count).sum())
        if ignored:
            warnings.warn(
                f"ActNorm with dims_in {self.dims_in}: ignored {ignored} non-finite value(s) of the "
                "initialisation batch; its statistics come from the finite values only",
                RuntimeWarning,
                stacklevel=4,
            )

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        x = x_or_z[0]
        if not self._known_initialized:
            self._initialize_once(x, rev)
        log_det = self.log_scale.sum() * self.positions
        if rev:
            return (x * self.log_scale.exp() + self.loc,), log_det
        return ((x - self.loc) * torch.exp(-self.log_scale),), -log_det

    def memory_saving_backward(
        self,
        outputs: Sequence[Tensor],
        c: Sequence[Tensor] | None,
        rev: bool,
        output_grads: Sequence[Tensor | None],
        log_det_grad: Tensor | None,
        backprop: BackpropFn,
    ) -> FastBackward | None:
        r"""Memory-saving backprop's fast path, in closed form, with no recomputation and no autograd call.

        Forward, :math:`y = (x - \mu) e^{-\log\sigma}`: the input is rebuilt by the reverse formula, its
        gradient is :math:`g e^{-\log\sigma}`, and per channel :math:`\partial/\partial\log\sigma =
        -\sum g y`, :math:`\partial/\partial\mu = -\sum g e^{-\log\sigma}`. Reverse, :math:`y = x
        e^{\log\sigma} + \mu`: :math:`\partial/\partial\log\sigma = \sum g e^{\log\sigma} x`,
        :math:`\partial/\partial\mu = \sum g`. The log-det's gradient adds :math:`\mp H W` times its sum
        to :math:`\log\sigma`'s. See ``GLOWCouplingBlock.memory_saving_backward`` for the protocol; None (the
        generic path) before initialisation, for a subclass that changes ``forward``, or under autocast.

        Example:
            >>> from freia_graph.framework.memory_saving import Backprop
            >>> block = ActNorm([(3,)], init_data=torch.randn(8, 3))
            >>> x = torch.randn(2, 3)
            >>> (y,), _ = block([x])
            >>> backprop = Backprop()
            >>> (x_back,), (grad_x,), _ = block.memory_saving_backward([y], None, False, [torch.ones_like(y)],
            ...                                                        None, backprop)
            >>> torch.allclose(x_back, x, atol=1e-6), backprop.parameter_grads[id(block.loc)].shape
            (True, torch.Size([1, 3]))
        """
        y, grad_y = outputs[0], output_grads[0]
        if (not self._known_initialized or not fast_backward_fits(self, ("forward", "memory_saving_backward"))
                or torch.is_autocast_enabled(y.device.type)):
            return None
        with torch.no_grad():
            grad_x = grad_log_scale = grad_loc = None
            if rev:
                x = (y - self.loc) * torch.exp(-self.log_scale)
                if grad_y is not None:
                    grad_x = grad_y * self.log_scale.exp()
                    grad_log_scale, grad_loc = _per_channel_sum(grad_x * x), _per_channel_sum(grad_y)
            else:
                x = y * self.log_scale.exp() + self.loc
                if grad_y is not None:
                    grad_x = grad_y * torch.exp(-self.log_scale)
                    grad_log_scale, grad_loc = -_per_channel_sum(grad_y * y), -_per_channel_sum(grad_x)
            if log_det_grad is not None:  # the step's log-det is +-sum(log_scale) H W
                from_log_det = log_det_grad.sum() * (self.positions if rev else -self.positions)
                base = torch.zeros_like(self.log_scale) if grad_log_scale is None else grad_log_scale
                grad_log_scale = base + from_log_det
        backprop.accumulate(self.log_scale, grad_log_scale)
        backprop.accumulate(self.loc, grad_loc)
        return [x], [grad_x], []

    def _initialize_once(self, x: Tensor, rev: bool) -> None:
        if bool(self.is_initialized):  # e.g. broadcast by DDP or copied in with copy_
            self._known_initialized = True
        elif rev:
            raise RuntimeError(
                "ActNorm is not initialised: run a forward pass on data, call initialize(x), or load a "
                "state_dict before running it in reverse"
            )
        else:
            self.initialize(x)

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The shapes are unchanged."""
        return list(input_dims)


def _per_channel_sum(values: Tensor) -> Tensor:
    """Sum over every dim but the channels (dim 1), keeping them, to the parameters' shape ``(1, C, 1, ...)``."""
    return values.sum([dim for dim in range(values.dim()) if dim != 1], keepdim=True)


def _forget_cached_flag(module: nn.Module, incompatible_keys: object) -> None:
    module._known_initialized = False
