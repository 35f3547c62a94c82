"""dietsnn eval / run / models through the real CLI frame, on synthetic data and models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cifar_synth import tree_files, write_tar
from dietsnn import golden
from dietsnn.cli import main
from dietsnn.data import load_cifar10
from dietsnn.model import load


def _json(capsys, argv: list[str]) -> dict:
    rc = main(argv)
    out = capsys.readouterr().out
    assert rc == 0
    assert out.count("\n") == 1  # exactly one JSON object
    return json.loads(out)


def _fails(capsys, argv: list[str], match: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1
    last = err.replace("\r", "\n").strip().splitlines()[-1]  # after any progress bar
    assert "Traceback" not in err and last.startswith(f"dietsnn {argv[0]}: error: ")
    assert match in last, err
    return last


# --------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------
def test_eval_json_matches_golden(capsys, synth_model_path, synth_tree):
    rep = _json(capsys, ["eval", "--model", str(synth_model_path), "--data", str(synth_tree),
                         "--json"])
    model = load(synth_model_path)
    ds = load_cifar10("test", synth_tree)
    pred = golden.run(model, model.input.quantize(ds.images)).prediction
    assert rep["images"] == 30 and rep["timesteps"] == 5
    assert rep["selection"]["count"] == 30 and rep["selection"]["indices"] == list(range(30))
    assert rep["model"] == model.name and rep["kind"] == "random-test"
    assert rep["arch"] == "8C-P-16C-P-10"
    assert rep["accuracy"] == pytest.approx(float(np.mean(pred == ds.labels)))
    assert 0.0 <= rep["accuracy"] <= 1.0 and rep["correct"] == int(np.sum(pred == ds.labels))
    assert rep["seconds"] > 0 and rep["images_per_second"] > 0
    assert set(rep["per_class_accuracy"]) == set(model.classes)
    assert set(rep["spikes_per_image"]) == {"conv1", "pool1", "conv2", "pool2"}


def test_eval_subset_and_timesteps(capsys, synth_model_path, synth_tree):
    rep = _json(capsys, ["eval", "--model", str(synth_model_path), "--data", str(synth_tree),
                         "--images", "10", "--timesteps", "2", "--json"])
    assert rep["images"] == 10 and rep["timesteps"] == 2
    assert rep["selection"]["mode"] == "spread" and rep["selection"]["indices"] == list(
        range(0, 30, 3))
    # 10 of 30 class-sorted images, evenly spaced: one per class
    assert None not in rep["per_class_accuracy"].values()
    model = load(synth_model_path)
    ds = load_cifar10("test", synth_tree)
    pred = golden.run(model, model.input.quantize(ds.images[::3]), timesteps=2).prediction
    assert rep["correct"] == int(np.sum(pred == ds.labels[::3]))


def test_eval_human_table(capsys, synth_model_path, tmp_path):
    data = write_tar(tmp_path / "t.tar.gz", tree_files({"test": 1}))
    assert main(["eval", "--model", str(synth_model_path), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "class" in out and "airplane" in out and "truck" in out
    assert "accuracy" in out and "images/s" in out


def test_eval_errors(capsys, synth_model_path, tmp_path):
    _fails(capsys, ["eval", "--model", str(tmp_path / "nope.npz"), "--data", str(tmp_path)],
           "nope.npz: no such file")
    _fails(capsys, ["eval", "--model", "no-such-model"], "no shipped model of that name")
    _fails(capsys, ["eval", "--model", str(synth_model_path), "--data", str(tmp_path / "x")],
           "no such file or folder")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a model")
    _fails(capsys, ["eval", "--model", str(bad), "--data", str(tmp_path)], "not a model file")
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", str(synth_model_path), "--images", "0"])
    assert e.value.code == 2
    assert "--images must be a positive integer" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------
def test_run_dump(capsys, synth_model_path, synth_tree, tmp_path):
    dump = tmp_path / "out" / "one.npz"
    rep = _json(capsys, ["run", "--model", str(synth_model_path), "--data", str(synth_tree),
                         "--index", "7", "--dump", str(dump), "--json"])
    model = load(synth_model_path)
    ds = load_cifar10("test", synth_tree)
    q = model.input.quantize(ds.images[7:8])
    res = golden.run(model, q, record=["spikes"])
    assert rep["index"] == 7 and rep["split"] == "test" and rep["timesteps"] == 5
    assert rep["label"] == int(ds.labels[7]) == 2 and rep["label_name"] == "bird"
    assert rep["prediction"] == int(res.prediction[0])
    assert rep["prediction_name"] == model.classes[rep["prediction"]]
    assert rep["logits"] == res.logits[0].tolist()
    assert rep["spike_counts"] == {k: int(v[0]) for k, v in res.spike_counts.items()}
    with np.load(dump, allow_pickle=False) as z:
        assert z["input"].dtype == np.int8 and z["input"].shape == (3, 32, 32)
        np.testing.assert_array_equal(z["input"], q[0])
        np.testing.assert_array_equal(z["logits"], res.logits[0])
        assert int(z["label"]) == 2
        for layer in model.layers:
            if layer.output:
                continue
            s = z[f"spikes/{layer.name}"]
            assert s.dtype == np.uint8 and s.shape == (5, *layer.out_shape)
            assert int(s.sum()) == rep["spike_counts"][layer.name]
    assert [p.name for p in dump.parent.iterdir()] == ["one.npz"]  # no temp file left


def test_run_human_and_train_split(capsys, synth_model_path, synth_tree):
    assert main(["run", "--model", str(synth_model_path), "--data", str(synth_tree),
                 "--index", "19", "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("train[19]: label 9 (truck)")
    assert "conv1" in out and "pool2" in out and "logit" in out


def test_run_errors(capsys, synth_model_path, synth_tree):
    _fails(capsys, ["run", "--model", str(synth_model_path), "--data", str(synth_tree),
                    "--index", "30"], "--index must lie in 0..29 for the test split, not 30")
    _fails(capsys, ["run", "--model", str(synth_model_path), "--data", str(synth_tree),
                    "--index", "-1"], "--index must lie in 0..29")


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
@pytest.fixture
def models_dir(tmp_path, monkeypatch, synth_model_path):
    d = tmp_path / "models"
    d.mkdir()
    m = load(synth_model_path)
    m.metrics["test_accuracy"] = 0.8125
    m.save(d / "tiny.npz")
    monkeypatch.setenv("DIETSNN_MODELS", str(d))
    return d


def test_models_json_and_table(capsys, models_dir):
    rep = _json(capsys, ["models", "--json"])
    (entry,) = rep["models"]
    assert entry["name"] == "tiny" and entry["kind"] == "random-test"
    assert entry["timesteps"] == 5 and entry["arch"] == "8C-P-16C-P-10"
    assert entry["test_accuracy"] == 0.8125 and entry["weight_bits"] == [8]
    assert entry["parameters"] == 8 * 3 * 9 + 16 * 8 * 9 + 10 * 16 * 8 * 8
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "kind", "T", "arch", "wbits", "params", "test", "acc"]
    assert out[2].split() == ["tiny", "random-test", "5", "8C-P-16C-P-10", "8", "11,608",
                              "0.8125"]


def test_models_lists_a_broken_file(capsys, models_dir):
    (models_dir / "broken.npz").write_bytes(b"garbage")
    rep = _json(capsys, ["models", "--json"])
    assert [e["name"] for e in rep["models"]] == ["broken", "tiny"]
    assert "not a model file" in rep["models"][0]["error"]
    assert main(["models"]) == 0
    cap = capsys.readouterr()
    assert "INVALID" in cap.out and "broken: " in cap.err


def test_models_empty(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DIETSNN_MODELS", str(tmp_path))
    assert _json(capsys, ["models", "--json"]) == {"models": []}
    assert main(["models"]) == 0
    assert "no shipped models" in capsys.readouterr().out


def test_console_script(models_dir):
    exe = Path(sys.executable).parent / "dietsnn"
    if not exe.is_file():
        pytest.skip(f"console script not installed beside {sys.executable}")
    proc = subprocess.run([str(exe), "models", "--json"], capture_output=True, text=True,
                          env={**os.environ, "DIETSNN_MODELS": str(models_dir)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["models"][0]["name"] == "tiny"
    proc = subprocess.run([str(exe), "eval", "--model", "nothing-here"], capture_output=True,
                          text=True, env={**os.environ, "DIETSNN_MODELS": str(models_dir)},
                          timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().startswith("dietsnn eval: error: nothing-here")
