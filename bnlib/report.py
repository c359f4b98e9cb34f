"""Reporting: how a page's figures were made (profile, dataset, device) and the graded claims, rendered."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from bnlib import claims, execution, stability, stats
from bnlib import data as bdata
from bnlib.profiles import Profile


def setup_summary(profile: Profile, dataset: str, seeds: Sequence[int], made_on: Sequence[str] = ()) -> str:
    """One Markdown paragraph naming the profile, the seeds, the dataset actually used, and the device: `made_on`,
    the devices the page's cached runs record (`bnlib.book.made_on`), else this session's."""
    name = bdata.resolve_name(dataset)
    source = bdata._fetch_cached(name, True)[1]
    here = execution.device_name(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    device = f"{', '.join(made_on)} (where its runs trained)" if made_on else f"{here} (this session)"
    width = f"{profile.vgg_width:g}x VGG-16 widths" if profile.vgg_width != 1 else "full VGG-16 widths"
    seeds = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    return (f"**How this page was computed.** Profile `{profile.name}` ({width}, {profile.vgg_steps} SGD steps of "
            f"batch {profile.batch_size}; DLN {profile.dln_steps} full-batch steps on {profile.dln_points} points; "
            f"every run at {seeds}) "
            f"on **{source}**, device: {device}, torch {torch.__version__}. The paper used CIFAR-10 at profile "
            f"`paper`.")


def show_setup(profile: Profile, dataset: str, seeds: Sequence[int], made_on: Sequence[str] = ()) -> Any:
    from IPython.display import Markdown

    return Markdown(setup_summary(profile, dataset, seeds, made_on))


# ---- claims: the one place they are rendered (HTML for the pages, Markdown and text elsewhere) ----

_COLOURS = {"reproduced": "#d8f0d8", "partly": "#fff2c6", "not reproduced": "#f8d4d4", "inconclusive": "#e6e6e6"}
_VERDICT_TEXT = "#1a1a1a"  # the verdict cells keep their pastel in the theme's dark mode: their text stays dark
# The book's theme draws HTML outputs on a light panel in dark mode too, but colours inline code and links for a
# dark page (pink, light blue: about 1:1 and 2:1 on that panel). Ours take the panel's own text colour instead,
# links underlined, so they read in light and dark mode alike (tests/test_browser.py measures it).
_OUTPUT_STYLE = ("<style>.bnlib-out code{color:inherit;background:rgba(127,127,127,.15)}"
                 ".bnlib-out a{color:inherit;text-decoration:underline}</style>")


def styled(body: str) -> str:
    """`body` (HTML) in the container whose inline code and links keep the output's text colour."""
    return f'{_OUTPUT_STYLE}<div class="bnlib-out">{body}</div>'


def number(value: float | None) -> str:
    """A claim's number in 3 significant digits; '—' where there is none."""
    if value is None:
        return "—"
    return "nan" if value != value else f"{value:.3g}"


def ours_text(result: Any) -> str:
    """Our values, one per seed: '2.1' for one seed, '2.1, 1.8 (seeds 0, 1)' for several."""
    values = ", ".join(number(v) for v in result.ours)
    return values if len(result.seeds) == 1 else f"{values} (seeds {', '.join(map(str, result.seeds))})"


def interval_text(result: Any) -> str:
    """The 95% interval of the seeds' mean: '[1.9, 2.4]', or '' where the rule had none."""
    if result.interval is None or len(result.ours) < 2:
        return ""
    return f"[{number(result.interval[0])}, {number(result.interval[1])}]"


def verdict_text(result: Any) -> str:
    """The verdict and how many seeds decided it (or failed to): 'reproduced, 3 seeds'."""
    n = len(result.seeds)
    if not result.rule.get("varies_by_seed", True):
        return f"{result.verdict}, one computation"
    return f"{result.verdict}, {n} seed{'s' if n != 1 else ''}"


def paper_text(result: Any) -> str:
    """The paper's value, or what ours was graded against where the paper plotted nothing."""
    return number(result.paper) if result.paper is not None else f"— (graded against {result.reference})"


