"""Registry cases for the elementwise maps (see tests/modules/registry.py)."""

from freia_graph.modules import InvertibleSigmoid, LearnedElementwiseScaling
from tests.modules.registry import BlockCase

# The logit only accepts values in (0, 1), the sigmoid's range, so its latents come from forward passes.
_SIGMOID_RANGE = dict(reverse_inputs="forward")

CASES: list[BlockCase] = [
    BlockCase(LearnedElementwiseScaling, [(5,)]),
    BlockCase(LearnedElementwiseScaling, [(2, 3, 4)], kwargs=dict(init_scale=0.5)),
    BlockCase(InvertibleSigmoid, [(5,)], check_kwargs=_SIGMOID_RANGE),
    BlockCase(InvertibleSigmoid, [(2, 3, 4)], check_kwargs=_SIGMOID_RANGE),
]
