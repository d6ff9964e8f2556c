"""Subnet factories for coupling blocks: ``constructor(c_in, c_out) -> nn.Module``.

Every FrEIA program defines its ``subnet_fc`` and ``subnet_conv`` by hand; these are the same, with
their options spelled out. Each factory is a small frozen dataclass: pass an instance wherever a
``subnet_constructor`` is expected. Unlike a lambda it prints its settings, compares by value and can be
pickled (so ``torch.save`` of a whole graph works).

The last layer is multiplied by ``last_layer_scale`` after construction (0 starts the subnet at zero
output, as in Glow). The couplings of :mod:`freia_graph.modules` already scale their subnets' last
layer by their own ``subnet_init_scale`` (default 0.1), so the default here is 1: no second scaling.

Dropout and batch normalisation make a subnet depend on the mode (and, for batch norm, on the other
samples of the batch) in training mode: the flow is exactly invertible in ``eval()`` mode only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._arguments import check_activation, check_choice, check_int, check_real

__all__ = ["ConvSubnet", "MLPSubnet", "ResNetSubnet", "ResidualBlock"]

Activation = str | Callable[[], nn.Module]

_VECTOR_NORMS: dict[str, Callable[[int], nn.Module]] = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}
# "layer" for images normalises each sample over channels and positions (one group).
_IMAGE_NORMS: dict[str, Callable[[int], nn.Module]] = {"batch": nn.BatchNorm2d, "layer": lambda c: nn.GroupNorm(1, c)}


@dataclass(frozen=True)
class _SubnetOptions:
    """The options, checks and helpers every factory shares."""

    hidden: int = 128
    depth: int = 2
    activation: Activation = "relu"
    dropout: float = 0.0
    normalization: str | None = None
    last_layer_scale: float = 1.0
    _norms = _VECTOR_NORMS

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_int(self.hidden, "hidden", owner)
        check_int(self.depth, "depth", owner)
        check_activation(self.activation, owner)
        check_real(self.dropout, "dropout", owner, 0.0, 1.0, high_included=False)
        if self.normalization is not None:
            check_choice(self.normalization, self._norms, "normalization", owner)
        check_real(self.last_layer_scale, "last_layer_scale", owner, 0.0, math.inf, high_included=False)

    def _after_layer(self, channels: int) -> list[nn.Module]:
        """Normalisation, activation and dropout that follow a hidden layer."""
        owner, modules = type(self).__name__, []
        if self.normalization is not None:
            modules.append(check_choice(self.normalization, self._norms, "normalization", owner)(channels))
        modules.append(check_activation(self.activation, owner)())
        if self.dropout:
            modules.append(nn.Dropout(self.dropout))
        return modules

    def _scaled(self, layer: nn.Module) -> nn.Module:
        if self.last_layer_scale != 1:
            with torch.no_grad():
                for parameter in layer.parameters():
                    parameter.mul_(self.last_layer_scale)
        return layer

    def _check_call(self, c_in: int, c_out: int) -> None:
        check_int(c_in, "c_in", type(self).__name__)
        check_int(c_out, "c_out", type(self).__name__)


def _stack(options: _SubnetOptions, layer: Callable[[int, int], nn.Module], c_in: int, c_out: int) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` (each followed by norm, activation, dropout), then the output."""
    modules: list[nn.Module] = []
    for index in range(options.depth):
        modules.append(layer(c_in if index == 0 else options.hidden, options.hidden))
        modules += options._after_layer(options.hidden)
    return nn.Sequential(*modules, options._scaled(layer(options.hidden, c_out)))


@dataclass(frozen=True)
class MLPSubnet(_SubnetOptions):
    """A fully connected subnet (FrEIA programs' ``subnet_fc``) for vector couplings.

    ``Linear(c_in, hidden)``, then ``depth - 1`` more ``Linear(hidden, hidden)``, each followed by the
    optional normalisation, the activation and the optional dropout, then ``Linear(hidden, c_out)``.

    Args:
        hidden: width of the hidden layers.
        depth: number of hidden layers (at least 1).
        activation: ``"relu"``, ``"leaky_relu"``, ``"elu"``, ``"gelu"``, ``"silu"``, ``"tanh"``,
            ``"softplus"``, or a callable without arguments returning a module (e.g. ``nn.ReLU``).
        dropout: dropout probability after each hidden layer (0: none).
        normalization: None, ``"layer"`` (``nn.LayerNorm``) or ``"batch"`` (``nn.BatchNorm1d``).
        last_layer_scale: factor applied to the last layer's weight and bias (0: zero output at start).

    Calling it as ``constructor(c_in, c_out)`` returns an ``nn.Sequential``.

    Example:
        >>> import freia_graph.modules as Fm
        >>> subnet = MLPSubnet(hidden=32, depth=2, dropout=0.1)
        >>> subnet(4, 6)(torch.randn(5, 4)).shape
        torch.Size([5, 6])
        >>> block = Fm.GLOWCouplingBlock([(8,)], subnet_constructor=subnet)
    """

    def __call__(self, c_in: int, c_out: int) -> nn.Sequential:
        """Build the subnet for ``c_in`` input and ``c_out`` output features."""
        self._check_call(c_in, c_out)
        return _stack(self, nn.Linear, c_in, c_out)


