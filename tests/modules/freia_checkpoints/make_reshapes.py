"""FrEIA checkpoint fixtures for IRevNetDownsampling and IRevNetUpsampling (see ``fixture_format.py``)."""

from tests.modules.freia_checkpoints.fixture_format import main

CASES = [
    {"name": "irevnet_downsampling", "block": "IRevNetDownsampling", "dims_in": [[2, 4, 4]]},
    {"name": "irevnet_upsampling", "block": "IRevNetUpsampling", "dims_in": [[8, 2, 2]]},
    {"name": "irevnet_downsampling_legacy", "block": "IRevNetDownsampling", "dims_in": [[2, 4, 4]],
     "kwargs": {"legacy_backend": True}},
    {"name": "irevnet_upsampling_legacy", "block": "IRevNetUpsampling", "dims_in": [[8, 2, 2]],
     "kwargs": {"legacy_backend": True}},
]

if __name__ == "__main__":
    main(CASES)
