"""Do the scoreboard's verdicts survive a change of seeds or of rounding? Measured, then stored for the book.

``python -m tools.stability --profile cpu --groups fig1 landscape-vgg ics-dln landscape-dln lp-dln --write F``
grades the chosen claim groups (``bnlib.book.CLAIM_GROUPS``) three times:

- ``book``: the book's own runs (the profile's seeds, from the run cache, trained where missing);
- ``other seeds``: the same runs at a disjoint set of seeds (``--other-seeds``, default 3 4 5), into the same cache
  (they are ordinary runs; the book grades claims the rule leaves undecided at three seeds on them too);
- ``rounding``: the book's seeds trained again with one worker of two torch threads instead of two workers of one
  (the CPU's kernels then split their sums differently: only the rounding changes), into a separate cache
  (``--rounding-cache``; thread counts are not part of a run's key).

It writes every claim's values per condition, with the machine, commit, date and seconds spent, as JSON: the
book's stability report (``bnlib.stability``) regrades them with today's rule at build time. Beside each claim it
also stores the verdict of the rule the book used before (every seed beyond the margin, unanimously), so the
closing note can compare the two. Trains for long: say how long in the record.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bnlib import book, runs
from bnlib import data as bdata
from bnlib.claims import Rule, regrade
from bnlib.execution import device_name


def unanimous(ours: Sequence[float], paper: float | None, rule: Rule, text_value: float | None = None) -> str:
    """The rule the book used until 2026-12-06, kept here only to compare: every seed's own direction, unanimous;
    then every seed within the factor of the reference for "reproduced"."""
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
    if reference is None or rule.factor is None:
        return "reproduced"
    return "reproduced" if all(_close(v, reference, rule) for v in values) else "partly"


def _close(ours: float, reference: float, rule: Rule) -> bool:
    if rule.scale == "log":
        return ours > 0 and reference > 0 and abs(math.log10(ours / reference)) <= math.log10(rule.factor) + 1e-12
    a, b = rule.offset(ours), rule.offset(reference)
    return a == 0 if b == 0 else a / b > 0 and 1 / rule.factor - 1e-12 <= a / b <= rule.factor + 1e-12


def _grade(setup: book.Setup, groups: Sequence[str]) -> list[dict[str, Any]]:
    """The groups' runs trained where missing (all cores, resumable), then their claims graded."""
    planned = _planned(setup, groups)
    runs.train_all(planned)
    out = []
    for g in groups:
        for result in book.CLAIM_GROUPS[g].grade_on(setup):  # at exactly these seeds
            row = result.as_dict()
            row["group"] = g
            row["old_rule"] = unanimous(result.ours, result.paper, Rule(**result.rule), result.text_value)
            out.append(row)
    return out


def _planned(setup: book.Setup, groups: Sequence[str]) -> list[Any]:
    """The groups' runs at exactly the setup's seeds."""
    return runs.unique(run for g in groups for seed in setup.seeds for run in book.CLAIM_GROUPS[g].runs(setup, seed))


def _same_steps(setup: book.Setup, groups: Sequence[str], other_cache: Path) -> tuple[int, int]:
    """How many of the rounding condition's runs repeat the book's step losses bitwise (0 of n: every run moved)."""
    planned = _planned(setup, groups)
    same = 0
    for config, probes in planned:
        a, b = runs.cached(config, probes), runs.cached(config, probes, cache=other_cache)
        same += a is not None and b is not None and torch.equal(torch.as_tensor(a["step_loss"]),
                                                                torch.as_tensor(b["step_loss"]))
    return same, len(planned)


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(profile: str, dataset: str, groups: Sequence[str], other_seeds: Sequence[int],
            rounding_cache: Path) -> dict[str, Any]:
    setup = book.common(profile, dataset)
    if set(other_seeds) & set(setup.seeds):
        raise SystemExit(f"--other-seeds {list(other_seeds)} must be disjoint from the book's {list(setup.seeds)}")
    record: dict[str, Any] = {
        "profile": setup.profile.name, "dataset": bdata.resolve_name(setup.dataset), "groups": list(groups),
        "commit": _commit(),
        "date": datetime.date.today().isoformat(), "machine": device_name(torch.device("cpu")),
        "cores": os.cpu_count(), "conditions": {}, "seconds": {}}
    conditions = {
        "book": (setup, {}, f"seeds {list(setup.seeds)}, as the book trains them (one torch thread per worker)"),
        "other seeds": (setup._replace(seeds=tuple(other_seeds)), {}, f"seeds {list(other_seeds)}, as the book "
                        "trains them"),
        "rounding": (setup, {"BNLIB_CACHE": str(rounding_cache), "BNLIB_WORKERS": "1"},
                     f"seeds {list(setup.seeds)} trained again with one worker of {os.cpu_count()} torch threads: "
                     "the same computation, rounded differently")}
    for name, (s, env, how) in conditions.items():
        saved, threads = {k: os.environ.get(k) for k in env}, torch.get_num_threads()
        os.environ.update(env)
        if env:
            torch.set_num_threads(os.cpu_count() or 1)  # one worker runs its jobs in this process
        began = time.perf_counter()
        try:
            rows = _grade(s, groups)
        finally:
            torch.set_num_threads(threads)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k)
                else:
                    os.environ[k] = v
        record["seconds"][name] = round(time.perf_counter() - began)
        record["conditions"][name] = {"how": how, "claims": rows}
        print(f"{name}: {len(rows)} claims graded in {record['seconds'][name]} s", flush=True)
    same, total = _same_steps(setup, groups, rounding_cache)
    record["rounding_runs_bitwise_equal"] = [same, total]
    return record


def summary(record: dict[str, Any]) -> str:
    """Per claim: the verdict under the old rule and today's, in each condition."""
    names = list(record["conditions"])
    by_id: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names:
        for row in record["conditions"][name]["claims"]:
            by_id.setdefault(row["id"], {})[name] = row
    lines = [f"{'claim':34} " + " | ".join(f"{n + ' old/new':32}" for n in names)]
    for cid, rows in by_id.items():
        cells = []
        for n in names:
            row = rows.get(n)
            cells.append(f"{row['old_rule'] + ' / ' + regrade(row).verdict:32}" if row else f"{'-':32}")
        lines.append(f"{cid:34} " + " | ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stability", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--dataset", default="auto")
    parser.add_argument("--groups", nargs="+", default=list(book.CLAIM_GROUPS), choices=list(book.CLAIM_GROUPS))
    parser.add_argument("--other-seeds", nargs="+", type=int, default=[3, 4, 5])
    parser.add_argument("--rounding-cache", type=Path, default=runs.cache_dir().parent / "bnlib-rounding")
    parser.add_argument("--write", type=Path, help="store the record here (JSON; the book reads "
                        "bnlib/measured/stability-PROFILE-DATASET.json)")
    parser.add_argument("--summary", type=Path, help="print the old and new verdicts of a stored record")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(json.loads(args.summary.read_text())))
        return 0
    record = measure(args.profile, args.dataset, args.groups, args.other_seeds, args.rounding_cache)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(json.dumps(record, indent=1, default=float) + "\n")
    print(summary(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
