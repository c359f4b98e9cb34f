"""`python -m bnlib.claims --profile P [--dataset D] [--seeds 0 1] [--json]`: the scoreboard, from the canonical runs.

Runs come from the run cache (trained on first use). `--json` prints a list of objects with id,
figure, claim, statistic, paper (null where the paper plotted nothing), ours (one value per seed),
seeds, verdict and paper_vs_text; NaN is written as null.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from typing import Any

from bnlib import book, claims, report
from bnlib.profiles import PROFILES

FIELDS = ("id", "figure", "claim", "statistic", "paper", "ours", "seeds", "verdict", "paper_vs_text", "reference",
          "chapter")


def _clean(value: Any) -> Any:
    """NaN and infinities as null, so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bnlib.claims", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="run scale (default: $BNLIB_PROFILE, else paper with a GPU, cpu without)")
    parser.add_argument("--dataset", default="auto", help="auto | cifar10 | fashion-mnist | synthetic")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds of the canonical runs (default: the profile's; cpu: 0 1 2)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a text table")
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # training progress must not mix with the table or the JSON
        results = book.collect(book.common(args.profile, args.dataset, args.seeds))
    if args.json:
        rows = [{k: _clean(getattr(r, k)) for k in FIELDS} for r in results]
        json.dump(rows, sys.stdout, indent=1)
        print()
    else:
        print(report.claims_text(results))
        print(", ".join(f"{n} {v}" for v, n in claims.tally(results).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
