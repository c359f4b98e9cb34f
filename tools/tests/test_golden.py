"""Golden hashes see a one-bit change in any result a run computed, and ignore how long it took."""

from __future__ import annotations

import torch

from tools import golden


def _history() -> dict:
    return {"step_loss": torch.tensor([2.3, 2.2]), "step_acc": torch.tensor([0.1, 0.2]),
            "evals": [{"step": 0, "test_acc": 0.1}], "probes": {"ics": [{"step": 0, "l2": [0.5, 0.25]}]},
            "diverged_at": None, "steps_done": 2, "seconds": 1.0, "execution": {"threads": 2}}


def test_the_digest_sees_one_bit_and_ignores_timing():
    base = golden.digest(_history())
    assert golden.digest({**_history(), "seconds": 9.0, "execution": {"threads": 1}}) == base
    nudged = _history()
    nudged["step_loss"][1] = torch.nextafter(nudged["step_loss"][1], torch.tensor(3.0))
    assert golden.digest(nudged) != base
    record = _history()
    record["probes"]["ics"][0]["l2"][1] = 0.25 + 2**-40
    assert golden.digest(record) != base
