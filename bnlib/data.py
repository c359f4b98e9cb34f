"""Image data as whole tensors on the device: batches are index slices, never per-image PIL work.

`cifar10` is the paper's data (torchvision's download with its MD5 check, converted once to a
cached uint8 file); `fashion-mnist` gives real images offline (Debian's dataset-fashion-mnist);
`synthetic` is a small deterministic, learnable set for tests; `auto` takes the first available.
"""

from __future__ import annotations

import gzip
import os
import pickle
import socket
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bnlib import checks, store

DATASETS = ("auto", "cifar10", "fashion-mnist", "synthetic")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
DOWNLOAD_TIMEOUT_S = 30
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass
class ImageData:
    """Normalised float images (N, C, 32, 32) and int64 labels, already on `device`."""

    name: str
    source: str  # where the pixels came from, for the book's "which data made this figure"
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int = 10

    @property
    def channels(self) -> int:
        return self.x_train.shape[1]


class DatasetUnavailable(RuntimeError):
    """The named dataset is not on this machine and could not be fetched."""


def check_arrays(arrays: object, where: str, channels: int) -> dict[str, torch.Tensor]:
    """`arrays` if it is a dataset's uint8 images (N, channels, 32, 32) and int64 labels 0..9 for both
    splits; store.BadFile (naming `where`) otherwise, so a damaged file is never trained on."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    if not isinstance(arrays, dict) or any(not isinstance(arrays.get(k), torch.Tensor) for k in keys):
        raise store.BadFile(f"{where} does not hold the tensors {list(keys)}")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        ok = x.dtype == torch.uint8 and x.dim() == 4 and tuple(x.shape[1:]) == (channels, 32, 32) and len(x) > 0
        ok = ok and y.dtype == torch.int64 and y.shape == (len(x),) and int(y.min()) >= 0 and int(y.max()) <= 9
        if not ok:
            raise store.BadFile(f"{where}: the {split} split is not uint8 images (N, {channels}, 32, 32) "
                                f"with int64 labels 0..9 (got {tuple(x.shape)} {x.dtype}, {tuple(y.shape)} {y.dtype})")
    return arrays


def data_root() -> Path:
    """Where raw downloads and converted tensor files live ($BNLIB_DATA, default ~/.cache/bnlib-data)."""
    return Path(os.environ.get("BNLIB_DATA", Path.home() / ".cache" / "bnlib-data"))


# --- CIFAR-10 -------------------------------------------------------------------------------

def _read_cifar_archive(archive: Path) -> dict[str, np.ndarray]:
    """Read the python-pickle batches straight out of the official tar.gz."""
    parts: dict[str, list] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            base = os.path.basename(member.name)
            if not (base.startswith("data_batch_") or base == "test_batch"):
                continue
            batch = pickle.load(tar.extractfile(member), encoding="bytes")
            split = "test" if base == "test_batch" else "train"
            parts[f"x_{split}"].append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            parts[f"y_{split}"].append(np.asarray(batch[b"labels"], dtype=np.int64))
    if not parts["x_train"] or not parts["x_test"]:
        raise DatasetUnavailable(f"{archive} holds no CIFAR-10 data_batch_*/test_batch files")
    return {k: np.concatenate(v) for k, v in parts.items()}


def cifar10_uint8(root: Path | None = None, download: bool = True, url: str = CIFAR10_URL,
                  md5: str = CIFAR10_MD5) -> dict[str, torch.Tensor]:
    """CIFAR-10 as uint8 tensors, converted once from the checksum-verified archive and cached."""
    root = Path(root) if root else data_root()
    converted = root / "cifar10-uint8.pt"
    if converted.exists():
        try:
            return check_arrays(store.load(converted), str(converted), channels=3)
        except store.BadFile as err:  # rebuilt below from the archive (downloaded again if need be)
            store.move_aside(converted, f"converted CIFAR-10: {err}")
    archive = root / "cifar-10-python.tar.gz"
    from torchvision.datasets.utils import check_integrity, download_url

    if not check_integrity(str(archive), md5):
        if not download:
            raise DatasetUnavailable(
                f"CIFAR-10 is not in {root}; call with download=True on a machine with internet, "
                f"or put cifar-10-python.tar.gz there (set BNLIB_DATA to choose the folder)")
        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # an offline machine must fail fast, not hang
        try:
            download_url(url, str(root), filename=archive.name)  # MD5 checked below, with our message
        except Exception as err:  # network errors come in many types; all mean "not available"
            raise DatasetUnavailable(
                f"could not download CIFAR-10 from {url} ({err}); use dataset='fashion-mnist' "
                f"offline, or place cifar-10-python.tar.gz in {root}") from err
        finally:
            socket.setdefaulttimeout(previous_timeout)
        if not check_integrity(str(archive), md5):
            archive.unlink(missing_ok=True)
            raise DatasetUnavailable(f"downloaded CIFAR-10 archive failed its MD5 check (expected {md5}); "
                                     f"removed it, try again")
    try:
        arrays = {k: torch.from_numpy(v) for k, v in _read_cifar_archive(archive).items()}
    except (tarfile.TarError, OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError) as err:
        raise DatasetUnavailable(f"the CIFAR-10 archive {archive} passed its MD5 check but cannot be read "
                                 f"({type(err).__name__}: {err}); delete it and try again") from err
    store.save_atomic(check_arrays(arrays, str(archive), channels=3), converted)
    return arrays


# --- Fashion-MNIST --------------------------------------------------------------------------

def _read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (the MNIST family's format) as uint8; a damaged file is DatasetUnavailable, named."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
        ndim = raw[3]
        shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, EOFError, IndexError, ValueError) as err:
        raise DatasetUnavailable(f"the Fashion-MNIST file {path} is damaged ({type(err).__name__}: {err}); "
                                 f"reinstall it (apt-get install --reinstall dataset-fashion-mnist) or "
                                 f"delete it to download a fresh copy") from err


def _fashion_mnist_dir(download: bool) -> Path:
    candidates = [Path(os.environ["BNLIB_FASHION_MNIST"])] if "BNLIB_FASHION_MNIST" in os.environ else []
    candidates += [FASHION_MNIST_DIR, data_root() / "FashionMNIST" / "raw"]
    for folder in candidates:
        if all((folder / f).exists() for pair in FASHION_MNIST_FILES.values() for f in pair):
            return folder
    if download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(data_root()), train=True, download=True)
            FashionMNIST(str(data_root()), train=False, download=True)
            return data_root() / "FashionMNIST" / "raw"
        except Exception as err:
            raise DatasetUnavailable(
                f"Fashion-MNIST not found in {[str(c) for c in candidates]} and the download failed "
                f"({err}); install it offline with `apt-get install dataset-fashion-mnist`") from err
    raise DatasetUnavailable(
        f"Fashion-MNIST not found in {[str(c) for c in candidates]}; install it with "
        f"`apt-get install dataset-fashion-mnist` or allow download=True")


def fashion_mnist_uint8(download: bool = True) -> tuple[dict[str, torch.Tensor], str]:
    """Fashion-MNIST as uint8 (N, 1, 32, 32): the 28x28 images zero-padded by 2 to CIFAR's size."""
    folder = _fashion_mnist_dir(download)
    arrays = {}
    for split, (images, labels) in FASHION_MNIST_FILES.items():
        x = np.pad(_read_idx(folder / images), ((0, 0), (2, 2), (2, 2)))[:, None]
        arrays[f"x_{split}"] = torch.from_numpy(x.copy())
        arrays[f"y_{split}"] = torch.from_numpy(_read_idx(folder / labels).astype(np.int64))
    return arrays, str(folder)


