"""Fixtures for OrthogonalTransform, IResNetLayer and FrEIA HEAD's binned splines (0.2 has no splines).

Each case names the option freia_graph needs to compute what that FrEIA version computed (``our_kwargs``).
Run from the project root with FrEIA installed:

    python -m tests.modules.freia_checkpoints.make_orthogonal_iresnet_splines --version 0.2   # or head
"""

from __future__ import annotations

from tests.modules.freia_checkpoints.fixture_format import main

__all__ = ["CASES"]

_FREIA_ORTHOGONAL = {"parametrization": "freia"}
_IRESNET = {
    "needs_grad": True,
    "log_det_unchecked": "FrEIA estimates the log-det with random Hutchinson probes",
    "our_kwargs": {"enforce_lipschitz": False, "exact_log_det": True},
}
_HEAD_SPLINE = {"versions": ["head"], "our_kwargs": {"parametrization": "freia"}}
# A small domain and few bins, so that some of the inputs fall into the tails.
_SMALL_DOMAIN = {"bins": 4, "default_domain": [-1.0, 1.0, -1.5, 1.0], "min_bin_sizes": [0.05, 0.05]}

CASES = [
    {"name": "orthogonal", "block": "OrthogonalTransform", "dims_in": [(4,)], "our_kwargs": _FREIA_ORTHOGONAL},
    {"name": "orthogonal-clamp", "block": "OrthogonalTransform", "dims_in": [(3,)],
     "kwargs": {"clamp": 0.5, "correction_interval": 7}, "perturb": 0.5, "our_kwargs": _FREIA_ORTHOGONAL},
    {"name": "iresnet-fc", "block": "IResNetLayer", "dims_in": [(4,)],
     "kwargs": {"internal_size": 6, "n_internal_layers": 1}, **_IRESNET},
    {"name": "iresnet-conv", "block": "IResNetLayer", "dims_in": [(2, 3, 3)],
     "kwargs": {"internal_size": 3, "n_internal_layers": 0}, **_IRESNET},
    {"name": "rq-spline-fc", "block": "RationalQuadraticSpline", "dims_in": [(4,)], "subnet": "fc",
     "kwargs": _SMALL_DOMAIN, **_HEAD_SPLINE},
    {"name": "rq-spline-fc-cond", "block": "RationalQuadraticSpline", "dims_in": [(3,)], "dims_c": [(2,)],
     "subnet": "fc", "kwargs": {"bins": 3, "split_len": 1}, **_HEAD_SPLINE},
    {"name": "rq-spline-conv-identity-tails", "block": "RationalQuadraticSpline", "dims_in": [(2, 3, 3)],
     "subnet": "conv", "kwargs": {"bins": 3, "identity_tails": True, "default_domain": [-1.0, 1.0, -1.0, 1.0]},
     **_HEAD_SPLINE},
    {"name": "rq-spline-fc-domain-clamping", "block": "RationalQuadraticSpline", "dims_in": [(4,)],
     "subnet": "fc", "kwargs": {**_SMALL_DOMAIN, "domain_clamping": 1.5}, **_HEAD_SPLINE},
    {"name": "linear-spline-fc", "block": "LinearSpline", "dims_in": [(4,)], "subnet": "fc",
     "kwargs": _SMALL_DOMAIN, **_HEAD_SPLINE},
    {"name": "linear-spline-conv-cond", "block": "LinearSpline", "dims_in": [(2, 3, 3)], "dims_c": [(1, 3, 3)],
     "subnet": "conv", "kwargs": {"bins": 3}, **_HEAD_SPLINE},
    {"name": "elementwise-rq-spline", "block": "ElementwiseRationalQuadraticSpline", "dims_in": [(3,)],
     "kwargs": _SMALL_DOMAIN, "perturb": 0.5, **_HEAD_SPLINE},
    {"name": "elementwise-rq-spline-image", "block": "ElementwiseRationalQuadraticSpline", "dims_in": [(2, 2, 2)],
     "kwargs": {"bins": 3, "identity_tails": True, "default_domain": [-1.0, 1.0, -1.0, 1.0]}, "perturb": 0.5,
     **_HEAD_SPLINE},
    # No conditional elementwise case: FrEIA HEAD casts the conditions to float32, so it fails in float64.
    {"name": "elementwise-rq-spline-unused-subnet", "block": "ElementwiseRationalQuadraticSpline",
     "dims_in": [(3,)], "subnet": "fc", "kwargs": _SMALL_DOMAIN, "perturb": 0.5, **_HEAD_SPLINE},
]

if __name__ == "__main__":
    main(CASES)
