import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from bnlib import data


def _make_cifar_archive(path: Path, per_batch: int = 6) -> dict[str, np.ndarray]:
    """A tiny archive in CIFAR-10's real format: cifar-10-batches-py/{data_batch_1..5,test_batch}."""
    rng = np.random.default_rng(0)
    written = {"x": [], "y": []}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
            if name == "batches.meta":
                payload = {b"label_names": [f"c{i}".encode() for i in range(10)]}
            else:
                x = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
                y = rng.integers(0, 10, size=per_batch).tolist()
                payload = {b"data": x, b"labels": y, b"batch_label": name.encode()}
                if name != "test_batch":
                    written["x"].append(x)
                    written["y"].append(y)
            raw = pickle.dumps(payload)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return {"x": np.concatenate(written["x"]), "y": np.concatenate(written["y"])}


@pytest.fixture
def served_archive(tmp_path):
    """Serve a small CIFAR-format archive over HTTP on loopback, like the real download."""
    site = tmp_path / "site"
    site.mkdir()
    expected = _make_cifar_archive(site / "cifar-10-python.tar.gz")
    md5 = hashlib.md5((site / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz", md5, expected
    server.shutdown()


def test_cifar10_download_verify_convert_and_cache(tmp_path, served_archive):
    url, md5, expected = served_archive
    root = tmp_path / "data"
    arrays = data.cifar10_uint8(root, url=url, md5=md5)
    assert arrays["x_train"].shape == (30, 3, 32, 32) and arrays["x_test"].shape == (6, 3, 32, 32)
    assert arrays["x_train"].dtype == torch.uint8
    assert np.array_equal(arrays["x_train"].reshape(30, -1).numpy(), expected["x"])
    assert np.array_equal(arrays["y_train"].numpy(), expected["y"])
    assert (root / "cifar10-uint8.pt").exists()
    # second call: from the converted cache, no download (a wrong URL would fail otherwise)
    again = data.cifar10_uint8(root, url="http://127.0.0.1:9/none", md5=md5)
    assert torch.equal(again["x_train"], arrays["x_train"])


def test_cifar10_checksum_mismatch_is_refused(tmp_path, served_archive):
    url, _, _ = served_archive
    with pytest.raises(Exception, match="(?i)md5|integrity|not valid"):
        data.cifar10_uint8(tmp_path / "d", url=url, md5="0" * 32)
    assert not (tmp_path / "d" / "cifar10-uint8.pt").exists()


def test_cifar10_unavailable_offline_says_how_to_get_it(tmp_path):
    with pytest.raises(data.DatasetUnavailable, match="fashion-mnist"):
        data.cifar10_uint8(tmp_path, url="http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(data.DatasetUnavailable, match="download=True"):
        data.cifar10_uint8(tmp_path, download=False)


def test_synthetic_is_deterministic_and_normalised():
    a = data.load("synthetic", n_train=256, n_test=64)
    b = data.load("synthetic", n_train=256, n_test=64)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert a.x_train.shape == (256, 1, 32, 32) and a.x_test.shape == (64, 1, 32, 32)
    assert abs(a.x_train.mean().item()) < 1e-4 and abs(a.x_train.std().item() - 1) < 1e-3
    assert a.y_train.dtype == torch.int64


@pytest.mark.skipif(not data.FASHION_MNIST_DIR.exists(), reason="Debian dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package():
    fm = data.load("fashion-mnist", n_train=500, n_test=100)
    assert fm.name == "fashion-mnist" and "Fashion-MNIST" in fm.source
    assert fm.x_train.shape == (500, 1, 32, 32)
    raw, _ = data.fashion_mnist_uint8(download=False)
    assert raw["x_train"].shape == (60000, 1, 32, 32) and raw["x_test"].shape == (10000, 1, 32, 32)
    assert torch.all(raw["x_train"][:, :, :2, :] == 0)  # the 2-pixel zero padding
    assert set(raw["y_train"].unique().tolist()) == set(range(10))


def test_auto_takes_the_first_available(monkeypatch):
    def fake_fetch(name, download):
        if name == "cifar10":
            raise data.DatasetUnavailable("offline")
        if name == "fashion-mnist":
            raise data.DatasetUnavailable("not installed")
        return data.synthetic_uint8(), "synthetic"

    monkeypatch.setattr(data, "_fetch", fake_fetch)
    monkeypatch.setattr(data, "_MEMORY", {})
    monkeypatch.setattr(data, "_UNAVAILABLE", {})
    with pytest.warns(UserWarning) as caught:
        assert data.resolve_name("auto") == "synthetic"
    said = [str(w.message) for w in caught]
    assert any("cifar10 is not available (offline); trying fashion-mnist" in m for m in said), said
    assert any("fashion-mnist is not available (not installed); trying synthetic" in m for m in said), said


@pytest.mark.parametrize("damage", [b"", b"garbage", "truncate", "wrong-content"])
def test_a_damaged_converted_cifar_file_is_rebuilt_from_the_archive(tmp_path, served_archive, damage):
    url, md5, _ = served_archive
    root = tmp_path / "data"
    first = data.cifar10_uint8(root, url=url, md5=md5)
    converted = root / "cifar10-uint8.pt"
    if damage == "truncate":
        converted.write_bytes(converted.read_bytes()[:500])
    elif damage == "wrong-content":
        torch.save({**first, "y_train": first["y_train"] + 20}, converted)  # labels out of 0..9
    else:
        converted.write_bytes(damage)
    moved = r"converted CIFAR-10: .*cifar10-uint8\.pt.*moved it to cifar10-uint8\.pt\.corrupt"
    with pytest.warns(UserWarning, match=moved):
        again = data.cifar10_uint8(root, url="http://127.0.0.1:9/none", md5=md5)  # no download: the archive is there
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert torch.equal(data.cifar10_uint8(root, download=False, md5=md5)["x_test"], first["x_test"])


def test_a_damaged_converted_file_without_its_archive_is_a_clear_error(tmp_path):
    (tmp_path / "cifar10-uint8.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="moved it to cifar10-uint8.pt.corrupt"):
        with pytest.raises(data.DatasetUnavailable, match="CIFAR-10 is not in"):
            data.cifar10_uint8(tmp_path, download=False)


def test_a_damaged_fashion_mnist_file_is_named(tmp_path, monkeypatch):
    for pair in data.FASHION_MNIST_FILES.values():
        for name in pair:
            (tmp_path / name).write_bytes(b"not gzip")
    monkeypatch.setenv("BNLIB_FASHION_MNIST", str(tmp_path))
    with pytest.raises(data.DatasetUnavailable, match=r"Fashion-MNIST file .*train-images-idx3-ubyte\.gz is damaged"):
        data.fashion_mnist_uint8(download=False)


def test_bad_load_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"n_train must be <= the 1024 train images of synthetic"):
        data.load("synthetic", n_train=5000)
    with pytest.raises(ValueError, match="n_test must be None or an int >= 1, got 0"):
        data.load("synthetic", n_test=0)
    with pytest.raises(ValueError, match="download must be True or False"):
        data.load("synthetic", download="yes")
    with pytest.raises(ValueError, match="seed must be an int"):
        data.regression_data(10, seed=-1)


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*allowed"):
        data.load("mnist")


def test_regression_data_is_the_dln_task():
    x, y, a = data.regression_data(100, 10, seed=3)
    assert x.shape == (100, 10) and torch.allclose(y, x @ a.T)
