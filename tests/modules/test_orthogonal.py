"""Orthogonal blocks: FrEIA's HouseholderPerm bugs, exact orthogonality under training, bad arguments."""

import pytest
import torch

from freia_graph.modules import HouseholderPerm, OrthogonalTransform


def _matrix(block, c=None):
    """The block's linear part, read off by mapping the unit vectors (the bias removed)."""
    width = block.dims_in[0][0]
    eye = torch.eye(width, dtype=torch.float64)
    (rows,), _ = block([eye], c=c, jac=False)
    (origin,), _ = block([torch.zeros(1, width, dtype=torch.float64)], c=c, jac=False)
    return rows - origin


@pytest.mark.parametrize("kwargs", [{}, {"n_reflections": 1}, {"n_reflections": 1, "fixed": True}])
def test_householder_defaults_work(kwargs):
    """FrEIA raises for n_reflections < 2, which includes its own default."""
    block = HouseholderPerm([(8,)], **kwargs).double()
    matrix = _matrix(block)
    torch.testing.assert_close(matrix @ matrix.T, torch.eye(8, dtype=torch.float64))
    # One reflection: symmetric, its own inverse, determinant -1.
    torch.testing.assert_close(matrix, matrix.T)
    torch.testing.assert_close(torch.linalg.det(matrix), torch.tensor(-1.0, dtype=torch.float64))


def test_householder_condition_gives_each_sample_its_own_reflections():
    """FrEIA builds a batch of matrices and then calls mm on it, which fails."""
    torch.manual_seed(0)
    conditional = HouseholderPerm([(5,)], [(5, 3)], n_reflections=3).double()
    vectors = torch.randn(4, 5, 3, dtype=torch.float64)
    x = torch.randn(4, 5, dtype=torch.float64)
    (z,), _ = conditional([x], c=[vectors])
    for sample in range(4):
        alone = HouseholderPerm([(5,)], n_reflections=3).double()
        alone.Vs.data = vectors[sample].T.clone()
        (expected,), _ = alone([x[sample : sample + 1]])
        torch.testing.assert_close(z[sample : sample + 1], expected)


def test_householder_fixed_has_no_parameters_and_keeps_its_vectors():
    """FrEIA keeps the unused reflection vectors as a trainable parameter when fixed."""
    block = HouseholderPerm([(6,)], n_reflections=2, fixed=True)
    assert list(block.parameters()) == [] and "Vs" in block.state_dict()


def test_orthogonal_transform_stays_exactly_orthogonal_while_training():
    """FrEIA's free matrix drifts from orthogonality between corrections, so its log-det is off."""
    torch.manual_seed(0)
    block = OrthogonalTransform([(6,)], correction_interval=100).double()
    optimizer = torch.optim.SGD(block.parameters(), lr=0.5)
    for _ in range(20):
        x = torch.randn(16, 6, dtype=torch.float64)
        (z,), log_det = block([x])
        loss = ((z - 3 * x) ** 2).mean() - log_det.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = block.weights.detach()
    torch.testing.assert_close(weights.T @ weights, torch.eye(6, dtype=torch.float64))
    (_,), log_det = block([x])
    scales = torch.linalg.svdvals(_matrix(block))
    torch.testing.assert_close(log_det, scales.log().sum())


def test_orthogonal_transform_clamps_the_log_scale():
    block = OrthogonalTransform([(4,)], clamp=2.0)
    with torch.no_grad():
        block.scaling.copy_(torch.tensor([1e6, -1e6, 0.0, 1e6]))
    (_,), log_det = block([torch.randn(3, 4)])
    assert 2.0 - 1e-4 < log_det.item() < 2.0


@pytest.mark.parametrize(
    ("block", "kwargs", "error", "match"),
    [
        (OrthogonalTransform, {"dims_in": [(4,), (4,)]}, ValueError, "exactly one input"),
        (OrthogonalTransform, {"dims_in": [(2, 3, 3)]}, ValueError, r"takes vectors, dims_in \[\(D,\)\]"),
        (OrthogonalTransform, {"dims_in": [(4,)], "dims_c": [(2,)]}, ValueError, "takes no conditions"),
        (OrthogonalTransform, {"dims_in": [(4,)], "correction_interval": 0}, ValueError, "correction_interval"),
        (OrthogonalTransform, {"dims_in": [(4,)], "correction_interval": 2.5}, TypeError, "correction_interval"),
        (OrthogonalTransform, {"dims_in": [(4,)], "clamp": 0.0}, ValueError, "clamp"),
        (OrthogonalTransform, {"dims_in": [(4,)], "clamp": float("inf")}, ValueError, "clamp"),
        (OrthogonalTransform, {"dims_in": [(4,)], "clamp": None}, TypeError, "clamp"),
        (HouseholderPerm, {"dims_in": [(2, 3)]}, ValueError, "takes vectors"),
        (HouseholderPerm, {"dims_in": [(4,)], "n_reflections": 0}, ValueError, "n_reflections"),
        (HouseholderPerm, {"dims_in": [(4,)], "n_reflections": 2.0}, TypeError, "n_reflections"),
        (HouseholderPerm, {"dims_in": [(4,)], "fixed": "yes"}, TypeError, "fixed"),
        (HouseholderPerm, {"dims_in": [(4,)], "dims_c": [(4,)], "fixed": True}, ValueError, "fixed and conditional"),
        (HouseholderPerm, {"dims_in": [(4,)], "dims_c": [(4, 2)]}, ValueError, r"4 \* 1 = 4 entries"),
        (HouseholderPerm, {"dims_in": [(4,)], "dims_c": [(4,), (4,)]}, ValueError, "at most one condition"),
    ],
)
def test_bad_arguments_raise(block, kwargs, error, match):
    with pytest.raises(error, match=match):
        block(**kwargs)


