"""The paper's claims as functions of cached runs: measured value, the paper's, and a verdict.

Each chapter module (e.g. `bnlib.claims.distributions`) exposes `claims(profile, dataset)`
returning `ClaimResult`s; the chapter shows its own, the landing page's scoreboard shows all.
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
    """An HTML table of claims; with `link_prefix`, the chapter column links to `prefix + chapter + .html`."""
    head = ("<tr><th>id</th><th>claim</th><th>figure</th><th>ours</th><th>paper</th>"
            "<th>verdict</th><th>chapter</th></tr>")
    rows = []
    for r in results:
        chapter = html.escape(r.chapter)
        if link_prefix is not None:
            chapter = f'<a href="{html.escape(link_prefix)}{chapter}.html">{chapter}</a>'
        rows.append(
            f"<tr><td><code>{html.escape(r.id)}</code></td><td>{html.escape(r.claim)}</td>"
            f"<td>{html.escape(r.figure)}</td><td>{html.escape(r.measured)}</td><td>{html.escape(r.paper)}</td>"
            f'<td style="background:{_COLOURS[r.verdict]}"><b>{html.escape(r.verdict)}</b></td><td>{chapter}</td></tr>')
    return f'<table class="bnlib-claims">{head}{"".join(rows)}</table>'


def show(results: Sequence[ClaimResult], link_prefix: str | None = None) -> Any:
    """Display claims as a table in a notebook."""
    from IPython.display import HTML

    return HTML(table_html(results, link_prefix))
