"""The book as a user builds it: `jupyter-book build` with warnings as errors, and papermill runs."""

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
# only against hangs: a busy machine can make a build many times slower, and that must not fail a test
HANG_GUARD_S = 4 * 3600


def _jupyter_book(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BNLIB_PROFILE": os.environ.get("BNLIB_PROFILE", "smoke")}
    return subprocess.run([str(BIN / "jupyter-book"), "build", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)


@functools.cache
def built_book() -> tuple[subprocess.CompletedProcess, Path]:
    """The README's build command (jupyter-book build . -W -n), run ONCE per test session into a scratch
    folder; the build test and the browser test (tests/test_browser.py) share it. Returns (result, html dir)."""
    out = Path(tempfile.mkdtemp(prefix="bnlib-book-"))
    atexit.register(shutil.rmtree, out, True)
    result = _jupyter_book(".", "-W", "-n", "--keep-going", "--path-output", str(out), cwd=ROOT)
    return result, out / "_build" / "html"


def test_notebooks_are_stored_without_outputs_and_have_one_parameters_cell():
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
        assert "profile" in tagged[0].source


def test_the_api_page_lists_exactly_the_modules_of_bnlib():
    """Its table has one row per module or subpackage of bnlib, and no row for what moved out (tools/)."""
    package = ROOT / "bnlib"
    modules = {f"bnlib.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {f"bnlib.{p.parent.name}" for p in package.glob("*/__init__.py")}
    listed = re.findall(r"^\| `(bnlib\.[\w.]+)` \|", (ROOT / "chapters" / "api.md").read_text(), re.M)
    assert len(listed) == len(set(listed)) and set(listed) == modules, (
        f"missing: {sorted(modules - set(listed))}, not in bnlib: {sorted(set(listed) - modules)}")


def test_every_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    for path in CHAPTERS:
        assert f"chapters/{path.stem}" in toc, f"{path.name} is missing from _toc.yml"


def test_papermill_injects_parameters(tmp_path):
    out = tmp_path / "out.ipynb"
    chapter = ROOT / "chapters" / "06_theory_checks.ipynb"
    result = subprocess.run([str(BIN / "papermill"), str(chapter), str(out), "-p", "profile", "smoke",
                             "-y", "seeds: [3, 4]"], capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr[-3000:]
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "seeds = [3, 4]" in "".join(injected[0]["source"])
    printed = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "(seed 3)" in printed  # chapter 6 trains nothing: the first seed seeds its random draws


def _tiny_book(book: Path, name: str, code: str) -> Path:
    """`book` (the new_book fixture: this repository's configuration) with one chapter, `name`, running `code`."""
    (book / "_toc.yml").write_text(f"format: jb-book\nroot: index\nchapters:\n  - file: {name}\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name.title()}"), nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / f"{name}.ipynb")
    return book


def test_a_failing_cell_fails_the_build(new_book):
    book = _tiny_book(new_book, "broken", "raise RuntimeError('boom')")
    result = _jupyter_book(".", "-W", "-n", "--keep-going", cwd=book)
    assert result.returncode != 0
    assert "boom" in result.stdout + result.stderr


def test_rebuild_reexecutes_only_when_bnlib_or_the_profile_changed(new_book, monkeypatch):
    """Sphinx rebuilds only edited pages; tools.sphinx_rebuild adds every page when bnlib's fingerprint
    (its sources, $BNLIB_PROFILE, $BNLIB_CACHE) changed. The notebook counts its own executions."""
    book = _tiny_book(new_book, "counted", "with open('executions.txt', 'a') as f:\n    f.write('x')")
    executions = book / "executions.txt"
    monkeypatch.setenv("BNLIB_PROFILE", "smoke")
    for expected in (1, 1):  # first build executes; nothing changed: the rebuild does not
        result = _jupyter_book(".", "-W", "-n", "--keep-going", cwd=book)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        assert executions.read_text() == "x" * expected
    monkeypatch.setenv("BNLIB_PROFILE", "cpu")  # the pages would show another profile: re-execute
    result = _jupyter_book(".", "-W", "-n", "--keep-going", cwd=book)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert executions.read_text() == "xx"


@pytest.mark.slow
def test_the_book_builds_without_warnings():
    """The README's build command (jupyter-book build . -W) succeeds, into a scratch folder."""
    result, html = built_book()
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    landing = (html / "index.html").read_text()
    assert "How Does Batch Normalization Help Optimization?" in landing
    assert "Santurkar" in landing
    for path in CHAPTERS:
        assert (html / "chapters" / f"{path.stem}.html").exists(), path.stem


@pytest.mark.slow
def test_every_built_page_says_what_built_it_links_to_the_issues_and_resolves_its_links():
    from tools import linkcheck

    result, html = built_book()
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    short = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    profile = os.environ.get("BNLIB_PROFILE", "smoke")
    for page in [html / "index.html", *(html / "chapters" / f"{p.stem}.html" for p in CHAPTERS)]:
        text = page.read_text()
        assert f"from commit {short.strip()}" in text and f"profile {profile}, VGG runs on" in text, page.name
        assert "how-does-batchnorm-help/issues" in text, f"{page.name}: no issue button"
    report = linkcheck.check(html)
    assert report.broken == [], report.broken[:10]


@pytest.mark.slow
def test_the_landing_page_shows_the_computed_scoreboard():
    result, html = built_book()
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    landing = (html / "index.html").read_text()
    table = re.search(r'<table class="bnlib-claims"[^>]*>.*?</table>', landing, re.S)
    assert table, "no scoreboard table on the landing page"
    rows = re.findall(r"<tr><td>[^<]*<br><small><code>([^<]+)</code>", table.group(0))
    assert rows and len(rows) == len(set(rows)), f"claim ids missing or repeated: {rows}"
    # every row links to a chapter page that exists, every chapter's claims module is on the board,
    # and the page says how it was computed
    links = re.findall(r'href="(chapters/[^"]+\.html)"', table.group(0))
    assert len(links) == len(rows) and all((html / link).exists() for link in links), links
    assert "the paper's own plotted data does not bear out its text" in landing
    profile = os.environ.get("BNLIB_PROFILE", "smoke")
    assert f"Profile <code>{profile}</code>" in landing and "device:" in landing
    assert "Traceback" not in landing


@pytest.mark.slow
def test_every_page_has_a_title_a_colab_link_and_loads_no_script_from_the_network():
    from tools.stamp_colab import repository

    result, html = built_book()
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    repo = repository(ROOT)
    for path in CHAPTERS:
        page = (html / "chapters" / f"{path.stem}.html").read_text()
        assert re.search(r"<h1>[^<]+", page), f"{path.stem}: no title"
        links = set(re.findall(r'href="(https://colab[^"]+)"', page))
        assert links == {repo.colab_link(f"chapters/{path.name}")}, f"{path.stem}: Colab launch link {links}"
    for page in [html / "index.html", *sorted((html / "chapters").glob("*.html"))]:
        text = page.read_text()
        # no widget manager / require.js (myst-nb adds them from a CDN when a notebook holds widget state,
        # e.g. from tqdm's notebook progress bars, unless _config.yml's nb_ipywidgets_js is empty)
        for pattern in ("require.min.js", "html-manager", "embed-amd"):
            assert pattern not in text, f"{page.name} loads {pattern}"
        remote = re.findall(r'<script[^>]*src="(https?://[^"]+)"', text)
        assert not remote, f"{page.name} loads scripts from the network: {remote}"
        # formulas (in the text, or in a chapter title in the navigation): MathJax from the book itself
        assert re.search(r'src="(\.\./)?_static/mathjax/tex-mml-chtml\.js"', text), f"{page.name}: no MathJax"
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").exists()


@pytest.mark.slow
def test_markdown_outputs_render_as_tables_not_raw_pipes():
    """Chapters print summary tables as Markdown outputs; CommonMark (myst-nb's default for outputs) has no
    tables, so they showed as a paragraph of pipes. _config.yml renders outputs as MyST."""
    from bs4 import BeautifulSoup

    result, html = built_book()
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    for page in [html / "index.html", *sorted((html / "chapters").glob("*.html"))]:
        soup = BeautifulSoup(page.read_text(), "html.parser")
        raw = [p.get_text()[:80] for p in soup.find_all("p") if re.search(r"\|\s*(---|—)+\s*\|", p.get_text())]
        assert not raw, f"{page.name}: Markdown table shown as text: {raw}"
