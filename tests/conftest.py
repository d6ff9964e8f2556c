"""Test configuration: hypothesis profiles and shared fixtures.

Profiles: ``dev`` (default, quick), ``ci`` (derandomized, no deadline, no example database; chosen
automatically when the CI environment variable is set) and ``nightly`` (many more examples).
Choose one with ``HYPOTHESIS_PROFILE=nightly pytest``.
"""

import os

import torch
from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=25, **_common)
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, print_blob=True, **_common)
settings.register_profile("nightly", max_examples=2000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

torch.set_num_threads(min(2, torch.get_num_threads()))