@dataclass(frozen=True)
class _ImageSubnetOptions(_SubnetOptions):
    hidden: int = 64
    kernel_size: int = 3
    _norms = _IMAGE_NORMS

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.kernel_size, "kernel_size", type(self).__name__)
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"{type(self).__name__}: kernel_size must be odd so that 'same' padding keeps the image size, "
                f"got {self.kernel_size}"
            )

    def _conv(self, c_in: int, c_out: int) -> nn.Conv2d:
        return nn.Conv2d(c_in, c_out, self.kernel_size, padding=self.kernel_size // 2)


@dataclass(frozen=True)
class ConvSubnet(_ImageSubnetOptions):
    """A convolutional subnet (FrEIA programs' ``subnet_conv``) for image couplings.

    ``Conv2d(c_in, hidden)``, then ``depth - 1`` more ``Conv2d(hidden, hidden)``, each followed by the
    optional normalisation, the activation and the optional dropout, then ``Conv2d(hidden, c_out)``;
    every convolution has ``kernel_size`` and 'same' padding, so the image size is kept.

    Args:
        hidden: channels of the hidden layers.
        depth: number of hidden layers (at least 1).
        activation: as in :class:`MLPSubnet`.
        dropout: dropout probability after each hidden layer (0: none).
        normalization: None, ``"layer"`` (``nn.GroupNorm`` with one group: per sample) or ``"batch"``.
        last_layer_scale: factor applied to the last layer's weight and bias (0: zero output at start).
        kernel_size: odd kernel size of every convolution.

    Example:
        >>> ConvSubnet(hidden=16, kernel_size=3)(2, 4)(torch.randn(1, 2, 8, 8)).shape
        torch.Size([1, 4, 8, 8])
    """

    def __call__(self, c_in: int, c_out: int) -> nn.Sequential:
        """Build the subnet for ``c_in`` input and ``c_out`` output channels."""
        self._check_call(c_in, c_out)
        return _stack(self, self._conv, c_in, c_out)


class ResidualBlock(nn.Module):
    """``x + body(x)``: the residual unit of :class:`ResNetSubnet`.

    Example:
        >>> block = ResidualBlock(nn.Conv2d(2, 2, 1))
        >>> block(torch.zeros(1, 2, 3, 3)).shape
        torch.Size([1, 2, 3, 3])
    """

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        """``x + body(x)``."""
        return x + self.body(x)


@dataclass(frozen=True)
class ResNetSubnet(_ImageSubnetOptions):
    """A residual convolutional subnet for image couplings.

    ``Conv2d(c_in, hidden)``, then ``depth`` residual blocks ``x + conv(act(norm(conv(act(norm(x))))))``
    (dropout between the two convolutions), then ``act(norm(·))`` and ``Conv2d(hidden, c_out)``. Every
    convolution has ``kernel_size`` and 'same' padding.

    Args:
        hidden: channels inside the network.
        depth: number of residual blocks (at least 1).
        activation: as in :class:`MLPSubnet`.
        dropout: dropout probability inside each residual block (0: none).
        normalization: None, ``"layer"`` (``nn.GroupNorm`` with one group) or ``"batch"``.
        last_layer_scale: factor applied to the last layer's weight and bias (0: zero output at start).
        kernel_size: odd kernel size of every convolution.

    Example:
        >>> subnet = ResNetSubnet(hidden=8, depth=2)(3, 6)
        >>> subnet(torch.randn(2, 3, 4, 4)).shape
        torch.Size([2, 6, 4, 4])
    """

    def _pre_activation(self) -> list[nn.Module]:
        # the same modules as after a hidden layer, without dropout (it goes between the convolutions)
        return [module for module in self._after_layer(self.hidden) if not isinstance(module, nn.Dropout)]

    def __call__(self, c_in: int, c_out: int) -> nn.Sequential:
        """Build the subnet for ``c_in`` input and ``c_out`` output channels."""
        self._check_call(c_in, c_out)
        blocks = []
        for _ in range(self.depth):
            inner = [*self._pre_activation(), self._conv(self.hidden, self.hidden), *self._after_layer(self.hidden)]
            blocks.append(ResidualBlock(nn.Sequential(*inner, self._conv(self.hidden, self.hidden))))
        head = [*self._pre_activation(), self._scaled(self._conv(self.hidden, c_out))]
        return nn.Sequential(self._conv(c_in, self.hidden), *blocks, *head)