def claims_html(results: Sequence[Any], link_prefix: str | None = None) -> str:
    """An HTML table of graded claims. With `link_prefix` (the scoreboard) a last column links each claim to
    `prefix + chapter + .html`."""
    last = "<th>ch.</th>" if link_prefix is not None else ""
    head = ("<tr><th>claim</th><th>figure</th><th>ours</th><th>paper's data</th><th>verdict</th>"
            f"<th>paper's figure bears out its text?</th>{last}</tr>")
    rows = []
    for r in results:
        chapter = ""
        if link_prefix is not None:
            num = r.chapter.split("_", 1)[0].lstrip("0") or r.chapter
            chapter = (f'<td><a href="{html.escape(link_prefix)}{html.escape(r.chapter)}.html" '
                       f'title="{html.escape(r.chapter)}">{html.escape(num)}</a></td>')
        bears = html.escape(r.paper_vs_text or "—")
        if r.paper_vs_text.startswith("no"):
            bears = f"<b>{bears}</b>"
        interval = interval_text(r)
        interval = f"<br><small>mean: {html.escape(interval)}</small>" if interval else ""
        why = f"<br><small>{html.escape(r.why)}</small>" if r.why else ""
        rows.append(
            f"<tr><td>{html.escape(r.claim)}<br><small><code>{html.escape(r.id)}</code>: "
            f"{html.escape(r.statistic)}</small></td><td>{html.escape(r.figure)}</td>"
            f"<td>{html.escape(ours_text(r))}{interval}</td><td>{html.escape(paper_text(r))}</td>"
            f'<td style="background:{_COLOURS[r.verdict]};color:{_VERDICT_TEXT}"><b>{html.escape(r.verdict)}</b>'
            f"<br><small>{html.escape(verdict_text(r).split(', ', 1)[1])}</small>{why}</td>"
            f"<td>{bears}</td>{chapter}</tr>")
    return styled(f'<div style="overflow-x:auto"><table class="bnlib-claims" style="font-size:0.85em;width:100%">'
                  f'{head}{"".join(rows)}</table></div>')


def claims_text(results: Sequence[Any]) -> str:
    """The claims as a plain-text table (the command line)."""
    cols = [("id", lambda r: r.id), ("figure", lambda r: r.figure), ("ours", ours_text),
            ("mean", interval_text), ("paper", lambda r: number(r.paper)), ("verdict", verdict_text),
            ("paper bears out text", lambda r: r.paper_vs_text or "-")]
    table = [[name for name, _ in cols]] + [[f(r) for _, f in cols] for r in results]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table)


def show_claims(results: Sequence[Any]) -> Any:
    """Display graded claims as a table in a notebook."""
    from IPython.display import HTML

    return HTML(claims_html(results))


def _markdown_inline(text: str) -> str:
    """The bold and code spans of a one-paragraph Markdown string, as HTML."""
    import re

    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def stability_text(check: dict[str, Any] | None, rec: dict[str, Any] | None) -> str:
    """The scoreboard's second sentence: how many verdicts are stable (bnlib.stability.check), on whose record."""
    if not rec or check is None:
        return ("No stability record exists for this profile and dataset: no verdict here has been checked on other "
                "seeds or under another rounding.")
    counts = ", ".join(f"{n} {v}" for v, n in check["stable"].items())
    moved = (f" {len(check['moved'])} moved (on other seeds, under another rounding, or on this build against the "
             f"record): {', '.join(check['moved'])}." if check["moved"] else "")
    more = (f" {len(check['more seeds'])} reach another verdict on more seeds here than on three, not yet checked "
            f"under a perturbation: {', '.join(check['more seeds'])}." if check["more seeds"] else "")
    unmeasured = (f" {len(check['unmeasured'])} were not re-measured (their runs cost too long to train three "
                  f"times)." if check["unmeasured"] else "")
    return (f"<b>Stable verdicts</b> (the same on seeds {', '.join(map(str, _other_seeds(rec)))}, under another "
            f"thread count, and in this build; measured on {html.escape(rec['machine'])}, {rec['date']}, "
            f"commit {html.escape(rec['commit'])}): {counts}.{moved}{more}{unmeasured}")


def _other_seeds(rec: dict[str, Any]) -> list[int]:
    rows = rec["conditions"].get("other seeds", {}).get("claims", [])
    return rows[0]["seeds"] if rows else []


def scoreboard_html(results: Sequence[Any], profile: Profile, dataset: str, seeds: Sequence[int],
                    link_prefix: str = "chapters/", made_on: Sequence[str] = (),
                    stability: tuple[dict[str, Any] | None, dict[str, Any] | None] = (None, None)) -> tuple[str, str]:
    """The landing page's scoreboard, as (the summary above the picture, the table and setup below it): the verdict
    tally, the stable verdicts (`stability`: bnlib.stability.check's result and the record), every claim's row."""
    counts = ", ".join(f"{n} {v}" for v, n in claims.tally(results).items())
    against = sum(r.paper_vs_text.startswith("no") for r in results)
    head = "\n".join([
        f"<p><b>{len(results)} claims checked:</b> {html.escape(counts)}. "
        f"On {against} of them the paper's own plotted data does not bear out its text.</p>",
        f"<p>{stability_text(*stability)}</p>"])
    return styled(head), "\n".join([claims_html(results, link_prefix), styled(
        f"<p>{_markdown_inline(setup_summary(profile, dataset, seeds, made_on))}</p>")])


