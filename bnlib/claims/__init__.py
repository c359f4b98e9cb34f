"""The paper's claims, each measured on our runs AND on the paper's own plotted data, then graded.

A claim is one number (a `Statistic`) computed by the same function from our runs (one value per
seed) and from the curves digitized from the paper's figure (`bnlib.paper`). `decide` compares the
two; it is the only place a verdict is decided. Each chapter's module (e.g. `bnlib.claims.landscape`)
has graders that take the chapter's runs, keyed by seed: they never fetch runs themselves (the chapter
registry, `bnlib.book`, hands the scoreboard the canonical ones). Rendering lives in `bnlib.report`.
"""

from __future__ import annotations

import dataclasses
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
    None: the claim is about a direction only. `text`: the directions the paper's text asserts.
    `varies_by_seed` False: the statistic is one computation over many random draws (the theorems' checks), graded
    as it stands; otherwise it is a sample over seeds and needs at least two."""

    null: float = 0.0
    margin: float = 0.0
    scale: str = "linear"
    factor: float | None = 2.0
    sense: int = 1
    text: tuple[int, ...] = (1,)
    varies_by_seed: bool = True

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

    def value(self, offset: float) -> float:
        """The statistic's value at `offset` (the inverse of `offset`)."""
        if self.scale == "log":
            return self.null * 10 ** (self.sense * offset)
        return self.null + self.sense * offset

    def direction(self, value: float) -> int:
        """+1: the claim holds; 0: within the margin (no difference); -1: the opposite."""
        margin = math.log10(self.margin) if self.scale == "log" else self.margin
        d = self.offset(value)
        return 1 if d > margin else -1 if d < -margin else 0


# Student's t, two-sided 95%: the 0.975 quantile for 1..30 degrees of freedom (beyond, 1.96 + 2.4 / df is within 0.002)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df!r}")
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df


def mean_interval(offsets: Sequence[float]) -> tuple[float, float]:
    """The 95% interval for the mean of the seeds' offsets (Student's t): where the seed mean of this claim's
    statistic would lie on another machine or another set of seeds, unless the seeds are unusually unlucky."""
    n = len(offsets)
    mean = math.fsum(offsets) / n
    sd = math.sqrt(math.fsum((o - mean) ** 2 for o in offsets) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


@dataclass(frozen=True)
class Graded:
    """A verdict with what decided it: the interval (offsets from the rule's null, in its units) and, when the
    rule could not decide, why."""

    verdict: str
    interval: tuple[float, float] | None
    why: str = ""


def _side(lo: float, hi: float, margin: float) -> int | None:
    """The direction an interval of offsets shows: +1 or -1 beyond the margin, 0 inside it, None across a boundary."""
    if lo > margin:
        return 1
    if hi < -margin:
        return -1
    if lo >= -margin and hi <= margin:
        return 0
    return None


def band(reference_offset: float, rule: Rule) -> tuple[float, float]:
    """The offsets within the rule's factor of the reference's (ratio of values on the log scale, of offsets on
    the linear one)."""
    if rule.scale == "log":
        width = math.log10(rule.factor)
        return reference_offset - width, reference_offset + width
    a, b = reference_offset / rule.factor, reference_offset * rule.factor
    return min(a, b), max(a, b)


def decide(ours: Sequence[float], paper: float | None, rule: Rule, text_value: float | None = None) -> Graded:
    """The one verdict rule, on the distribution over seeds: the 95% interval for the seeds' mean offset
    (`mean_interval`) must lie wholly on one side of every boundary it is compared with, else "inconclusive".

    Its direction: beyond the margin either way, or wholly inside it (no difference). Compared with the paper's
    value (or, where the paper plotted nothing, the number its text states, else the text's direction): another
    direction is "not reproduced" (or "partly" when both are directions the text allows); the same direction is
    "reproduced" when the interval lies within the rule's factor of the reference, "partly" when wholly outside.
    So a claim whose seeds straddle a boundary is undecided on every machine, not decided differently on each.
    A missing value (NaN: the runs cannot give it) or a single seed (no spread to judge) decides nothing, unless
    the rule's statistic does not vary by seed (one computation over many draws)."""
    values = [float(v) for v in ours]
    if not values or not all(math.isfinite(v) for v in values):
        return Graded("inconclusive", None, "a seed's value is missing: its runs cannot give it (too few measurements "
                                            "in the phase, a network that did not learn, or a loss range below what "
                                            "fp32 losses resolve)")
    offsets = [rule.offset(v) for v in values]
    if not all(math.isfinite(o) for o in offsets):
        return Graded("inconclusive", None, "a seed's value is outside the scale (not positive on a log scale)")
    if len(offsets) < 2 and rule.varies_by_seed:
        return Graded("inconclusive", (offsets[0], offsets[0]), "one seed: no spread to judge by")
    lo, hi = mean_interval(offsets) if len(offsets) > 1 else (offsets[0], offsets[0])
    mine = _side(lo, hi, math.log10(rule.margin) if rule.scale == "log" else rule.margin)
    if mine is None:
        return Graded("inconclusive", (lo, hi), "the seeds' interval straddles the margin of no difference")
    reference = paper if paper is not None and math.isfinite(paper) else text_value
    theirs = rule.direction(reference) if reference is not None else rule.text[0]
    if mine != theirs:
        verdict = "partly" if mine in rule.text and theirs in rule.text else "not reproduced"
        return Graded(verdict, (lo, hi))
    if reference is None or rule.factor is None or (rule.scale == "linear" and rule.offset(reference) == 0):
        return Graded("reproduced", (lo, hi))
    low, high = band(rule.offset(reference), rule)
    if low - 1e-12 <= lo and hi <= high + 1e-12:
        return Graded("reproduced", (lo, hi))
    if hi < low or lo > high:
        return Graded("partly", (lo, hi))
    return Graded("inconclusive", (lo, hi), f"same direction as the paper; the seeds' interval straddles "
                                             f"the edge of 'within a factor {rule.factor:g}'")


def grade(ours: Sequence[float], paper: float | None, rule: Rule, text_value: float | None = None) -> str:
    """`decide`'s verdict alone."""
    return decide(ours, paper, rule, text_value).verdict


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
    interval: tuple[float, float] | None = None  # the 95% interval of the seeds' mean, in the statistic's units
    why: str = ""  # why the rule could not decide, when it could not
    text_value: float | None = None  # the number the paper's text states, graded against when it plotted nothing

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
    graded = decide(values, paper, rule, text_value)
    interval = None if graded.interval is None else tuple(sorted(rule.value(o) for o in graded.interval))
    return ClaimResult(id, figure, text, statistic, paper, values, seeds, graded.verdict, "",
                       paper_vs_text(paper, rule), reference, asdict(rule), details or {}, interval, graded.why,
                       text_value)


def regrade(result: ClaimResult | dict[str, Any], ours: dict[int, float] | None = None) -> ClaimResult:
    """The claim graded again by today's rule, on its own values or on `ours` ({seed: value}, e.g. another set of
    seeds or a stored record's): what the stability report and the scoreboard's picture use."""
    r = result if isinstance(result, dict) else result.as_dict()
    values = dict(zip(r["seeds"], r["ours"], strict=True)) if ours is None else ours
    rule = Rule(**{**r["rule"], "text": tuple(r["rule"]["text"])})  # a stored record's JSON made the tuple a list
    regraded = claim(r["id"], r["figure"], r["claim"], r["statistic"], values, r["paper"], rule,
                     r.get("text_value"), r["details"])
    return dataclasses.replace(regraded, chapter=r.get("chapter", ""))


def tally(results: Sequence[ClaimResult]) -> dict[str, int]:
    """How many claims got each verdict, in VERDICTS order."""
    return {v: sum(r.verdict == v for r in results) for v in VERDICTS}
