"""The paper's claims, each measured on our runs AND on the paper's own plotted data, then graded.

A claim is one number (a `Statistic`) computed by the same function from our runs (one value per
seed) and from the curves digitized from the paper's figure (`bnlib.paper`). `grade` compares the
two; it is the only place a verdict is decided. Each chapter's module (e.g. `bnlib.claims.landscape`)
has graders that take the chapter's runs, keyed by seed: they never fetch runs themselves (the chapter
registry, `bnlib.book`, hands the scoreboard the canonical ones). Rendering lives in `bnlib.report`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive")


@dataclass(frozen=True)
class Rule:
    """How a claim's statistic reads. The claim holds in direction +1: the statistic beyond `null` by more
    than `margin` (a ratio `margin` x, or a difference `margin`) in the sense `sense`; within the margin
    is direction 0 (no difference); the other way is -1. `factor`: how close ours must be to the paper's
    for "reproduced" (ratio of the values on `scale="log"`, of their distances from `null` on "linear");
    None: the claim is about a direction only. `text`: the directions the paper's text asserts."""

    null: float = 0.0
    margin: float = 0.0
    scale: str = "linear"
    factor: float | None = 2.0
    sense: int = 1
    text: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        if self.scale not in ("linear", "log"):
            raise ValueError(f"Rule.scale must be 'linear' or 'log', got {self.scale!r}")
        if self.sense not in (1, -1):
            raise ValueError(f"Rule.sense must be 1 or -1, got {self.sense!r}")
        if self.factor is not None and not self.factor >= 1:
            raise ValueError(f"Rule.factor must be >= 1 or None, got {self.factor!r}")
        if self.scale == "log" and not (self.null > 0 and self.margin >= 1):
            raise ValueError(f"a log-scale Rule needs null > 0 and margin >= 1, got {self.null!r}, {self.margin!r}")

    def offset(self, value: float) -> float:
        """Signed distance of `value` from null, in the claim's sense (log10 units on the log scale)."""
        if self.scale == "log":
            return self.sense * math.log10(value / self.null) if value > 0 else -self.sense * math.inf
        return self.sense * (value - self.null)

    def direction(self, value: float) -> int:
        """+1: the claim holds; 0: within the margin (no difference); -1: the opposite."""
        margin = math.log10(self.margin) if self.scale == "log" else self.margin
        d = self.offset(value)
        return 1 if d > margin else -1 if d < -margin else 0

    def close(self, ours: float, paper: float) -> bool:
        """Ours within `factor` of the paper's (always true when factor is None)."""
        if self.factor is None:
            return True
        if self.scale == "log":
            return ours > 0 and paper > 0 and abs(math.log10(ours / paper)) <= math.log10(self.factor) + 1e-12
        a, b = self.offset(ours), self.offset(paper)
        if b == 0:
            return a == 0
        return a / b > 0 and 1 / self.factor - 1e-12 <= a / b <= self.factor + 1e-12


def grade(ours: Sequence[float], paper: float | None, rule: Rule, text_value: float | None = None) -> str:
    """The one verdict rule. Inconclusive when a seed's value is missing (NaN: the runs cannot give it)
    or the seeds disagree on the direction. Otherwise ours is compared with the paper's value (or, where
    the paper plotted nothing, with the number its text states, else the text's direction): a different
    direction is "not reproduced" (or "partly" when both directions are ones the text allows), the same
    direction "reproduced" when every seed is within the rule's factor of the reference, else "partly"."""
    values = [float(v) for v in ours]
    if not values or not all(math.isfinite(v) for v in values):
        return "inconclusive"
    directions = {rule.direction(v) for v in values}
    if len(directions) > 1:
        return "inconclusive"
    mine = directions.pop()
    reference = paper if paper is not None and math.isfinite(paper) else text_value
    theirs = rule.direction(reference) if reference is not None else rule.text[0]
    if mine != theirs:
        return "partly" if mine in rule.text and theirs in rule.text else "not reproduced"
    if reference is None:
        return "reproduced"
    return "reproduced" if all(rule.close(v, reference) for v in values) else "partly"


def paper_vs_text(paper: float | None, rule: Rule) -> str:
    """Does the paper's own figure bear out its text? 'yes', 'no (...)', or '' where it plotted nothing."""
    if paper is None or not math.isfinite(paper):
        return ""
    d = rule.direction(paper)
    if d in rule.text:
        return "yes"
    return "no: its curves show no difference" if d == 0 else "no: its curves show the opposite"


@dataclass
class ClaimResult:
    """One claim, graded: our values (one per seed), the paper's, and the verdict."""

    id: str  # short stable id, e.g. "fig4a-vgg-loss-range"
    figure: str  # e.g. "Fig. 4a"
    claim: str  # the paper's claim in one line
    statistic: str  # what the number is, e.g. "Standard / BN, median loss range, steps 1k-8k of 15k"
    paper: float | None  # the statistic on the paper's digitized data; None where the paper plotted nothing
    ours: list[float]  # the statistic on our runs, one value per seed
    seeds: list[int]  # the seeds behind `ours`
    verdict: str
    chapter: str = ""  # the chapter's notebook, for the scoreboard's link: set by the chapter registry (bnlib.book)
    paper_vs_text: str = ""  # does the paper's own figure bear out its text?
    reference: str = ""  # what ours is graded against when paper is None (the text's number or direction)
    rule: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if len(self.ours) != len(self.seeds):
            raise ValueError(f"ours ({len(self.ours)} values) needs one value per seed, seeds={self.seeds}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def claim(id: str, figure: str, text: str, statistic: str, ours: dict[int, float], paper: float | None,
          rule: Rule, text_value: float | None = None, details: dict[str, Any] | None = None) -> ClaimResult:
    """Grade a claim: `ours` is {seed: value}; `paper` the same statistic on the paper's data (or None)."""
    seeds = sorted(ours)
    values = [float(ours[s]) for s in seeds]
    paper = None if paper is None or not math.isfinite(paper) else float(paper)
    reference = "" if paper is not None else (f"the text's {text_value:g}" if text_value is not None
                                              else "the text's direction")
    return ClaimResult(id, figure, text, statistic, paper, values, seeds, grade(values, paper, rule, text_value),
                       "", paper_vs_text(paper, rule), reference, asdict(rule), details or {})


def tally(results: Sequence[ClaimResult]) -> dict[str, int]:
    """How many claims got each verdict, in VERDICTS order."""
    return {v: sum(r.verdict == v for r in results) for v in VERDICTS}
