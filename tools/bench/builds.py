"""Sections `chapter` (peak memory of one chapter under papermill) and `book-build` (wall and CPU time
of a cold `jupyter-book build`; opt-in: at the cpu profile it takes about half an hour).

Both run the command under a small wrapper process whose only children are that command and what it
starts: the wrapper's RUSAGE_CHILDREN then gives their CPU time (user + sys, summed over every
finished descendant) and the largest of their peak memories, without counting the bench itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.bench.util import REPO, heading, ratio, scaled, table

DEFAULT_CHAPTER = "chapters/01_ics_distributions.ipynb"
RUSAGE_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.PIPE, text=True)\n"
    "wall = time.perf_counter() - t; r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.write(rc.stderr[-3000:] if rc.returncode else '')\n"
    "print(json.dumps({'rc': rc.returncode, 'seconds': wall, 'cpu_seconds': r.ru_utime + r.ru_stime, "
    "'rss_mb': r.ru_maxrss / 1024}))\n"
)


def measure_command(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> dict[str, Any]:
    """Run `cmd` under the rusage wrapper: seconds (wall), cpu_seconds (user + sys of the command and
    its descendants), rss_mb (the largest process's peak), or error (its last stderr line)."""
    proc = subprocess.run([sys.executable, "-c", RUSAGE_WRAPPER, *cmd], capture_output=True, text=True,
                          env=env, cwd=cwd)
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if proc.returncode == 0 and lines else {"rc": proc.returncode}
    if result["rc"]:
        tail = proc.stderr.strip().splitlines()
        result["error"] = tail[-1] if tail else f"exit {result['rc']}"
    return result


def chapter_command(notebook: Path, out: Path, profile: str, dataset: str) -> list[str]:
    return [sys.executable, "-m", "papermill", str(notebook), str(out), "-p", "profile", profile,
            "-p", "dataset", dataset, "--no-progress-bar", "--cwd", str(notebook.parent)]


def section_chapter(args: argparse.Namespace, profiles: Sequence[str]) -> None:
    """Each notebook under papermill with a fresh, empty run cache, so its runs really train; the largest
    process is the kernel."""
    heading("4. Peak memory of a chapter run (papermill, fresh run cache, largest process = the kernel)")
    rows = []
    for notebook in args.chapter:
        path = (REPO / notebook).resolve()
        for profile in profiles:
            with tempfile.TemporaryDirectory(prefix="bnlib-bench-") as tmp:
                env = {**os.environ, "BNLIB_CACHE": str(Path(tmp) / "cache")}
                r = measure_command(chapter_command(path, Path(tmp) / "out.ipynb", profile, args.dataset), env)
            rows.append([path.name, profile, r.get("seconds"), r.get("rss_mb"), r.get("error", "")])
    print(table(["notebook", "profile", "seconds", "peak RSS MiB", "error"], rows))


def book_build_command(out: Path) -> list[str]:
    """The Makefile's `make book` command, into `out` instead of the repository's _build."""
    return [str(Path(sys.executable).parent / "jupyter-book"), "build", str(REPO), "-W", "-n", "--keep-going",
            "--path-output", str(out)]


def section_book_build(profile: str) -> None:
    """A cold build: fresh run cache (every run trains) and fresh build folder (every page executes);
    the dataset cache (BNLIB_DATA) is kept, as a second clone on the same machine would."""
    heading(f"8. Cold book build: jupyter-book build at profile {profile}, fresh run cache and build folder")
    with tempfile.TemporaryDirectory(prefix="bnlib-book-") as tmp:
        env = {**os.environ, "BNLIB_PROFILE": profile, "BNLIB_CACHE": str(Path(tmp) / "cache")}
        r = measure_command(book_build_command(Path(tmp) / "out"), env)
    cores = os.cpu_count() or 1
    print(table(["build", "wall min", "CPU min (user+sys)", "CPU / wall", "peak RSS MiB", "error"],
                [[f"profile {profile}", scaled(r.get("seconds"), 1 / 60), scaled(r.get("cpu_seconds"), 1 / 60),
                  cpu_per_wall(r), r.get("rss_mb"), r.get("error", "")]]))
    print(f"CPU / wall = cores kept busy on average ({cores} here; the load average also counts other work). "
          f"Dataset cache kept ({os.environ.get('BNLIB_DATA', '~/.cache/bnlib-data')}).")


def cpu_per_wall(r: dict[str, Any]) -> float | None:
    return ratio(r.get("cpu_seconds"), r.get("seconds"))
