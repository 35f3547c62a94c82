"""Operation counts, energy and sparsity, checked by hand on a small network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dietsnn import golden
from dietsnn.estimate.energy import (
    HOROWITZ_45NM,
    EnergyTableError,
    OpCounts,
    fanout_map,
    load_energy_table,
    summarise,
    synapses,
)
from dietsnn.model import InputSpec, Layer, Model
from dietsnn.topology import random_model


def small_model() -> Model:
    """1x4x4 image -> conv 2ch -> pool -> linear 3 (output)."""
    spec = InputSpec(shape=(1, 4, 4), mean=(0.5,), std=(0.25,), scale=1 / 16, bits=8)
    layers = (
        Layer("conv1", "conv", (1, 4, 4), (2, 4, 4), weight_bits=8, membrane_bits=16,
              leak_shift=0, threshold=10),
        Layer("pool1", "pool", (2, 4, 4), (2, 2, 2)),
        Layer("out", "linear", (8,), (3,), weight_bits=8, output=True),
    )
    rng = np.random.default_rng(3)
    w = {"conv1": rng.integers(-5, 6, (2, 1, 3, 3)).astype(np.int8),
         "out": rng.integers(-5, 6, (3, 8)).astype(np.int8)}
    return Model("small", 2, spec, layers, w, classes=("a", "b", "c"), kind="random-test")


def test_synapse_counts_by_hand():
    m = small_model()
    conv, out = m.layer("conv1"), m.layer("out")
    # 4x4 map, 3x3 pad 1: rows see 2,3,3,2 outputs -> 10 per axis; 2 outputs x 1 input channel
    assert fanout_map(conv)[0].tolist() == [[8, 12, 12, 8], [12, 18, 18, 12],
                                            [12, 18, 18, 12], [8, 12, 12, 8]]
    assert synapses(conv) == 2 * 1 * 10 * 10
    assert synapses(out) == 8 * 3
    # a 1x1 map: only the centre tap exists
    one = Layer("c", "conv", (3, 1, 1), (5, 1, 1), weight_bits=8, membrane_bits=16,
                leak_shift=0, threshold=1)
    assert synapses(one) == 15


def test_ops_energy_and_sparsity_on_hand_made_spikes():
    m = small_model()
    # two images, T=2; pooled spikes [N, T, 2, 2, 2] written by hand
    pool = np.zeros((2, 2, 2, 2, 2), np.uint8)
    pool[0, 0, 0, 0, 0] = 1
    pool[0, 1, 1, 1, 1] = 1
    pool[0, 1, 0, 1, 0] = 1          # image 0: 3 spikes
    conv = np.zeros((2, 2, 2, 4, 4), np.uint8)
    conv[0, 0, 0, 0, 0] = conv[0, 1, 1, 3, 3] = conv[0, 1, 0, 2, 0] = 1
    conv[1, 0, 1, 1, 1] = 1          # image 1: conv spike that pool would keep...
    pool[1, 0, 1, 0, 0] = 1          # ... as 1 pooled spike
    res = golden.Result(logits=np.zeros((2, 3), np.int64), prediction=np.zeros(2, np.int64),
                        spikes={"conv1": conv, "pool1": pool},
                        spike_counts={"conv1": np.array([3, 1]), "pool1": np.array([3, 1])})
    c = OpCounts()
    c.add(m, res)
    s = summarise(m, c)
    # output layer: every pooled spike reaches 3 outputs
    assert np.concatenate(c.acs["out"]).tolist() == [9, 3]
    assert s["snn_macs"] == 200 and s["ann_macs"] == 224
    assert s["snn_acs"]["mean"] == 6.0
    e = s["energy"]["fp32"]
    assert e["snn_pj"] == pytest.approx(200 * 4.6 + 6 * 0.9)
    assert e["ann_pj"] == pytest.approx(224 * 4.6)
    assert s["headline"] == e and s["precision"] == "fp32"
    assert s["energy"]["int8"]["snn_pj"] == pytest.approx(200 * 0.23 + 6 * 0.03)
    layers = {x["name"]: x for x in s["layers"]}
    # conv1: 32 neurons x T=2 per image; rates 3/64 and 1/64
    assert layers["conv1"]["spike_rate"]["mean"] == pytest.approx((3 / 64 + 1 / 64) / 2)
    assert layers["pool1"]["spike_rate"]["max"] == pytest.approx(3 / 16)
    assert layers["pool1"]["sparsity"] == pytest.approx(1 - (3 / 16 + 1 / 16) / 2)


def _brute_force_acs(layer, spikes_in: np.ndarray) -> np.ndarray:
    """Accumulates per image by enumerating every output neuron and kernel tap."""
    n = spikes_in.shape[0]
    out = np.zeros(n, np.int64)
    if layer.type == "linear":
        return spikes_in.reshape(n, -1).sum(axis=1, dtype=np.int64) * layer.out_shape[0]
    c, h, w = layer.in_shape
    for y in range(h):
        for x in range(w):
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w:
                        hits = spikes_in[:, :, :, yy, xx].sum(axis=(1, 2), dtype=np.int64)
                        out += hits * layer.out_shape[0]
    return out


def test_ops_from_golden_match_brute_force():
    m = random_model("4C-P-6C-P-10", seed=2, input_spec=InputSpec(shape=(3, 8, 8)))
    rng = np.random.default_rng(0)
    q = m.input.quantize(rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8))
    res = golden.run(m, q, record={"spikes"})
    c = OpCounts()
    c.add(m, res)
    assert np.concatenate(c.acs["conv2"]).tolist() == \
        _brute_force_acs(m.layer("conv2"), res.spikes["pool1"]).tolist()
    assert np.concatenate(c.acs["out"]).tolist() == \
        _brute_force_acs(m.layer("out"), res.spikes["pool2"]).tolist()
    assert c.macs == {"conv1": 4 * 3 * 22 * 22}  # 8x8 map: 2+3*6+2 = 22 per axis
    # counts accumulate over chunks exactly as over one batch
    c2 = OpCounts()
    for i in (0, 4):
        c2.add(m, golden.run(m, q[i:i + 4], record={"spikes"}))
    assert summarise(m, c2) == summarise(m, c)


def test_energy_table_file(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps(HOROWITZ_45NM.to_json()))
    assert load_energy_table(p) == HOROWITZ_45NM
    p.write_text(json.dumps({"ops": {"x": {"mac": 2.0, "add": 1.0}}}))
    t = load_energy_table(p)
    assert t.default == "x" and t.name == "t"
    for bad, msg in [("{", "not valid JSON"), ("[]", "must be a JSON object"),
                     ('{"ops": {}}', "field 'ops'"),
                     ('{"ops": {"a": {"mac": -1, "add": 1}}}', "field 'ops.a'"),
                     ('{"ops": {"a": {"mac": 1, "add": 1}}, "default": "b"}',
                      "field 'default' must be one of"),
                     ('{"ops": {"a": {"mac": 1, "add": 1}}, "unit": "nJ"}', "field 'unit'")]:
        p.write_text(bad)
        with pytest.raises(EnergyTableError, match=msg):
            load_energy_table(p)
    with pytest.raises(EnergyTableError, match="no such file"):
        load_energy_table(tmp_path / "missing.json")
