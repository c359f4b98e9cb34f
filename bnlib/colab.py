"""What only a Colab runtime needs: the run cache on Google Drive, so a reconnected runtime keeps its runs."""

from __future__ import annotations

import os
from pathlib import Path


def use_drive(folder: str = "bnlib-cache") -> Path:
    """On Colab: mount Google Drive and keep the run cache in MyDrive/`folder` ($BNLIB_CACHE), so that a
    reconnected runtime finds the runs and checkpoints that were already computed."""
    try:
        from google.colab import drive  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError("use_drive() needs Google Colab (google.colab cannot be imported here); elsewhere the "
                           "run cache is $BNLIB_CACHE, else ~/.cache/bnlib") from None
    drive.mount("/content/drive")
    path = Path("/content/drive/MyDrive") / folder
    os.environ["BNLIB_CACHE"] = str(path)
    print(f"Run cache: {path} (on Google Drive)")
    return path
