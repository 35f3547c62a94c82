"""The accelerator's per-layer table, the fit check before place and route, the HTML report and
``random:ARCH`` in ``dietsnn estimate`` (issue 14, item 3)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from dietsnn import golden
from dietsnn.estimate.energy import OpCounts, summarise
from dietsnn.estimate.layers import LayerTally
from dietsnn.estimate.pipeline import golden_stats, hardware
from dietsnn.estimate.report import write_report
from dietsnn.estimate.synth import Resources, Synthesis
from dietsnn.hw.accel.cycles import image_cycles
from dietsnn.hw.accel.plan import make_plan
from dietsnn.topology import random_model

ARCH = "8C-P-16C-16C-P-10"


def _images(n: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def test_layer_table_adds_up_to_the_cycle_model():
    model = random_model(ARCH, seed=2)
    im = _images(7)
    res = golden.run(model, model.input.quantize(im), record={"spikes"})
    tally = LayerTally(model, 8)
    tally.add(golden.run(model, model.input.quantize(im[:3]), record={"spikes"}))
    tally.add(golden.run(model, model.input.quantize(im[3:]), record={"spikes"}))
    ops = OpCounts()
    ops.add(model, res)
    t = tally.to_json(summarise(model, ops))
    plan = make_plan(model, 8)
    per = [image_cycles(model, res, i, lanes=8, plan=plan) for i in range(7)]
    rows = t["rows"]
    assert [r["layer"] for r in rows] == ["conv1 + pool1", "conv2", "conv3 + pool2", "out"]
    assert [r["unit"] for r in rows] == ["front", "engine", "engine", "output"]
    assert t["images"] == 7 and t["front_cycles"] == per[0].front
    assert rows[0]["cycles"]["mean"] == per[0].front and rows[0]["input_spikes"] is None
    # the back's rows add up to the back's cycles, image by image on average
    back = np.mean([c.back for c in per])
    assert sum(r["cycles"]["mean"] for r in rows[1:]) == pytest.approx(back)
    assert t["interval"]["mean"] == pytest.approx(np.mean([c.interval for c in per]))
    # input spikes: the spikes of the map each layer reads
    for r, src in zip(rows[1:], ("pool1", "conv2", "pool2"), strict=True):
        assert r["input_spikes"]["mean"] == pytest.approx(res.spike_counts[src].mean())
    # accumulates and MACs as the energy counts; LIF updates = neurons x T
    assert rows[0]["macs"] > 0 and rows[0]["accumulates"] == 0
    assert rows[1]["accumulates"] == pytest.approx(
        next(x for x in summarise(model, ops)["layers"] if x["name"] == "conv2")
        ["snn_acs"]["mean"])
    neurons = {x.name: x.neurons for x in model.layers}
    assert [r["lif_updates"] for r in rows] == [neurons["conv1"] * 5, neurons["conv2"] * 5,
                                                neurons["conv3"] * 5, 0]
    shares = [r["share"] for r in rows]
    assert shares[0] == pytest.approx(per[0].front / t["interval"]["mean"])
    assert sum(shares[1:]) == pytest.approx(back / t["interval"]["mean"])
    assert t["bottleneck"] == ("front" if per[0].front >= back else "back")


def test_golden_stats_tallies_layers_or_says_why():
    model = random_model(ARCH, seed=2)
    gs = golden_stats(model, _images(4), None, lanes=[8], layer_lanes=8, chunk=3,
                      progress=False)
    assert gs.layers is not None and gs.layers.images == 4 and gs.layer_error is None
    gs = golden_stats(model, _images(2), None, lanes=[], layer_lanes=3, progress=False)
    assert gs.layers is None and "lanes must be one of" in gs.layer_error


def _fake_synthesis(tmp_path, luts: int, dsp: int) -> Synthesis:
    return Synthesis(target="ice40", part="iCE40UP5K", top="t",
                     resources=Resources(luts=luts, ffs=10, dsp=dsp), components=[],
                     by_name=[], logic_depth=3, netlist=tmp_path / "n.json", seconds=0.0,
                     cached=True, log=tmp_path / "log.txt")


def test_no_place_and_route_after_a_failed_fit(monkeypatch, tmp_path):
    from dietsnn.estimate import pipeline
    from dietsnn.estimate.synth import Design

    def never(*a, **kw):
        raise AssertionError("place and route must not run for a design that does not fit")

    monkeypatch.setattr(pipeline, "synthesize",
                        lambda *a, **kw: _fake_synthesis(tmp_path, luts=6000, dsp=9))
    monkeypatch.setattr(pipeline, "place_and_route", never)
    hw = hardware(random_model("4C-P-10", seed=0), 4, "ice40",
                  source=lambda m, n: Design("", "t"))
    note = hw["timing"]["note"]
    assert hw["timing"]["fmax_mhz"] is None and "\n" not in note
    assert note.startswith("no place and route: does not fit iCE40UP5K: luts 114%, dsp 112%")
    assert note.endswith("(within: ffs 0%, bram 0%, spram 0%)")
    assert [f["fits"] for f in hw["fits"]] == [False, False]


def test_estimate_accepts_random_arch_and_writes_html(monkeypatch, tmp_path, capsys):
    from dietsnn.cli import main

    def fake_images(model, n, data, **kw):
        from dietsnn.selection import selection_record

        return (_images(n, 1), np.arange(n) % 10,
                selection_record(np.arange(n), split="test", total=n))

    monkeypatch.setattr("dietsnn.estimate.commands._images", fake_images)
    rc = main(["estimate", "--model", f"random:{ARCH}:4", "--images", "5", "--no-synth",
               "--lanes", "8", "--clock-mhz", "50", "--json", "--report", str(tmp_path)])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model"]["name"] == f"random-{ARCH}-seed4"
    lat = r["latency"]
    assert lat["clock_mhz"] == 50 and "user-given" in lat["clock_source"]
    assert lat["images_per_s"] == pytest.approx(50e6 / lat["cycles"]["mean"])
    assert r["layers"]["lanes"] == 8 and len(r["layers"]["rows"]) == 4
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    # self-contained: every image is inline, nothing is fetched
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) >= 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1])[:4] == b"\x89PNG"
    assert "layers.png" in {p.split("/")[-1] for p in r["report_files"]}
    md = (tmp_path / "report.md").read_text()
    assert "## Per layer (8 lanes, mean of 5 images)" in md and "| conv2 | engine |" in md

    rc = main(["estimate", "--model", "random:8Q-10", "--no-synth"])
    err = capsys.readouterr().err
    assert rc == 1 and "random:ARCH[:SEED]" in err and err.count("\n") == 1


def test_report_without_layers_or_clock(tmp_path):
    """A custom cycle model has no per-layer table; no clock means no time figures."""
    model = random_model("4C-P-10", seed=0)
    from dietsnn.estimate.pipeline import estimate

    r = estimate(model, _images(2), None, lanes=4, synth=False,
                 cycle_model=lambda m, res, n: np.full(len(res.logits), 1000),
                 progress=False)
    assert r["layers"] is None and "latency_us" not in r["latency"]
    names = {p.name for p in write_report(r, tmp_path)}
    assert "layers.png" not in names and "report.html" in names
