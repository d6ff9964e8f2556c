"""FrEIA's subclassing protocols: a coupling on ``_BaseCouplingBlock`` and splines on ``BinnedSpline``,
written the way FrEIA users write them, checked block by block and inside a GraphINN."""

import math

import pytest
import torch
import torch.nn.functional as F

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.modules.coupling_layers import _BaseCouplingBlock
from freia_graph.modules.splines.binned import BinnedSpline, BinnedSplineBase
from freia_graph.modules.splines.rational_quadratic import rational_quadratic_spline
from freia_graph.testing import check_invertible, check_log_det, check_module_contract, prepare_model
from tests.modules.registry import conv_subnet, linear_subnet


class UserAffineCoupling(_BaseCouplingBlock):
    """A Glow-style coupling as FrEIA users write it (two subnets, clamped log-scales)."""

    def __init__(self, dims_in, dims_c=[], subnet_constructor=None, clamp=2.0, clamp_activation="ATAN", split_len=0.5):  # noqa: B006, E501  (as FrEIA writes it)
        super().__init__(dims_in, dims_c, clamp, clamp_activation, split_len=split_len)
        self.subnet1 = subnet_constructor(self.split_len2 + self.condition_length, self.split_len1 * 2)
        self.subnet2 = subnet_constructor(self.split_len1 + self.condition_length, self.split_len2 * 2)

    def _affine(self, x, a, length, rev):
        s, t = self.clamp * self.f_clamp(a[:, :length]), a[:, length:]
        log_det = torch.sum(s, dim=tuple(range(1, self.ndims + 1)))
        if rev:
            return (x - t) * torch.exp(-s), -log_det
        return x * torch.exp(s) + t, log_det

    def _coupling1(self, x1, u2, rev=False):
        return self._affine(x1, self.subnet1(u2), self.split_len1, rev)

    def _coupling2(self, x2, u1, rev=False):
        return self._affine(x2, self.subnet2(u1), self.split_len2, rev)


class UserLinearSpline(BinnedSpline):
    """The simplest BinnedSpline: a straight line in every bin."""

    def _spline1(self, x, parameters, rev=False):
        left, right, bottom, top = (parameters[k] for k in ("left", "right", "bottom", "top"))
        slope = (top - bottom) / (right - left)
        out = (x - bottom) / slope + left if rev else (x - left) * slope + bottom
        return out, torch.log(slope)

    _spline2 = _spline1


class UserCurvedSpline(UserLinearSpline):
    """A spline with one extra value per knot (``parameter_counts``) and its own constraint, as FrEIA's
    RationalQuadraticSpline extends the base: y = bottom + height·(e^{a·ξ} − 1)/(e^a − 1), ξ the position
    in the bin, a > 0 read at the bin's left knot."""

    def __init__(self, *args, bins=4, **kwargs):
        super().__init__(*args, bins=bins, parameter_counts={"curvature": bins + 1}, **kwargs)

    def constrain_parameters(self, parameters):
        parameters = super().constrain_parameters(parameters)
        parameters["curvature"] = 0.5 + F.softplus(parameters["curvature"])
        return parameters

    def _spline1(self, x, parameters, rev=False):
        left, right, bottom, top = (parameters[k] for k in ("left", "right", "bottom", "top"))
        a, width, height = parameters["curvature_left"], right - left, top - bottom
        if rev:
            xi = torch.log1p((x - bottom) / height * torch.expm1(a)) / a
            out = left + width * xi
        else:
            xi = (x - left) / width
            out = bottom + height * torch.expm1(a * xi) / torch.expm1(a)
        log_derivative = torch.log(height / width * a / torch.expm1(a)) + a * xi
        return out, log_derivative

    _spline2 = _spline1


class UserRationalQuadratic(BinnedSpline):
    """A rational-quadratic spline built from FrEIA's per-bin function, with knot derivatives as extra
    parameters: positive inside, the tails' slope at both ends."""

    def __init__(self, *args, bins=6, **kwargs):
        super().__init__(*args, bins=bins, parameter_counts={"deltas": bins - 1}, **kwargs)

    def constrain_parameters(self, parameters):
        parameters = super().constrain_parameters(parameters)
        tail_slope = parameters["heights"].sum(-1, keepdim=True) / parameters["widths"].sum(-1, keepdim=True)
        inner = F.softplus(parameters["deltas"] + math.log(math.e - 1))
        parameters["deltas"] = torch.cat((tail_slope, inner, tail_slope), dim=-1)
        return parameters

    def _spline1(self, x, parameters, rev=False):
        corners = (parameters[k] for k in ("left", "right", "bottom", "top"))
        return rational_quadratic_spline(x, *corners, parameters["deltas_left"], parameters["deltas_right"], rev=rev)

    _spline2 = _spline1


