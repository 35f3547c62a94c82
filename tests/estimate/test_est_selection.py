"""estimate, sweep and baseline run representative images and record which (issue 14)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dietsnn.data import Dataset
from dietsnn.model import CIFAR10_CLASSES
from dietsnn.selection import indices_sha256, select_images
from dietsnn.topology import random_model


def _sorted_split(split: str, n_per_class: int) -> Dataset:
    """A class-sorted split like the JPEG archive's; image i holds the value i % 251."""
    labels = np.repeat(np.arange(10), n_per_class)
    images = (np.arange(len(labels)) % 251).astype(np.uint8)[:, None, None, None]
    images = np.broadcast_to(images, (len(labels), 3, 32, 32)).copy()
    return Dataset(images, labels, CIFAR10_CLASSES, f"fake-{split}", split)


@pytest.fixture
def fake_cifar(monkeypatch):
    splits = {"test": _sorted_split("test", 100), "train": _sorted_split("train", 500)}
    loaded = []

    def load(split="train", data=None, **kw):
        loaded.append(split)
        return splits[split]

    monkeypatch.setattr("dietsnn.data.load_cifar10", load)
    return loaded


def test_estimate_spreads_its_images_and_records_them(fake_cifar, tmp_path, capsys):
    from dietsnn.cli import main

    path = random_model("4C-P-10", seed=0).save(tmp_path / "m.npz")
    assert main(["estimate", "--model", str(path), "--images", "20", "--no-synth",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    sel = r["selection"]
    assert sel["split"] == "test" and sel["mode"] == "spread" and sel["count"] == 20
    assert sel["indices"] == select_images(1000, 20).tolist()
    assert sel["per_class"] == {str(c): 2 for c in range(10)}
    assert r["config"]["images"] == 20 and fake_cifar == ["test"]

    assert main(["estimate", "--model", str(path), "--images", "30", "--no-synth", "--json",
                 "--select", "stratified", "--seed", "5"]) == 0
    r = json.loads(capsys.readouterr().out)
    labels = np.repeat(np.arange(10), 100)
    want = select_images(labels, 30, mode="stratified", seed=5)
    assert r["selection"]["sha256"] == indices_sha256(want)
    assert "--select stratified --seed 5" in r["command"]


def test_baseline_calibrates_on_the_training_split(fake_cifar, monkeypatch, tmp_path, capsys):
    from dietsnn.cli import main

    seen = {}

    def fake_baseline(model, images, labels, calib, **kw):
        seen.update(images=images, labels=labels, calib=calib)
        return {"images": len(labels), "precision": {"activations": "a"},
                "accuracy": {"hls4ml": 0.5, "float_ann": 0.5, "snn_golden": 0.5},
                "agreement": {"hls4ml_vs_float_ann": 1.0}, "weights": "w",
                "hls4ml": {"version": "x", "project": "p"}, "seconds": {"compile": 0}}

    monkeypatch.setattr("dietsnn.estimate.baseline.baseline", fake_baseline)
    path = random_model("4C-P-10", seed=0).save(tmp_path / "m.npz")
    assert main(["baseline", "--model", str(path), "--images", "50", "--out",
                 str(tmp_path / "b"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["selection"]["split"] == "test" and r["selection"]["per_class"] == {
        str(c): 5 for c in range(10)}
    cal = r["calibration"]
    assert cal["split"] == "train" and cal["mode"] == "stratified" and cal["count"] == 64
    assert cal["per_class"] == {str(c): 7 if c < 4 else 6 for c in range(10)}
    # the calibration images are the training images the record names
    train = _sorted_split("train", 500)
    np.testing.assert_array_equal(seen["calib"], train.images[cal["indices"]])
    assert json.loads((tmp_path / "b" / "baseline.json").read_text())["calibration"] == cal
