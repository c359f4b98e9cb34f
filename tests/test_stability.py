"""The stability report: a stored record's claims regraded by today's rule, condition by condition; a verdict counts
as stable only where every condition and this build agree."""

from __future__ import annotations

import json

from bnlib import stability
from bnlib.claims import Rule, claim

RULE = Rule(null=1, margin=1.25, scale="log", factor=3.0)


def _row(cid: str, values: dict[int, float], paper: float = 8.0) -> dict:
    return json.loads(json.dumps(claim(cid, "Fig. 4a", "c", "s", values, paper, RULE).as_dict()))  # as stored


def _record() -> dict:
    far = {"book": {0: 8.0, 1: 8.5, 2: 7.5}, "other seeds": {3: 7.8, 4: 8.2, 5: 8.1},
           "rounding": {0: 8.1, 1: 8.4, 2: 7.4}}
    near = {"book": {0: 1.4, 1: 1.5, 2: 1.45}, "other seeds": {3: 1.1, 4: 1.6, 5: 1.3},
            "rounding": {0: 1.42, 1: 1.52, 2: 1.44}}
    return {"machine": "AMD EPYC", "date": "2026-12-06", "commit": "abc1234",
            "conditions": {c: {"how": c, "claims": [_row("far", far[c]), _row("near", near[c])]}
                           for c in stability.CONDITIONS}}


def test_a_claim_far_from_its_boundaries_is_stable_and_one_near_a_margin_moves():
    rec = _record()
    assert stability.stable_verdicts(rec) == {"far": "reproduced", "near": None}
    by_id = stability.regraded(rec)
    assert by_id["near"]["book"].verdict == "partly" and by_id["near"]["other seeds"].verdict == "inconclusive"
    rows = {r["claim"]: r for r in stability.report_rows(rec)}
    assert rows["far"]["stable"] == "yes" and rows["near"]["stable"] == "**no**"
    assert rows["near"]["other seeds"].startswith("inconclusive (1.1, 1.6, 1.3)")


def test_this_builds_verdicts_count_as_stable_only_where_they_agree_with_the_record():
    rec = _record()
    here = [claim("far", "Fig. 4a", "c", "s", {0: 8.0, 1: 8.6, 2: 7.4}, 8.0, RULE),
            claim("near", "Fig. 4a", "c", "s", {0: 1.4, 1: 1.5, 2: 1.45}, 8.0, RULE),
            claim("new", "Fig. 1", "c", "s", {0: 8.0, 1: 8.6, 2: 7.4}, 8.0, RULE)]
    checked = stability.check(here, rec)
    assert checked["stable"]["reproduced"] == 1 and checked["moved"] == ["near"] and checked["unmeasured"] == ["new"]
    elsewhere = [claim("far", "Fig. 4a", "c", "s", {0: 40.0, 1: 41.0, 2: 39.0}, 8.0, RULE)]  # another machine: partly
    assert stability.check(elsewhere, rec)["moved"] == ["far"]
    assert stability.check(here, None)["unmeasured"] == ["far", "near", "new"]
    six = [claim("far", "Fig. 4a", "c", "s", {s: v for s, v in enumerate((40.0, 41, 39, 40, 42, 38))}, 8.0, RULE)]
    assert stability.check(six, rec)["more seeds"] == ["far"]  # another verdict on six seeds: not a perturbation


def test_the_stored_record_when_present_covers_claims_the_book_grades():
    from bnlib import book

    ids = {g: None for g in book.CLAIM_GROUPS}
    for profile, dataset in (("cpu", "fashion-mnist"),):
        rec = stability.record(profile, dataset)
        if rec is None:
            continue
        assert set(rec["groups"]) <= set(ids)
        assert set(stability.CONDITIONS) == set(rec["conditions"])
        for condition in rec["conditions"].values():
            assert all(stability.regraded({"conditions": {"book": {"claims": [row]}}}) for row in condition["claims"])
