"""The standard normal distribution as a ``torch.distributions`` object (FrEIA's ``StandardNormalDistribution``)."""

from __future__ import annotations

import torch
from torch.distributions import Independent, Normal

__all__ = ["StandardNormalDistribution"]


class StandardNormalDistribution(Independent):
    """:math:`\\mathcal N(0, I)` over tensors of shape ``event_shape``: one event of that shape per sample.

    FrEIA's name and signature. As a base of a :class:`~freia_graph.distributions.Flow` it works, but
    :class:`~freia_graph.distributions.StandardNormal` (an ``nn.Module`` that follows ``.to()``) is leaner.

    Args:
        *event_shape: the shape of one sample, e.g. ``StandardNormalDistribution(3, 8, 8)``.
        device, dtype: of its tensors (and so of its samples).
        validate_args: check arguments and samples, as for every torch distribution.

    Example:
        >>> normal = StandardNormalDistribution(2)
        >>> normal.sample((4,)).shape, normal.log_prob(torch.zeros(2))
        (torch.Size([4, 2]), tensor(-1.8379))
    """

    def __init__(self, *event_shape: int, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, validate_args: bool | None = True):
        zeros = torch.zeros(event_shape, device=device, dtype=dtype)
        super().__init__(Normal(zeros, torch.ones_like(zeros), validate_args=validate_args), len(event_shape),
                         validate_args=validate_args)
