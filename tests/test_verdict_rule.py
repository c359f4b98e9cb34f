"""The verdict rule (`bnlib.claims.decide`) under seed noise, by simulation: how often it decides a claim the wrong
way, how often two machines (two independent sets of seeds) contradict each other, and that it still decides
claims far from every boundary. Beside it, the rule it replaced (every seed beyond the margin, unanimously), whose
verdicts flipped between machines. Normal seed noise on the claim's offset scale; numpy's seeded generator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnlib.claims import Rule, decide, mean_interval, t975

RULE = Rule(null=0.0, margin=1.0, factor=None)  # direction only: +1 beyond 1, -1 below -1, 0 between
TRIALS = 4000


def _unanimous(values: np.ndarray) -> int | None:
    """The old rule's direction: every seed beyond the margin on one side (None: they disagree)."""
    sides = {RULE.direction(float(v)) for v in values}
    return sides.pop() if len(sides) == 1 else None


def _new(values: np.ndarray) -> int | None:
    lo, hi = mean_interval([float(v) for v in values])
    return 1 if lo > 1 else -1 if hi < -1 else 0 if lo >= -1 and hi <= 1 else None


def _rates(true_mean: float, sd: float, n: int, rule) -> dict[str, float]:
    """Over TRIALS pairs of seed sets: how often each machine decides +1, and how often the two decide
    differently while both decide (a contradiction: the scoreboard would tell two stories)."""
    rng = np.random.default_rng(12345)
    draws = rng.normal(true_mean, sd, size=(TRIALS, 2, n))
    a = [rule(d[0]) for d in draws]
    b = [rule(d[1]) for d in draws]
    decided_plus = np.mean([x == 1 for x in a])
    contradict = np.mean([x is not None and y is not None and x != y for x, y in zip(a, b, strict=True)])
    differ = np.mean([x != y for x, y in zip(a, b, strict=True)])
    return {"plus": float(decided_plus), "contradict": float(contradict), "differ": float(differ)}


def test_t_quantiles_are_students():
    assert t975(1) == pytest.approx(12.706, abs=1e-3) and t975(2) == pytest.approx(4.303, abs=1e-3)
    assert t975(60) == pytest.approx(2.000, abs=0.003) and t975(1000) == pytest.approx(1.962, abs=0.003)
    lo, hi = mean_interval([1.0, 2.0, 3.0])
    assert (lo + hi) / 2 == pytest.approx(2.0) and hi - lo == pytest.approx(2 * 4.303 / math.sqrt(3), abs=1e-3)


def test_at_a_boundary_the_rule_rarely_decides_and_two_machines_almost_never_contradict():
    """The worst case: the true seed mean sits exactly on the margin, seed noise as large as the margin itself.
    The new rule decides '+1' in about 2.5% of seed sets (the one-sided rate of a 95% interval), and 'no
    difference' in as many; two machines report different verdicts in about 1 pair in 10 (one decided, the other
    not) and contradict each other (both decided, differently) in well under 1%. The unanimous rule reported
    different verdicts in over a third of pairs, and contradicted itself ten times as often."""
    new = _rates(1.0, 1.0, 3, _new)
    old = _rates(1.0, 1.0, 3, _unanimous)
    assert new["plus"] <= 0.04 and new["differ"] <= 0.11 and new["contradict"] <= 0.01, new
    assert old["differ"] >= 0.3 and old["contradict"] > 10 * new["contradict"], old


def test_far_from_every_boundary_it_still_decides():
    """Three seeds whose mean is 8 noise units beyond the margin are decided nearly always (a rule that
    made everything undecided would be silent, not stable); six seeds decide at 4 units."""
    assert _rates(9.0, 1.0, 3, _new)["plus"] >= 0.9
    assert _rates(5.0, 1.0, 6, _new)["plus"] >= 0.9
    assert _rates(5.0, 1.0, 3, _new)["plus"] < _rates(5.0, 1.0, 6, _new)["plus"]  # more seeds decide more


def test_a_claim_is_inconclusive_when_its_interval_straddles_a_boundary_and_says_why():
    straddles = decide([0.5, 2.5, 1.5], None, RULE)  # mean 1.5, interval [-1.0, 4.0] crosses the margin at 1
    assert straddles.verdict == "inconclusive" and "straddles the margin" in straddles.why
    clear = decide([3.0, 3.2, 2.9], None, RULE)
    assert clear.verdict == "reproduced" and clear.interval[0] > 1 and not clear.why
    one = decide([3.0], None, RULE)
    assert one.verdict == "inconclusive" and "one seed" in one.why
    near_edge = decide([2.6, 3.2, 2.9], 1.5, Rule(null=0.0, margin=1.0, factor=2.0))  # paper 1.5: band [0.75, 3]
    assert near_edge.verdict == "inconclusive" and "factor 2" in near_edge.why
    assert decide([4.0, 4.1, 3.9], 1.5, Rule(null=0.0, margin=1.0, factor=2.0)).verdict == "partly"
    assert decide([2.0, 2.1, 1.9], 1.5, Rule(null=0.0, margin=1.0, factor=2.0)).verdict == "reproduced"
