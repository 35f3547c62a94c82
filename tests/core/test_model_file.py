"""The model file: exact round trip, every rejection (naming its field), atomic writes."""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from dietsnn import golden
from dietsnn import model as M
from dietsnn.model import ModelFileError, load
from dietsnn.topology import random_model


@pytest.fixture(scope="module")
def model():
    m = random_model("8C-P-16C-P-12L-10", seed=11)
    m.metrics["test_accuracy"] = 0.5
    m.provenance["note"] = "unit test"
    return m


def _members(m) -> dict[str, np.ndarray]:
    buf = io.BytesIO()
    np.savez(buf, manifest=np.frombuffer(json.dumps(m.manifest()).encode(), np.uint8),
             **{f"weights/{k}": v for k, v in m.weights.items()})
    return dict(np.load(io.BytesIO(buf.getvalue())))


def _write(path: Path, members: dict[str, np.ndarray], manifest: dict | None = None) -> Path:
    members = dict(members)
    if manifest is not None:
        members["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    np.savez(path, **members)
    return path


def test_round_trip_is_identical(model, tmp_path):
    path = model.save(tmp_path / "sub" / "m.npz")
    back = load(path)
    assert back.manifest() == model.manifest()
    assert back.weights.keys() == model.weights.keys()
    for k, w in model.weights.items():
        assert back.weights[k].dtype == w.dtype
        np.testing.assert_array_equal(back.weights[k], w)
    rng = np.random.default_rng(0)
    q = model.input.quantize(rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8))
    np.testing.assert_array_equal(golden.run(back, q).logits, golden.run(model, q).logits)
    # saving the loaded model again gives the same members
    again = load(back.save(tmp_path / "again.npz"))
    assert again.manifest() == model.manifest()
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == sorted(
            ["manifest.npy"] + [f"weights/{k}.npy" for k in model.weights])


def test_load_by_shipped_name(model, tmp_path, monkeypatch):
    monkeypatch.setenv("DIETSNN_MODELS", str(tmp_path))
    model.save(tmp_path / "mine.npz")
    assert M.load_model("mine").manifest() == model.manifest()
    with pytest.raises(ModelFileError, match="no shipped model of that name; shipped: mine"):
        M.load_model("other")


# --------------------------------------------------------------------------------------------
# Manifest rejections: each names the field
# --------------------------------------------------------------------------------------------
def _edit(man: dict, path: str, value, *, delete: bool = False) -> None:
    keys = path.split(".")
    d = man
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d[k]
    last = int(keys[-1]) if isinstance(d, list) else keys[-1]
    if delete:
        del d[last]
    else:
        d[last] = value


