"""Registry cases for the i-ResNet layer (see tests/modules/registry.py).

The cases use ``exact_log_det=True``: the default power-series estimate is random and approximate, and is
checked against the exact value in tests/modules/test_iresnet.py instead.
"""

from freia_graph.modules.iresnet import IResNetLayer
from tests.modules.registry import BlockCase

_EXACT = {"exact_log_det": True}

CASES: list[BlockCase] = [
    BlockCase(IResNetLayer, [(6,)], kwargs=_EXACT),
    BlockCase(IResNetLayer, [(5,)], kwargs={**_EXACT, "internal_size": 7, "n_internal_layers": 2}, name="deep"),
    BlockCase(IResNetLayer, [(2, 4, 4)], kwargs={**_EXACT, "internal_size": 4}),
    BlockCase(IResNetLayer, [(5,)], [(3,)], kwargs=_EXACT),
    BlockCase(IResNetLayer, [(2, 4, 4)], [(1, 4, 4)], kwargs={**_EXACT, "internal_size": 4}),
]
