"""Export to NIR and back: structure of the graph, and an identical model after the round trip."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="the NIR tests need the interop extra (nir)")
from dietsnn.cli import main  # noqa: E402
from dietsnn.model import load, shipped_models  # noqa: E402
from dietsnn.nirio.export import export_nir, to_nir  # noqa: E402
from dietsnn.nirio.importer import import_nir  # noqa: E402
from dietsnn.topology import random_model  # noqa: E402


def _members(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def assert_same_model_file(a, b) -> None:
    """Same members, the manifest byte for byte, every weight array with the same dtype."""
    ma, mb = _members(a), _members(b)
    assert sorted(ma) == sorted(mb)
    assert ma["manifest"].tobytes() == mb["manifest"].tobytes()
    for key in ma:
        assert ma[key].dtype == mb[key].dtype, key
        assert np.array_equal(ma[key], mb[key]), key
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        assert za.namelist() == zb.namelist()


ARCHS = [
    ("8C-P-16C-P-10", 0),
    # hidden linear layers, leak shifts 0..3, two flattens' worth of shapes, 16-bit weights
    ("8C-8C-P-16C-64L-32L-10", 3),
    # every layer with a bias (format version 2): Conv2d and Affine biases
    ("8C-P-16C-32L-10", 5),
]


@pytest.mark.parametrize(("arch", "seed"), ARCHS)
def test_round_trip_gives_the_identical_model_file(tmp_path, arch, seed):
    bits = 12 if seed == 3 else 8
    m = random_model(arch, seed=seed, weight_bits=bits, membrane_bits=20 if seed == 3 else 16,
                     bias=seed == 5)
    if seed == 5:
        graph = to_nir(m)
        assert type(graph.nodes["fc1"]).__name__ == "Affine"
        assert np.array_equal(graph.nodes["conv2"].bias, m.biases["conv2"])
    m.metrics = {"note": "carried through the graph metadata"}
    src = m.save(tmp_path / "m.npz")
    export_nir(m, tmp_path / "m.nir")
    back, report = import_nir(tmp_path / "m.nir")
    assert report.exact and report.source == "dietsnn", report
    dst = back.save(tmp_path / "back.npz")
    assert_same_model_file(src, dst)


@pytest.mark.parametrize("name", sorted(set(shipped_models()) & {"tiny", "cifar10"}))
def test_round_trip_of_shipped_models(tmp_path, name):
    src = shipped_models()[name]
    export_nir(load(src), tmp_path / "m.nir")
    back, report = import_nir(tmp_path / "m.nir")
    assert report.exact
    assert_same_model_file(src, back.save(tmp_path / "back.npz"))


def test_graph_nodes_carry_the_integer_semantics(tmp_path, model):
    dt = 1e-4
    export_nir(model, tmp_path / "m.nir", dt=dt)
    g = nir.read(tmp_path / "m.nir")  # NIR's own type check must pass
    by_layer: dict[str, list] = {}
    for node in g.nodes.values():
        if "dietsnn_layer" in node.metadata:
            by_layer.setdefault(node.metadata["dietsnn_layer"], []).append(node)
    for layer in model.layers:
        nodes = by_layer[layer.name]
        kinds = {type(n).__name__ for n in nodes}
        if layer.type == "pool":
            assert kinds == {"AvgPool2d", "Threshold"}
            (thr,) = [n for n in nodes if isinstance(n, nir.Threshold)]
            assert np.all(thr.threshold == 0)  # mean of 4 bits > 0  <=>  OR
            continue
        (dense,) = [n for n in nodes if isinstance(n, (nir.Conv2d, nir.Linear))]
        w = dense.weight
        assert np.array_equal(w, model.weights[layer.name].astype(np.float32))
        if layer.type == "conv":
            assert np.all(dense.bias == 0) and tuple(dense.padding) == (1, 1)
        if layer.output:
            (integ,) = [n for n in nodes if isinstance(n, nir.I)]
            assert np.allclose(integ.r * dt, 1.0, rtol=0, atol=1e-12)
            continue
        (neuron,) = [n for n in nodes if isinstance(n, (nir.LIF, nir.IF))]
        k = layer.leak_shift
        assert neuron.metadata["reset"] == "subtract"
        assert neuron.metadata["leak_shift"] == k
        assert neuron.metadata["membrane_bits"] == layer.membrane_bits
        assert np.all(neuron.v_threshold == layer.threshold)
        assert neuron.v_threshold.shape == layer.out_shape
        if k:
            assert isinstance(neuron, nir.LIF)
            # forward Euler: beta = 1 - dt/tau = 1 - 2^-k exactly; current gain r dt/tau = 1
            assert np.all(1 - dt / neuron.tau == 1 - 2.0 ** -k)
            assert np.all(neuron.r * dt / neuron.tau == 1.0)
            assert np.all(neuron.v_leak == 0)
        else:
            assert isinstance(neuron, nir.IF)
            assert np.allclose(neuron.r * dt, 1.0, rtol=0, atol=1e-12)
    meta = g.metadata
    assert meta["dietsnn_format"] == "dietsnn-nir/1"
    assert float(meta["dt"]) == dt and int(meta["timesteps"]) == model.timesteps
    assert json.loads(meta["input"]) == model.input.to_json()
    assert json.loads(meta["manifest"]) == model.manifest()


def test_edited_graph_values_win_and_are_noted(model):
    g = to_nir(model)
    first = model.lif_layers[0]
    node = g.nodes[f"{first.name}_lif"]
    node.v_threshold = node.v_threshold + 1
    from dietsnn.nirio.importer import from_nir
    back, report = from_nir(g)
    assert back.layer(first.name).threshold == first.threshold + 1
    assert any("differ from the manifest" in n for n in report.notes)


def test_cli_export_and_import(tmp_path, capsys):
    m = random_model("8C-P-16C-P-10", seed=1)
    src = m.save(tmp_path / "m.npz")
    assert main(["export-nir", "--model", str(src), "--out", str(tmp_path / "m.nir"),
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["node_types"]["Conv2d"] == 2 and info["node_types"]["Threshold"] == 2
    assert main(["import-nir", "--in", str(tmp_path / "m.nir"), "--out",
                 str(tmp_path / "back.npz"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["exact"] is True and info["approximations"] == []
    assert_same_model_file(src, tmp_path / "back.npz")
    # the human form is a short table
    assert main(["import-nir", "--in", str(tmp_path / "m.nir"), "--out",
                 str(tmp_path / "back2.npz")]) == 0
    out = capsys.readouterr().out
    assert "exact" in out and "conv1" in out


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    assert main(["import-nir", "--in", str(bad), "--out", str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err.strip()
    assert "bad.nir" in err and "not a readable NIR file" in err and "\n" not in err
    assert main(["import-nir", "--in", str(tmp_path / "missing.nir"), "--out",
                 str(tmp_path / "x.npz")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_export_writes_atomically(tmp_path, model):
    out = tmp_path / "sub" / "m.nir"
    export_nir(model, out)
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["m.nir"]
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"
