"""The paper's claims as functions of cached runs: measured value, the paper's, and a verdict.

Each chapter module (e.g. `bnlib.claims.distributions`) exposes `claims(profile, dataset)`
returning `ClaimResult` objects; the chapter shows its own, the landing page's scoreboard shows all.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive")


@dataclass
class ClaimResult:
    id: str  # short stable id, e.g. "fig2-noisy-trains"
    claim: str  # the paper's claim in one line
    figure: str  # e.g. "Fig. 2"
    measured: str  # our number(s), formatted
    paper: str  # the paper's number or statement
    verdict: str  # one of VERDICTS, computed from the measurement
    chapter: str  # chapter file stem, for the link
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict_from(holds: bool, margin_ok: bool = True) -> str:
    """'reproduced' if the direction holds with margin, 'partly' if only the direction holds."""
    if not holds:
        return "not reproduced"
    return "reproduced" if margin_ok else "partly"


_COLOURS = {"reproduced": "#d8f0d8", "partly": "#fff2c6", "not reproduced": "#f8d4d4", "inconclusive": "#e6e6e6"}


def table_html(results: Sequence[ClaimResult], link_prefix: str | None = None) -> str:
    """An HTML table of claims. With `link_prefix` (the scoreboard) a last column links each claim to
    `prefix + chapter + .html`; without it (a chapter's own table) there is no chapter column."""
    last = "<th>ch.</th>" if link_prefix is not None else ""
    head = f"<tr><th>id</th><th>claim</th><th>figure</th><th>ours</th><th>paper</th><th>verdict</th>{last}</tr>"
    rows = []
    for r in results:
        chapter = ""
        if link_prefix is not None:
            number = r.chapter.split("_", 1)[0].lstrip("0") or r.chapter
            chapter = (f'<td><a href="{html.escape(link_prefix)}{html.escape(r.chapter)}.html" '
                       f'title="{html.escape(r.chapter)}">{html.escape(number)}</a></td>')
        rows.append(
            f'<tr><td><code style="font-size:0.9em">{html.escape(r.id)}</code></td><td>{html.escape(r.claim)}</td>'
            f"<td>{html.escape(r.figure)}</td><td>{html.escape(r.measured)}</td><td>{html.escape(r.paper)}</td>"
            f'<td style="background:{_COLOURS[r.verdict]}"><b>{html.escape(r.verdict)}</b></td>{chapter}</tr>')
    # Six or seven columns of prose: a smaller font, and a horizontal scroll rather than a clipped column.
    return (f'<div style="overflow-x:auto"><table class="bnlib-claims" style="font-size:0.85em;width:100%">'
            f'{head}{"".join(rows)}</table></div>')


def show(results: Sequence[ClaimResult], link_prefix: str | None = None) -> Any:
    """Display claims as a table in a notebook."""
    from IPython.display import HTML

    return HTML(table_html(results, link_prefix))


# Every chapter's claims module, in book order. A module not written yet is skipped; an error
# inside a module that exists is raised, so a broken claim can never drop silently off the scoreboard.
MODULES = ("distributions", "ics", "landscape", "lp", "theory")


def collect(profile: Any = None, dataset: str = "auto") -> tuple[list[ClaimResult], list[str]]:
    """All chapters' claims, and the names of the claims modules that do not exist (yet)."""
    import importlib

    results: list[ClaimResult] = []
    missing: list[str] = []
    for name in MODULES:
        full = f"{__name__}.{name}"
        try:
            module = importlib.import_module(full)
        except ModuleNotFoundError as err:
            if err.name != full:  # the module exists but something it imports does not
                raise
            missing.append(name)
            continue
        results.extend(module.claims(profile, dataset))
    return results, missing


def tally(results: Sequence[ClaimResult]) -> dict[str, int]:
    """How many claims got each verdict, in VERDICTS order."""
    return {v: sum(r.verdict == v for r in results) for v in VERDICTS}


def _markdown_inline(text: str) -> str:
    """The bold and code spans of a one-paragraph Markdown string, as HTML."""
    import re

    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def scoreboard_html(profile: Any = None, dataset: str = "auto", link_prefix: str = "chapters/") -> str:
    """The landing page's scoreboard: every claim's table row, the verdict tally, and the setup."""
    from bnlib.report import setup_summary

    results, missing = collect(profile, dataset)
    counts = ", ".join(f"{n} {v}" for v, n in tally(results).items())
    parts = [f"<p><b>{len(results)} claims checked:</b> {html.escape(counts)}.</p>",
             table_html(results, link_prefix)]
    if missing:
        parts.append(f"<p><i>Not yet on the board (chapter in progress): "
                     f"{html.escape(', '.join(missing))}.</i></p>")
    parts.append(f"<p>{_markdown_inline(setup_summary(profile, dataset))}</p>")
    return "\n".join(parts)


def scoreboard(profile: Any = None, dataset: str = "auto", link_prefix: str = "chapters/") -> Any:
    """Display the scoreboard in a notebook (the landing page calls this at build time)."""
    from IPython.display import HTML

    return HTML(scoreboard_html(profile, dataset, link_prefix))
