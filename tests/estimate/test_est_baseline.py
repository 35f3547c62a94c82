"""The hls4ml ANN baseline: the ANN's function, the normalisation, and a tiny real compile."""

from __future__ import annotations

import importlib.util
import re
import shutil

import numpy as np
import pytest
from dietsnn import golden
from dietsnn.estimate.baseline import (
    TARGET_MAX,
    baseline,
    build_ann,
    normalise,
    weight_precision,
)
from dietsnn.model import InputSpec
from dietsnn.topology import random_model

torch = pytest.importorskip("torch")


def tiny(seed=4):
    return random_model("4C-P-6C-P-10", seed=seed, input_spec=InputSpec(shape=(3, 8, 8)))


def q_images(m, n, seed=0):
    rng = np.random.default_rng(seed)
    return m.input.quantize(rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8))


def reference(m, q):
    """The ANN in numpy, exact integers: conv (golden.conv3x3), ReLU, 2x2 max-pool, linear."""
    x = q.astype(np.int64)
    for layer in m.layers:
        if layer.type == "pool":
            x = golden.pool_or(x)  # max over 2x2 windows: the same reshape works for ints
        else:
            x = golden.synapses(m, layer, x) if layer.type == "conv" else \
                x.reshape(len(x), -1) @ m.weights[layer.name].astype(np.int64).T
            if layer.is_lif:
                x = np.maximum(x, 0)
    return x


def test_ann_is_the_topology_with_relu_and_maxpool():
    m = tiny()
    q = q_images(m, 5)
    ann = build_ann(m)
    assert ann.order == ["conv1", "relu_conv1", "pool1", "conv2", "relu_conv2", "pool2",
                         "flatten", "out"]
    with torch.no_grad():
        y = ann(torch.tensor(q, dtype=torch.float32)).numpy().astype(np.float64)
    ref = reference(m, q).astype(np.float64)
    np.testing.assert_allclose(y, ref, rtol=1e-5)


def test_normalisation_keeps_predictions_and_bounds_activations():
    m = tiny()
    calib, q = q_images(m, 16, seed=1), q_images(m, 64, seed=2)
    ann, ks = normalise(m, calib)
    assert list(ks) == ["conv1", "conv2", "out"]
    with torch.no_grad():
        x = torch.tensor(calib, dtype=torch.float32) / 16
        h = x
        for name in ann.order:
            h = getattr(ann, name)(h)
            if name in ks:
                assert 0 < float(h.abs().max()) <= TARGET_MAX
        y = ann(torch.tensor(q, dtype=torch.float32) / 16).numpy()
    # positive homogeneity: the same argmax as the integer network
    assert (y.argmax(axis=1) == reference(m, q).argmax(axis=1)).all()
    # the weights are the integer weights times 2^(k_{l-1} - k_l), exactly
    w2 = ann.conv2.weight.detach().numpy().astype(np.float64)
    np.testing.assert_array_equal(w2 * 2.0 ** (ks["conv2"] - ks["conv1"]),
                                  m.weights["conv2"].astype(np.float64))


@pytest.mark.parametrize("bits, shift", [(8, 0), (8, -5), (8, -20), (8, 3), (4, -6)])
def test_weight_precision_holds_every_shifted_weight(bits, shift):
    w, i = map(int, re.fullmatch(r"ap_fixed<(\d+),(-?\d+)>", weight_precision(bits, shift))
               .groups())
    frac = w - i
    assert frac >= -shift                                 # resolution 2^shift reached
    assert 2.0 ** (i - 1) >= 2.0 ** (bits - 1 + shift)    # range holds -2^(B-1) * 2^shift


@pytest.mark.skipif(importlib.util.find_spec("hls4ml") is None or shutil.which("g++") is None,
                    reason="hls4ml or g++ missing (pip install hls4ml==1.3.0)")
def test_hls4ml_convert_and_compile_tiny(tmp_path, capfd):
    m = tiny()
    m.provenance["scales"] = {"input": 0.02, "weights": {"conv1": 0.01, "conv2": 0.003,
                                                         "out": 0.05}}
    rng = np.random.default_rng(7)
    im = rng.integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
    lab = rng.integers(0, 10, 40)
    r = baseline(m, im, lab, im[:16], out_dir=tmp_path, reuse_factor=4, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and "Interpreting Model" in err  # stdout stays free for --json
    assert r["images"] == 40 and r["hls4ml"]["io_type"] == "io_stream"
    assert r["agreement"]["hls4ml_vs_float_ann"] >= 0.95
    assert r["agreement"]["float_ann_vs_scaled"] == 1.0
    assert "provenance scales" in r["weights"]
    assert (tmp_path / "hls4ml_prj" / "build_prj.tcl").is_file()
    assert r["precision"]["weights"]["conv1"].startswith("ap_fixed<")


def test_ann_checkpoint_weights_and_units(tmp_path):
    from dietsnn.estimate.baseline import BaselineError, load_ann_checkpoint

    m = tiny()
    rng = np.random.default_rng(1)
    names = ["conv1", "conv2", "out"]
    sd = {f"weights.{i}": torch.tensor(rng.normal(0, 0.1, m.layer(n).weight_shape),
                                       dtype=torch.float32) for i, n in enumerate(names)}
    path = tmp_path / "ann.pt"
    torch.save({"model": sd, "epoch": 3}, path)
    w = load_ann_checkpoint(m, path)
    np.testing.assert_allclose(w["conv1"], sd["weights.0"].double().numpy() * m.input.scale)
    np.testing.assert_allclose(w["out"], sd["weights.2"].double().numpy())
    # the float ANN on q * scale and its normalised version on q / 16 agree
    q = q_images(m, 32, seed=3)
    ann, _ = normalise(m, q_images(m, 16, seed=4), w)
    float_ann = build_ann(m, {n: 1.0 for n in names})
    with torch.no_grad():
        for i, n in enumerate(names):
            getattr(float_ann, n).weight.data = sd[f"weights.{i}"]
        a = float_ann(torch.tensor(q * m.input.scale, dtype=torch.float32)).numpy()
        b = ann(torch.tensor(q / 16, dtype=torch.float32)).numpy()
    assert (a.argmax(axis=1) == b.argmax(axis=1)).all()
    torch.save({"model": {"weights.0": torch.zeros(2, 2)}}, path)
    with pytest.raises(BaselineError, match=r"entry 'model.weights.0' must be a \[4, 3, 3, 3\]"):
        load_ann_checkpoint(m, path)
