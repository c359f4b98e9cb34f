"""The chapter registry: what chapter N is (its notebook and title, the check of its parameters, the runs it
trains, the claims it grades), said once, at the top of bnlib's layers.

The chapters' notebooks, `make book`'s pool (`python -m bnlib.book --train`), the plan and cost commands, the
scoreboard and chapter 8 all read `CHAPTERS`; the list of chapters exists nowhere else. A chapter's first call,
`setup(N, profile=..., dataset=..., seeds=..., **its parameters)`, checks every parameter (a bad one stops
there, named) and resolves the profile (a name, or None for $BNLIB_PROFILE, else the hardware) and the seeds
once, into a `Setup` whose `Profile` object travels down: nothing below this module takes a profile's name.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from bnlib import checks, plan, pool, report, runs, stability
from bnlib.checks import BadParameter
from bnlib.claims import ClaimResult
from bnlib.claims import distributions as distribution_claims
from bnlib.claims import ics as ics_claims
from bnlib.claims import landscape as landscape_claims
from bnlib.claims import later as later_claims
from bnlib.claims import lp as lp_claims
from bnlib.claims import theory as theory_claims
from bnlib.colab import use_drive  # noqa: F401  (the chapters' first cell calls book.use_drive())
from bnlib.data import DATASETS
from bnlib.experiments import distributions, ics, landscape, later, lp
from bnlib.experiments.common import train_planned
from bnlib.plots.scoreboard import scoreboard_figure
from bnlib.probes.base import Probe
from bnlib.profiles import PROFILES, Profile, resolve
from bnlib.runs import Planned
from bnlib.train import RunConfig


class Setup(NamedTuple):
    """What every chapter resolves first: the profile itself, the dataset's name and the seeds of its runs."""

    profile: Profile
    dataset: str
    seeds: tuple[int, ...]


DATASET_ENV = "BNLIB_DATASET"  # what `dataset="auto"` means in a build that names its data (the site's workflow)


def common(profile: Any = None, dataset: Any = "auto", seeds: Any = None) -> Setup:
    """The parameters every chapter has, checked and resolved: `profile` None ($BNLIB_PROFILE, else by hardware),
    a name or a Profile; `dataset` "auto" ($BNLIB_DATASET when set, else the first available) or a name; `seeds`
    None (the profile's) or distinct seeds."""
    if profile is not None and not isinstance(profile, (str, Profile)):
        raise BadParameter(f"profile must be None or one of {sorted(PROFILES)}, got {profile!r} "
                           f"({type(profile).__name__})")
    try:
        resolved = resolve(profile)
    except ValueError as err:
        raise BadParameter(f"profile: {err}") from None
    checks.check_choice("dataset", dataset, DATASETS)
    if dataset == "auto" and os.environ.get(DATASET_ENV):
        dataset = checks.check_choice(f"${DATASET_ENV}", os.environ[DATASET_ENV], DATASETS[1:])
    return Setup(resolved, dataset, resolved.seeds if seeds is None else checks.check_seeds("seeds", seeds))


# --- each chapter's own parameters (the `parameters` cell's other names) ----------------------------------

VGG_CONV_LAYERS = tuple(range(1, 14))  # the activation probe records all 13; ICS can measure any
DLN_LAYERS = tuple(range(1, 26))
PROBE_UNITS = 4  # the activation probe's fixed random units per layer (bnlib.probes.activations)
LR_01_WHY = ("Figure 1c, the moment-drift table and the claim checks read the LR 0.1 runs "
             "(the paper's setting); add other rates beside it")


def _chapter1(p: dict[str, Any]) -> None:
    checks.must_include("learning_rates", checks.check_rates("learning_rates", p.pop("learning_rates")), 0.1,
                        LR_01_WHY)
    checks.check_layers("layers", p.pop("layers"), VGG_CONV_LAYERS)
    checks.check_int("unit", p.pop("unit"), 0, PROBE_UNITS - 1)


def _chapter2(p: dict[str, Any]) -> None:
    checks.check_number("lr", p.pop("lr"), 0, low_open=True)
    checks.check_layers("layers", p.pop("layers"), VGG_CONV_LAYERS)
    checks.check_int("unit", p.pop("unit"), 0, PROBE_UNITS - 1)
    scales = checks.check_sequence("noise_scales", p.pop("noise_scales"))
    values = tuple(checks.check_number(f"noise_scales[{i}]", s, 0) for i, s in enumerate(scales))
    if len(set(values)) != len(values):
        raise BadParameter(f"noise_scales must not repeat a value, got {scales!r}")