MANIFEST_CASES = [
    # (path, value, delete, message regex)
    ("timesteps", None, True, r"missing field\(s\) \['timesteps'\]"),
    ("colour", "red", False, r"unknown field\(s\) \['colour'\]"),
    ("input.bits", None, True, r"field 'input'.*missing field\(s\) \['bits'\]"),
    ("input.gamma", 1, False, r"field 'input'.*unknown field\(s\) \['gamma'\]"),
    ("layers.0.name", None, True, r"field 'layers\[0\]'.*missing field\(s\) \['name'\]"),
    ("layers.0.bias", True, False, r"field 'layers\[0\]'.*unknown field\(s\) \['bias'\]"),
    ("format", "other", False, r"field 'format' must be 'dietsnn-model'"),
    ("version", 3, False, r"field 'version': unsupported version 3"),
    ("version", "1", False, r"field 'version': unsupported version '1'"),
    ("kind", "guess", False, r"field 'kind' must be one of trained, random-test"),
    ("name", "", False, r"field 'name' must be letters, digits"),
    ("timesteps", 0, False, r"field 'timesteps' must be an integer in 1\.\.1024"),
    ("timesteps", 2.5, False, r"field 'timesteps'"),
    ("input.bits", 1, False, r"field 'input\.bits' must be an integer in 2\.\.16"),
    ("input.std", [0.2, 0.0, 0.2], False, r"field 'input\.std' must be positive"),
    ("input.scale", -1, False, r"field 'input\.scale' must be a positive number"),
    ("input.mean", [0.5], False, r"field 'input\.mean' must be 3 finite numbers"),
    ("input.shape", [3, 32], False, r"field 'input\.shape' must be 3 positive integers"),
    ("classes", ["a"] * 9, False, r"field 'classes' must be 10 strings"),
    ("classes", "airplane", False, r"field 'classes' must be a list"),
    ("layers", {}, False, r"field 'layers' must be a list"),
    ("metrics", [], False, r"field 'metrics' must be a JSON object"),
    ("provenance", 3, False, r"field 'provenance' must be a JSON object"),
    ("layers.0.threshold", 0, False, r"field 'layers\[0\]'.*field 'threshold'.*positive"),
    ("layers.0.threshold", -5, False, r"field 'threshold'"),
    ("layers.0.threshold", 32768, False, r"field 'threshold' must be an integer in 1\.\.32767"),
    ("layers.0.leak_shift", 16, False, r"field 'leak_shift' must be an integer in 0\.\.15"),
    ("layers.0.leak_shift", -1, False, r"field 'leak_shift'"),
    ("layers.0.membrane_bits", 33, False, r"field 'membrane_bits' must be an integer in 2\.\.32"),
    ("layers.0.weight_bits", 1, False, r"field 'weight_bits' must be an integer in 2\.\.16"),
    ("layers.0.type", "deconv", False, r"field 'type' must be one of conv, pool, linear"),
    ("layers.0.name", "1st", False, r"field 'name' must be letters, digits and '_'"),
    ("layers.1.threshold", 5, False, r"field 'threshold' is only allowed on a hidden conv"),
    ("layers.1.out_shape", [8, 15, 15], False, r"field 'out_shape' must be \[8, 16, 16\]"),
    ("layers.2.out_shape", [16, 8, 8], False, r"field 'out_shape' of a conv keeps H and W"),
    ("layers.5.output", False, False, r"field 'layers\[5\]'.*field 'membrane_bits'"),
    ("layers.5", None, True, r"field 'layers\[4\]' must be the output layer"),
    ("layers.1.output", True, False, r"field 'output' is only allowed on a linear layer"),
    ("layers.1.name", "conv1", False, r"field 'layers' has duplicate names"),
    # chaining: a layer's input must be the previous layer's output
    ("layers.2.in_shape", [4, 16, 16], False,
     r"field 'layers\[2\]\.in_shape' \(conv2\) must be \[8, 16, 16\]"),
    ("layers.4.in_shape", [100], False,
     r"field 'layers\[4\]\.in_shape' \(fc1\) must be \[1024\]"),
    ("layers.5.in_shape", [13], False, r"field 'layers\[5\]\.in_shape' \(out\) must be \[12\]"),
]


@pytest.mark.parametrize("path,value,delete,match", MANIFEST_CASES,
                         ids=[f"{c[0]}={'del' if c[2] else c[1]}" for c in MANIFEST_CASES])
def test_manifest_rejections(model, tmp_path, path, value, delete, match):
    man = copy.deepcopy(model.manifest())
    _edit(man, path, value, delete=delete)
    f = _write(tmp_path / "bad.npz", _members(model), man)
    with pytest.raises(ModelFileError, match=match) as e:
        load(f)
    assert str(f) in str(e.value)  # names the file too


def test_output_layer_only_last(model, tmp_path):
    man = copy.deepcopy(model.manifest())
    fc1 = man["layers"][4]
    for key in ("membrane_bits", "leak_shift", "threshold"):
        del fc1[key]
    fc1["output"] = True
    with pytest.raises(ModelFileError, match=r"field 'layers\[4\]\.output': only the last layer"):
        load(_write(tmp_path / "bad.npz", _members(model), man))


def test_manifest_not_json_or_wrong_type(model, tmp_path):
    members = _members(model)
    members["manifest"] = np.frombuffer(b"{not json", np.uint8)
    with pytest.raises(ModelFileError, match="member 'manifest' is not valid UTF-8 JSON"):
        load(_write(tmp_path / "a.npz", members))
    members["manifest"] = np.zeros((2, 2), np.uint8)
    with pytest.raises(ModelFileError, match=r"member 'manifest' must be uint8 \[n\]"):
        load(_write(tmp_path / "b.npz", members))
    members["manifest"] = np.frombuffer(b"[1, 2]", np.uint8)
    with pytest.raises(ModelFileError, match="manifest: must be a JSON object"):
        load(_write(tmp_path / "c.npz", members))
    del members["manifest"]
    with pytest.raises(ModelFileError, match="missing member 'manifest'"):
        load(_write(tmp_path / "d.npz", members))


