"""Blocks that convert their state-dict layout (FrEIA 0.2, FrEIA HEAD, earlier freia_graph) stay picklable and
deep-copyable, and save their own entries before their submodules', as torch orders them."""

import copy
import pickle

import pytest
import torch
from torch import nn

import freia_graph.modules as Fm

BLOCKS = {
    "ActNorm": lambda: Fm.ActNorm([(3,)], init_data=torch.randn(8, 3)),
    "FixedLinearTransform": lambda: Fm.FixedLinearTransform([(3,)], M=2 * torch.eye(3), b=torch.ones(3)),
    "Fixed1x1Conv": lambda: Fm.Fixed1x1Conv([(3, 2, 2)], M=torch.eye(3)[[1, 2, 0]]),
    "HouseholderPerm": lambda: Fm.HouseholderPerm([(4,)], n_reflections=2, fixed=True),
    "IRevNetDownsampling": lambda: Fm.IRevNetDownsampling([(2, 4, 4)]),
    "InvAutoActTwoSided": lambda: Fm.InvAutoActTwoSided([(3,)]),
    "AllInOneBlock": lambda: Fm.AllInOneBlock([(4,)], subnet_constructor=nn.Linear, gin_block=True),
}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_converting_blocks_pickle_deepcopy_and_reload(name):
    torch.manual_seed(0)
    block = BLOCKS[name]()
    x = torch.randn(5, *block.dims_in[0])
    expected = block([x])[0][0]
    for clone in (pickle.loads(pickle.dumps(block)), copy.deepcopy(block)):
        clone.load_state_dict(block.state_dict(), strict=True)
        assert list(clone.state_dict()) == list(block.state_dict())
        assert torch.equal(clone([x])[0][0], expected)


def test_own_entries_come_before_submodule_entries():
    block = BLOCKS["AllInOneBlock"]()
    keys = list(nn.Sequential(block).state_dict())
    first_submodule_entry = next(index for index, key in enumerate(keys) if key.count(".") > 1)
    assert all(key.count(".") == 1 for key in keys[:first_submodule_entry])
    assert all(key.count(".") > 1 for key in keys[first_submodule_entry:])
