"""Subnet factories build the networks they describe; condition embeddings make feature maps of the right size."""

import dataclasses
import pickle

import pytest
import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.nn import ConvSubnet, ImageToFeatureMap, MLPSubnet, ResNetSubnet, VectorToFeatureMap
from freia_graph.testing import check_invertible, check_log_det, check_module_contract, prepare_model

# (factory, input shape without channels)
FACTORIES = [
    (MLPSubnet(hidden=8, depth=2), ()),
    (MLPSubnet(hidden=8, depth=1, activation="tanh", dropout=0.2, normalization="layer"), ()),
    (MLPSubnet(hidden=8, depth=3, activation=nn.SiLU, normalization="batch", last_layer_scale=0.5), ()),
    (ConvSubnet(hidden=4, depth=2), (6, 6)),
    (ConvSubnet(hidden=4, depth=1, kernel_size=5, dropout=0.1, normalization="layer"), (6, 6)),
    (ResNetSubnet(hidden=4, depth=2), (6, 6)),
    (ResNetSubnet(hidden=4, depth=1, kernel_size=1, normalization="batch", activation="gelu", dropout=0.1), (6, 6)),
]
FACTORY_IDS = [f"{type(factory).__name__}-{index}" for index, (factory, _) in enumerate(FACTORIES)]


@pytest.mark.parametrize(("factory", "spatial"), FACTORIES, ids=FACTORY_IDS)
def test_factories_build_trainable_subnets_of_the_right_shape(factory, spatial):
    torch.manual_seed(0)
    subnet = factory(3, 5)
    x = torch.randn(4, 3, *spatial)
    y = subnet(x)
    assert y.shape == (4, 5, *spatial)
    y.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in subnet.parameters())
    layers = [m for m in subnet.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    expected = factory.depth + 1 if isinstance(factory, (MLPSubnet, ConvSubnet)) else 2 * factory.depth + 2
    assert len(layers) == expected
    assert any(isinstance(m, nn.Dropout) for m in subnet.modules()) == (factory.dropout > 0)
    norms = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)
    assert any(isinstance(m, norms) for m in subnet.modules()) == (factory.normalization is not None)


