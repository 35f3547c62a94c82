"""Property-based robustness (issue 15): mutated model files, manifests, weight members and
data archives load or fail with a dietsnn error, never anything else, within a memory bound.

Derandomized (a fixed sequence of examples) so that CI is reproducible; no example database.
``DIETSNN_FUZZ_EXAMPLES=N`` runs N examples per property (default 150) for a longer hunt.
Training configs are in ``tests/quant/test_robustness_quant_props.py``.
"""

from __future__ import annotations

import copy
import io
import json
import os
import tarfile
import tracemalloc
import zipfile

import numpy as np
import pytest
from dietsnn.errors import DataError, DietsnnError, ModelFileError
from dietsnn.model import Model, load
from dietsnn.topology import random_model

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

MEMORY_BOUND = 50 << 20
EXAMPLES = int(os.environ.get("DIETSNN_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

MODEL = random_model("4C-P-8C-P-10", seed=7)


def _npz_bytes(manifest: object = None, weights: dict | None = None) -> bytes:
    man = manifest if manifest is not None else MODEL.manifest()
    arrays = {"manifest": np.frombuffer(json.dumps(man).encode(), np.uint8)}
    arrays.update({f"weights/{k}": v for k, v in (weights or MODEL.weights).items()})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


GOOD = _npz_bytes()


def _load_bounded(path) -> Model | None:
    """Load ``path``: a Model, or None after a ModelFileError; anything else fails the test."""
    tracemalloc.start()
    try:
        try:
            return load(path)
        except ModelFileError as e:
            msg = str(e)
            assert str(path) in msg and "\n" not in msg, msg
            return None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.1f} MiB"
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------------------------
# Model files: bytes
# --------------------------------------------------------------------------------------------
_edits = st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)),
                  min_size=1, max_size=8)


@SETTINGS
@given(edits=_edits, cut=st.one_of(st.none(), st.integers(0, len(GOOD))))
def test_mutated_model_bytes(tmp_path, edits, cut):
    blob = bytearray(GOOD)
    for pos, val in edits:
        blob[pos] = val
    if cut is not None:
        blob = blob[:cut]
    path = tmp_path / "m.npz"
    path.write_bytes(bytes(blob))
    _load_bounded(path)


