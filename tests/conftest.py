"""Test configuration: hypothesis profiles and shared fixtures.

Profiles: ``dev`` (default, quick), ``ci`` (derandomized, no deadline, no example database; chosen
automatically when the CI environment variable is set) and ``nightly`` (2,000 examples per property: the
long searches, run apart from CI). Tests run in parallel (pytest-xdist, ``-n auto`` in pyproject.toml;
``-n 0`` runs them in one process).
Choose one with ``HYPOTHESIS_PROFILE=nightly pytest``.
The ``device`` fixture runs a test on the CPU and, where a CUDA device is present, on CUDA (tests/devices.py).
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from tests.devices import DEVICES

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=25, **_common)
settings.register_profile("ci", max_examples=40, derandomize=True, database=None, print_blob=True, **_common)
settings.register_profile("nightly", max_examples=2000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# One thread per xdist worker: the workers already use every core, and more threads only contend.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """The device a test runs on: ``"cpu"``, and ``"cuda"`` where a CUDA device is present (else skipped)."""
    return request.param