@pytest.mark.parametrize(("factory", "spatial"), FACTORIES, ids=FACTORY_IDS)
def test_last_layer_is_scaled(factory, spatial):
    torch.manual_seed(1)
    reference = dataclasses.replace(factory, last_layer_scale=1.0)(3, 5)
    torch.manual_seed(1)
    zero = dataclasses.replace(factory, last_layer_scale=0.0)(3, 5)
    torch.manual_seed(1)
    scaled = factory(3, 5)
    last = [m for m in reference.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    last_scaled = [m for m in scaled.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    torch.testing.assert_close(last_scaled.weight, factory.last_layer_scale * last.weight)
    zero.eval()
    assert torch.count_nonzero(zero(torch.randn(2, 3, *spatial))) == 0


@pytest.mark.parametrize(
    ("block", "dims", "factory"),
    [
        (Fm.GLOWCouplingBlock, (6,), MLPSubnet(hidden=8, normalization="layer")),
        (Fm.RNVPCouplingBlock, (4, 4, 4), ConvSubnet(hidden=4, normalization="layer")),
        (Fm.AllInOneBlock, (4, 4, 4), ResNetSubnet(hidden=4, depth=1, normalization="layer")),
    ],
    ids=["mlp", "conv", "resnet"],
)
def test_factories_satisfy_the_coupling_contract(block, dims, factory):
    report = check_module_contract(block, [dims], [(2, *dims[1:])], module_kwargs={"subnet_constructor": factory})
    assert report.passed


def test_factories_are_values_that_pickle_and_print():
    factory = ConvSubnet(hidden=16, normalization="layer")
    assert pickle.loads(pickle.dumps(factory)) == factory
    assert repr(factory).startswith("ConvSubnet(hidden=16, depth=2, activation='relu'")
    assert MLPSubnet(activation="Leaky-ReLU")(2, 2)[1].__class__ is nn.LeakyReLU


def test_dropout_and_batch_norm_flows_invert_exactly_in_eval_mode():
    torch.manual_seed(0)
    factory = MLPSubnet(hidden=8, dropout=0.5, normalization="batch")
    flow = Ff.SequenceINN(4)
    flow.append(Fm.GLOWCouplingBlock, subnet_constructor=factory)
    flow.append(Fm.PermuteRandom, seed=0)
    flow.append(Fm.GLOWCouplingBlock, subnet_constructor=factory)
    x = torch.randn(8, 4, dtype=torch.float64)
    flow = prepare_model(flow, x=x).eval()
    check_invertible(flow, x)
    check_log_det(flow, x)


def test_vector_embedding_broadcasts_or_upsamples():
    torch.manual_seed(0)
    labels = torch.eye(3)
    broadcast = VectorToFeatureMap(3, (2, 8, 4), base_size=1)(labels)
    assert broadcast.shape == (3, 2, 8, 4)
    assert torch.equal(broadcast, broadcast[:, :, :1, :1].expand_as(broadcast))
    upsampled = VectorToFeatureMap(3, (2, 8, 4), base_size=2, hidden=5)(labels)
    assert upsampled.shape == (3, 2, 8, 4) and upsampled.std(dim=(2, 3)).min() > 0
    full = VectorToFeatureMap(3, (2, 4, 4), base_size=4)
    assert full.linear.out_features == 2 * 4 * 4
    assert torch.equal(full(labels), full.linear(labels).reshape(3, 2, 4, 4))


@pytest.mark.parametrize("size", [(8, 8), (2, 4), (4, 4), (16, 12)], ids=str)
def test_image_embedding_resizes_then_convolves(size):
    image = torch.randn(2, 1, 8, 8)
    embedding = ImageToFeatureMap((1, 8, 8), (1, *size), kernel_size=1)
    with torch.no_grad():  # an identity convolution exposes the resizing
        embedding.conv.weight.fill_(1.0)
        embedding.conv.bias.zero_()
    expected = nn.functional.adaptive_avg_pool2d(image, size) if size[0] <= 8 and size[1] <= 8 else (
        nn.functional.interpolate(image, size=size, mode="bilinear", align_corners=False))
    torch.testing.assert_close(embedding(image), expected)
    assert ImageToFeatureMap((1, 8, 8), (3, *size), hidden=4)(image).shape == (2, 3, *size)


def test_embedding_conditions_an_image_coupling_exactly():
    torch.manual_seed(0)
    x_in, label = Ff.InputNode(2, 4, 4, name="x"), Ff.ConditionNode(3, name="label")
    embed = Ff.FeedForwardNode(label, (2, 4, 4), VectorToFeatureMap, {"in_features": 3, "out_shape": (2, 4, 4)},
                               name="embed")
    coupling = Ff.Node(x_in, Fm.GLOWCouplingBlock, {"subnet_constructor": ConvSubnet(hidden=4)}, conditions=embed,
                       name="coupling")
    flow = Ff.GraphINN([x_in, label, embed, coupling, Ff.OutputNode(coupling, name="z")])
    x, c = torch.randn(3, 2, 4, 4, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    prepare_model(flow, x=x, c=c)
    check_invertible(flow, x, c)
    check_log_det(flow, x, c)
    assert not torch.allclose(flow(x, c=c)[0], flow(x, c=c.flip(0))[0])


BAD_ARGUMENTS = [
    (MLPSubnet, dict(hidden=0), ValueError, "MLPSubnet: hidden must be an int >= 1"),
    (MLPSubnet, dict(depth=1.5), TypeError, "depth must be an int >= 1, got float"),
    (MLPSubnet, dict(dropout=1.0), ValueError, "dropout must be a number in [0, 1)"),
    (MLPSubnet, dict(normalization="group"), ValueError, "normalization must be one of ['batch', 'layer']"),
    (MLPSubnet, dict(activation="swish"), ValueError, "activation must be one of"),
    (MLPSubnet, dict(activation=42), TypeError, "or a callable returning an nn.Module"),
    (MLPSubnet, dict(activation=lambda: 3), TypeError, "activation() must return an nn.Module"),
    (MLPSubnet, dict(last_layer_scale=-1), ValueError, "last_layer_scale must be a number in [0, inf)"),
    (ConvSubnet, dict(kernel_size=2), ValueError, "kernel_size must be odd"),
    (ResNetSubnet, dict(depth=0), ValueError, "ResNetSubnet: depth must be an int >= 1"),
    (VectorToFeatureMap, dict(in_features=3, out_shape=(4,)), ValueError, "out_shape must be an image shape"),
    (VectorToFeatureMap, dict(in_features=3, out_shape=(4, 2, 2), base_size=0), ValueError, "base_size"),
    (ImageToFeatureMap, dict(in_shape=(1, 8), out_shape=(1, 4, 4)), ValueError, "in_shape must be an image shape"),
    (ImageToFeatureMap, dict(in_shape=(1, 8, 8), out_shape=(1, 4, 4), hidden=-1), ValueError, "hidden must be"),
]


@pytest.mark.parametrize(("factory", "arguments", "error", "fragment"), BAD_ARGUMENTS)
def test_bad_arguments_raise_clear_errors(factory, arguments, error, fragment):
    with pytest.raises(error) as caught:
        factory(**arguments)
    assert fragment in str(caught.value)


def test_bad_channel_counts_name_the_factory():
    with pytest.raises(ValueError, match="ConvSubnet: c_out must be an int >= 1"):
        ConvSubnet()(3, 0)