# --- synthetic ------------------------------------------------------------------------------

def synthetic_uint8(n_train: int = 1024, n_test: int = 512, seed: int = 0) -> dict[str, torch.Tensor]:
    """Ten fixed random 'prototype' images plus noise: deterministic and learnable in a few steps."""
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(10, 1, 32, 32, generator=gen) * 255

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 10, (n,), generator=gen)
        x = prototypes[y] * 0.6 + torch.rand(n, 1, 32, 32, generator=gen) * 255 * 0.4
        return x.round().to(torch.uint8), y

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


# --- public entry point ---------------------------------------------------------------------

def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed (first-n) subset, so every run of a profile sees the same images."""
    if n is None or n >= len(x):
        return x, y
    return x[:n], y[:n]


def _fetch(name: str, download: bool) -> tuple[dict[str, torch.Tensor], str]:
    if name == "cifar10":
        return cifar10_uint8(download=download), f"CIFAR-10 ({data_root()})"
    if name == "fashion-mnist":
        arrays, folder = fashion_mnist_uint8(download=download)
        return arrays, f"Fashion-MNIST ({folder}), 28x28 padded to 32x32"
    return synthetic_uint8(), "synthetic prototypes + noise (bnlib.data.synthetic_uint8)"


def resolve_name(name: str = "auto", download: bool = True) -> str:
    """The dataset `name` stands for: `auto` is the first of cifar10, fashion-mnist, synthetic found
    (with a warning for each one skipped, saying why)."""
    checks.check_choice("dataset", name, DATASETS)
    if name != "auto":
        return name
    for candidate, fallback in (("cifar10", "fashion-mnist"), ("fashion-mnist", "synthetic")):
        try:
            _fetch_cached(candidate, download)
            return candidate
        except DatasetUnavailable as err:
            # once per process and reason (Python shows a repeated warning once); the book hides stderr
            warnings.warn(f"dataset 'auto': {candidate} is not available ({err}); trying {fallback}", stacklevel=2)
    return "synthetic"


_MEMORY: dict[tuple[str, bool], tuple[dict[str, torch.Tensor], str]] = {}
_UNAVAILABLE: dict[tuple[str, bool], str] = {}


def _fetch_cached(name: str, download: bool) -> tuple[dict[str, torch.Tensor], str]:
    """Reading and unpacking is the slow part, and a failed download is slow too: do each once per process."""
    key = (name, download if name != "synthetic" else True)
    if key in _UNAVAILABLE:
        # a fresh exception: re-raising a stored one would grow its traceback, pinning every
        # caller's frame (and its copy of the data) in memory
        raise DatasetUnavailable(_UNAVAILABLE[key])
    if key not in _MEMORY:
        try:
            _MEMORY[key] = _fetch(name, download)
        except DatasetUnavailable as err:
            _UNAVAILABLE[key] = str(err)
            raise
    return _MEMORY[key]


def load(name: str = "auto", device: str | torch.device = "cpu", n_train: int | None = None,
         n_test: int | None = None, download: bool = True) -> ImageData:
    """Load a dataset as normalised float tensors on `device` (per-channel mean/std of its train split)."""
    checks.check_optional_int("n_train", n_train)
    checks.check_optional_int("n_test", n_test)
    checks.check_bool("download", download)
    device = checks.device(device)
    resolved = resolve_name(name, download)
    arrays, source = _fetch_cached(resolved, download)
    for split, n in (("train", n_train), ("test", n_test)):
        if n is not None and n > len(arrays[f"x_{split}"]):
            raise checks.BadParameter(f"n_{split} must be <= the {len(arrays[f'x_{split}'])} {split} images of "
                                      f"{resolved}, or None for all of them; got {n}")
    x_train, y_train = _subset(arrays["x_train"], arrays["y_train"], n_train)
    x_test, y_test = _subset(arrays["x_test"], arrays["y_test"], n_test)
    x_float = x_train.float()
    mean = x_float.mean(dim=(0, 2, 3), keepdim=True).to(device)
    std = x_float.std(dim=(0, 2, 3), keepdim=True).to(device)
    del x_float  # keep one float copy of the split at a time

    def prep(x: torch.Tensor) -> torch.Tensor:
        return x.to(device).float().sub_(mean).div_(std)

    return ImageData(resolved, source, prep(x_train), y_train.to(device), prep(x_test), y_test.to(device))


def regression_data(n_points: int, dim: int = 10, seed: int = 0,
                    device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DLN task: x ~ N(0, I), target A x with A i.i.d. Gaussian. Returns (x, A x, A)."""
    checks.check_int("n_points", n_points, 1)
    checks.check_int("dim", dim, 1)
    checks.check_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=gen)
    x = torch.randn(n_points, dim, generator=gen)
    return x.to(device), (x @ a.T).to(device), a.to(device)
