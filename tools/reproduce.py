"""The whole book at one scale in one command: every chapter through papermill into executed copies.

``python -m tools.reproduce --profile paper`` (or ``make paper``) runs the chapters in _toc.yml order
with ``profile=paper`` into ``_build/executed/paper/``. Every training run lands in the bnlib run cache
($BNLIB_CACHE, checkpointed while it trains), so after an interruption the same command resumes: chapters
already executed are skipped (``--force`` re-runs them) and a half-done chapter picks its runs up from the
cache. It prints each chapter's time and keeps them in ``timings.json``. Afterwards
``BNLIB_PROFILE=paper jupyter-book build .`` builds the book from the same cached runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bnlib.profiles import PROFILES
from tools.stamp_colab import chapter_notebooks


def executed_dir(root: Path, profile: str) -> Path:
    """Where the executed copies of one profile go (git ignores _build/)."""
    return root / "_build" / "executed" / profile


def run_chapter(notebook: Path, out: Path, profile: str, dataset: str) -> float:
    """Execute one chapter with papermill; the copy appears under `out` only once it ran to the end."""
    import papermill

    partial = out.with_name(out.stem + ".partial.ipynb")
    start = time.perf_counter()
    papermill.execute_notebook(str(notebook), str(partial), parameters={"profile": profile, "dataset": dataset},
                               cwd=str(notebook.parent), kernel_name="python3", progress_bar=True)
    partial.replace(out)
    return time.perf_counter() - start


def reproduce(root: Path, profile: str, dataset: str = "auto", force: bool = False,
              only: list[str] | None = None) -> dict[str, dict]:
    """Run every chapter (or those whose file name starts with one of `only`); returns per-chapter status."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    chapters = chapter_notebooks(root)
    if only:
        chapters = [c for c in chapters if any(c.stem.startswith(o) for o in only)]
        if not chapters:
            raise ValueError(f"--only {only} matches no chapter; chapters: {[c.stem for c in chapter_notebooks(root)]}")
    out_dir = executed_dir(root, profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings_path = out_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    # Kernels inherit the environment: the same profile for anything that reads it, static controls only.
    os.environ["BNLIB_PROFILE"] = profile
    os.environ["BNLIB_STATIC_ONLY"] = "1"
    status: dict[str, dict] = {}
    for notebook in chapters:
        out = out_dir / notebook.name
        if out.exists() and not force:
            status[notebook.stem] = {"status": "skipped (already executed)", "seconds": timings.get(notebook.stem)}
            print(f"{notebook.stem}: already executed ({out}); --force re-runs it", flush=True)
            continue
        print(f"{notebook.stem}: running at profile {profile} ...", flush=True)
        try:
            seconds = run_chapter(notebook, out, profile, dataset)
        except Exception as err:  # report, go on with the others, fail at the end
            status[notebook.stem] = {"status": f"failed: {type(err).__name__}", "seconds": None}
            print(f"{notebook.stem}: FAILED ({err.__class__.__name__}); its partial copy is next to {out}",
                  flush=True)
            continue
        timings[notebook.stem] = round(seconds, 1)
        timings_path.write_text(json.dumps(timings, indent=1))
        status[notebook.stem] = {"status": "executed", "seconds": round(seconds, 1)}
        print(f"{notebook.stem}: done in {seconds:.1f} s", flush=True)
    return status


def report(status: dict[str, dict]) -> str:
    """Per-chapter times as a small text table."""
    lines = [f"{'chapter':32} {'seconds':>9}  status"]
    for stem, s in status.items():
        secs = "" if s["seconds"] is None else f"{s['seconds']:.1f}"
        lines.append(f"{stem:32} {secs:>9}  {s['status']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper", choices=sorted(PROFILES))
    parser.add_argument("--dataset", default="auto", help="auto | cifar10 | fashion-mnist | synthetic")
    parser.add_argument("--force", action="store_true", help="re-run chapters that were already executed")
    parser.add_argument("--only", nargs="*", help="chapter file-name prefixes, e.g. 02 06")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the book's root (default: here)")
    args = parser.parse_args(argv)
    status = reproduce(args.root, args.profile, args.dataset, args.force, args.only)
    print(report(status))
    print(f"executed copies: {executed_dir(args.root, args.profile)}; build the book from the cached runs with\n"
          f"  BNLIB_PROFILE={args.profile} make book")
    return 1 if any(s["status"].startswith("failed") for s in status.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