# --------------------------------------------------------------------------------------------
# Weight rejections
# --------------------------------------------------------------------------------------------
def test_weight_rejections(model, tmp_path):
    def check(members, match, man=None):
        with pytest.raises(ModelFileError, match=match):
            load(_write(tmp_path / "w.npz", members, man))

    base = _members(model)
    m = dict(base)
    m["weights/conv2"] = base["weights/conv2"].astype(np.int16)
    check(m, r"weights/conv2: dtype must be int8 for 8-bit weights, not int16")
    m = dict(base)
    m["weights/conv2"] = base["weights/conv2"][:, :, :2]
    check(m, r"weights/conv2: shape must be \[16, 8, 3, 3\], not \[16, 8, 2, 3\]")
    m = dict(base)
    m["weights/fc1"] = base["weights/fc1"].T.copy()
    check(m, r"weights/fc1: shape must be \[12, 1024\]")
    m = dict(base)
    del m["weights/out"]
    check(m, r"weights: missing \['out'\], unknown \[\]")
    m = dict(base)
    m["weights/extra"] = base["weights/out"]
    check(m, r"weights: missing \[\], unknown \['extra'\]")
    m = dict(base)
    m["bias/out"] = np.zeros(10, np.int8)
    check(m, r"bias: missing \[\], unknown \['out'\]")
    m = dict(base)
    m["other/out"] = np.zeros(10, np.int8)
    check(m, r"unknown member 'other/out'")
    # values outside the declared bit width: 4-bit weights stored as int8
    man = copy.deepcopy(model.manifest())
    man["layers"][0]["weight_bits"] = 4
    check(dict(base), r"weights/conv1: values must lie in -8\.\.7 \(4-bit\)", man)
    man["layers"][0]["weight_bits"] = 12
    check(dict(base), r"weights/conv1: dtype must be int16 for 12-bit weights", man)


def test_pickled_object_array_is_refused(model, tmp_path):
    members = _members(model)
    members["weights/conv1"] = np.array([{"evil": 1}] * 3, dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **members)  # numpy pickles object arrays into the .npy
    msg = "member .weights/conv1. is a pickled object array"
    with pytest.raises(ModelFileError, match=msg) as e:
        load(path)
    assert str(path) in str(e.value)


# --------------------------------------------------------------------------------------------
# Files that are not model files
# --------------------------------------------------------------------------------------------
def test_not_a_model_file(model, tmp_path):
    good = model.save(tmp_path / "good.npz").read_bytes()
    for name, blob in [("truncated.npz", good[: len(good) // 2]), ("cut-end.npz", good[:-40]),
                       ("text.npz", b"hello, I am not a zip"), ("empty.npz", b"")]:
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(ModelFileError, match=rf"{name}: not a model file"):
            load(p)
    with pytest.raises(ModelFileError, match="missing.npz: no such file"):
        load(tmp_path / "missing.npz")
    # a zip whose member is damaged (CRC error)
    p = tmp_path / "crc.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as z:
        z.writestr("manifest.npy", b"\x93NUMPY garbage")
    with pytest.raises(ModelFileError, match="cannot read the archive|manifest"):
        load(p)


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------
def test_failed_write_leaves_nothing_and_keeps_old_file(model, tmp_path, monkeypatch):
    path = model.save(tmp_path / "m.npz")
    before = path.read_bytes()

    def explode(f, **arrays):
        f.write(b"PK\x03\x04 partial data")
        raise OSError("disk full")

    monkeypatch.setattr(M.np, "savez_compressed", explode)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "new.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temp, no partial file
    monkeypatch.undo()
    assert load(path).manifest() == model.manifest()


def test_invalid_model_is_not_written(model, tmp_path):
    m = copy.copy(model)
    m.weights = dict(model.weights)
    m.weights["conv1"] = model.weights["conv1"].astype(np.int16)
    with pytest.raises(ModelFileError, match="weights/conv1: dtype must be int8"):
        m.save(tmp_path / "bad.npz")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# Biases (format version 2)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def biased():
    return random_model("8C-P-16C-P-12L-10", seed=11, bias=True)


def _biased_members(m) -> dict[str, np.ndarray]:
    out = _members(m)
    out.update({f"bias/{k}": v for k, v in m.biases.items()})
    return out


def test_bias_round_trip_is_version_2(biased, tmp_path):
    path = biased.save(tmp_path / "b.npz")
    back = load(path)
    assert back.manifest() == biased.manifest() and back.manifest()["version"] == 2
    assert back.biases.keys() == biased.biases.keys() == {"conv1", "conv2", "fc1", "out"}
    for k, v in biased.biases.items():
        assert back.biases[k].dtype == v.dtype == np.int16
        np.testing.assert_array_equal(back.biases[k], v)
    q = biased.input.quantize(np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32),
                                                                dtype=np.uint8))
    np.testing.assert_array_equal(golden.run(back, q).logits, golden.run(biased, q).logits)


