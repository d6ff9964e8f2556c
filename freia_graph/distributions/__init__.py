"""Densities and samples through any graph: :class:`Flow`, latent distributions, and FrEIA's distributions.

``Flow(inn, base)`` pairs a graph (data -> latents) with one latent distribution per output and is a
``torch.distributions.Distribution``: ``log_prob`` (log-det included, every output counted), ``sample``,
``rsample``, ``sample_with_log_prob``, ``bits_per_dim``; ``nll_loss`` is the training loss.
``StandardNormalDistribution``, ``PushForwardDistribution`` and ``PullBackDistribution`` are FrEIA's
(``FrEIA.distributions``), with the log-det included.

Example:
    >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
    >>> from freia_graph.distributions import Flow, nll_loss
    >>> inn = Ff.SequenceINN(2)
    >>> inn.append(Fm.ActNorm)
    >>> flow = Flow(inn)
    >>> loss = nll_loss(flow, torch.randn(8, 2))
    >>> flow.sample(3).shape
    torch.Size([3, 2])
"""

from freia_graph.distributions.bases import DiagonalGaussian, LatentDistribution, StandardNormal, WrappedDistribution
from freia_graph.distributions.flow import Flow, nll_loss
from freia_graph.distributions.normal import StandardNormalDistribution
from freia_graph.distributions.transformed import EventShapeError, PullBackDistribution, PushForwardDistribution

__all__ = [
    "Flow",
    "nll_loss",
    "LatentDistribution",
    "StandardNormal",
    "DiagonalGaussian",
    "WrappedDistribution",
    "StandardNormalDistribution",
    "PushForwardDistribution",
    "PullBackDistribution",
    "EventShapeError",
]
