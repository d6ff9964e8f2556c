"""Latent (base) distributions of a :class:`~freia_graph.distributions.Flow`, one per output of its graph.

Each is an ``nn.Module``, so ``.to()``, ``.double()`` and ``state_dict`` treat it with the flow. Its
constants live in buffers, so no call copies a number from the host to the device. Every base samples
and scores at a *temperature* ``T``: the distribution of ``mean + T·(z - mean)``, which for a Gaussian
is the same Gaussian with its standard deviation multiplied by ``T`` (Kingma & Dhariwal, 2018, "Glow").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.distributions.transforms import Transform

__all__ = ["LatentDistribution", "StandardNormal", "DiagonalGaussian", "WrappedDistribution"]

_LOG_2PI = math.log(2 * math.pi)


class LatentDistribution(nn.Module):
    """Base class of latent distributions: a fixed event ``shape``, ``log_prob`` and ``sample`` per batch.

    Subclasses implement :meth:`log_prob` and :meth:`sample`, and set ``self.shape`` (a ``torch.Size``).

    Example:
        >>> StandardNormal(2, 3).shape
        torch.Size([2, 3])
    """

    shape: torch.Size

    def log_prob(self, z: Tensor, temperature: float = 1.0) -> Tensor:
        """The log-density of each sample of ``z`` (shape ``(batch, *shape)``), shape ``(batch,)``."""
        raise NotImplementedError

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` samples, shape ``(n, *shape)``, differentiable in the parameters where possible."""
        raise NotImplementedError