def claims_markdown(results: Sequence[Any]) -> Any:
    """The verdicts as a Markdown list under a chapter's table: ours against the paper's data, in words."""
    from IPython.display import Markdown

    lines = []
    for r in results:
        theirs = f"the paper's data gives **{number(r.paper)}**" if r.paper is not None else \
            f"the paper plotted nothing for it (graded against {r.reference})"
        bears = f" The paper's own figure does not bear out its text ({r.paper_vs_text[4:]})." \
            if r.paper_vs_text.startswith("no") else ""
        interval = f", seed mean in {interval_text(r)} (95%)" if interval_text(r) else ""
        why = f" ({r.why})" if r.why else ""
        lines.append(f"- **{r.claim}** ({r.figure}). {r.statistic}: ours **{ours_text(r)}**{interval}, {theirs}: "
                     f"*{r.verdict}*{why}.{bears}")
    return Markdown("\n".join(lines))


# ---- the chapters' tables: one helper, so every page's numbers look alike ----

def markdown_table(rows: Sequence[dict[str, Any]], fmt: str = "{:.3g}") -> str:
    """A Markdown table from rows of {column: value}; the first row's keys are the columns."""
    if not rows:
        raise ValueError("a table needs at least one row")
    cols = list(rows[0])
    # headers go through stats.cell() too: a literal | (as in "mean |Δμ|") would end the column
    lines = ["| " + " | ".join(stats.cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(stats.cell(row.get(c), fmt) for c in cols) + " |" for row in rows]
    return "\n".join(lines)


def table(rows: Sequence[dict[str, Any]], fmt: str = "{:.3g}", caption: str = "") -> Any:
    """Display `markdown_table(rows, fmt)` in a notebook (under an optional one-line caption)."""
    from IPython.display import Markdown

    return Markdown((caption + "\n\n" if caption else "") + markdown_table(rows, fmt))


# ---- several seeds in one table: the mean and the seeds' range, so no table quietly shows one seed ----

def _text_across(values: Mapping[int, Any]) -> str:
    """Text values (e.g. a run's status) of several seeds: one value when they agree, else each seed's."""
    distinct = set(map(str, values.values()))
    if len(distinct) == 1:
        return distinct.pop()
    return "; ".join(f"seed {seed}: {value}" for seed, value in values.items())


def seed_rows(runs: Mapping[int, Mapping[Any, Any]], measure: Callable[[Any], dict[str, Any]],
              names: Mapping[Any, str], fmt: str = "{:.3g}", first: str = "network") -> list[dict[str, Any]]:
    """One row per run of `runs` ({seed: {key: run}}): `names[key]`, then each column of `measure(run)` over the
    seeds, numbers as `across_seeds`, text as `_text_across`."""
    if not runs:
        raise ValueError("runs must map at least one seed to its runs")
    rows = []
    for key in next(iter(runs.values())):
        measured = {seed: measure(r[key]) for seed, r in runs.items()}
        row: dict[str, Any] = {first: names[key]}
        for col in next(iter(measured.values())):
            values = {seed: m[col] for seed, m in measured.items()}
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values.values())
            row[col] = stats.across_seeds(list(values.values()), fmt) if numeric else _text_across(values)
        rows.append(row)
    return rows


def seeds_caption(seeds: Sequence[int]) -> str:
    """The line above a table of `seed_rows`: which seeds, and how a cell reads."""
    if len(seeds) == 1:
        return f"Seed {seeds[0]}."
    return f"Seeds {', '.join(map(str, seeds))}: each number is their mean [lowest, highest]."


def seeds_table(runs: Mapping[int, Mapping[Any, Any]], measure: Callable[[Any], dict[str, Any]],
                names: Mapping[Any, str], fmt: str = "{:.3g}") -> Any:
    """Display `seed_rows` as a table, under the line that says how to read it."""
    return table(seed_rows(runs, measure, names, fmt), caption=seeds_caption(list(runs)))


def stability_report(rec: dict[str, Any] | None, profile: str, dataset: str) -> Any:
    """The appendix's stability table (bnlib.stability) with what was measured, where, and what it cost."""
    from IPython.display import Markdown

    if rec is None:
        return Markdown(f"No stability record exists for profile `{profile}` on {dataset}: these verdicts have not "
                        f"been checked on other seeds or under another rounding (`python -m tools.stability "
                        f"--profile {profile}` measures it).")
    how = "\n".join(f"- **{name}**: {c['how']} ({rec['seconds'][name]:,} s)" for name, c in rec["conditions"].items())
    same, total = rec.get("rounding_runs_bitwise_equal", (None, None))
    moved = "" if same is None else (f"\n\nOf the {total} runs trained again under the other rounding, {same} repeat "
                                     f"the book's step losses bit for bit (0 means every one took another path).")
    rows = stability.report_rows(rec)
    return Markdown(f"Measured on **{rec['machine']}** ({rec['cores']} cores), {rec['date']}, "
                    f"commit `{rec['commit']}`, profile `{rec['profile']}` on {rec['dataset']}, "
                    f"claim groups {', '.join(rec['groups'])}:\n\n"
                    f"{how}{moved}\n\n{markdown_table(rows)}")