def _chapter3(p: dict[str, Any]) -> None:
    checks.check_rates("vgg_lrs", p.pop("vgg_lrs"))
    checks.check_rates("dln_lrs", p.pop("dln_lrs"))
    checks.check_layers("vgg_layers", p.pop("vgg_layers"), VGG_CONV_LAYERS, count=2)
    checks.check_layers("dln_layers", p.pop("dln_layers"), DLN_LAYERS, count=2)


def _chapter4(p: dict[str, Any]) -> None:
    checks.check_rates("grid_lrs", p.pop("grid_lrs"))


def _chapter5(p: dict[str, Any]) -> None:
    checks.check_number("vgg_lr", p.pop("vgg_lr"), 0, low_open=True)
    checks.check_number("dln_lr", p.pop("dln_lr"), 0, low_open=True)


def _chapter6(p: dict[str, Any]) -> None:
    checks.check_optional_int("draws", p.pop("draws"))


def _chapter9(p: dict[str, Any]) -> None:
    widths = checks.check_sequence("widths", p.pop("widths"))
    for i, w in enumerate(widths):
        checks.check_number(f"widths[{i}]", w, 0, checks.WIDTH_MAX, low_open=True)
    checks.check_seeds("search_seeds", p.pop("search_seeds"))
    checks.check_int("max_steps", p.pop("max_steps"), 25)
    checks.check_bool("rerun", p.pop("rerun"))


def _no_more(p: dict[str, Any]) -> None:
    """Chapters 7 and 8 have only the common parameters."""


# --- the claims each chapter grades, in groups: each group's runs for one seed, and its grader over a setup's seeds ---

@dataclass(frozen=True)
class ClaimGroup:
    """Claims graded together from one set of runs: `runs(setup, seed)` plans one seed's runs (so a tool can train
    the group alone, at other seeds or on another machine: `tools.stability`); `grade(setup)` grades its claims on
    the given seeds (the graders take runs; this fetches them). `more`: at the book's own seeds, the group is
    graded on the profile's `more_seeds` too (claims three seeds left undecided, on runs cheap enough to repeat)."""

    name: str
    runs: Callable[[Setup, int], list[Planned]]
    grade_on: Callable[[Setup], list[ClaimResult]]
    more: bool = False

    def seeds(self, s: Setup) -> tuple[int, ...]:
        """The seeds the group is graded on: the setup's, and the profile's more seeds where they apply."""
        extra = self.more and s.seeds == s.profile.seeds
        return s.seeds + s.profile.more_seeds if extra else s.seeds

    def plan(self, s: Setup) -> list[Planned]:
        """The runs the group's claims read."""
        return [run for seed in self.seeds(s) for run in self.runs(s, seed)]

    def grade(self, s: Setup) -> list[ClaimResult]:
        """Its claims graded on `seeds(s)`."""
        return self.grade_on(s._replace(seeds=self.seeds(s)))


def _group(name: str, plan: Callable[..., dict[Any, Planned]], grade: Callable[[dict[int, Any]], list[ClaimResult]],
           vgg: bool, more: bool = False) -> ClaimGroup:
    """A group whose runs are one plan function's, fetched seed by seed (cached, else trained) and graded."""
    def planned(s: Setup, seed: int) -> dict[Any, Planned]:
        return plan(s.profile, s.dataset, seed) if vgg else plan(s.profile, seed)

    def graded(s: Setup) -> list[ClaimResult]:
        return grade({seed: {key: train_planned(one, progress=False) for key, one in planned(s, seed).items()}
                      for seed in s.seeds})

    return ClaimGroup(name, lambda s, seed: list(planned(s, seed).values()), graded, more)


