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
    """True where a person is at a live front end (Colab, or a kernel a Jupyter server started).

    False under papermill, nbval and the book build (kernels started by nbclient have no
    JPY_SESSION_NAME): there a live widget would only leave widget state in the notebook, which
    makes myst-nb load the widget manager from a CDN. BNLIB_STATIC_ONLY=1 forces False,
    BNLIB_LIVE=1 forces True (e.g. for a front end that sets neither marker, such as VS Code).
    """
    import os
    import sys

    if os.environ.get("BNLIB_STATIC_ONLY"):
        return False
    if os.environ.get("BNLIB_LIVE"):
        return True
    if "google.colab" in sys.modules:
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return type(shell).__name__ == "ZMQInteractiveShell" and bool(os.environ.get("JPY_SESSION_NAME"))


def figure_png(fig: Figure, dpi: int = 90) -> str:
    """A figure as a base64 PNG string (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


# The handler is inline (no <script> element, no global name) so it survives every renderer that keeps
# HTML attributes: the built book, Jupyter, Colab. It must contain no double quote (it sits in one).
_ONINPUT = ("var box=this.closest('.bnlib-stepper'),v=this.value;"
            "box.querySelectorAll('img[data-index]').forEach(function(im){var on=im.dataset.index==v;"
            "im.style.display=on?'':'none';if(on){box.querySelector('.bnlib-stepper-value').textContent="
            "im.dataset.value;}});")


def static_stepper_html(label: str, values: Sequence[Any], render: Callable[[Any], Figure],
                        start: int = 0) -> str:
    """HTML of a slider over `values` that swaps between pre-rendered figures client-side."""
    if not values:
        raise ValueError("static_stepper_html: values must not be empty")
    if not 0 <= start < len(values):
        raise ValueError(f"static_stepper_html: start must be in 0..{len(values) - 1}, got {start}")
    uid = "bnlib-" + uuid.uuid4().hex[:8]
    esc_label = html.escape(label)
    images = []
    for i, value in enumerate(values):
        png = figure_png(render(value))
        style = "max-width:100%" if i == start else "max-width:100%;display:none"
        shown = html.escape(str(value))
        images.append(f'<img data-index="{i}" data-value="{shown}" alt="{esc_label} = {shown}" '
                      f'style="{style}" src="data:image/png;base64,{png}">')
    assert '"' not in _ONINPUT
    return (f'<div class="bnlib-stepper" id="{uid}">\n'
            f'<label>{esc_label}: <input type="range" min="0" max="{len(values) - 1}" step="1" '
            f'value="{start}" aria-label="{esc_label}" oninput="{_ONINPUT}"> '
            f'<b class="bnlib-stepper-value">{html.escape(str(values[start]))}</b></label>\n'
            f'<div>{"".join(images)}</div></div>')


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


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm bar (a `bnlib.train.ProgressBar`) that is a widget only where a person watches: under papermill,
    nbval and the book build a widget bar would leave dead widget state in the pages, so there it is text."""
    import tqdm.auto
    import tqdm.std

    return (tqdm.auto.tqdm if in_kernel_with_widgets() else tqdm.std.tqdm)(**kwargs)