CASES = [
    pytest.param(UserAffineCoupling, [(6,)], None, {"subnet_constructor": linear_subnet}, id="affine"),
    pytest.param(UserAffineCoupling, [(5,)], [(3,)], {"subnet_constructor": linear_subnet, "split_len": 2,
                                                     "clamp_activation": "TANH"}, id="affine-cond-int-split"),
    pytest.param(UserAffineCoupling, [(4, 3, 3)], [(2, 3, 3)], {"subnet_constructor": conv_subnet,
                                                               "clamp_activation": "SIGMOID"}, id="affine-image"),
    pytest.param(UserAffineCoupling, [(4,)], None, {"subnet_constructor": linear_subnet,
                                                   "clamp_activation": torch.tanh, "clamp": 1.5}, id="affine-callable"),
    pytest.param(UserLinearSpline, [(6,)], None, {"subnet_constructor": linear_subnet, "bins": 5}, id="linear"),
    pytest.param(UserLinearSpline, [(4, 3, 3)], [(2, 3, 3)], {"subnet_constructor": conv_subnet,
                                                             "identity_tails": True}, id="linear-identity-tails"),
    pytest.param(UserCurvedSpline, [(5,)], [(2,)], {"subnet_constructor": linear_subnet,
                                                   "domain_clamping": 2.5}, id="curved-extra-parameters"),
    pytest.param(UserCurvedSpline, [(4,)], None, {"subnet_constructor": linear_subnet, "identity_tails": True,
                                                 "default_domain": (-1.0, 1.0, -1.0, 1.0)}, id="curved-identity"),
    pytest.param(UserRationalQuadratic, [(5,)], [(2,)], {"subnet_constructor": linear_subnet}, id="rq-kernel"),
    pytest.param(UserRationalQuadratic, [(4, 3, 3)], None, {"subnet_constructor": conv_subnet,
                                                           "domain_clamping": 4.0}, id="rq-kernel-image"),
]


@pytest.mark.parametrize(("block", "dims_in", "dims_c", "kwargs"), CASES)
def test_user_subclasses_honour_the_contract(block, dims_in, dims_c, kwargs):
    # input_scale 2 puts a good share of the inputs outside the spline domains, onto the tails
    check_module_contract(block, dims_in, dims_c, module_kwargs=kwargs, input_scale=2.0, perturbation=0.3)


@pytest.mark.parametrize(("block", "dims_in", "dims_c", "kwargs"), CASES)
def test_user_subclasses_in_a_graph(block, dims_in, dims_c, kwargs):
    torch.manual_seed(0)
    x_in = Ff.InputNode(*dims_in[0], name="x")
    conditions = [Ff.ConditionNode(*shape, name=f"c{i}") for i, shape in enumerate(dims_c or [])]
    first = Ff.Node(x_in, block, kwargs, conditions=conditions or None, name="first")
    perm = Ff.Node(first, Fm.PermuteRandom, {"seed": 0}, name="perm")
    second = Ff.Node(perm, block, kwargs, conditions=conditions or None, name="second")
    inn = prepare_model(Ff.GraphINN([x_in, *conditions, first, perm, second, Ff.OutputNode(second, name="z")]),
                        perturbation=0.15)  # stronger makes two stacked identity-tailed splines ill-conditioned
    x = 2 * torch.randn(6, *dims_in[0], dtype=torch.float64)
    c = [torch.randn(6, *shape, dtype=torch.float64) for shape in dims_c or []]
    check_invertible(inn, x, c or None)
    check_log_det(inn, x, c or None)


def test_base_coupling_attributes_match_freia():
    block = UserAffineCoupling([(7, 2, 2)], [(3, 2, 2), (1, 2, 2)], subnet_constructor=conv_subnet, clamp=1.5)
    assert (block.channels, block.ndims, block.split_len1, block.split_len2) == (7, 3, 4, 3)
    assert (block.conditional, block.condition_length, block.clamp) == (True, 4, 1.5)
    u = torch.tensor([-1e6, 0.0, 1e6])
    torch.testing.assert_close(block.f_clamp(u), torch.tensor([-0.636 * torch.pi / 2, 0.0, 0.636 * torch.pi / 2]))