CLAIM_GROUPS: dict[str, ClaimGroup] = {g.name: g for g in (
    # `more`: the groups whose claims three seeds left undecided on the cpu build of 2026-12-06 and whose runs are
    # cheap enough to train three more times (chapter 1's twelve VGG runs, about 19 minutes of the cold cpu build; the
    # deep linear network's, about 4); the noise, ICS-VGG and l_p VGG runs would cost over an hour more
    _group("fig1", distributions.fig1_plan, distribution_claims.fig1_claims, vgg=True, more=True),
    _group("fig2", distributions.fig2_plan, distribution_claims.fig2_claims, vgg=True),
    _group("ics-vgg", ics.vgg_plan, ics_claims.vgg_claims, vgg=True),
    _group("ics-dln", ics.dln_plan, ics_claims.dln_claims, vgg=False, more=True),
    _group("landscape-vgg", landscape.vgg_plan, landscape_claims.vgg_claims, vgg=True, more=True),
    _group("landscape-dln", landscape.dln_plan, landscape_claims.dln_claims, vgg=False, more=True),
    _group("lp-vgg", lp.vgg_plan, lp_claims.vgg_claims, vgg=True),  # at the paper's rates (the canonical runs')
    _group("lp-dln", lp.dln_plan, lp_claims.dln_claims, vgg=False, more=True),
    # chapter 6 trains nothing: its draws are seeded by the first seed
    ClaimGroup("theory", lambda s, seed: [],
               lambda s: theory_claims.claims(theory_claims.default_draws(s.profile), s.seeds[0])),
    # chapter 7: later work's findings (bnlib.experiments.later); gradients at initialisation are measured, not trained
    _group("later-depth", later.depth_plan, later_claims.depth_claims, vgg=True),
    ClaimGroup("later-init", lambda s, seed: [],
               lambda s: later_claims.init_claims(later.init_table(s.seeds, s.dataset))),
    _group("later-lr", later.lr_plan, later_claims.lr_claims, vgg=True),
    _group("later-outliers", landscape.vgg_plan, later_claims.outlier_claims, vgg=True),
)}


# --- the registry ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Chapter:
    """One chapter of the book."""

    number: int
    notebook: str  # chapters/<notebook>.ipynb
    title: str  # the notebook's own title (tests/test_book.py checks they agree)
    check: Callable[[dict[str, Any]], None]  # checks, and removes, the chapter's own parameters
    plan: Callable[..., list[Planned]] | None = None  # plan(setup, **its parameters): the runs it trains
    claims: tuple[str, ...] = ()  # the claim groups it grades (CLAIM_GROUPS), on the canonical runs
    reads: Callable[[Setup], list[Planned]] | None = None  # runs it shows but others plan (default: its plan)
    knobs: str = ""  # the parameters that shrink its plan, named when the plan is long

    def planned(self, s: Setup, **params: Any) -> list[Planned]:
        """Every run the page needs: its own (at `params`, else its defaults) and those its claim groups grade
        (at the profile's more seeds too), or the runs it reads."""
        if self.plan is None:
            return self.reads(s) if self.reads is not None else []
        return runs.unique([*self.plan(s, **params), *(run for g in self.claims for run in CLAIM_GROUPS[g].plan(s))])


CHAPTERS: dict[int, Chapter] = {c.number: c for c in (
    Chapter(1, "01_ics_distributions", "Does BatchNorm reduce internal covariate shift?", _chapter1,
            lambda s, learning_rates=distributions.FIG1_LRS, **_: distributions.chapter1_plan(*s, lrs=learning_rates),
            ("fig1",)),
    Chapter(2, "02_noise_injection", "The noise-injection test: does distributional stability matter?", _chapter2,
            lambda s, lr=distributions.FIG2_LR, noise_scales=distributions.NOISE_SCALES, **_:
            distributions.chapter2_plan(*s, lr=lr, scales=noise_scales), ("fig2",), knobs="fewer `noise_scales`"),
    Chapter(3, "03_ics_optimization_view", "Internal covariate shift from the optimisation view", _chapter3,
            lambda s, vgg_lrs=ics.VGG_LRS, dln_lrs=ics.DLN_LRS, vgg_layers=ics.VGG_LAYERS, dln_layers=ics.DLN_LAYERS,
            **_: ics.chapter_plan(*s, vgg_lrs, dln_lrs, vgg_layers, dln_layers), ("ics-vgg", "ics-dln")),
    Chapter(4, "04_landscape_smoothness", "Why BatchNorm works: a smoother loss landscape", _chapter4,
            lambda s, grid_lrs=landscape.GRID_LRS, **_: landscape.chapter_plan(*s, grid_lrs),
            ("landscape-vgg", "landscape-dln"), knobs="fewer `seeds` or `grid_lrs`"),
    Chapter(5, "05_lp_normalization", "Is it about distributions at all? l$_p$ normalisation", _chapter5,
            lambda s, vgg_lr=lp.VGG_LR, dln_lr=lp.DLN_LR, **_: lp.chapter_plan(*s, vgg_lr, dln_lr),
            ("lp-vgg", "lp-dln")),
    Chapter(6, "06_theory_checks", "The theory, checked numerically", _chapter6, claims=("theory",)),
    Chapter(7, "07_later_work", "Past the paper: depth, initialisation and the learning rate", _no_more,
            lambda s, **_: [], ("later-depth", "later-init", "later-lr", "later-outliers")),
    Chapter(8, "08_paper_vs_ours", "The paper's curves beside ours", _no_more, reads=lambda s: book_plan(s)),
    Chapter(9, "09_scaling_down", "Scaling the paper down", _chapter9, reads=lambda s: CHAPTERS[1].plan(s)),
)}


