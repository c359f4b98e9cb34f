"""Controls that work twice: live in a kernel (ipywidgets), and static in the rendered HTML.

The static twin is a precomputed grid: one PNG per control value, embedded in the page with a
plain HTML range input and a few lines of inline JavaScript, so it needs no kernel, no CDN and
no widget manager: the page works offline.
"""

from __future__ import annotations

import base64
import html
import io
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def in_kernel_with_widgets() -> bool:
    """True in a live Jupyter/Colab front end (not under papermill, nbval or a book build)."""
    import os

    if os.environ.get("BNLIB_STATIC_ONLY"):
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return False
    return shell is not None and type(shell).__name__ in ("ZMQInteractiveShell", "Shell")


def figure_png(fig: Figure, dpi: int = 90) -> str:
    """A figure as a base64 PNG string (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def static_stepper_html(label: str, values: Sequence[Any], render: Callable[[Any], Figure],
                        start: int = 0) -> str:
    """HTML of a slider over `values` that swaps between pre-rendered figures client-side."""
    if not values:
        raise ValueError("static_stepper_html: values must not be empty")
    if not 0 <= start < len(values):
        raise ValueError(f"static_stepper_html: start must be in 0..{len(values) - 1}, got {start}")
    uid = "bnlib-" + uuid.uuid4().hex[:8]
    images = []
    for i, value in enumerate(values):
        png = figure_png(render(value))
        hidden = "" if i == start else ' style="display:none"'
        images.append(f'<img class="{uid}-frame" data-index="{i}" alt="{html.escape(label)} = '
                      f'{html.escape(str(value))}" src="data:image/png;base64,{png}"{hidden}>')
    names = "[" + ",".join('"' + html.escape(str(v)) + '"' for v in values) + "]"
    return f"""<div class="bnlib-stepper" id="{uid}">
<label>{html.escape(label)}: <input type="range" min="0" max="{len(values) - 1}" step="1" value="{start}"
 oninput="(function(v){{var names={names};document.querySelectorAll('.{uid}-frame').forEach(function(im){{
 im.style.display = (im.dataset.index == v) ? '' : 'none';}});
 document.getElementById('{uid}-value').textContent = names[v];}})(this.value)">
<span id="{uid}-value">{html.escape(str(values[start]))}</span></label>
<div>{''.join(images)}</div></div>"""


def static_stepper(label: str, values: Sequence[Any], render: Callable[[Any], Figure], start: int = 0) -> Any:
    """Display the static (kernel-free) stepper in a notebook."""
    from IPython.display import HTML

    return HTML(static_stepper_html(label, values, render, start))


def live_control(label: str, options: Sequence[Any], callback: Callable[[Any], Figure | None],
                 start: int = 0) -> Any:
    """A live dropdown/slider that re-runs `callback` (e.g. a short training run) in the kernel."""
    import ipywidgets as w
    from IPython.display import display

    slider = w.SelectionSlider(options=list(options), value=options[start], description=label,
                               continuous_update=False, style={"description_width": "initial"})
    out = w.Output()

    def update(change: dict | None = None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = callback(slider.value)
            if fig is not None:
                display(fig)
                plt.close(fig)

    slider.observe(update, names="value")
    update()
    return w.VBox([slider, out])
