"""Do the verdicts travel? The stored stability record (`tools/stability.py` measures it; `bnlib/measured/`
keeps it), regraded by today's rule: each claim's verdict on the book's seeds, on a disjoint set of seeds, and
with the book's seeds rounded differently (another thread count), and whether the three agree.

A verdict is *stable* when all three agree. The record is a measurement of one machine on one date (it says which);
a build elsewhere compares its own verdicts with it (`check`), so a page never passes another machine's
stability off as its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from bnlib import data as bdata
from bnlib.claims import VERDICTS, ClaimResult, regrade

CONDITIONS = ("book", "other seeds", "rounding")


def record(profile: str, dataset: str) -> dict[str, Any] | None:
    """The stored record for a profile and dataset (`auto` resolved as the runs resolve it), or None where none
    was measured."""
    path = resources.files("bnlib") / "measured" / f"stability-{profile}-{bdata.resolve_name(dataset)}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def regraded(rec: dict[str, Any]) -> dict[str, dict[str, ClaimResult]]:
    """{claim id: {condition: the claim regraded by today's rule on that condition's stored values}}."""
    out: dict[str, dict[str, ClaimResult]] = {}
    for condition in CONDITIONS:
        for row in rec["conditions"].get(condition, {}).get("claims", []):
            out.setdefault(row["id"], {})[condition] = regrade(row)
    return out


def stable_verdicts(rec: dict[str, Any]) -> dict[str, str | None]:
    """{claim id: its verdict where every condition gives the same one, else None (it moved)}."""
    out = {}
    for cid, by_condition in regraded(rec).items():
        verdicts = {r.verdict for r in by_condition.values()}
        out[cid] = verdicts.pop() if len(verdicts) == 1 and len(by_condition) == len(CONDITIONS) else None
    return out


def check(results: Sequence[ClaimResult], rec: dict[str, Any] | None) -> dict[str, Any]:
    """This build's verdicts against the record. *Stable*: the record's conditions agree and this build gives their
    verdict. *Moved*: they disagree, or this build gives another verdict on as many seeds. *More seeds*: this build
    graded the claim on more seeds than the record's conditions (`ClaimGroup.more`) and reached another verdict than
    their common one, which no perturbation has checked yet. *Unmeasured*: not in the record."""
    stable = stable_verdicts(rec) if rec else {}
    per_condition = {cid: len(next(iter(by.values())).seeds) for cid, by in regraded(rec).items()} if rec else {}
    counted = {v: 0 for v in VERDICTS}
    moved, more, unmeasured = [], [], []
    for r in results:
        if r.id not in stable:
            unmeasured.append(r.id)
        elif stable[r.id] == r.verdict:
            counted[r.verdict] += 1
        elif stable[r.id] is not None and len(r.seeds) > per_condition[r.id]:
            more.append(r.id)
        else:
            moved.append(r.id)
    return {"stable": counted, "moved": moved, "more seeds": more, "unmeasured": unmeasured}


def report_rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per claim of the record: its verdict and values in each condition, and whether they agree."""
    rows = []
    for cid, by_condition in regraded(rec).items():
        first = next(iter(by_condition.values()))
        row = {"claim": cid, "figure": first.figure}
        for condition in CONDITIONS:
            r = by_condition.get(condition)
            row[condition] = "—" if r is None else f"{r.verdict} ({', '.join(f'{v:.3g}' for v in r.ours)})"
        verdicts = {r.verdict for r in by_condition.values()}
        row["stable"] = "yes" if len(verdicts) == 1 and len(by_condition) == len(CONDITIONS) else "**no**"
        rows.append(row)
    return rows