def chapter(number: Any) -> Chapter:
    if number not in CHAPTERS:
        raise BadParameter(f"chapter must be one of {sorted(CHAPTERS)}, got {number!r}")
    return CHAPTERS[number]


def setup(number: int, **params: Any) -> Setup:
    """Chapter `number`'s first call after its `parameters` cell: check every parameter (all of them, by name;
    BadParameter on the first bad one) and resolve the common ones once."""
    check = chapter(number).check
    params = dict(params)
    try:
        resolved = common(params.pop("profile"), params.pop("dataset"), params.pop("seeds"))
        check(params)
    except KeyError as missing:
        raise BadParameter(f"chapter {number}'s check needs the parameter {missing}") from None
    if params:
        raise BadParameter(f"chapter {number} has no parameter(s) {sorted(params)}")
    return resolved


def prepare(number: int, **params: Any) -> Setup:
    """Chapter `number`'s one setup call, right after its `parameters` cell: check every parameter (`setup`),
    print what the runtime has and the plan of every run the page needs, train those not cached yet (side by
    side on all cores), then show the setup line naming the devices the page's runs were made on."""
    from IPython.display import display

    s = setup(number, **params)
    c = chapter(number)
    own = {k: v for k, v in params.items() if k not in ("profile", "dataset", "seeds")}
    planned = c.planned(s, **own)
    if planned:
        plan.show(planned, s.profile, c.knobs)
        runs.train_all(planned)
    display(report.show_setup(*s, runs.made_on(planned)))
    return s


def chapter_plans(s: Setup) -> dict[str, list[Planned]]:
    """Each training chapter's runs at its default parameters, in book order, keyed '01', '02', ..., with the runs
    its claim groups are graded on at the profile's more seeds (`ClaimGroup.more`)."""
    return {f"{c.number:02d}": c.planned(s) for c in CHAPTERS.values() if c.plan is not None}


def book_plan(s: Setup) -> list[Planned]:
    """Every run the book's chapters train, once: the canonical runs the scoreboard and chapter 8 read too."""
    return runs.unique(run for planned in chapter_plans(s).values() for run in planned)


def collect(s: Setup) -> list[ClaimResult]:
    """Every chapter's claims on the canonical runs of `s`, in book order (an error inside one is raised), each
    naming the chapter that grades it (the scoreboard links there)."""
    return [dataclasses.replace(result, chapter=c.notebook) for c in CHAPTERS.values() for group in c.claims
            for result in CLAIM_GROUPS[group].grade(s)]


