"""tools.stability: the rule it compares against (the book's old one, unanimity) and its old/new summary."""

from __future__ import annotations

import pytest

from bnlib.claims import Rule, claim
from tools import stability as tool

RULE = Rule(null=1, margin=1.25, scale="log", factor=3.0)


@pytest.mark.parametrize(("ours", "paper", "verdict"), [
    ([5.0], 4.0, "reproduced"), ([20.0], 4.0, "partly"), ([1.1], 4.0, "not reproduced"),
    ([0.2], 4.0, "not reproduced"), ([float("nan")], 4.0, "inconclusive"), ([5.0, 0.2], 4.0, "inconclusive"),
    ([1.5, 1.5, 1.5], 4.0, "reproduced"), ([1.3, 1.3, 1.3], 4.0, "partly")])
def test_the_old_rule_is_unanimity_of_seeds(ours, paper, verdict):
    assert tool.unanimous(ours, paper, RULE) == verdict


def test_summary_puts_old_and_new_verdicts_side_by_side():
    row = claim("x", "Fig. 4a", "c", "s", {0: 1.3, 1: 1.3, 2: 1.35}, 4.0, RULE).as_dict()
    row["old_rule"] = "reproduced"
    text = tool.summary({"conditions": {"book": {"claims": [row]}, "rounding": {"claims": []}}})
    assert "book old/new" in text and "x " in text
    assert "reproduced / inconclusive" in text  # the seeds' mean interval crosses the margin at x1.25
