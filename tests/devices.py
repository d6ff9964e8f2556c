"""Devices the tests run on: the CPU always, CUDA where a device is present (skipped cleanly elsewhere).

Tests take the ``device`` fixture (tests/conftest.py) or parametrise over :data:`DEVICES`; CUDA-only tests
use :data:`requires_cuda`. ``benchmarks/gpu_check.sh`` runs the suite on a CUDA machine.
"""

from __future__ import annotations

import pytest
import torch

__all__ = ["CUDA_AVAILABLE", "requires_cuda", "DEVICES"]

CUDA_AVAILABLE = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not CUDA_AVAILABLE, reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]
