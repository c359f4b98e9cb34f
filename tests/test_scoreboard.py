"""The scoreboard: every chapter's claims collected, rendered by bnlib.report, printed by `python -m bnlib.claims`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bnlib import book, claims, report
from bnlib.claims import Rule, claim
from bnlib.claims import __main__ as cli
from bnlib.profiles import resolve


def _results():
    rule = Rule(null=1, margin=1.25, scale="log", factor=3.0)
    graded = [claim("t-1", "Fig. 4c", "b <claim>", "Standard / BN", {0: 1.0, 1: 1.02}, 1.01, rule),
              claim("t-2", "Sec. 2", "a claim", "share", {0: float("nan")}, None, rule, text_value=2.0),
              claim("t-3", "Fig. 4a", "c claim", "Standard / BN", {0: 9.0, 1: 0.5}, 8.4, rule)]
    return [dataclasses.replace(r, chapter=c) for r, c in zip(graded, ("04_test", "02_test", "04_test"), strict=True)]


def test_claims_carry_paper_value_seeds_and_the_papers_own_verdict_on_its_text():
    one, two, three = _results()
    assert one.verdict == "reproduced" and one.paper_vs_text.startswith("no")
    assert two.paper is None and two.verdict == "inconclusive" and "text's 2" in two.reference
    assert three.seeds == [0, 1] and three.ours == [9.0, 0.5] and three.verdict == "inconclusive"
    assert claims.tally(_results()) == {"reproduced": 1, "partly": 0, "not reproduced": 0, "inconclusive": 2}
    with pytest.raises(ValueError, match="one value per seed"):
        claims.ClaimResult("x", "f", "c", "s", None, [1.0], [0, 1], "partly", "01")


def test_scoreboard_html_links_each_claim_to_its_chapter_and_names_the_setup(monkeypatch):
    monkeypatch.setattr(report, "setup_summary",
                        lambda p, d, s, made_on: f"**How.** Profile `{p.name}` on **{d}** at {s}, device: CPU")
    page = "".join(report.scoreboard_html(_results(), resolve("smoke"), "synthetic", (0, 1)))
    assert page.count('href="chapters/04_test.html"') == 2
    assert "b &lt;claim&gt;" in page and "<b>3 claims checked:</b>" in page
    assert "1 reproduced, 0 partly, 0 not reproduced, 2 inconclusive" in page
    assert "On 1 of them the paper's own plotted data does not bear out its text" in page
    assert "9, 0.5 (seeds 0, 1)" in page and "1, 1.02 (seeds 0, 1)" in page
    assert "Profile <code>smoke</code> on <b>synthetic</b> at (0, 1), device: CPU" in page


def test_cli_prints_json_with_the_promised_fields(monkeypatch, capsys):
    seen = {}

    def fake_collect(setup):
        seen.update(profile=setup.profile.name, dataset=setup.dataset, seeds=setup.seeds)
        print("progress bar noise")
        return _results()

    monkeypatch.setattr(book, "collect", fake_collect)
    assert cli.main(["--profile", "smoke", "--dataset", "synthetic", "--seeds", "0", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert seen == {"profile": "smoke", "dataset": "synthetic", "seeds": (0, 1)}
    assert [r["id"] for r in rows] == ["t-1", "t-2", "t-3"]
    for row in rows:
        assert {"id", "figure", "claim", "paper", "ours", "seeds", "verdict"} <= set(row)
        assert len(row["ours"]) == len(row["seeds"])
    assert rows[1]["paper"] is None and rows[1]["ours"] == [None]
    assert cli.main(["--profile", "smoke"]) == 0
    assert "t-3" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["--profile", "huge"])


def test_markdown_table_escapes_pipes_in_headers_and_cells():
    """A literal | (chapter 1's "mean |Δμ|" header) must not end a column, or the table renders as text."""
    from bnlib import report

    text = report.markdown_table([{"mean |Δμ|": 0.5, "network": "a|b"}])
    header, rule, row = text.splitlines()
    assert header == r"| mean \|Δμ\| | network |"
    assert rule == "|---|---|"
    assert row == r"| 0.5 | a\|b |"


def test_seed_rows_give_the_mean_and_range_of_every_seed_and_say_which_seed_differs():
    runs = {0: {"a": {"x": 1.0, "s": "ok"}, "b": {"x": 2.0, "s": "ok"}},
            1: {"a": {"x": 3.0, "s": "ok"}, "b": {"x": float("nan"), "s": "diverged"}}}
    rows = report.seed_rows(runs, lambda run: dict(run), {"a": "A", "b": "B"})
    assert rows[0] == {"network": "A", "x": "2 [1, 3]", "s": "ok"}
    assert rows[1] == {"network": "B", "x": "2 [2, 2] (1 of 2 seeds nan)", "s": "seed 0: ok; seed 1: diverged"}
    assert report.seed_rows({5: runs[0]}, lambda run: dict(run), {"a": "A", "b": "B"})[0]["x"] == "1"
    assert report.seeds_caption([0, 1]).startswith("Seeds 0, 1: each number is their mean")
    assert report.seeds_caption([4]) == "Seed 4."
    with pytest.raises(ValueError, match="at least one seed"):
        report.seed_rows({}, dict, {})