def test_model_without_bias_is_still_written_as_version_1(model, tmp_path):
    """Version 1 files load (no bias) and a model without bias is written as version 1, byte
    for byte the members earlier releases wrote; a version-1 manifest cannot declare one."""
    path = model.save(tmp_path / "v1.npz")
    with np.load(path) as z:
        assert json.loads(z["manifest"].tobytes())["version"] == 1
        assert not any(k.startswith("bias/") for k in z.files)
    back = load(path)
    assert back.biases == {} and not any(x.has_bias for x in back.layers)
    man = copy.deepcopy(model.manifest())
    man["layers"][0]["bias_bits"] = 8
    with pytest.raises(ModelFileError, match=r"field 'layers\[0\]\.bias_bits' needs format "
                                             r"version 2"):
        load(_write(tmp_path / "bad.npz", _members(model), man))
    man["version"] = 3
    with pytest.raises(ModelFileError, match=r"unsupported version 3; this dietsnn reads "
                                             r"versions 1, 2"):
        load(_write(tmp_path / "bad.npz", _members(model), man))


def test_bias_rejections(biased, tmp_path):
    def check(members, match, man=None):
        with pytest.raises(ModelFileError, match=match) as e:
            load(_write(tmp_path / "b.npz", members, man))
        assert "\n" not in str(e.value) and "b.npz" in str(e.value)

    base = _biased_members(biased)
    m = dict(base)
    m["bias/conv2"] = base["bias/conv2"].astype(np.int32)
    check(m, r"bias/conv2: dtype must be int16 for a 16-bit bias, not int32")
    m = dict(base)
    m["bias/conv2"] = base["bias/conv2"][:5]
    check(m, r"bias/conv2: shape must be \[16\], not \[5\]")
    m = dict(base)
    del m["bias/fc1"]
    check(m, r"bias: missing \['fc1'\], unknown \[\]")
    man = copy.deepcopy(biased.manifest())
    man["layers"][0]["bias_bits"] = 4
    m = dict(base)
    m["bias/conv1"] = np.full(8, 9, np.int16)
    check(m, r"bias/conv1: values must lie in -8\.\.7 \(4-bit\), found 9\.\.9", man)
    man["layers"][0]["bias_bits"] = 17       # wider than the 16-bit membrane
    check(dict(base), r"field 'layers\[0\]': .*field 'bias_bits' must be an integer in "
                      r"2\.\.16", man)
    man["layers"][0]["bias_bits"] = "16"
    check(dict(base), r"field 'bias_bits' must be an integer", man)
    man = copy.deepcopy(biased.manifest())
    man["layers"][-1]["bias_bits"] = 33
    check(dict(base), r"field 'bias_bits' must be an integer in 2\.\.32", man)
    man = copy.deepcopy(biased.manifest())
    man["layers"][1]["bias_bits"] = 8        # pool1
    check(dict(base), r"field 'bias_bits' is not allowed on a pool layer", man)
    man = copy.deepcopy(biased.manifest())
    man["layers"][-1]["bias_bits"] = 32
    check(dict(base), r"bias/out: dtype must be int32 for a 32-bit bias, not int16", man)
