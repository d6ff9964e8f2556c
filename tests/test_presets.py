"""The presets build ordinary GraphINNs that train, invert and report exact log-dets, and refuse bad arguments."""

import itertools

import pytest
import torch

import freia_graph.modules as Fm
from freia_graph import GraphINN
from freia_graph.nn import ConvSubnet, MLPSubnet, ResNetSubnet
from freia_graph.presets import COUPLINGS, PERMUTATIONS, coupling_flow, multiscale_flow
from freia_graph.testing import check_invertible, check_log_det, prepare_model

SMALL_MLP = MLPSubnet(hidden=8, depth=1)
SMALL_CONV = ConvSubnet(hidden=4, depth=1)

# every permutation with the affine couplings; splines (slow under the exact Jacobian) with one
VECTOR_CASES = [
    *itertools.product(["GLOW", "RNVP"], PERMUTATIONS),
    ("AllInOne", "random"),
    ("AllInOne", "orthogonal"),
    ("RationalQuadraticSpline", "learned"),
]

IMAGE_CASES = {  # name: keyword arguments of multiscale_flow
    "haar": dict(dims_c=None),
    "irevnet_vector_condition": dict(downsampling="irevnet", dims_c=[(3,)], permutation="learned", actnorm=True),
    "image_condition": dict(dims_c=[(1, 4, 4)], permutation="orthogonal"),
    "both_conditions_rnvp": dict(coupling="RNVP", dims_c=[(3,), (2, 8, 8)], embedding_args={"hidden": 4}),
    "allinone_broadcast": dict(coupling="AllInOne", dims_c=[(3,)], embedding_args={"base_size": 1}),
    "spline_resnet": dict(dims=(1, 4, 4), coupling="RationalQuadraticSpline", split_fraction=0.25,
                          subnet_constructor=ResNetSubnet(hidden=4, depth=1)),
    "no_split": dict(split_fraction=0.0, permutation="none", dims_c=[(3,)]),
}


def _image_flow(**options) -> GraphINN:
    options = {"dims": (1, 8, 8), "levels": 2, "blocks_per_level": 1, "subnet_constructor": SMALL_CONV, **options}
    return multiscale_flow(**options)


