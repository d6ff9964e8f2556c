"""Programs written in FrEIA's documented style run with only their imports changed."""

import warnings

import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm


def test_quickstart_style_sequence_trains():
    # FrEIA's quickstart: a SequenceINN of AllInOneBlocks trained by maximum likelihood.
    torch.manual_seed(0)
    batch_size, n_dim = 64, 2

    def subnet_fc(c_in, c_out):
        return nn.Sequential(nn.Linear(c_in, 64), nn.ReLU(), nn.Linear(64, c_out))

    inn = Ff.SequenceINN(n_dim)
    for _ in range(4):
        inn.append(Fm.AllInOneBlock, subnet_constructor=subnet_fc, permute_soft=True)
    optimizer = torch.optim.Adam(inn.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        x = torch.randn(batch_size, n_dim) * torch.tensor([2.0, 0.3]) + torch.tensor([1.0, -1.0])
        z, log_jac_det = inn(x)
        loss = (0.5 * torch.sum(z**2, 1) - log_jac_det).mean() / n_dim
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < sum(losses[:5])
    samples, _ = inn(torch.randn(batch_size, n_dim), rev=True)
    assert samples.shape == (batch_size, n_dim)


def test_graph_tutorial_style_program_runs():
    # FrEIA's GraphINN tutorial: a vector and an image input, a condition, splits, merges and flattening.
    torch.manual_seed(0)

    def subnet_fc(c_in, c_out):
        return nn.Sequential(nn.Linear(c_in, 32), nn.ReLU(), nn.Linear(32, c_out))

    def subnet_conv(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, c_out, 3, padding=1))

    in1 = Ff.InputNode(20, name="Input 1")
    in2 = Ff.InputNode(3, 8, 8, name="Input 2")
    cond = Ff.ConditionNode(7, name="Condition")
    t1 = Ff.Node(in1, Fm.RNVPCouplingBlock, {"subnet_constructor": subnet_fc})
    split = Ff.Node(in2, Fm.Split, {"section_sizes": [1, 2], "dim": 0})
    t2 = Ff.Node(split.out1, Fm.AffineCouplingOneSided, {"subnet_constructor": subnet_conv})
    merge = Ff.Node([split.out0, t2.out0], Fm.Concat, {"dim": 0})
    flatten = Ff.Node(merge, Fm.Flatten, {})
    concat = Ff.Node([flatten.out0, t1.out0], Fm.Concat, {})
    t3 = Ff.Node(concat, Fm.GLOWCouplingBlock, {"subnet_constructor": subnet_fc}, conditions=cond)
    output = Ff.OutputNode(t3)
    inn = Ff.GraphINN([in1, in2, cond, t1, split, t2, merge, flatten, concat, t3, output])

    x1, x2, c = torch.randn(4, 20), torch.randn(4, 3, 8, 8), torch.randn(4, 7)
    z, jac = inn([x1, x2], c=[c])
    assert z.shape == (4, 212) and jac.shape == (4,)
    (x1_rev, x2_rev), jac_rev = inn(z, c=[c], rev=True)
    torch.testing.assert_close(x2_rev, x2, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(jac_rev, -jac, atol=1e-4, rtol=1e-4)


def test_deprecated_names_still_work():
    x = Ff.InputNode(4)
    p = Ff.Node(x, Fm.PermuteRandom, {"seed": 0})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = Ff.ReversibleGraphNet([x, p, Ff.OutputNode(p)], verbose=False)
        chain = Ff.ReversibleSequential(4)
        assert Fm.InvertibleModule([(4,)]).log_jacobian() is None
    assert sum(issubclass(w.category, DeprecationWarning) for w in caught) == 3
    chain.append(Fm.PermuteRandom, seed=0)
    data = torch.randn(3, 4)
    torch.testing.assert_close(net(net(data)[0], rev=True)[0], data)
    torch.testing.assert_close(chain(chain(data)[0], rev=True)[0], data)
