"""The programs of FrEIA's documentation (docs/source/tutorial in FrEIA HEAD) run on freia_graph with only
their imports changed: the same classes, calls and arguments, rewritten here in our own words.

Sizes the docs leave open (batch sizes, the data ``x``, labels) are chosen here; long training loops are
shortened. FrEIA's examples pages bayes_flow, inv_unet and the two training loops have no code.
"""

import math

import pytest
import torch
import torch.nn as nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm


def make_moons(n_samples: int, noise: float, generator: torch.Generator) -> torch.Tensor:
    """Two interleaved half circles, as sklearn's make_moons (not a dependency here)."""
    angle = math.pi * torch.rand(n_samples, generator=generator)
    upper = torch.rand(n_samples, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack((x, y), 1) + noise * torch.randn(n_samples, 2, generator=generator)


# --- quickstart.rst -----------------------------------------------------------------------------------


def test_quickstart_trains_on_moons_and_samples():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    batch_size, n_dim = 100, 2

    def subnet_fc(dims_in, dims_out):
        return nn.Sequential(nn.Linear(dims_in, 512), nn.ReLU(), nn.Linear(512, dims_out))

    inn = Ff.SequenceINN(n_dim)
    for _ in range(8):
        inn.append(Fm.AllInOneBlock, subnet_constructor=subnet_fc, permute_soft=True)
    optimizer = torch.optim.Adam(inn.parameters(), lr=0.001)

    losses = []
    for _ in range(40):  # the docs train for 1000 steps
        optimizer.zero_grad()
        x = torch.Tensor(make_moons(batch_size, 0.05, generator))
        z, log_jac_det = inn(x)
        loss = (0.5 * torch.sum(z**2, 1) - log_jac_det).mean() / n_dim
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    z = torch.randn(batch_size, n_dim)
    samples, _ = inn(z, rev=True)
    assert samples.shape == (batch_size, n_dim) and torch.isfinite(samples).all()
    assert sum(losses[-5:]) < sum(losses[:5]), losses


# --- graph_inns.rst -----------------------------------------------------------------------------------


def test_graph_api_example_with_two_inputs_two_outputs_and_a_condition():
    torch.manual_seed(0)
    in1 = Ff.InputNode(100, name="Input 1")
    in2 = Ff.InputNode(20, name="Input 2")
    cond = Ff.ConditionNode(42, name="Condition")

    def subnet(dims_in, dims_out):
        return nn.Sequential(nn.Linear(dims_in, 256), nn.ReLU(), nn.Linear(256, dims_out))

    perm = Ff.Node(in1, Fm.PermuteRandom, {}, name="Permutation")
    split1 = Ff.Node(perm, Fm.Split, {}, name="Split 1")
    split2 = Ff.Node(split1.out1, Fm.Split, {}, name="Split 2")
    actnorm = Ff.Node(split2.out1, Fm.ActNorm, {}, name="ActNorm")
    concat1 = Ff.Node([actnorm.out0, in2.out0], Fm.Concat, {}, name="Concat 1")
    affine = Ff.Node(concat1, Fm.AffineCouplingOneSided, {"subnet_constructor": subnet}, conditions=cond,
                     name="Affine Coupling")
    concat2 = Ff.Node([split2.out0, affine.out0], Fm.Concat, {}, name="Concat 2")
    output1 = Ff.OutputNode(split1.out0, name="Output 1")
    output2 = Ff.OutputNode(concat2, name="Output 2")
    example_inn = Ff.GraphINN([in1, in2, cond, perm, split1, split2, actnorm, concat1, affine, concat2,
                               output1, output2])

    x1, x2, c = torch.randn(1, 100), torch.randn(1, 20), torch.randn(1, 42)
    (z1, z2), log_jac_det = example_inn([x1, x2], c=c)
    (x1_inv, x2_inv), log_jac_det_inv = example_inn([z1, z2], c=c, rev=True)
    assert torch.max(torch.abs(x1_inv - x1)) < 1e-5 and torch.max(torch.abs(x2_inv - x2)) < 1e-5
    assert (z1.shape, z2.shape) == ((1, 50), (1, 70))


# --- sequential_inns.rst ------------------------------------------------------------------------------


def _subnet_fc_128(dims_in, dims_out):
    return nn.Sequential(nn.Linear(dims_in, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                         nn.Linear(128, dims_out))


def test_sequential_api_example():
    torch.manual_seed(0)
    input_dims = (784,)
    inn = Ff.SequenceINN(*input_dims)
    for _ in range(8):
        inn.append(Fm.AllInOneBlock, subnet_constructor=_subnet_fc_128)

    x = torch.randn(16, *input_dims)
    z, jac = inn(x)
    x_inv, jac_inv = inn(z, rev=True)
    assert torch.max(torch.abs(x - x_inv)) < 1e-5
    assert torch.max(torch.abs(jac + jac_inv)) < 1e-5


def test_sequential_api_conditional_example():
    torch.manual_seed(0)
    input_dims, cond_dims = (784,), (10,)
    cinn = Ff.SequenceINN(*input_dims)
    for _ in range(8):
        cinn.append(Fm.AllInOneBlock, cond=0, cond_shape=cond_dims, subnet_constructor=_subnet_fc_128)

    x = torch.randn(16, *input_dims)
    one_hot_labels = nn.functional.one_hot(torch.arange(16) % 10, 10).float()
    z, jac = cinn(x, c=[one_hot_labels])
    x_inv, _ = cinn(z, c=[one_hot_labels], rev=True)
    assert jac.shape == (16,) and torch.max(torch.abs(x - x_inv)) < 1e-5


# --- invertible_operations.rst ------------------------------------------------------------------------


def test_glow_node_with_a_subnet_constructor_and_clamp():
    def fc_constr(dims_in, dims_out):
        return nn.Sequential(nn.Linear(dims_in, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                             nn.Linear(128, dims_out))

    in1 = Ff.InputNode(6, name="in1")
    glow = Ff.Node([in1.out0], Fm.GLOWCouplingBlock, {"subnet_constructor": fc_constr, "clamp": 2.0},
                   name="GLOW coupling block")
    inn = Ff.GraphINN([in1, glow, Ff.OutputNode(glow)])
    x = torch.randn(5, 6)
    z, log_jac_det = inn(x)
    assert torch.allclose(inn(z, rev=True)[0], x, atol=1e-5)
    assert torch.all(log_jac_det.abs() <= 6 * 2.0)  # the docs: |log det| is at most D * clamp


class FixedRandomElementwiseMultiply(Fm.InvertibleModule):
    """The docs' first custom-module template: multiply each dimension by 1 or 2, fixed at random.
    Its ``forward(x, rev, jac)`` has FrEIA's keyword signature, without ``c``."""

    def __init__(self, dims_in):
        super().__init__(dims_in)
        self.random_factor = torch.randint(1, 3, size=(1, dims_in[0][0]))

    def forward(self, x, rev=False, jac=True):
        x = x[0]
        log_jac_det = self.random_factor.float().log().sum()
        if rev:
            return (x / self.random_factor,), -log_jac_det
        return (x * self.random_factor,), log_jac_det

    def output_dims(self, input_dims):
        return input_dims


class ConditionalSwap(Fm.InvertibleModule):
    """The docs' second template: swap two inputs sample by sample where the condition is positive."""

    def __init__(self, dims_in, dims_c):
        super().__init__(dims_in, dims_c=dims_c)

    def forward(self, x, c, rev=False, jac=True):
        x1, x2 = x
        x1_new, x2_new = x1 + 0.0, x2 + 0.0  # copies, changed below
        for i in range(x1.size(0)):
            x1_new[i] = x1[i] if c[0][i] > 0 else x2[i]
            x2_new[i] = x2[i] if c[0][i] > 0 else x1[i]
        return (x1_new, x2_new), 0.0

    def output_dims(self, input_dims):
        return input_dims


def test_custom_module_template_in_a_sequence():
    torch.manual_seed(0)
    batch_size, dims_in = 10, 2
    net = Ff.SequenceINN(dims_in)
    for _ in range(2):
        net.append(FixedRandomElementwiseMultiply)
    x = torch.randn(batch_size, dims_in)
    z, log_jac_det = net(x)
    x_rev, log_jac_det_rev = net(z, rev=True)
    assert torch.allclose(x_rev, x) and torch.allclose(log_jac_det_rev, -log_jac_det)


def _custom_module_graph(dims_in: int) -> Ff.GraphINN:
    input_1 = Ff.InputNode(dims_in, name="input_1")
    input_2 = Ff.InputNode(dims_in, name="input_2")
    cond = Ff.ConditionNode(1, name="condition")
    mult_1 = Ff.Node(input_1.out0, FixedRandomElementwiseMultiply, {}, name="mult_1")
    cond_swap = Ff.Node([mult_1.out0, input_2.out0], ConditionalSwap, {}, conditions=cond, name="conditional_swap")
    mult_2 = Ff.Node(cond_swap.out1, FixedRandomElementwiseMultiply, {}, name="mult_2")
    output_1 = Ff.OutputNode(cond_swap.out0, name="output_1")
    output_2 = Ff.OutputNode(mult_2.out0, name="output_2")
    return Ff.GraphINN([input_1, input_2, cond, mult_1, cond_swap, mult_2, output_1, output_2])


def test_custom_modules_in_a_graph_with_a_condition_per_sample():
    torch.manual_seed(0)
    batch_size, dims_in = 10, 2
    net = _custom_module_graph(dims_in)
    x1, x2 = torch.randn(batch_size, dims_in), torch.randn(batch_size, dims_in)
    c = torch.randn(batch_size, 1)  # the docs pass shape (10,): see the next test
    (z1, z2), log_jac_det = net([x1, x2], c=c)
    (x1_rev, x2_rev), _ = net([z1, z2], c=c, rev=True, jac=False)
    assert torch.allclose(x1_rev, x1) and torch.allclose(x2_rev, x2)


def test_custom_modules_in_a_graph_as_in_the_docs():
    # the docs pass a condition of shape (10,) to a ConditionNode(1): it is taken as (10, 1)
    torch.manual_seed(0)
    batch_size, dims_in = 10, 2
    net = _custom_module_graph(dims_in)
    x1, x2 = torch.randn(batch_size, dims_in), torch.randn(batch_size, dims_in)
    c = torch.randn(batch_size)
    (z1, z2), log_jac_det = net([x1, x2], c=c)
    (x1_rev, x2_rev), _ = net([z1, z2], c=c, rev=True, jac=False)
    assert torch.allclose(x1_rev, x1) and torch.allclose(x2_rev, x2)


# --- examples/fully_connected.rst and examples/convolutional.rst ----------------------------------------


def subnet_fc(c_in, c_out):
    return nn.Sequential(nn.Linear(c_in, 512), nn.ReLU(), nn.Linear(512, c_out))


def subnet_conv(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, 256, 3, padding=1), nn.ReLU(), nn.Conv2d(256, c_out, 3, padding=1))


def subnet_conv_1x1(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, 256, 1), nn.ReLU(), nn.Conv2d(256, c_out, 1))


def test_fully_connected_examples():
    torch.manual_seed(0)
    inn = Ff.SequenceINN(2)
    for _ in range(8):
        inn.append(Fm.AllInOneBlock, subnet_constructor=subnet_fc, permute_soft=True)
    cinn = Ff.SequenceINN(28 * 28)
    for _ in range(12):
        cinn.append(Fm.AllInOneBlock, cond=0, cond_shape=(10,), subnet_constructor=subnet_fc)

    x = torch.randn(4, 2)
    assert torch.allclose(inn(inn(x)[0], rev=True)[0], x, atol=1e-5)
    images, labels = torch.randn(4, 28 * 28), nn.functional.one_hot(torch.arange(4), 10).float()
    z, log_jac_det = cinn(images, c=[labels])
    assert torch.allclose(cinn(z, c=[labels], rev=True)[0], images, atol=1e-4) and log_jac_det.shape == (4,)


def test_convolutional_example_with_downsampling_split_and_concat():
    torch.manual_seed(0)
    nodes = [Ff.InputNode(3, 32, 32, name="input")]
    ndim_x = 3 * 32 * 32
    for k in range(4):
        nodes.append(Ff.Node(nodes[-1], Fm.GLOWCouplingBlock, {"subnet_constructor": subnet_conv, "clamp": 1.2},
                             name=f"conv_high_res_{k}"))
        nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": k}, name=f"permute_high_res_{k}"))
    nodes.append(Ff.Node(nodes[-1], Fm.IRevNetDownsampling, {}))
    for k in range(12):
        subnet = subnet_conv_1x1 if k % 2 == 0 else subnet_conv
        nodes.append(Ff.Node(nodes[-1], Fm.GLOWCouplingBlock, {"subnet_constructor": subnet, "clamp": 1.2},
                             name=f"conv_low_res_{k}"))
        nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": k}, name=f"permute_low_res_{k}"))
    nodes.append(Ff.Node(nodes[-1], Fm.Flatten, {}, name="flatten"))
    split_node = Ff.Node(nodes[-1], Fm.Split, {"section_sizes": (ndim_x // 4, 3 * ndim_x // 4), "dim": 0},
                         name="split")
    nodes.append(split_node)
    for k in range(12):
        nodes.append(Ff.Node(nodes[-1], Fm.GLOWCouplingBlock, {"subnet_constructor": subnet_fc, "clamp": 2.0},
                             name=f"fully_connected_{k}"))
        nodes.append(Ff.Node(nodes[-1], Fm.PermuteRandom, {"seed": k}, name=f"permute_{k}"))
    with pytest.warns(DeprecationWarning, match="Concat1d"):
        nodes.append(Ff.Node([nodes[-1].out0, split_node.out1], Fm.Concat1d, {"dim": 0}, name="concat"))
    nodes.append(Ff.OutputNode(nodes[-1], name="output"))
    conv_inn = Ff.GraphINN(nodes)

    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        z, log_jac_det = conv_inn(x)
        x_rec, log_jac_det_rev = conv_inn(z, rev=True)
    assert z.shape == (2, ndim_x) and log_jac_det.shape == (2,)
    assert torch.allclose(x_rec, x, atol=1e-4) and torch.allclose(log_jac_det_rev, -log_jac_det, atol=1e-3)


# --- tips_tricks_faq.rst --------------------------------------------------------------------------------


def test_tips_zero_initialised_last_layers_give_the_identity_and_clipping_works():
    def subnet_zero_last(c_in, c_out):
        layers = nn.Sequential(nn.Linear(c_in, 128), nn.ReLU(), nn.Linear(128, c_out))
        nn.init.xavier_uniform_(layers[0].weight)
        nn.init.zeros_(layers[-1].weight), nn.init.zeros_(layers[-1].bias)
        return layers

    inn = Ff.SequenceINN(6)
    for k in range(40):  # "very deep (>30 coupling blocks)"
        inn.append(Fm.GLOWCouplingBlock, subnet_constructor=subnet_zero_last)
        inn.append(Fm.PermuteRandom, seed=k)
    x = torch.randn(8, 6) + 1e-2 * torch.randn(8, 6)
    z, log_jac_det = inn(x)
    assert torch.equal(z.sort(1).values, x.sort(1).values)  # couplings are the identity: only permutations act
    assert torch.all(log_jac_det == 0)
    (0.5 * (z**2).sum(1) - log_jac_det).mean().backward()
    total = torch.nn.utils.clip_grad_norm_(inn.parameters(), 1.0)
    assert torch.isfinite(total)
