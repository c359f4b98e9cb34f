"""The controls: the static stepper's HTML is well formed, and live widgets appear only at a live front end."""

from __future__ import annotations

import os
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import pytest

from bnlib import widgets


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _render(value):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, value])
    return fig


def test_stepper_html_parses_with_the_whole_handler_inside_its_attribute():
    values = [0.5, 'say "hi" <b>', 2]
    parser = _Collect()
    parser.feed(widgets.static_stepper_html("noise <scale>", values, _render, start=1))
    inputs = [a for t, a in parser.tags if t == "input"]
    assert len(inputs) == 1 and inputs[0]["oninput"] == widgets._ONINPUT
    assert (inputs[0]["min"], inputs[0]["max"], inputs[0]["value"]) == ("0", "2", "1")
    images = [a for t, a in parser.tags if t == "img"]
    assert [im["data-value"] for im in images] == [str(v) for v in values]  # escaped, then unescaped by the parser
    visible = [im for im in images if "display:none" not in im["style"]]
    assert [im["data-index"] for im in visible] == ["1"]
    assert all(im["src"].startswith("data:image/png;base64,") for im in images)
    assert len({im["src"] for im in images}) == 3


def test_stepper_rejects_bad_input_naming_the_parameter():
    with pytest.raises(ValueError, match="values must not be empty"):
        widgets.static_stepper_html("x", [], _render)
    with pytest.raises(ValueError, match="start must be in 0..1"):
        widgets.static_stepper_html("x", [1, 2], _render, start=2)


def test_live_widgets_only_at_a_live_front_end(monkeypatch):
    for var in ("BNLIB_STATIC_ONLY", "BNLIB_LIVE", "JPY_SESSION_NAME"):
        monkeypatch.delenv(var, raising=False)
    assert widgets.in_kernel_with_widgets() is False  # plain Python (pytest), no kernel
    monkeypatch.setenv("BNLIB_LIVE", "1")
    assert widgets.in_kernel_with_widgets() is True
    monkeypatch.setenv("BNLIB_STATIC_ONLY", "1")
    assert widgets.in_kernel_with_widgets() is False


LIVE_ON_OLDEST = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import ipywidgets
from bnlib import widgets
calls = []
def redraw(v):
    calls.append(v)
    fig, ax = plt.subplots()
    ax.plot([0, v])
    return fig
box = widgets.live_control("lr", [0.1, 0.5, 1.0], redraw, start=1)
slider, out = box.children
slider.value = 1.0
print(ipywidgets.__version__, type(box).__name__, calls)
"""


def test_the_live_controls_run_on_the_oldest_ipywidgets_the_range_allows(tmp_path):
    """pyproject allows ipywidgets 7.6 (Colab ships 7.x): install 7.6.5 into a throwaway folder (from the package
    registry) and drive a live control with it, in a fresh interpreter."""
    import subprocess
    import sys

    target = tmp_path / "old"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                          "ipywidgets==7.6.5", "ipython_genutils"], capture_output=True, text=True, timeout=240)
    if pip.returncode != 0:
        pytest.skip(f"could not install ipywidgets 7.6.5 from the package registry: {pip.stderr[-300:]}")
    ran = subprocess.run([sys.executable, "-c", LIVE_ON_OLDEST], capture_output=True, text=True, timeout=240,
                         env={**os.environ, "PYTHONPATH": str(target)})
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip().splitlines()[-1] == "7.6.5 VBox [0.5, 1.0]"
