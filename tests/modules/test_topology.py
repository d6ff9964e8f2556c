"""Split and Concat: section semantics (FrEIA's), argument errors, views, and a Split into many parts."""

import pytest
import torch

from freia_graph.modules import Concat, Split


@pytest.mark.parametrize(
    "length, kwargs, sizes",
    [
        (6, {}, [3, 3]),
        (7, dict(n_sections=3), [3, 2, 2]),
        (10, dict(section_sizes=4), [4, 4, 2]),
        (10, dict(section_sizes=5), [5, 5]),
        (10, dict(section_sizes=[1, 9], n_sections=5), [1, 9]),
        (3000, dict(n_sections=1500), [2] * 1500),
    ],
)
def test_section_sizes_follow_freia(length, kwargs, sizes):
    split = Split([(length,)], **kwargs)
    assert split.output_dims(split.dims_in) == [(size,) for size in sizes]


def test_short_section_list_gets_a_slack_section():
    with pytest.warns(UserWarning, match="adding a section of size 4"):
        split = Split([(10,)], section_sizes=[3, 3])
    assert split.output_dims(split.dims_in) == [(3,), (3,), (4,)]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(section_sizes=[4, 8]), ValueError, r"add up to 12, more than .* 10"),
        (dict(section_sizes=[4, 0]), ValueError, "positive ints"),
        (dict(section_sizes=0), ValueError, "between 1 and"),
        (dict(section_sizes=11), ValueError, "between 1 and"),
        (dict(section_sizes="4"), TypeError, "int or a list"),
        (dict(n_sections=0), ValueError, "n_sections"),
        (dict(n_sections=11), ValueError, "n_sections"),
        (dict(n_sections=2.0), TypeError, "n_sections"),
        (dict(dim=1), ValueError, r"dim=1 is out of range for input shape \(10,\)"),
        (dict(dim=True), TypeError, "dim must be an int"),
    ],
)
def test_split_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Split([(10,)], **kwargs)


@pytest.mark.parametrize(
    "dims_in, dim, match",
    [
        ([(2, 4, 4), (3, 4, 5)], 0, r"input 1 has shape \(3, 4, 5\), input 0 has \(2, 4, 4\)"),
        ([(2, 4), (2, 4, 1)], 0, r"input 1 has shape \(2, 4, 1\)"),
        ([(2, 4), (2, 4)], 2, "out of range"),
        ([], 0, "at least one input"),
    ],
)
def test_concat_rejects_mismatched_shapes(dims_in, dim, match):
    with pytest.raises(ValueError, match=match):
        Concat(dims_in, dim=dim)


@pytest.mark.parametrize(
    "block, input_dims, match",
    [
        (Split([(6,)]), [(6,), (6,)], "exactly one input"),
        (Split([(6,)]), [(7,)], r"input shape \(7,\) .* need size 6"),
        (Concat([(2,), (3,)]), [(3,), (2,)], r"built for sizes \[2, 3\]"),
    ],
)
def test_output_dims_rejects_shapes_the_block_was_not_built_for(block, input_dims, match):
    with pytest.raises(ValueError, match=match):
        block.output_dims(input_dims)


def test_split_into_many_parts_returns_views_and_a_constant_log_det():
    split = Split([(3000,)], n_sections=1500)
    x = torch.randn(4, 3000)
    parts, log_det = split([x])
    assert len(parts) == 1500 and log_det == 0.0 and isinstance(log_det, float)
    assert all(part.data_ptr() == x[:, 2 * i].data_ptr() for i, part in enumerate(parts))
    (merged,), log_det_rev = split(parts, rev=True)
    assert torch.equal(merged, x) and log_det_rev == 0.0


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_concat_undoes_split_along_any_dim(dim):
    split = Split([(4, 6, 8)], n_sections=2, dim=dim)
    concat = Concat(split.output_dims(split.dims_in), dim=dim)
    x = torch.randn(3, 4, 6, 8)
    (z,), _ = concat(split([x])[0])
    assert torch.equal(z, x)
