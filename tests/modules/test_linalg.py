"""log_abs_det is right where torch's batched CPU slogdet is not (oneMKL, several threads, n >= 160)."""

import pytest
import torch

from freia_graph.modules._linalg import log_abs_det


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
