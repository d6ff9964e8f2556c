"""FrEIA's module path ``FrEIA.modules.coupling_layers``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from .coupling import (
    AffineCouplingOneSided,
    ConditionalAffineTransform,
    GINCouplingBlock,
    GLOWCouplingBlock,
    NICECouplingBlock,
    RNVPCouplingBlock,
)
from .freia_bases import _BaseCouplingBlock

__all__ = [
    "_BaseCouplingBlock", "NICECouplingBlock", "RNVPCouplingBlock", "GLOWCouplingBlock", "GINCouplingBlock",
    "AffineCouplingOneSided", "ConditionalAffineTransform",
]