def test_spline_attributes_and_state_dict_keys_match_freia():
    block = UserLinearSpline([(4,)], subnet_constructor=linear_subnet, bins=3)
    assert block.spline_base.parameter_counts == {"widths": 3, "heights": 3, "bottom": 1, "left": 1}
    keys = {k for k in block.state_dict() if k.startswith("spline_base.")}
    assert keys == {f"spline_base.{name}" for name in
                    ("bins", "min_bin_sizes", "default_domain", "identity_tails", "default_width")}
    assert {k.split(".")[0] for k in block.state_dict()} == {"spline_base", "subnet1", "subnet2"}


def test_spline_tails_are_affine_outside_the_domain():
    block = UserLinearSpline([(2,)], subnet_constructor=linear_subnet, bins=4).double()
    for subnet in (block.subnet1, block.subnet2):  # zero outputs: the default domain, equal bins, slope 1
        torch.nn.init.zeros_(subnet[-1].weight), torch.nn.init.zeros_(subnet[-1].bias)
    x = torch.tensor([[-10.0, 50.0], [0.5, -0.25]], dtype=torch.float64)
    (z,), log_det = block([x])
    torch.testing.assert_close(z, x)
    torch.testing.assert_close(log_det, torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: UserAffineCoupling([(4,)], [(2, 3)], subnet_constructor=linear_subnet), ["condition 0", "(2, 3)"]),
        (lambda: UserAffineCoupling([(4,)], subnet_constructor=linear_subnet, clamp_activation="RELU"), ["RELU"]),
        (lambda: UserAffineCoupling([(4,)], subnet_constructor=linear_subnet, split_len=4), ["split_len=4"]),
        (lambda: BinnedSplineBase([(4,)], bins=0), ["bins"]),
        (lambda: BinnedSplineBase([(4,)], bins=70), ["70 bins", "default_domain"]),
        (lambda: BinnedSplineBase([(4,)], default_domain=(1.0, -1.0, 0.0, 1.0)), ["increasing"]),
        (lambda: BinnedSplineBase([(4,)]).split_parameters(torch.zeros(2, 7), 2), ["(2, 7)", "44"]),
    ],
)
def test_bad_arguments_name_the_problem(make, words):
    with pytest.raises(ValueError) as raised:
        make()
    assert all(word in str(raised.value) for word in words), str(raised.value)


def test_missing_methods_and_conditions_are_reported():
    class Unfinished(_BaseCouplingBlock):
        pass

    with pytest.raises(NotImplementedError, match="_coupling1"):
        Unfinished([(4,)])([torch.zeros(1, 4)])
    with pytest.raises(NotImplementedError, match="_spline1"):
        BinnedSpline([(4,)], subnet_constructor=linear_subnet)([torch.zeros(1, 4)])
    conditional = UserAffineCoupling([(4,)], [(2,)], subnet_constructor=linear_subnet)
    with pytest.raises(ValueError, match="without conditions"):
        conditional([torch.zeros(1, 4)])


SPLINE_CASES = [case for case in CASES if issubclass(case.values[0], BinnedSpline)]


@pytest.mark.parametrize(("block", "dims_in", "dims_c", "kwargs"), SPLINE_CASES)
def test_user_splines_compute_in_float32_under_autocast(block, dims_in, dims_c, kwargs):
    """Under bfloat16 autocast a user's spline finds its bins in float32 (bfloat16 knots collapse, and forward
    and reverse would pick different bins): it round-trips to float32 accuracy, with a float32 log-det."""
    torch.manual_seed(0)
    module = block(dims_in, dims_c, **kwargs)
    x = [2 * torch.randn(8, *dims_in[0])]
    c = [torch.randn(8, *shape) for shape in dims_c or []] or None
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        (z,), log_det = module(x, c)
        (x_back,), log_det_rev = module([z], c, rev=True)
    assert z.dtype == log_det.dtype == torch.float32
    torch.testing.assert_close(x_back, x[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(log_det_rev, -log_det, rtol=1e-4, atol=1e-4)