@pytest.mark.parametrize("size", [1, 2, 5, 8])
@pytest.mark.parametrize("repeated_eigenvalues", [False, True])
def test_skew_exponential_matches_matrix_exp_and_its_gradient(size, repeated_eigenvalues):
    """The eigendecomposition-based exponential and its hand-written gradient against autograd's
    matrix_exp, through the parametrisation the block uses (A -> exp(A - A^T))."""
    from freia_graph.modules.orthogonal import _SkewExp

    generator = torch.Generator().manual_seed(size)
    a = torch.randn(size, size, dtype=torch.float64, generator=generator)
    if repeated_eigenvalues:  # the zero matrix: every eigenvalue equal
        a = a * 0
    weights = torch.randn(size, size, dtype=torch.float64, generator=generator)
    gradients = []
    for exponential in (_SkewExp.apply, torch.linalg.matrix_exp):
        parameter = a.clone().requires_grad_(True)
        rotation = exponential(parameter - parameter.T)
        (rotation * weights).sum().backward()
        gradients.append((rotation.detach(), parameter.grad))
    torch.testing.assert_close(gradients[0][0], gradients[1][0], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(gradients[0][1], gradients[1][1], atol=1e-10, rtol=1e-10)


def _perturbed(block, scale=0.3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return block


def _outputs(block, x):
    (z,), log_det = block([x])
    (x_back,), log_det_rev = block([z], rev=True)
    return z, log_det, x_back, log_det_rev


@pytest.mark.parametrize("source", ["exponential", "freia"])
@pytest.mark.parametrize("target", ["exponential", "freia"])
def test_orthogonal_state_dicts_load_across_parametrizations(source, target):
    """Each parametrisation strictly loads the other's state dict (FrEIA's layout is the "freia" one) and
    computes the same map, as long as the matrix is a rotation; FrEIA's clamp factor is converted."""
    torch.manual_seed(1)
    saved = _perturbed(OrthogonalTransform([(5,)], clamp=2.0, parametrization=source).double())
    if source == "freia":  # keep FrEIA's free matrix a rotation, as its correction does
        with torch.no_grad():
            saved.weights.copy_(torch.linalg.matrix_exp(saved.weights - saved.weights.T))
    loaded = OrthogonalTransform([(5,)], clamp=2.0, parametrization=target).double()
    loaded.load_state_dict(saved.state_dict(), strict=True)
    x = 3 * torch.randn(7, 5, dtype=torch.float64)
    for ours, theirs in zip(_outputs(loaded, x), _outputs(saved, x)):
        torch.testing.assert_close(ours, theirs.expand_as(ours), atol=1e-10, rtol=0)
    expected = {"weights": (5, 5), "bias": (1, 5), "scaling": (1, 5)} if target == "freia" else \
        {"skew": (5, 5), "bias": (5,), "scaling": (5,)}
    assert {key: tuple(value.shape) for key, value in loaded.state_dict().items()} == expected


def test_orthogonal_reflection_needs_the_freia_parametrization():
    freia = OrthogonalTransform([(3,)], parametrization="freia")
    with torch.no_grad():
        freia.weights.copy_(torch.diag(torch.tensor([-1.0, 1.0, 1.0])))
    with pytest.raises(ValueError, match="reflection.*parametrization='freia'"):
        OrthogonalTransform([(3,)]).load_state_dict(freia.state_dict())


def test_orthogonal_freia_parametrization_corrects_like_freia():
    """FrEIA's free matrix, trained with its own Riemannian step (FrEIA's test_param_update), and put back
    onto the orthogonal matrices by Gram-Schmidt every correction_interval training calls."""
    torch.manual_seed(0)
    block = OrthogonalTransform([(6,)], correction_interval=5, parametrization="freia").double()
    assert [name for name, _ in block.named_parameters()] == ["weights", "bias", "scaling"]
    optimizer = torch.optim.SGD(block.parameters(), lr=0.3)
    eye = torch.eye(6, dtype=torch.float64)
    for _ in range(4):
        x = torch.randn(16, 6, dtype=torch.float64)
        (z,), log_det = block([x])
        torch.testing.assert_close(log_det, torch.atan(block.scaling / 5).sum() * 5 * 0.636)
        optimizer.zero_grad()
        ((z - 2 * x) ** 2).mean().backward()
        optimizer.step()
    assert (block.weights.T @ block.weights - eye).abs().max() > 1e-4  # SGD left the orthogonal matrices
    with torch.no_grad():
        block([x])  # no training call: no correction
    assert (block.weights.T @ block.weights - eye).abs().max() > 1e-4
    block([x])  # the fifth training call corrects the matrix before using it
    torch.testing.assert_close(block.weights.T @ block.weights, eye)
    with pytest.raises(ValueError, match="parametrization"):
        OrthogonalTransform([(6,)], parametrization="cayley")
