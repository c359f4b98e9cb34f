"""Test-session defaults, set before any notebook kernel starts so nbval's kernels inherit them."""

import os
import tempfile

os.environ.setdefault("BNLIB_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
if not os.environ.get("BNLIB_CACHE"):
    os.environ["BNLIB_CACHE"] = tempfile.mkdtemp(prefix="bnlib-test-cache-")
