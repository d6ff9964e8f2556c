"""FrEIA checkpoint fixtures for InvAutoAct and InvAutoActTwoSided (see ``fixture_format.py``)."""

from tests.modules.freia_checkpoints.fixture_format import main

CASES = [
    {"name": "inv_auto_act_vector", "block": "InvAutoAct", "dims_in": [[4]]},
    {"name": "inv_auto_act_image", "block": "InvAutoAct", "dims_in": [[3, 4, 4]], "kwargs": {"slope_init": 1.5}},
    {"name": "inv_auto_act_fixed_slope", "block": "InvAutoAct", "dims_in": [[4]], "kwargs": {"learnable": False}},
    {"name": "inv_auto_act_two_sided_vector", "block": "InvAutoActTwoSided", "dims_in": [[4]]},
    {"name": "inv_auto_act_two_sided_image", "block": "InvAutoActTwoSided", "dims_in": [[3, 4, 4]],
     "kwargs": {"init_pos": 1.5, "init_neg": 0.3}},
]

if __name__ == "__main__":
    main(CASES)
