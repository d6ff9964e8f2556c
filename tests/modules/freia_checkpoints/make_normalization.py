"""FrEIA checkpoint fixtures for ActNorm (see ``fixture_format.py``; run with FrEIA installed)."""

import torch

from tests.modules.freia_checkpoints.fixture_format import main

OTHER_LAYOUT = {"0.2": {"saves_other_layout": "FrEIA 0.2 saves scale/bias; we save HEAD's log_scale/loc"}}

CASES = [
    {"name": "actnorm_vector", "block": "ActNorm", "dims_in": [[3]], "by_version": OTHER_LAYOUT},
    {"name": "actnorm_image", "block": "ActNorm", "dims_in": [[3, 4, 4]], "by_version": OTHER_LAYOUT},
]



def _let_freia_head_initialise_in_float64() -> None:
    """FrEIA HEAD's ActNorm.initialize compares with a tensor of the default dtype and fails for float64
    batches: give it the batch's dtype as default while it runs."""
    from FrEIA.modules import ActNorm

    initialize = getattr(ActNorm, "initialize", None)
    if initialize is None:  # FrEIA 0.2
        return

    def initialize_in_batch_dtype(self, batch):
        default = torch.get_default_dtype()
        torch.set_default_dtype(batch.dtype)
        try:
            return initialize(self, batch)
        finally:
            torch.set_default_dtype(default)

    ActNorm.initialize = initialize_in_batch_dtype


if __name__ == "__main__":
    _let_freia_head_initialise_in_float64()
    main(CASES)