def scoreboard(profile: Any = None, dataset: Any = "auto", seeds: Any = None, link_prefix: str = "chapters/") -> None:
    """The landing page's scoreboard of the canonical runs, displayed in a notebook: the tally and the stable
    verdicts, the picture of every claim's seeds against the paper, then the table."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    s = common(profile, dataset, seeds)
    results = collect(s)
    rec = stability.record(s.profile.name, s.dataset)
    head, table = report.scoreboard_html(results, *s, link_prefix=link_prefix, made_on=runs.made_on(book_plan(s)),
                                         stability=(stability.check(results, rec), rec))
    display(HTML(head))
    fig = scoreboard_figure(results)
    display(fig)
    plt.close(fig)
    display(HTML(table))


# --- the book as a whole: train it, estimate it, say where its time went ----------------------------------

def book_estimate(profile: Profile, flops_per_s: float, op_s: float) -> dict[str, tuple[plan.Plan, plan.Plan]]:
    """Per chapter, on a device described by (flops_per_s, op_s): (its plan with an empty cache, its plan
    after the chapters before it, whose shared runs it then finds cached)."""
    memo: dict[tuple[RunConfig, tuple[str, ...]], plan.Cost] = {}

    def assumed(config: RunConfig, probes: list[Probe]) -> plan.Cost:
        key = (plan.shape(config), tuple(sorted(p.name for p in probes)))
        if key not in memo:
            memo[key] = plan.assumed_cost(config, probes, flops_per_s, op_s)
        return memo[key]

    out, done = {}, set()
    for number, planned in chapter_plans(Setup(profile, "synthetic", profile.seeds)).items():
        alone = plan.make_plan(planned, assumed, cached=lambda c, p: False)
        after = plan.make_plan(planned, assumed, cached=lambda c, p, done=frozenset(done): runs.run_key(c, p) in done)
        done |= {runs.run_key(c, p) for c, p in planned}
        out[number] = alone, after
    return out


def spent(s: Setup) -> str:
    """Where a build's training time went, chapter by chapter and run by run: the seconds each cached run's
    training took (`history["seconds"]`, wall time in the process that trained it, probes and evaluations
    included; when runs trained side by side these overlap), each run counted under the first chapter that
    plans it. Runs not in the cache are listed as such."""
    lines, total = [], 0.0
    seen: set[str] = set()
    for number, planned in chapter_plans(s).items():
        rows = []
        for config, probes in planned:
            key = runs.run_key(config, probes)
            if key in seen:
                continue
            seen.add(key)
            history = runs.cached(config, probes)
            what = runs.describe(config) + (f", probes {'/'.join(p.name for p in probes)}" if probes else "")
            rows.append((history["seconds"] if history else None, what))
        done = sum(seconds for seconds, _ in rows if seconds is not None)
        total += done
        lines.append(f"chapter {number}: {len(rows)} runs of its own, {done:,.0f} s of training")
        lines += [f"  {'not cached' if seconds is None else f'{seconds:7,.0f} s'}  {what}" for seconds, what in
                  sorted(rows, key=lambda r: -(r[0] or 0))]
    return "\n".join([*lines, f"all chapters: {total:,.0f} s of training (summed over runs; side by side on "
                                 f"{pool.default_workers()} workers the wall time is less)"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bnlib.book", description="Estimate each chapter's time on a "
                                     "GPU that is not here, from counted FLOPs and operations (no timing); or, "
                                     "with --train, train every run of the book that is not cached yet.")
    parser.add_argument("--profile", default=None, help="default: gpu for estimates; for --train and --spent, "
                        "$BNLIB_PROFILE, else by hardware")
    parser.add_argument("--train", action="store_true", help="train the book's runs now, on all cores (make book "
                        "does this first, so that the chapters' runs train side by side across chapters)")
    parser.add_argument("--spent", action="store_true", help="say where the cached runs' training time went, "
                        "chapter by chapter and run by run (reads the run cache, trains nothing)")
    parser.add_argument("--dataset", default="auto")
    parser.add_argument("--flops-per-s", type=float, default=plan.T4_FLOPS_PER_S,
                        help="sustained fp32 FLOP/s assumed")
    parser.add_argument("--op-s", type=float, default=plan.T4_OP_S,
                        help="seconds per tensor operation (launch overhead)")
    args = parser.parse_args(argv)
    if args.train or args.spent:
        s = common(args.profile, args.dataset)
        if args.spent:
            print(spent(s))
            return 0
        planned = book_plan(s)
        plan.refuse_without_gpu(planned, s.profile)
        began = time.perf_counter()
        trained = runs.train_all(planned)
        print(f"profile {s.profile.name}: {len(planned)} runs in the book, {trained} trained now "
              f"in {time.perf_counter() - began:.0f} s, the rest were cached")
        return 0
    profile = common(args.profile or "gpu").profile
    torch.set_num_threads(min(2, torch.get_num_threads()))
    print(f"Estimates (not measurements) at profile {profile.name!r}: {args.flops_per_s / 1e12:g} TFLOP/s "
          f"sustained, {1e6 * args.op_s:g} us per operation")
    for number, (alone, after) in book_estimate(profile, args.flops_per_s, args.op_s).items():
        print(f"chapter {number}: {alone.runs} runs, about {plan.duration(alone.seconds)} alone, "
              f"{plan.duration(after.seconds)} after the chapters before it")
        for line in alone.measured:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
