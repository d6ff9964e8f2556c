"""Registry cases for the spline blocks (see tests/modules/registry.py)."""

from freia_graph.modules.splines import (
    ElementwiseRationalQuadraticSpline,
    LinearSpline,
    RationalQuadraticSpline,
)
from tests.modules.registry import BlockCase, conv_subnet, linear_subnet

# Inputs of scale 2 put some elements in the tails outside the default domain [-3, 3].
_REACH_TAILS = {"input_scale": 2.0}
_ASYMMETRIC = {"default_domain": (-2.0, 1.0, -1.0, 3.0)}
_FREIA = {"parametrization": "freia"}
# With the suite's perturbed conv subnets some rational-quadratic pieces are nearly flat, so the inverse
# is ill-conditioned: rounding z to float32 alone moves x by ~1e-3 (measured against a float64 inverse).


def _float32_atol(coupling: type) -> float:
    return 3e-3 if coupling is RationalQuadraticSpline else 1e-4


CASES: list[BlockCase] = [
    case
    for coupling in (RationalQuadraticSpline, LinearSpline)
    for case in (
        BlockCase(coupling, [(8,)], kwargs={"subnet_constructor": linear_subnet, "bins": 5},
                  check_kwargs=_REACH_TAILS),
        BlockCase(coupling, [(7,)], name="asymmetric", check_kwargs=_REACH_TAILS,
                  kwargs={"subnet_constructor": linear_subnet, "split_len": 3, **_ASYMMETRIC}),
        BlockCase(coupling, [(7,)], [(3,)], kwargs={"subnet_constructor": linear_subnet, "bins": 4},
                  check_kwargs=_REACH_TAILS),
        BlockCase(coupling, [(4, 6, 6)], kwargs={"subnet_constructor": conv_subnet, "bins": 4},
                  check_kwargs=_REACH_TAILS, float32_atol=_float32_atol(coupling)),
        BlockCase(coupling, [(4, 6, 6)], [(2, 6, 6)], kwargs={"subnet_constructor": conv_subnet, "bins": 4},
                  check_kwargs=_REACH_TAILS, float32_atol=_float32_atol(coupling)),
    )
] + [
    BlockCase(ElementwiseRationalQuadraticSpline, [(8,)], kwargs={"bins": 5}, check_kwargs=_REACH_TAILS),
    BlockCase(ElementwiseRationalQuadraticSpline, [(7,)], kwargs=_ASYMMETRIC, name="asymmetric",
              check_kwargs=_REACH_TAILS),
    BlockCase(ElementwiseRationalQuadraticSpline, [(4, 6, 6)], kwargs={"bins": 4}, check_kwargs=_REACH_TAILS),
    BlockCase(ElementwiseRationalQuadraticSpline, [(7,)], [(3,)],
              kwargs={"subnet_constructor": linear_subnet, "bins": 5}, check_kwargs=_REACH_TAILS),
    BlockCase(ElementwiseRationalQuadraticSpline, [(4, 6, 6)], [(2, 6, 6)],
              kwargs={"subnet_constructor": conv_subnet, "bins": 4}, check_kwargs=_REACH_TAILS),
] + [  # FrEIA HEAD's binned parameterisation: learned domain, affine or identity tails, domain clamping
    BlockCase(RationalQuadraticSpline, [(6,)], name="freia", check_kwargs=_REACH_TAILS,
              kwargs={"subnet_constructor": linear_subnet, "bins": 4, **_FREIA, **_ASYMMETRIC}),
    BlockCase(RationalQuadraticSpline, [(4, 5, 5)], [(2, 5, 5)], name="freia-identity-tails",
              kwargs={"subnet_constructor": conv_subnet, "bins": 3, "identity_tails": True, **_FREIA},
              check_kwargs=_REACH_TAILS, float32_atol=1e-2),  # FrEIA's identity tails have no minimal bin size
    BlockCase(LinearSpline, [(5,)], [(2,)], name="freia-domain-clamping", check_kwargs=_REACH_TAILS,
              kwargs={"subnet_constructor": linear_subnet, "bins": 4, "domain_clamping": 2.0, **_FREIA}),
    BlockCase(ElementwiseRationalQuadraticSpline, [(3, 4, 4)], name="freia", check_kwargs=_REACH_TAILS,
              kwargs={"bins": 4, **_FREIA, **_ASYMMETRIC}),
    BlockCase(ElementwiseRationalQuadraticSpline, [(6,)], [(3,)], name="freia-identity-tails",
              kwargs={"subnet_constructor": linear_subnet, "bins": 5, "identity_tails": True, **_FREIA},
              check_kwargs=_REACH_TAILS),
]