class _Reference(LatentDistribution):
    """Keeps an empty buffer whose dtype and device new samples take (it follows ``.to()``)."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype | None = None, device=None):
        super().__init__()
        self.shape = torch.Size(shape)
        self._shape = tuple(shape)  # unpacked into torch.randn: cheaper than a torch.Size
        self._sum_dims = tuple(range(1, len(self.shape) + 1))
        self._size = math.prod(self.shape)
        self.register_buffer("_reference", torch.empty(0, dtype=dtype, device=device), persistent=False)

    def _noise(self, n: int) -> Tensor:
        reference = self._reference
        return torch.randn(n, *self._shape, dtype=reference.dtype, device=reference.device)


class StandardNormal(_Reference):
    r"""The standard normal distribution :math:`\mathcal N(0, I)` on tensors of one shape.

    .. math:: \log p(z) = -\tfrac12 \|z\|^2 - \tfrac D2 \log 2\pi

    Args:
        *shape: the event shape, e.g. ``StandardNormal(3, 8, 8)``.
        dtype, device: of the samples (``.to()`` changes them later).

    Example:
        >>> base = StandardNormal(2)
        >>> base.log_prob(torch.zeros(1, 2))
        tensor([-1.8379])
        >>> base.sample(5).shape
        torch.Size([5, 2])
    """

    def __init__(self, *shape: int, dtype: torch.dtype | None = None, device=None):
        super().__init__(_checked_shape(shape, "StandardNormal"), dtype, device)
        self._constant = 0.5 * self._size * _LOG_2PI

    def log_prob(self, z: Tensor, temperature: float = 1.0) -> Tensor:
        if temperature != 1.0:
            return -0.5 * (z / temperature).square().sum(self._sum_dims) - (
                self._constant + self._size * math.log(temperature))
        return -0.5 * z.square().sum(self._sum_dims) - self._constant

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        noise = self._noise(n)
        return noise if temperature == 1.0 else noise * temperature


class DiagonalGaussian(_Reference):
    r"""A Gaussian with a diagonal covariance: a mean and a log standard deviation per element.

    .. math:: \log p(z) = \sum_i \Big(-\tfrac12 \big((z_i - \mu_i) e^{-s_i}\big)^2 - s_i\Big) - \tfrac D2 \log 2\pi

    Args:
        *shape: the event shape.
        learnable: make ``loc`` (μ) and ``log_scale`` (s) parameters (default) or fixed buffers.
        loc, log_scale: initial values (broadcast to ``shape``); zeros by default (the standard normal).

    Example:
        >>> base = DiagonalGaussian(2, loc=torch.tensor([1.0, -1.0]))
        >>> base.log_prob(torch.tensor([[1.0, -1.0]]))
        tensor([-1.8379], grad_fn=<SubBackward0>)
        >>> sorted(name for name, _ in base.named_parameters())
        ['loc', 'log_scale']
    """

    def __init__(self, *shape: int, learnable: bool = True, loc: Tensor | float = 0.0,
                 log_scale: Tensor | float = 0.0):
        super().__init__(_checked_shape(shape, "DiagonalGaussian"))
        for name, value in (("loc", loc), ("log_scale", log_scale)):
            value = torch.as_tensor(value, dtype=torch.get_default_dtype())
            try:
                value = value.expand(self.shape).clone()
            except RuntimeError:
                raise ValueError(f"DiagonalGaussian: {name} of shape {tuple(value.shape)} does not broadcast to "
                                 f"the event shape {tuple(self.shape)}") from None
            if learnable:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self._constant = 0.5 * self._size * _LOG_2PI

    def log_prob(self, z: Tensor, temperature: float = 1.0) -> Tensor:
        log_scale = self.log_scale if temperature == 1.0 else self.log_scale + math.log(temperature)
        normalised = (z - self.loc) * torch.exp(-log_scale)
        return -0.5 * normalised.square().sum(self._sum_dims) - (log_scale.sum() + self._constant)

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        scale = torch.exp(self.log_scale)
        if temperature != 1.0:
            scale = scale * temperature
        return self.loc + scale * self._noise(n)


class WrappedDistribution(LatentDistribution):
    """Any ``torch.distributions.Distribution`` as a latent distribution.

    Its ``event_shape`` is the latent's shape and its ``batch_shape`` must be empty (wrap a factorised
    distribution in ``torch.distributions.Independent``). ``.to()`` and ``.double()`` move the tensors it
    holds; they are not in the flow's ``state_dict`` (use :class:`DiagonalGaussian`, or subclass
    :class:`LatentDistribution`, for a learnable base). Samples are reparametrised where the
    distribution supports it. A temperature other than 1 needs the distribution's ``mean``.

    Args:
        distribution: the distribution.

    Example:
        >>> from torch.distributions import Independent, Laplace
        >>> base = WrappedDistribution(Independent(Laplace(torch.zeros(3), torch.ones(3)), 1))
        >>> base.shape, base.sample(4).shape
        (torch.Size([3]), torch.Size([4, 3]))
    """

    def __init__(self, distribution: Distribution):
        super().__init__()
        if not isinstance(distribution, Distribution):
            raise TypeError(f"expected a torch.distributions.Distribution, got {type(distribution).__name__}")
        if distribution.batch_shape != torch.Size():
            raise ValueError(
                f"{type(distribution).__name__} has batch_shape {tuple(distribution.batch_shape)} and event_shape "
                f"{tuple(distribution.event_shape)}; a latent distribution needs the whole latent as its event: "
                f"wrap it in torch.distributions.Independent(distribution, {len(distribution.batch_shape)})")
        self.distribution = distribution
        self.shape = distribution.event_shape
        self._size = math.prod(self.shape)

    def log_prob(self, z: Tensor, temperature: float = 1.0) -> Tensor:
        if temperature == 1.0:
            return self.distribution.log_prob(z)
        mean = self._mean()
        return self.distribution.log_prob(mean + (z - mean) / temperature) - self._size * math.log(temperature)

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        if self.distribution.has_rsample:
            z = self.distribution.rsample((n,))
        else:
            z = self.distribution.sample((n,))
        if temperature == 1.0:
            return z
        mean = self._mean()
        return mean + temperature * (z - mean)

    def _mean(self) -> Tensor:
        try:
            return self.distribution.mean
        except NotImplementedError:
            raise ValueError(f"a temperature other than 1 needs the base's mean, and "
                             f"{type(self.distribution).__name__} does not define one") from None

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> WrappedDistribution:
        _apply_to_tensors(self.distribution, fn)
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"{type(self.distribution).__name__}, shape={tuple(self.shape)}"


def _apply_to_tensors(holder: object, fn: Callable[[Tensor], Tensor]) -> None:
    """Replace every tensor held by a distribution or transform (recursively) with ``fn(tensor)``."""
    for name, value in list(vars(holder).items()):
        if isinstance(value, Tensor):
            setattr(holder, name, fn(value))
        elif isinstance(value, (Distribution, Transform)):
            _apply_to_tensors(value, fn)
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, (Distribution, Transform)):
                    _apply_to_tensors(item, fn)


def _checked_shape(shape: tuple, what: str) -> tuple[int, ...]:
    if len(shape) == 1 and not isinstance(shape[0], int):
        shape = tuple(shape[0])
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"{what}: the event shape must be positive ints, e.g. {what}(3, 8, 8), got {shape}")
    return tuple(shape)
