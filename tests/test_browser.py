"""The kernel-free controls work in a real browser: open the built page offline in headless Chromium,
move the slider, and check that the figure on screen changed.

Needs Debian's chromium and chromium-driver (.ci/run installs both) and selenium (requirements.txt).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from test_book import CHAPTERS, _jupyter_book, built_book

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1600",
         "--host-resolver-rules=MAP * ~NOTFOUND"]  # no name resolves: the page must work offline

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="headless Chromium not installed: apt-get install chromium chromium-driver (.ci/run does)")


@pytest.fixture
def browser():
    """Headless Chromium with a fresh profile, driven through Debian's chromedriver (no downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bnlib-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(600)  # a hang guard: Chromium on a busy machine is slow
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def shown_frame(stepper) -> tuple[str, str]:
    """(data-index, src) of the one image the stepper displays."""
    from selenium.webdriver.common.by import By

    shown = [im for im in stepper.find_elements(By.CSS_SELECTOR, "img[data-index]") if im.is_displayed()]
    assert len(shown) == 1, f"the stepper shows {len(shown)} images, expected exactly one"
    return shown[0].get_attribute("data-index"), shown[0].get_attribute("src")


def check_stepper_moves(driver, page: Path, shots: Path) -> None:
    """Open `page`, move its first stepper one notch with the keyboard, and compare screenshots."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(page.as_uri())
    stepper = driver.find_element(By.CSS_SELECTOR, ".bnlib-stepper")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", stepper)
    slider = stepper.find_element(By.CSS_SELECTOR, "input[type=range]")
    label = stepper.find_element(By.CSS_SELECTOR, ".bnlib-stepper-value")
    index0, src0, text0 = *shown_frame(stepper), label.text
    before = stepper.screenshot_as_png
    (shots / f"{page.stem}-before.png").write_bytes(before)
    key = Keys.ARROW_LEFT if int(index0) == int(slider.get_attribute("max")) else Keys.ARROW_RIGHT
    slider.send_keys(key)
    index1, src1, text1 = *shown_frame(stepper), label.text
    after = stepper.screenshot_as_png
    (shots / f"{page.stem}-after.png").write_bytes(after)

    assert index1 != index0 and slider.get_attribute("value") == index1, "the slider did not move"
    assert src1 != src0, "the same figure is shown after moving the slider"
    assert text1 != text0, "the value label did not change"
    assert after != before, "the screenshots before and after moving the slider are identical"
    # and the page fetched nothing from the network: every resource is local (file:) or inline (data:)
    remote = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => !n.startsWith('file:') && !n.startsWith('data:'))")
    assert not remote, f"the page loaded from the network: {remote}"


def test_static_stepper_in_a_small_built_book(tmp_path, new_book, browser):
    """The mechanism on its own: a one-notebook book calling widgets.static_stepper, built with myst-nb."""
    book = new_book
    (book / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: stepper\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A stepper"), nbformat.v4.new_code_cell(
        "import matplotlib.pyplot as plt\nfrom bnlib import widgets\n\n"
        "def render(k):\n    fig, ax = plt.subplots(figsize=(4, 3))\n"
        "    ax.plot(range(10), [k * x for x in range(10)], lw=4)\n    ax.set_ylim(0, 30)\n"
        "    ax.set_title(f'slope {k}')\n    return fig\n\n"
        "widgets.static_stepper('slope', [1, 2, 3], render)"),
        # a live widget too: the notebook then holds widget state, for which myst-nb would add require.js and
        # the widget manager from a CDN unless _config.yml's nb_ipywidgets_js is empty
        nbformat.v4.new_code_cell("import ipywidgets\nipywidgets.IntSlider()")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "stepper.ipynb")
    result = _jupyter_book(".", "-W", "-n", "--keep-going", cwd=book)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    page = book / "_build" / "html" / "stepper.html"
    assert "application/vnd.jupyter.widget-state+json" in page.read_text(), "the live widget left no state"
    check_stepper_moves(browser, page, tmp_path)


def _calls_stepper(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return any("static_stepper" in c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
@pytest.mark.parametrize("chapter", [p for p in CHAPTERS if _calls_stepper(p)], ids=lambda p: p.stem)
def test_the_chapters_controls_work_in_the_built_book(chapter, browser, tmp_path):
    """Every chapter that shows a static stepper: the control works on the real built page."""
    result, html = built_book()
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    check_stepper_moves(browser, html / "chapters" / f"{chapter.stem}.html", tmp_path)



# WCAG contrast of every text element matched by `selector` against the background it is drawn on (the first
# ancestor with an opaque background), as [text, ratio] pairs
_CONTRAST_JS = """
function rgba(c) { const p = c.match(/[\\d.]+/g).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; }
function background(el) {
  for (; el; el = el.parentElement) { const c = rgba(getComputedStyle(el).backgroundColor); if (c[3] > 0.5) return c; }
  return [255, 255, 255, 1];
}
function lum(c) {
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
}
function ratio(a, b) { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); }
return Array.from(document.querySelectorAll(arguments[0]))
  .filter(e => e.offsetParent !== null && Array.from(e.childNodes).some(n => n.nodeType === 3 && n.textContent.trim()))
  .map(e => [e.textContent.trim().slice(0, 40), ratio(rgba(getComputedStyle(e).color), background(e))]);
"""
SCOREBOARD_TEXT = ".bnlib-out td, .bnlib-out th, .bnlib-out small, .bnlib-out b, .bnlib-out p, .bnlib-out a, " \
                  ".bnlib-out code"
STEPPER_TEXT = ".bnlib-stepper label, .bnlib-stepper-value"


def contrast(driver, page: Path, selector: str, theme: str) -> list[tuple[str, float]]:
    """Open `page` in the theme's `theme` mode ("light" or "dark", as its switch stores it) and measure."""
    driver.get(page.as_uri())
    driver.execute_script("localStorage.setItem('theme', arguments[0]); localStorage.setItem('mode', arguments[0]);"
                          "document.documentElement.dataset.theme = arguments[0];"
                          "document.documentElement.dataset.mode = arguments[0];", theme)
    assert driver.execute_script("return document.documentElement.dataset.theme") == theme
    return driver.execute_script(_CONTRAST_JS, selector)


@pytest.mark.slow
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_scoreboard_and_the_steppers_are_legible_in_light_and_dark_mode(theme, browser):
    """WCAG AA for body text: a contrast of at least 4.5:1 against the background actually drawn behind it."""
    result, html = built_book()
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    board = contrast(browser, html / "index.html", SCOREBOARD_TEXT, theme)
    stepper_page = next(p for p in CHAPTERS if _calls_stepper(p))
    steppers = contrast(browser, html / "chapters" / f"{stepper_page.stem}.html", STEPPER_TEXT, theme)
    assert len(board) > 20 and steppers, (len(board), steppers)
    low = [(text, round(r, 2)) for text, r in board + steppers if r < 4.5]
    assert not low, f"{theme} mode: text below 4.5:1 contrast: {low[:10]}"
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert (background in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)")) == (theme == "light"), background