@pytest.fixture
def float64():
    """Build in float64: fixed matrices made in float32 and converted are inverse only to float32 precision."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _inputs(flow: GraphINN, batch: int = 3, dtype=torch.float64, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *flow.dims_in[0], generator=generator, dtype=dtype)
    c = [torch.randn(batch, *shape, generator=generator, dtype=dtype) for shape in flow.dims_c]
    return x, c


def _latents(flow: GraphINN, batch: int, seed: int = 2):
    generator = torch.Generator().manual_seed(seed)
    shapes = flow.output_dims(flow.dims_in)
    return [torch.randn(batch, *shape, generator=generator, dtype=torch.float64) for shape in shapes]


def _as_tuple(z):
    return z if isinstance(z, tuple) else (z,)


def _nll(flow: GraphINN, x: torch.Tensor, c: list) -> torch.Tensor:
    """Negative log-likelihood under a standard normal latent (without the constant), per sample mean."""
    z, log_det = flow(x, c=c or None)
    return (sum(0.5 * t.pow(2).flatten(1).sum(1) for t in _as_tuple(z)) - log_det).mean()


def _check_exact(flow: GraphINN) -> None:
    x, c = _inputs(flow)
    prepare_model(flow, x=x, c=c or None)  # ActNorm initialisation, then parameters away from identity
    check_invertible(flow, x, c or None, z=_latents(flow, x.shape[0]))
    check_log_det(flow, x, c or None)
    if c:  # every condition is used, in both directions
        z, _ = flow(x, c=c)
        other = [t + 1 for t in c]
        assert not torch.allclose(_as_tuple(flow(x, c=other)[0])[0], _as_tuple(z)[0])
        assert not torch.allclose(flow(list(_as_tuple(z)), c=other, rev=True)[0], x)


def _check_trains(flow: GraphINN, steps: int = 8) -> None:
    x, c = _inputs(flow, batch=16, dtype=torch.float32)
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = _nll(flow, x, c)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize(("coupling", "permutation"), VECTOR_CASES)
def test_coupling_flow_inverts_with_exact_log_det(coupling, permutation, float64):
    torch.manual_seed(0)
    flow = coupling_flow(4, depth=2, coupling=coupling, permutation=permutation, actnorm=True, dims_c=[(2,)],
                         subnet_constructor=SMALL_MLP)
    _check_exact(flow)


@pytest.mark.parametrize("coupling", [*COUPLINGS, Fm.NICECouplingBlock])
def test_coupling_flow_trains(coupling):
    torch.manual_seed(0)
    _check_trains(coupling_flow(4, depth=2, coupling=coupling, subnet_constructor=SMALL_MLP))


def test_coupling_flow_nodes_are_named_and_typed_as_asked():
    flow = coupling_flow((6,), depth=3, coupling=Fm.RNVPCouplingBlock, permutation="learned", actnorm=True,
                         dims_c=[(2,), (3,)], coupling_args={"clamp": 1.5})
    names = [node.name for node in flow.node_list]
    assert names == ["x", "c0", "c1"] + [f"{kind}{k}" for k in (1, 2, 3) for kind in ("actnorm", "permute",
                                                                                         "coupling")] + ["z"]
    assert isinstance(flow.get_module_by_name("permute2"), Fm.InvertibleLinear)
    coupling = flow.get_node_by_name("coupling3")
    assert isinstance(coupling.module, Fm.RNVPCouplingBlock) and coupling.module.clamp == 1.5
    assert [port[0].name for port in coupling.conditions] == ["c0", "c1"]
    orthogonal = coupling_flow(6, depth=1, permutation="orthogonal").get_module_by_name("permute1")
    assert isinstance(orthogonal, Fm.FixedLinearTransform)
    assert "permute1" not in [node.name for node in coupling_flow(6, depth=1, permutation=None).node_list]
    soft = coupling_flow(6, depth=1, coupling="allinone", permutation="orthogonal").get_module_by_name("coupling1")
    assert soft.w_perm.abs().flatten().lt(0.999).any()  # a rotation, not a permutation matrix


def test_same_seed_builds_the_same_flow():
    torch.manual_seed(0)
    first = coupling_flow(6, depth=2, subnet_constructor=SMALL_MLP, seed=3)
    second = coupling_flow(6, depth=2, subnet_constructor=SMALL_MLP, seed=3)
    assert torch.equal(first.get_module_by_name("permute2").perm, second.get_module_by_name("permute2").perm)
    assert not torch.equal(first.get_module_by_name("permute1").perm, first.get_module_by_name("permute2").perm)
    second.load_state_dict(first.state_dict())
    x = torch.randn(2, 6)
    torch.testing.assert_close(second(x)[0], first(x)[0])


@pytest.mark.parametrize("options", IMAGE_CASES.values(), ids=IMAGE_CASES.keys())
def test_multiscale_flow_inverts_with_exact_log_det(options, float64):
    torch.manual_seed(0)
    _check_exact(_image_flow(**options))


@pytest.mark.parametrize("options", [IMAGE_CASES["haar"], IMAGE_CASES["both_conditions_rnvp"]], ids=["plain", "cond"])
def test_multiscale_flow_trains(options):
    torch.manual_seed(0)
    _check_trains(_image_flow(**options))


def test_multiscale_flow_structure():
    flow = multiscale_flow((3, 16, 8), levels=3, blocks_per_level=2, dims_c=[(5,), (1, 16, 8)],
                           condition_channels=2, subnet_constructor=SMALL_CONV)
    # level 1: (12, 8, 4), half split off; level 2: (24, 4, 2), half split off; level 3: (48, 2, 1)
    assert flow.output_dims(flow.dims_in) == [(6, 8, 4), (12, 4, 2), (48, 2, 1)]
    assert [node.name for node in flow.node_list if node.kind == "output"] == ["level1.z", "level2.z", "level3.z"]
    assert flow.get_node_by_name("level2.embed_c1").output_dims == [(2, 4, 2)]
    coupling = flow.get_node_by_name("level3.coupling2")
    assert [port[0].name for port in coupling.conditions] == ["level3.embed_c0", "level3.embed_c1"]
    assert isinstance(flow.get_module_by_name("level1.squeeze"), Fm.HaarDownsampling)
    assert isinstance(flow.get_module_by_name("level1.permute1"), Fm.PermuteRandom)
    z, log_det = flow(torch.randn(2, 3, 16, 8), c=[torch.randn(2, 5), torch.randn(2, 1, 16, 8)])
    assert sum(t[0].numel() for t in z) == 3 * 16 * 8 and log_det.shape == (2,)
    single, _ = multiscale_flow((1, 4, 4), levels=1, subnet_constructor=SMALL_CONV)(torch.randn(2, 1, 4, 4))
    assert single.shape == (2, 4, 2, 2)  # one latent: one tensor, as from any GraphINN


BAD_ARGUMENTS = [
    (coupling_flow, dict(dims=(1, 8, 8)), ValueError, "use multiscale_flow"),
    (coupling_flow, dict(dims=1), ValueError, "dims must be an int >= 2"),
    (coupling_flow, dict(dims=4, depth=0), ValueError, "depth must be an int >= 1"),
    (coupling_flow, dict(dims=4, depth=2.0), TypeError, "depth must be an int"),
    (coupling_flow, dict(dims=4, coupling="glowy"), ValueError, "coupling must be one of ['GLOW'"),
    (coupling_flow, dict(dims=4, coupling=torch.nn.Linear), TypeError, "coupling must be one of"),
    (coupling_flow, dict(dims=4, permutation="shuffle"), ValueError, "permutation must be one of"),
    (coupling_flow, dict(dims=4, coupling="AllInOne", permutation="none"), ValueError, "always permutes"),
    (coupling_flow, dict(dims=4, actnorm="yes"), TypeError, "actnorm must be True or False"),
    (coupling_flow, dict(dims=4, dims_c=(3,)), TypeError, "pass [(3,)] instead"),
    (coupling_flow, dict(dims=4, dims_c=[(1, 4, 4)]), ValueError, "takes vector conditions"),
    (coupling_flow, dict(dims=4, coupling_args={"subnet_constructor": None}), ValueError, "subnet_constructor=..."),
    (coupling_flow, dict(dims=4, coupling_args={"clamp": -1}), ValueError, "Node 'coupling1'"),
    (coupling_flow, dict(dims=4, subnet_constructor="mlp"), TypeError, "subnet_constructor must be a callable"),
    (coupling_flow, dict(dims=4, seed=1.5), TypeError, "seed must be an int or None"),
    (multiscale_flow, dict(dims=(8,)), ValueError, "use coupling_flow"),
    (multiscale_flow, dict(dims=(1, 12, 12), levels=3), ValueError, "multiples of 2**levels = 8"),
    (multiscale_flow, dict(dims=(1, 8, 8), downsampling="max_pool"), ValueError, "downsampling must be one of"),
    (multiscale_flow, dict(dims=(1, 8, 8), split_fraction=1.0), ValueError, "split_fraction must be a number in"),
    (multiscale_flow, dict(dims=(1, 8, 8), split_fraction=0.1), ValueError, "at least one channel must go each way"),
    (multiscale_flow, dict(dims=(1, 8, 8), dims_c=[(2, 3)]), ValueError, "vectors (D,) or images (C, H, W)"),
    (multiscale_flow, dict(dims=(1, 8, 8), condition_channels=0), ValueError, "condition_channels must be"),
    (multiscale_flow, dict(dims=(1, 8, 8), dims_c=[(2,)], embedding_args={"base": 2}), TypeError,
     "FeedForwardNode 'level1.embed_c0'"),
    (multiscale_flow, dict(dims=(1, 8, 8), embedding_args=[1]), TypeError, "embedding_args must be a dict"),
]


@pytest.mark.parametrize(("preset", "arguments", "error", "fragment"), BAD_ARGUMENTS)
def test_bad_arguments_raise_clear_errors(preset, arguments, error, fragment):
    with pytest.raises(error) as caught:
        preset(**arguments)
    assert fragment in str(caught.value)
