"""FrEIA's transformed distributions: a base distribution pushed forward or pulled back through a transform.

Both are thin, FrEIA-compatible views of a :class:`~freia_graph.distributions.Flow`, and unlike FrEIA's
their ``log_prob`` includes the log-Jacobian determinant of the transform.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution

from freia_graph.distributions.bases import LatentDistribution
from freia_graph.distributions.flow import Flow
from freia_graph.modules.base import InvertibleModule
from freia_graph.modules.inverse import Inverse

__all__ = ["EventShapeError", "PushForwardDistribution", "PullBackDistribution"]


class EventShapeError(ValueError, RuntimeError):
    """A value whose trailing shape is not the distribution's event shape.

    A ``ValueError``, and a ``RuntimeError`` as FrEIA raised for it, so code catching either works.

    Example:
        >>> issubclass(EventShapeError, ValueError) and issubclass(EventShapeError, RuntimeError)
        True
    """


class PushForwardDistribution(Distribution):
    r"""The distribution of ``x = T(z)`` for ``z`` drawn from ``base_distribution``: the transform runs forward.

    .. math:: \log p(x) = \log p_{\text{base}}\big(T^{-1}(x)\big) + \log|\det J_{T^{-1}}(x)|

    FrEIA's name and signature. Samples and values may have any number of leading sample dimensions.

    Args:
        base_distribution: a ``torch.distributions.Distribution`` (or a
            :class:`~freia_graph.distributions.LatentDistribution`) whose event shape is the transform's
            input shape.
        transform: an invertible module with one input and one output (a GraphINN, SequenceINN, block).

    Differences from FrEIA: ``log_prob`` includes the log-det (FrEIA calls the transform with
    ``jac=False`` and so drops it); the base's event shape is checked when building.

    Example:
        >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> from freia_graph.distributions import StandardNormalDistribution
        >>> scale = Ff.SequenceINN(2)
        >>> scale.append(Fm.FixedLinearTransform, M=2 * torch.eye(2))
        >>> wide = PushForwardDistribution(StandardNormalDistribution(2), scale)   # N(0, 4 I)
        >>> wide.log_prob(torch.zeros(2))  # -log(2π) - 2 log 2
        tensor(-3.2242)
        >>> wide.sample((5, 3)).shape
        torch.Size([5, 3, 2])
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, base_distribution: Distribution | LatentDistribution, transform: InvertibleModule):
        if not isinstance(transform, InvertibleModule):
            raise TypeError(f"{type(self).__name__}: the transform must be an InvertibleModule (a GraphINN, "
                            f"SequenceINN or block), got {type(transform).__name__}")
        inputs, outputs = transform.dims_in, transform.output_dims(transform.dims_in)
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{type(self).__name__}: the transform has {len(inputs)} input(s) and {len(outputs)} "
                             "output(s); it needs one of each (use freia_graph.distributions.Flow for more)")
        base_shape = getattr(base_distribution, "event_shape", getattr(base_distribution, "shape", None))
        if base_shape is not None and tuple(base_shape) != tuple(inputs[0]):
            raise ValueError(f"{type(self).__name__}: the base distribution's event shape {tuple(base_shape)} must "
                             f"be the transform's input shape {tuple(inputs[0])}")
        self.base_distribution = base_distribution
        self.transform = transform
        #: the Flow doing the work: the latent map is the transform's inverse
        self.flow = Flow(transform.module if isinstance(transform, Inverse) else Inverse(transform),
                         base_distribution)
        super().__init__(torch.Size(), self.flow.event_shape, validate_args=False)

    def log_prob(self, value: Tensor, conditions: Sequence[Tensor] | None = None) -> Tensor:
        """The log-density of ``value`` (shape ``(*sample_shape, *event_shape)``), log-det included.

        Raises:
            EventShapeError: if ``value`` does not end in the event shape.
        """
        event = self.event_shape
        sample_dims = value.dim() - len(event)
        if sample_dims < 0 or value.shape[sample_dims:] != event:
            raise EventShapeError(f"{type(self).__name__}.log_prob: the value's shape {tuple(value.shape)} must end "
                                  f"in the event shape {tuple(event)}")
        log_prob = self.flow.log_prob(value.reshape(-1, *event), conditions)
        return log_prob.reshape(value.shape[:sample_dims])

    def rsample(self, sample_shape: Sequence[int] = torch.Size(),
                conditions: Sequence[Tensor] | None = None) -> Tensor:
        """Samples of shape ``(*sample_shape, *event_shape)``, differentiable in the transform's parameters."""
        sample_shape = torch.Size(sample_shape)
        samples = self.flow.rsample(math.prod(sample_shape), conditions)
        return samples.reshape(*sample_shape, *self.event_shape)

    def sample(self, sample_shape: Sequence[int] = torch.Size(),
               conditions: Sequence[Tensor] | None = None) -> Tensor:
        """Like :meth:`rsample`, without gradients."""
        with torch.no_grad():
            return self.rsample(sample_shape, conditions)

    def force_to(self, *args, **kwargs) -> PushForwardDistribution:
        """Move the transform and the base distribution's tensors (``Tensor.to``'s arguments), as in FrEIA."""
        self.flow.to(*args, **kwargs)
        return self


class PullBackDistribution(PushForwardDistribution):
    r"""The distribution of ``x = T⁻¹(z)`` for ``z`` from ``base_distribution``: a normalizing flow.

    .. math:: \log p(x) = \log p_{\text{base}}\big(T(x)\big) + \log|\det J_T(x)|

    FrEIA's name and signature; the same as ``PushForwardDistribution(base, Inverse(transform))``.

    Example:
        >>> import torch, freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> from freia_graph.distributions import StandardNormalDistribution
        >>> scale = Ff.SequenceINN(2)
        >>> scale.append(Fm.FixedLinearTransform, M=2 * torch.eye(2))
        >>> narrow = PullBackDistribution(StandardNormalDistribution(2), scale)   # N(0, I / 4)
        >>> narrow.log_prob(torch.zeros(2))  # -log(2π) + 2 log 2
        tensor(-0.4516)
    """

    def __init__(self, base_distribution: Distribution | LatentDistribution, transform: InvertibleModule):
        if not isinstance(transform, InvertibleModule):
            raise TypeError(f"PullBackDistribution: the transform must be an InvertibleModule (a GraphINN, "
                            f"SequenceINN or block), got {type(transform).__name__}")
        super().__init__(base_distribution, Inverse(transform))
