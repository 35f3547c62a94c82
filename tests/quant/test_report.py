"""Accuracy vs T from one causal run equals separate golden runs at each T."""

import json

import numpy as np
from dietsnn import golden
from dietsnn.cli import main
from dietsnn.model import load_model
from dietsnn.quant.report import accuracy_vs_t


def test_one_causal_run_equals_separate_runs(cifar_test):
    model = load_model("tiny")
    imgs, labels = cifar_test.images[:48], cifar_test.labels[:48]
    acc = accuracy_vs_t(model, imgs, labels, t_max=4, progress=False)
    q = model.input.quantize(imgs)
    for t in range(1, 5):
        pred = golden.run(model, q, timesteps=t).prediction
        assert acc[t] == np.mean(pred == labels)


def test_cli_writes_json_and_png(tmp_path, cifar_test, capsys):
    assert main(["accuracy-vs-t", "--model", "tiny", "--images", "16", "--tmax", "2",
                 "--out", str(tmp_path), "--json"]) == 0
    assert (tmp_path / "accuracy_vs_T.png").stat().st_size > 1000
    assert '"tiny"' in (tmp_path / "accuracy_vs_T.json").read_text()
    sel = json.loads(capsys.readouterr().out)["selection"]  # spread over the classes
    counts = list(sel["per_class"].values())
    assert sel["count"] == 16 and len(counts) == 10 and max(counts) - min(counts) <= 1
    assert json.loads((tmp_path / "accuracy_vs_T.json").read_text())["selection"] == sel
    assert main(["qat-check", "--model", "tiny", "--images", "16"]) == 0
    assert "bit-exact" in capsys.readouterr().out
