"""log_abs_det is right where torch's batched CPU slogdet is not (oneMKL, several threads, n >= 160);
in_float32 runs half-precision calls in float32."""

import pytest
import torch

from freia_graph.modules._linalg import in_float32, log_abs_det


@pytest.mark.parametrize("size", [3, 64, 200])
def test_batched_log_abs_det_matches_one_matrix_at_a_time(size):
    torch.manual_seed(0)
    matrices = torch.randn(2, 3, size, size, dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = log_abs_det(matrices)
    finally:
        torch.set_num_threads(threads)
    expected = torch.stack([torch.linalg.slogdet(m).logabsdet for m in matrices.reshape(-1, size, size)])
    torch.testing.assert_close(got, expected.reshape(2, 3), atol=1e-9, rtol=1e-9)


def test_log_abs_det_of_half_precision_matrices():
    """slogdet has no bfloat16 kernel: the matrices are up-cast. Under autocast the answer stays float32;
    without it, it is given back in the matrices' dtype."""
    matrices = (torch.eye(4) + 0.3 * torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0)))
    expected = torch.linalg.slogdet(matrices.bfloat16().double()).logabsdet
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = log_abs_det(matrices.bfloat16())
    converted = log_abs_det(matrices.bfloat16())
    assert under_autocast.dtype == torch.float32 and converted.dtype == torch.bfloat16
    torch.testing.assert_close(under_autocast.double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(converted.double(), expected, atol=1e-2, rtol=1e-2)


def test_in_float32_switches_autocast_off_inside():
    @in_float32
    def product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b

    a, b = torch.randn(3, 3), torch.randn(3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
        inside = product(a, b)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, a @ b)
    assert product(a.double(), b.double()).dtype == torch.float64  # float32 and float64 pass through
