"""Building blocks around the invertible blocks: subnet factories and condition embeddings.

* :class:`MLPSubnet`, :class:`ConvSubnet`, :class:`ResNetSubnet`: ``subnet_constructor(c_in, c_out)``
  factories for coupling blocks.
* :class:`VectorToFeatureMap`, :class:`ImageToFeatureMap`: condition embeddings for FeedForwardNodes,
  turning a label vector or an image into a feature map of a given scale.

Example:
    >>> import freia_graph.modules as Fm
    >>> from freia_graph.nn import MLPSubnet
    >>> block = Fm.RNVPCouplingBlock([(6,)], subnet_constructor=MLPSubnet(hidden=32))
"""

from . import embeddings, subnets
from .embeddings import *  # noqa: F403
from .subnets import *  # noqa: F403

__all__ = [*subnets.__all__, *embeddings.__all__]
