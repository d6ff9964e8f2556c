"""Condition embeddings: modules that turn a vector or image condition into a feature map of a given size.

Image couplings concatenate their conditions to the subnet input along the channels, so a condition must
have the image's height and width. These modules make one from a label vector or from an image of
another size; use them as the module of a :class:`~freia_graph.framework.FeedForwardNode`, one per scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ._arguments import check_int
from .subnets import Activation, ConvSubnet, MLPSubnet

__all__ = ["ImageToFeatureMap", "VectorToFeatureMap"]


def _image_shape(shape: object, name: str, owner: str) -> tuple[int, int, int]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) != 3:
        raise ValueError(f"{owner}: {name} must be an image shape (channels, height, width), got {shape!r}")
    return tuple(check_int(size, f"{name}[{index}]", owner) for index, size in enumerate(shape))


class VectorToFeatureMap(nn.Module):
    """A vector condition ``(in_features,)`` as a feature map ``out_shape = (C, H, W)``.

    A linear layer (or a one-hidden-layer MLP when ``hidden > 0``) maps the vector to a small map of
    ``base_size × base_size`` positions (at most ``H × W``), which is upsampled bilinearly to ``(H, W)``.
    With ``base_size=1`` the map is one value per channel, broadcast to every position.

    Args:
        in_features: length of the condition vector.
        out_shape: ``(channels, height, width)`` of the feature map.
        base_size: side of the map before upsampling; 1 broadcasts; ``>= max(H, W)`` gives a learned
            value per position.
        hidden: width of a hidden layer before the output layer (0: a single linear layer).
        activation: the hidden layer's activation, as in :class:`~freia_graph.nn.MLPSubnet`.

    Example:
        >>> import torch
        >>> embedding = VectorToFeatureMap(10, (4, 8, 8), base_size=1)
        >>> maps = embedding(torch.eye(10)[:3])
        >>> maps.shape, bool((maps == maps[:, :, :1, :1]).all())
        (torch.Size([3, 4, 8, 8]), True)
    """

    def __init__(
        self,
        in_features: int,
        out_shape: Sequence[int],
        base_size: int = 4,
        hidden: int = 0,
        activation: Activation = "relu",
    ):
        super().__init__()
        owner = type(self).__name__
        check_int(in_features, "in_features", owner)
        self.out_shape = _image_shape(out_shape, "out_shape", owner)
        channels, height, width = self.out_shape
        check_int(base_size, "base_size", owner)
        self.base_shape = (channels, min(base_size, height), min(base_size, width))
        outputs = channels * self.base_shape[1] * self.base_shape[2]
        if check_int(hidden, "hidden", owner, minimum=0):
            self.linear = MLPSubnet(hidden=hidden, depth=1, activation=activation)(in_features, outputs)
        else:
            self.linear = nn.Linear(in_features, outputs)

    def forward(self, c: Tensor) -> Tensor:
        """Map a batch of vectors ``(N, in_features)`` to feature maps ``(N, *out_shape)``."""
        maps = self.linear(c).reshape(-1, *self.base_shape)
        if self.base_shape[1:] == (1, 1):
            return maps.expand(-1, -1, *self.out_shape[1:])
        if self.base_shape != self.out_shape:
            return F.interpolate(maps, size=self.out_shape[1:], mode="bilinear", align_corners=False)
        return maps

    def extra_repr(self) -> str:
        return f"base_shape={self.base_shape}, out_shape={self.out_shape}"


class ImageToFeatureMap(nn.Module):
    """An image condition ``in_shape = (C, H, W)`` as a feature map ``out_shape = (C', H', W')``.

    The image is resized to ``(H', W')`` (averaged over blocks when it shrinks, bilinearly interpolated
    otherwise), then a convolution (or a small :class:`~freia_graph.nn.ConvSubnet` when ``hidden > 0``)
    maps its channels to ``C'``.

    Args:
        in_shape: ``(channels, height, width)`` of the condition image.
        out_shape: ``(channels, height, width)`` of the feature map.
        kernel_size: odd kernel size of the convolution(s).
        hidden: channels of a hidden layer (0: a single convolution).
        activation: the hidden layer's activation, as in :class:`~freia_graph.nn.MLPSubnet`.

    Example:
        >>> import torch
        >>> ImageToFeatureMap((1, 16, 16), (3, 4, 4))(torch.randn(2, 1, 16, 16)).shape
        torch.Size([2, 3, 4, 4])
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_shape: Sequence[int],
        kernel_size: int = 3,
        hidden: int = 0,
        activation: Activation = "relu",
    ):
        super().__init__()
        owner = type(self).__name__
        self.in_shape = _image_shape(in_shape, "in_shape", owner)
        self.out_shape = _image_shape(out_shape, "out_shape", owner)
        check_int(hidden, "hidden", owner, minimum=0)
        # ConvSubnet checks kernel_size and activation, and gives the single convolution the same padding
        subnet = ConvSubnet(hidden=max(hidden, 1), depth=1, kernel_size=kernel_size, activation=activation)
        if hidden:
            self.conv = subnet(self.in_shape[0], self.out_shape[0])
        else:
            self.conv = subnet._conv(self.in_shape[0], self.out_shape[0])

    def forward(self, c: Tensor) -> Tensor:
        """Resize a batch of images ``(N, *in_shape)`` and map it to ``(N, *out_shape)``."""
        source, target = self.in_shape[1:], self.out_shape[1:]
        if source != target:
            if target[0] <= source[0] and target[1] <= source[1]:
                c = F.adaptive_avg_pool2d(c, target)
            else:
                c = F.interpolate(c, size=target, mode="bilinear", align_corners=False)
        return self.conv(c)

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, out_shape={self.out_shape}"
