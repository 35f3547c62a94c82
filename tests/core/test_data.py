"""dietsnn.data: every accepted form, order and labels, the cache, and every error."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from cifar_synth import (
    batch_files,
    expected,
    tree_files,
    write_tar,
    write_tree,
)
from dietsnn import data
from dietsnn.data import CLASSES, DataError, load_cifar10

REAL_CACHE = os.environ.get("DIETSNN_CACHE")  # read at import, before the fixtures


def _check(ds, split: str, per_class: int, exact: bool = True) -> None:
    images, labels = expected(split, per_class)
    assert ds.images.dtype == np.uint8 and ds.images.shape == (10 * per_class, 3, 32, 32)
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.classes == CLASSES and ds.split == split and len(ds) == 10 * per_class
    if exact:
        np.testing.assert_array_equal(ds.images, images)
    else:  # JPEG is lossy: still the right image in the right place
        diff = np.abs(ds.images.astype(int) - images.astype(int)).mean(axis=(1, 2, 3))
        others = np.abs(ds.images.astype(int) - images[::-1].astype(int)).mean(axis=(1, 2, 3))
        assert (diff < others).all()


# --------------------------------------------------------------------------------------------
# Forms
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split,per_class", [("train", 3), ("test", 2)])
def test_python_batches_folder(tmp_path, split, per_class):
    folder = write_tree(tmp_path / "cifar-10-batches-py", batch_files(per_class))
    ds = load_cifar10(split, folder)
    _check(ds, split, per_class)
    assert "python batches" in ds.source
    # the folder above it is accepted too
    np.testing.assert_array_equal(load_cifar10(split, tmp_path).images, ds.images)


def test_python_batches_archive(tmp_path):
    path = write_tar(tmp_path / "cifar-10-python.tar.gz", batch_files(2),
                     prefix="cifar-10-batches-py/")
    _check(load_cifar10("train", path, progress=False), "train", 2)
    _check(load_cifar10("test", path, progress=False), "test", 2)


def test_image_tree_folder(synth_tree):
    _check(load_cifar10("train", synth_tree), "train", 2)
    ds = load_cifar10("test", synth_tree)
    _check(ds, "test", 3)
    assert str(synth_tree) in ds.source


@pytest.mark.parametrize("name,prefix", [("tree.tar", ""), ("tree.tar.gz", "cifar10/"),
                                         ("tree.tgz", "./")])
def test_image_tree_archive(tmp_path, name, prefix):
    path = write_tar(tmp_path / name, tree_files({"train": 1, "test": 2}), prefix=prefix)
    _check(load_cifar10("train", path), "train", 1)
    _check(load_cifar10("test", path), "test", 2)


def test_jpeg_tree_and_wrapping_folder(tmp_path):
    write_tree(tmp_path / "wrap", tree_files({"test": 2}, ext="jpg"))
    _check(load_cifar10("test", tmp_path), "test", 2, exact=False)


def test_non_image_files_are_ignored(tmp_path):
    files = tree_files({"test": 1})
    files["test/cat/notes.txt"] = b"not an image"
    files["test/.DS_Store"] = b"\0"
    files["test/.ipynb_checkpoints/x.png"] = files["test/cat/0000.png"]
    _check(load_cifar10("test", write_tree(tmp_path, files)), "test", 1)


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------
def test_cache_hit_and_invalidation(tmp_path, monkeypatch):
    path = write_tar(tmp_path / "tree.tar.gz", tree_files({"test": 1}))
    first = load_cifar10("test", path)
    cached = list(Path(os.environ["DIETSNN_CACHE"]).glob("cifar10-test-*.npz"))
    assert len(cached) == 1

    def no_decode(*a, **k):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(data, "_decode", no_decode)
    np.testing.assert_array_equal(load_cifar10("test", path).images, first.images)
    # a changed source (size / mtime) is decoded again
    write_tar(path, tree_files({"test": 2}))
    with pytest.raises(AssertionError, match="decoded again"):
        load_cifar10("test", path)
    monkeypatch.undo()
    monkeypatch.setenv("DIETSNN_CACHE", str(cached[0].parent))
    _check(load_cifar10("test", path), "test", 2)


def test_corrupt_cache_is_rebuilt(tmp_path):
    path = write_tar(tmp_path / "tree.tar", tree_files({"test": 1}))
    load_cifar10("test", path)
    (cached,) = Path(os.environ["DIETSNN_CACHE"]).glob("cifar10-test-*.npz")
    cached.write_bytes(b"garbage")
    _check(load_cifar10("test", path), "test", 1)
    assert cached.stat().st_size > 1000


def test_unwritable_cache_still_loads(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("DIETSNN_CACHE", str(blocker / "sub"))
    path = write_tar(tmp_path / "tree.tar", tree_files({"test": 1}))
    _check(load_cifar10("test", path), "test", 1)
    assert "cannot write the data cache" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
def test_unknown_class_folder(tmp_path):
    files = tree_files({"test": 1})
    files["test/unicorn/0000.png"] = files["test/cat/0000.png"]
    with pytest.raises(DataError, match="unknown class folder 'unicorn'"):
        load_cifar10("test", write_tree(tmp_path / "d", files))
    with pytest.raises(DataError, match="unknown class folder 'unicorn'"):
        load_cifar10("test", write_tar(tmp_path / "t.tar", files))


def test_empty_tree(tmp_path):
    (tmp_path / "test" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no images.*test/<class>"):
        load_cifar10("test", tmp_path)
    with pytest.raises(DataError, match="no 'train' folder"):
        load_cifar10("train", tmp_path)


def test_folder_of_another_kind(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="neither a 'cifar-10-batches-py' folder nor an image"):
        load_cifar10("test", tmp_path)


def test_archive_without_cifar(tmp_path):
    path = write_tar(tmp_path / "x.tar", {"readme.txt": b"hello"})
    with pytest.raises(DataError, match="holds no CIFAR-10 data"):
        load_cifar10("test", path)


def test_corrupt_and_non_tar(tmp_path):
    good = write_tar(tmp_path / "good.tar.gz", tree_files({"test": 2}))
    blob = good.read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"truncated\.tar\.gz"):
        load_cifar10("test", truncated)
    other = tmp_path / "noise.bin"
    other.write_bytes(os.urandom(4096))
    with pytest.raises(DataError, match=r"noise\.bin: not a tar archive"):
        load_cifar10("test", other)


def test_undecodable_and_wrong_size_images(tmp_path):
    from PIL import Image
    files = tree_files({"test": 1})
    files["test/dog/0000.png"] = b"\x89PNG broken"
    with pytest.raises(DataError, match="cannot decode 0000.png"):
        load_cifar10("test", write_tree(tmp_path / "a", files))
    big = tmp_path / "big.png"
    Image.new("RGB", (64, 48)).save(big)
    files["test/dog/0000.png"] = big.read_bytes()
    with pytest.raises(DataError, match="is 64x48, expected a 32x32 image"):
        load_cifar10("test", write_tree(tmp_path / "b", files))


def test_missing_path_and_bad_split(tmp_path):
    with pytest.raises(DataError, match=rf"{tmp_path / 'nope'}: no such file or folder"):
        load_cifar10("test", tmp_path / "nope")
    with pytest.raises(DataError, match="split must be one of train, test"):
        load_cifar10("valid", tmp_path)


def test_missing_batch(tmp_path):
    files = batch_files(1)
    del files["data_batch_3"]
    folder = write_tree(tmp_path / "cifar-10-batches-py", files)
    with pytest.raises(DataError, match="missing data_batch_3"):
        load_cifar10("train", folder)
    _check(load_cifar10("test", folder), "test", 1)


def test_pickled_foreign_objects_are_refused(tmp_path):
    evil = pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [0],
                         "x": os.getcwd}, protocol=4)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(evil)
    with pytest.raises(DataError, match=r"refusing to load posix\.getcwd"):
        load_cifar10("test", folder)


@pytest.mark.parametrize("payload,match", [
    ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, r"field 'data' must be uint8"),
    ({"data": np.zeros((2, 3072), np.int16), "labels": [0, 1]}, r"field 'data' must be uint8"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, r"field 'labels'"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, r"field 'labels'"),
    ([1, 2], "is a dict, not list"),
])
def test_malformed_batch(tmp_path, payload, match):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(DataError, match=match):
        load_cifar10("test", folder)


# --------------------------------------------------------------------------------------------
# Where the data comes from
# --------------------------------------------------------------------------------------------
@pytest.fixture
def nothing_local(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "default_sources", lambda: [tmp_path / "no-shared.tar.gz",
                                                          tmp_path / "no-batches"])


def test_env_override(synth_tree, monkeypatch, tmp_path):
    monkeypatch.setenv("DIETSNN_DATA", str(synth_tree))
    ds = load_cifar10("test")
    _check(ds, "test", 3)
    assert str(synth_tree) in ds.source
    monkeypatch.setenv("DIETSNN_DATA", str(tmp_path / "gone"))
    with pytest.raises(DataError, match="DIETSNN_DATA=.*gone: no such file"):
        load_cifar10("test")


def test_default_search_order(tmp_path, monkeypatch):
    assert data.default_sources()[0] == (Path(data.__file__).resolve().parents[3]
                                         / "shared" / "datasets" / "cifar10-jpeg.tar.gz")
    assert data.default_sources()[1] == Path(os.environ["DIETSNN_CACHE"]) / "cifar-10-batches-py"
    first = write_tree(tmp_path / "first", tree_files({"test": 1}))
    second = write_tree(tmp_path / "second", batch_files(1))
    monkeypatch.setattr(data, "default_sources", lambda: [tmp_path / "absent", first, second])
    assert str(first) in load_cifar10("test").source


def test_nothing_found_lists_every_place(nothing_local, monkeypatch, tmp_path):
    def offline(url, dest):
        raise OSError("network unreachable")

    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(DataError) as e:
        load_cifar10("test")
    msg = str(e.value)
    for where in ("DIETSNN_DATA", "no-shared.tar.gz", "no-batches", "cifar-10-python.tar.gz",
                  "network unreachable"):
        assert where in msg
    assert not list(Path(os.environ["DIETSNN_CACHE"]).glob("*.tmp"))
    with pytest.raises(DataError, match="CIFAR-10 not found; looked in"):
        load_cifar10("test", download=False)


def test_download_checks_md5(nothing_local, monkeypatch, tmp_path):
    archive = write_tar(tmp_path / "src.tar.gz", batch_files(1), prefix="cifar-10-batches-py/")
    calls = []

    def fake(url, dest):
        calls.append(url)
        dest.write_bytes(archive.read_bytes())

    monkeypatch.setattr(data, "_download", fake)
    with pytest.raises(DataError, match="does not match the official"):
        load_cifar10("test")
    cache = Path(os.environ["DIETSNN_CACHE"])
    assert not (cache / "cifar-10-python.tar.gz").exists()
    monkeypatch.setattr(data, "MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    _check(load_cifar10("test"), "test", 1)
    assert calls == [data.URL, data.URL] and (cache / "cifar-10-python.tar.gz").is_file()
    _check(load_cifar10("train"), "train", 1)  # found in the cache: no third download
    assert len(calls) == 2


# --------------------------------------------------------------------------------------------
# The real data set
# --------------------------------------------------------------------------------------------
SHARED = data.repo_root().parent / data.SHARED_ARCHIVE


@pytest.mark.skipif(not SHARED.is_file(), reason=f"shared CIFAR-10 archive absent ({SHARED})")
def test_real_shared_archive(monkeypatch):
    if REAL_CACHE:
        monkeypatch.setenv("DIETSNN_CACHE", REAL_CACHE)
    else:
        monkeypatch.delenv("DIETSNN_CACHE")  # the user's cache: decoded once, then fast
    test = load_cifar10("test")
    assert test.images.shape == (10_000, 3, 32, 32) and test.images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), [1000] * 10)
    assert (np.diff(test.labels) >= 0).all()  # class-major, sorted file order
    mean = test.images.mean(axis=(0, 2, 3)) / 255
    np.testing.assert_allclose(mean, [0.4942, 0.4851, 0.4504], atol=0.01)
    train = load_cifar10("train")
    assert train.images.shape == (50_000, 3, 32, 32)
    np.testing.assert_array_equal(np.bincount(train.labels, minlength=10), [5000] * 10)
