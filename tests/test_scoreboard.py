"""The landing page's scoreboard: every chapter's claims, a chapter not written yet skipped, a broken one loud."""

from __future__ import annotations

import pytest

from bnlib import claims


@pytest.fixture
def fake_modules(tmp_path, monkeypatch):
    """Claims modules written into a scratch folder that joins the bnlib.claims package."""
    monkeypatch.setattr(claims, "__path__", [*claims.__path__, str(tmp_path)])

    def add(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.delitem(__import__("sys").modules, f"bnlib.claims.{name}", raising=False)

    return add


GOOD = '''
from bnlib.claims import ClaimResult

def claims(profile=None, dataset="auto"):
    return [ClaimResult("t-1", "a claim", "Fig. 1", "1.0", "2.0", "partly", "01_test", {"profile": profile}),
            ClaimResult("t-2", "b <claim>", "Fig. 2", "3", "4", "reproduced", "01_test")]
'''


def test_collect_gathers_existing_modules_and_names_the_missing(fake_modules, monkeypatch):
    fake_modules("fake_good", GOOD)
    monkeypatch.setattr(claims, "MODULES", ("fake_good", "fake_not_written_yet"))
    results, missing = claims.collect("smoke")
    assert [r.id for r in results] == ["t-1", "t-2"] and results[0].details == {"profile": "smoke"}
    assert missing == ["fake_not_written_yet"]
    assert claims.tally(results) == {"reproduced": 1, "partly": 1, "not reproduced": 0, "inconclusive": 0}


def test_an_error_inside_an_existing_module_is_raised(fake_modules, monkeypatch):
    fake_modules("fake_bad_import", "import a_package_that_is_not_installed_xyz\n")
    monkeypatch.setattr(claims, "MODULES", ("fake_bad_import",))
    with pytest.raises(ModuleNotFoundError, match="a_package_that_is_not_installed_xyz"):
        claims.collect("smoke")
    fake_modules("fake_raises", "def claims(profile=None, dataset='auto'):\n    raise RuntimeError('bad claim')\n")
    monkeypatch.setattr(claims, "MODULES", ("fake_raises",))
    with pytest.raises(RuntimeError, match="bad claim"):
        claims.collect("smoke")


def test_scoreboard_html_links_each_claim_to_its_chapter_and_names_the_setup(fake_modules, monkeypatch):
    fake_modules("fake_good", GOOD)
    monkeypatch.setattr(claims, "MODULES", ("fake_good", "fake_missing"))
    monkeypatch.setattr("bnlib.report.setup_summary", lambda p, d: f"**How.** Profile `{p}` on **{d}**, device: CPU")
    page = claims.scoreboard_html("smoke", "synthetic")
    assert page.count('href="chapters/01_test.html"') == 2
    assert "b &lt;claim&gt;" in page and "<b>2 claims checked:</b>" in page
    assert "1 reproduced, 1 partly, 0 not reproduced, 0 inconclusive" in page
    assert "fake_missing" in page
    assert "Profile <code>smoke</code> on <b>synthetic</b>, device: CPU" in page
