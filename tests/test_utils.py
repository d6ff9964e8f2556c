"""freia_graph.utils: FrEIA.utils' helpers with FrEIA's names and call conventions."""

import pytest
import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph import utils


def _subnet(c_in, c_out):
    return nn.Sequential(nn.Linear(c_in, 8), nn.Tanh(), nn.Linear(8, c_out))


def _graph(force_tuple_output=False):
    x = Ff.InputNode(6, name="x")
    glow = Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": _subnet, "subnet_init_scale": 1.0}, name="glow")
    perm = Ff.Node(glow, Fm.PermuteRandom, {"seed": 1}, name="perm")
    return Ff.GraphINN([x, glow, perm, Ff.OutputNode(perm, name="z")], force_tuple_output=force_tuple_output)


def _sequence():
    inn = Ff.SequenceINN(3, 4, 4)
    inn.append(Fm.IRevNetDownsampling)
    return inn


@pytest.mark.parametrize(
    ("shape", "keep", "reduced"),
    [((2, 3, 4), (0,), [1, 2]), ((2, 3, 4), (1,), [0, 2]), ((2, 3, 4), (0, 2), [1]), ((2, 3, 4), (-1,), [0, 1]),
     ((5,), (), [0]), ((2, 3, 4, 5), (0, -2), [1, 3])],
)
def test_f_except_reduces_every_other_dim(shape, keep, reduced):
    x = torch.randn(shape)
    torch.testing.assert_close(utils.sum_except(x, *keep), x.sum(dim=reduced))
    torch.testing.assert_close(utils.f_except(torch.mean, x, *keep, keepdim=True), x.mean(dim=reduced, keepdim=True))


def test_sum_except_batch_sums_per_sample():
    x = torch.randn(3, 2, 4, 5)
    torch.testing.assert_close(utils.sum_except_batch(x), x.reshape(3, -1).sum(1))


@pytest.mark.parametrize(
    ("shape", "keep", "message"), [((2, 3), (0, 1), "nothing to reduce"), ((2, 3), (2,), "out of range")]
)
def test_f_except_rejects_bad_dims(shape, keep, message):
    with pytest.raises(ValueError, match=message):
        utils.sum_except(torch.ones(shape), *keep)


class _Holder:
    def __init__(self):
        self.tensor = torch.ones(2)
        self.items = [torch.zeros(1), {"deep": (torch.ones(3), "text")}]
        self.number = 4


def test_force_to_moves_every_tensor_without_changing_them():
    holder = _Holder()
    original = holder.tensor
    result = utils.force_to(holder, torch.float64)
    assert result is holder
    assert holder.tensor.dtype == holder.items[0].dtype == holder.items[1]["deep"][0].dtype == torch.float64
    assert holder.items[1]["deep"][1] == "text" and holder.number == 4
    assert original.dtype == torch.float32  # the tensor itself is untouched, only the reference is replaced
    assert utils.force_to(torch.ones(1), dtype=torch.float64).dtype == torch.float64


def test_force_to_shared_references_are_fine_but_cycles_are_refused():
    shared = [torch.ones(1)]
    moved = utils.force_to({"a": shared, "b": shared}, torch.float64)
    assert moved["a"][0].dtype == torch.float64
    cycle = {"t": torch.ones(1)}
    cycle["self"] = cycle
    with pytest.raises(ValueError, match="contains itself"):
        utils.force_to(cycle, torch.float64)


@pytest.mark.parametrize("build", [
    lambda: Fm.HaarDownsampling([(2, 4, 4)]),
    lambda: _graph(False),
    lambda: _graph(True),
    _sequence,
])
def test_output_dims_compatible(build):
    module = build()
    expected = {"HaarDownsampling": [(8, 2, 2)], "GraphINN": [(6,)], "SequenceINN": [(12, 2, 2)]}
    assert utils.output_dims_compatible(module) == expected[type(module).__name__]


def test_output_dims_compatible_rejects_plain_modules():
    with pytest.raises(TypeError, match="Linear"):
        utils.output_dims_compatible(nn.Linear(2, 2))


@pytest.mark.parametrize("force_tuple_output", [False, True])
def test_tuple_free_forward_on_graphs(force_tuple_output):
    torch.manual_seed(0)
    inn, x = _graph(force_tuple_output), torch.randn(5, 6)
    z, log_det = utils.tuple_free_forward(inn, x)
    expected_z, expected_log_det = inn(x)
    expected_z = expected_z[0] if force_tuple_output else expected_z
    torch.testing.assert_close(z, expected_z)
    torch.testing.assert_close(log_det, expected_log_det)
    x_rec, log_det_rev = utils.tuple_free_forward(inn, z, rev=True)
    torch.testing.assert_close(x_rec, x)
    torch.testing.assert_close(log_det_rev, -log_det)


def test_tuple_free_forward_on_blocks_and_conditions():
    torch.manual_seed(0)
    block = Fm.GLOWCouplingBlock([(4,)], [(3,)], subnet_constructor=_subnet, subnet_init_scale=1.0)
    x, c = torch.randn(5, 4), torch.randn(5, 3)
    z, log_det = utils.tuple_free_forward(block, x, c=[c])
    (expected_z,), expected_log_det = block([x], c=[c])
    torch.testing.assert_close(z, expected_z)
    torch.testing.assert_close(log_det, expected_log_det)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 50])
def test_tuple_free_batch_forward_matches_one_call(batch_size):
    torch.manual_seed(0)
    inn, x = _graph(), torch.randn(7, 6)
    z, log_det = utils.tuple_free_batch_forward(inn, x, batch_size)
    expected_z, expected_log_det = inn(x)
    torch.testing.assert_close(z, expected_z)
    torch.testing.assert_close(log_det, expected_log_det)
    x_rec, _ = utils.tuple_free_batch_forward(inn, z, batch_size, device="cpu", rev=True)
    torch.testing.assert_close(x_rec, x)


def test_tuple_free_batch_forward_scalar_and_missing_log_dets():
    block, x = Fm.PermuteRandom([(3,)], seed=0), torch.randn(5, 3)
    _, log_det = utils.tuple_free_batch_forward(block, x, 2)
    assert log_det.shape == (5,)
    glow = Fm.GLOWCouplingBlock([(4,)], subnet_constructor=_subnet)
    z, log_det = utils.tuple_free_batch_forward(glow, torch.randn(5, 4), 2, jac=False)
    assert z.shape == (5, 4) and log_det is None
    with pytest.raises(ValueError, match="batch_size"):
        utils.tuple_free_batch_forward(block, x, 0)


def test_plot_graph_writes_dot_and_pictures(tmp_path):
    inn = _graph()
    utils.plot_graph(inn.node_list, tmp_path, "net")
    dot = (tmp_path / "net").read_text()
    assert dot.startswith("digraph") and all(name in dot for name in ("glow", "perm", "GLOWCouplingBlock"))
    assert (tmp_path / "net.pdf").read_bytes().startswith(b"%PDF")
    inn.plot(tmp_path, "whole")  # the method FrEIA's tests call
    assert sorted(path.name for path in tmp_path.iterdir()) == ["net", "net.pdf", "whole", "whole.pdf"]


def test_plot_graph_needs_an_existing_folder(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        utils.plot_graph(_graph().node_list, tmp_path / "missing", "net")