def _stored(manifest_bytes: bytes, members: dict[str, bytes] | None = None) -> bytes:
    """An uncompressed zip, so that byte edits land in headers and JSON rather than deflate."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        out = io.BytesIO()
        np.save(out, np.frombuffer(manifest_bytes, np.uint8))
        z.writestr("manifest.npy", out.getvalue())
        for k, v in (members or {f"weights/{k}": v for k, v in MODEL.weights.items()}).items():
            out = io.BytesIO()
            np.save(out, v)
            z.writestr(f"{k}.npy", out.getvalue())
    return buf.getvalue()


GOOD_STORED = _stored(json.dumps(MODEL.manifest()).encode())


@SETTINGS
@given(edits=st.lists(st.tuples(st.integers(0, len(GOOD_STORED) - 1), st.integers(0, 255)),
                      min_size=1, max_size=4))
def test_mutated_stored_model_bytes(tmp_path, edits):
    blob = bytearray(GOOD_STORED)
    for pos, val in edits:
        blob[pos] = val
    path = tmp_path / "m.npz"
    path.write_bytes(bytes(blob))
    _load_bounded(path)


# --------------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------------
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                     st.floats(allow_nan=False), st.text(max_size=12),
                     st.sampled_from(["conv", "pool", "linear", "trained", "../x", ""]))
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(MODEL.manifest()) if p]


def _set(obj, path, value, delete):
    for k in path[:-1]:
        obj = obj[k]
    if delete and isinstance(obj, dict):
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


@SETTINGS
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), _json, st.booleans()), min_size=1,
                        max_size=3))
def test_mutated_manifest(tmp_path, changes):
    man = copy.deepcopy(MODEL.manifest())
    for path, value, delete in changes:
        try:
            _set(man, path, value, delete)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed the path
    path = tmp_path / "m.npz"
    path.write_bytes(_npz_bytes(man))
    _load_bounded(path)


@SETTINGS
@given(text=st.text(max_size=200))
def test_manifest_text(tmp_path, text):
    path = tmp_path / "m.npz"
    path.write_bytes(_stored(text.encode("utf-8", "surrogatepass")))
    _load_bounded(path)


# --------------------------------------------------------------------------------------------
# Weight members: any dtype, any shape
# --------------------------------------------------------------------------------------------
_dtypes = st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.float32,
                           np.float64, np.bool_, np.dtype(">i2"), np.dtype("<i2"),
                           np.complex64])


@SETTINGS
@given(name=st.sampled_from(sorted(MODEL.weights) + ["extra", "conv1.npy", "../x"]),
       arr=_dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4,
                                                                       max_side=5))),
       fortran=st.booleans())
def test_weight_members(tmp_path, name, arr, fortran):
    weights = dict(MODEL.weights)
    weights[name] = np.asfortranarray(arr) if fortran else arr
    path = tmp_path / "m.npz"
    path.write_bytes(_npz_bytes(weights=weights))
    m = _load_bounded(path)
    if m is not None:  # accepted only when it equals a valid member
        assert m.weights[name].dtype == MODEL.weights[name].dtype


@SETTINGS
@given(header=st.text(max_size=120))
def test_npy_header_text(tmp_path, header):
    members = {f"weights/{k}": v for k, v in MODEL.weights.items()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        out = io.BytesIO()
        np.save(out, np.frombuffer(json.dumps(MODEL.manifest()).encode(), np.uint8))
        z.writestr("manifest.npy", out.getvalue())
        for k, v in members.items():
            out = io.BytesIO()
            np.save(out, v)
            raw = out.getvalue()
            if k == "weights/conv1":
                h = header.encode("latin1", "replace")
                raw = b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + raw[128:]
            z.writestr(f"{k}.npy", raw)
    path = tmp_path / "m.npz"
    path.write_bytes(buf.getvalue())
    assert _load_bounded(path) is None or header  # an empty header is never valid


# --------------------------------------------------------------------------------------------
# Data archives
# --------------------------------------------------------------------------------------------
def _png(side: int, seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


_names = st.sampled_from(["test/cat/0.png", "test/dog/1.png", "test/cat/2.jpg", "test/cow/3.png",
                          "train/cat/0.png", "x/test/cat/4.png", "test/cat", "test_batch",
                          "cifar-10-batches-py/test_batch", "cifar-10-batches-py/data_batch_1",
                          "../test/cat/5.png", "/abs/test/cat/6.png", "test/cat/.hidden.png"])
_contents = st.one_of(st.binary(max_size=64), st.builds(_png, st.sampled_from([1, 16, 32, 33]),
                                                        st.integers(0, 3)))


@SETTINGS
@given(members=st.lists(st.tuples(_names, _contents), min_size=0, max_size=5),
       gz=st.booleans(), cut=st.one_of(st.none(), st.integers(0, 400)))
def test_data_archives(tmp_path, monkeypatch, members, gz, cut):
    from dietsnn.data import load_cifar10

    monkeypatch.setenv("DIETSNN_CACHE", str(tmp_path / "cache"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    blob = buf.getvalue()
    path = tmp_path / ("d.tar.gz" if gz else "d.tar")
    path.write_bytes(blob if cut is None else blob[:cut])
    tracemalloc.start()
    try:
        ds = load_cifar10("test", data=path, progress=False)
        assert ds.images.shape[1:] == (3, 32, 32)
    except DataError as e:
        assert "\n" not in str(e)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND


def test_dietsnn_error_is_the_base():
    assert issubclass(ModelFileError, DietsnnError) and issubclass(DataError, DietsnnError)
