"""FrEIA's deprecated Split/Concat names: they warn and behave like Split and Concat."""

import pytest
import torch

import freia_graph.modules as Fm


@pytest.mark.parametrize(
    "old_class, new_class, dims_in, kwargs",
    [
        (Fm.Split1D, Fm.Split, [(6,)], dict(section_sizes=[2, 4])),
        (Fm.SplitChannel, Fm.Split, [(4, 2, 2)], {}),
        (Fm.Concat1d, Fm.Concat, [(2, 3), (2, 5)], dict(dim=1)),
        (Fm.ConcatChannel, Fm.Concat, [(1, 2, 2), (3, 2, 2)], {}),
    ],
)
def test_deprecated_names_warn_and_behave_like_the_new_ones(old_class, new_class, dims_in, kwargs):
    with pytest.warns(DeprecationWarning, match=f"{old_class.__name__} is deprecated; use {new_class.__name__}"):
        old = old_class(dims_in, **kwargs)
    new = new_class(dims_in, **kwargs)
    assert isinstance(old, new_class) and old.output_dims(old.dims_in) == new.output_dims(new.dims_in)
    x = [torch.randn(3, *shape) for shape in dims_in]
    for got, expected in zip(old(x)[0], new(x)[0], strict=True):
        assert torch.equal(got, expected)


def test_split1d_takes_the_old_argument_name():
    with pytest.warns(DeprecationWarning):
        split = Fm.SplitChannel([(6,)], split_size_or_sections=4)
    assert split.output_dims(split.dims_in) == [(4,), (2,)]
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="split_size_or_sections"):
        Fm.Split1D([(6,)], section_sizes=[3, 3], split_size_or_sections=[3, 3])
