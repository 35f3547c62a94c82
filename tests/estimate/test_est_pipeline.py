"""The estimate pipeline, the report, the sweep and the CLI, with a pluggable small design."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from dietsnn.estimate.pipeline import estimate, golden_stats, latency
from dietsnn.estimate.report import summary_table, write_report
from dietsnn.estimate.sweep import pareto, sweep, write_sweep
from dietsnn.estimate.synth import Design
from dietsnn.model import InputSpec
from dietsnn.topology import random_model
from estimate_support import adder_tree, needs_ecp5, needs_yosys

CYCLES = {2: 500, 4: 600, 8: 100, 16: 50}


def small():
    return random_model("4C-P-10", seed=1, input_spec=InputSpec(shape=(3, 8, 8)))


def images(n=6):
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8), rng.integers(0, 10, n)


def source(model, lanes):
    if lanes == 16:  # a broken design: one failed point must not stop a sweep
        return Design("module broken(input a, output y); assign y = ; endmodule\n", "broken")
    return adder_tree(lanes)


def cycle_model(model, result, lanes):
    # depends on the real spikes of this chunk, like the accelerator's model
    return CYCLES[lanes] + result.spike_counts["conv1"]


def test_pareto():
    assert pareto([(1, 10), (2, 5), (3, 6), (4, 1), (4, 1)]) == [True, True, False, True, True]
    assert pareto([]) == []


def test_latency_figures():
    r = latency(np.array([100, 300]), 50.0, "nextpnr Fmax")
    assert r["cycles"]["mean"] == 200 and r["latency_us"]["max"] == 6.0
    assert r["images_per_s"] == pytest.approx(50e6 / 200)
    assert "latency_us" not in latency(np.array([5]), None, "none")
    assert latency(None, 10.0, "x")["cycles"] is None


def test_golden_stats_cycles_and_errors():
    im, lab = images(7)
    gs = golden_stats(small(), im, lab, lanes=[2, 8], cycle_model=cycle_model, chunk=3,
                      progress=False)
    assert gs.images == 7 and len(gs.cycles[2]) == 7 and gs.cycle_errors == {}
    assert (gs.cycles[8] - gs.cycles[2] == 100 - 500).all()

    def broken(model, result, lanes):
        raise NotImplementedError

    gs = golden_stats(small(), im, None, lanes=[4], cycle_model=broken, progress=False)
    assert gs.cycles == {} and gs.cycle_errors[4] == "cycle model failed: NotImplementedError"


@needs_ecp5
def test_estimate_and_report(tool_cache, tmp_path):
    im, lab = images()
    r = estimate(small(), im, lab, lanes=4, target="ecp5", part="LFE5U-25F", source=source,
                 cycle_model=cycle_model, progress=False)
    assert r["config"] == {"lanes": 4, "target": "ecp5", "part": "LFE5U-25F", "images": 6}
    assert r["synthesis"]["resources"]["luts"] > 10
    assert [f["part"] for f in r["fits"]] == ["LFE5U-25F", "LFE5U-45F", "LFE5U-85F"]
    assert all(f["fits"] for f in r["fits"])
    fmax = r["timing"]["fmax_mhz"]
    assert fmax and r["latency"]["clock_source"] == "nextpnr Fmax"
    cyc = r["latency"]["cycles"]["mean"]
    assert cyc >= 600
    assert r["latency"]["latency_us"]["mean"] == pytest.approx(cyc / fmax)
    assert r["energy"]["images"] == 6 and r["accuracy"]["images"] == 6
    json.dumps(r)  # plain JSON
    text = summary_table(r)
    assert "fits LFE5U-25F" in text and "MHz" in text and "ANN/SNN" in text
    files = write_report(r, tmp_path / "rep", command="dietsnn estimate ...")
    names = sorted(p.name for p in files)
    assert names == ["energy.png", "report.html", "report.json", "report.md", "resources.png",
                     "spike_rate.png"]
    for p in files:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            # the page holds every plot itself, byte for byte
            page = (tmp_path / "rep" / "report.html").read_text()
            assert base64.b64encode(p.read_bytes()).decode() in page
    assert json.loads((tmp_path / "rep" / "report.json").read_text()) == r
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Resources per component" in md and "![energy.png](energy.png)" in md


@needs_yosys
def test_xc7_says_timing_needs_vendor_tools(tool_cache, tmp_path):
    im, lab = images(2)
    m = small()
    m.metrics["accuracy_vs_T"] = {"1": 0.2, "3": 0.5, "5": 0.6}
    r = estimate(m, im, lab, lanes=2, target="xc7", source=source, cycle_model=cycle_model,
                 clock_mhz=100.0, progress=False)
    assert r["timing"]["fmax_mhz"] is None and "vendor tools" in r["timing"]["note"]
    assert r["timing"]["logic_depth"] > 1
    assert r["latency"]["clock_source"] == "--clock-mhz (user-given, not measured)"
    assert r["latency"]["clock_mhz"] == 100 and r["latency"]["images_per_s"] > 0
    assert r["model"]["accuracy_vs_T"] == {"1": 0.2, "3": 0.5, "5": 0.6}
    names = {p.name for p in write_report(r, tmp_path)}
    assert "accuracy_vs_T.png" in names
    assert "vendor tools" in (tmp_path / "report.md").read_text()


@needs_yosys
def test_sweep_pareto_and_files(tool_cache, tmp_path):
    im, lab = images(3)
    sel = {"split": "test", "mode": "spread", "count": 3, "sha256": "ab" * 32}
    s = sweep(small(), im, lab, lanes=[2, 4, 8, 16], target="ecp5", source=source,
              cycle_model=cycle_model, pnr=False, progress=False, selection=sel)
    assert s["selection"] == sel
    rows = {r["lanes"]: r for r in s["rows"]}
    assert s["latency_unit"] == "cycles"
    assert rows[2]["luts"] < rows[4]["luts"] < rows[8]["luts"]
    assert (rows[2]["pareto"], rows[4]["pareto"], rows[8]["pareto"]) == (True, False, True)
    assert "yosys failed" in rows[16]["error"] and not rows[16]["pareto"]
    files = write_sweep(s, tmp_path / "sw")
    assert sorted(p.name for p in files) == ["pareto.png", "sweep.json", "sweep.md"]
    assert "| 4 |" in (tmp_path / "sw" / "sweep.md").read_text()


def test_cli_estimate_json_without_synthesis(monkeypatch, tmp_path, capsys):
    from dietsnn.cli import main

    m = random_model("4C-P-10", seed=0)
    path = m.save(tmp_path / "m.npz")

    def fake_images(model, n, data, **kw):
        from dietsnn.selection import selection_record

        rng = np.random.default_rng(0)
        rec = selection_record(np.arange(n), split="test", total=n)
        return (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n),
                rec)

    monkeypatch.setattr("dietsnn.estimate.commands._images", fake_images)
    rc = main(["estimate", "--model", str(path), "--images", "3", "--no-synth", "--json",
               "--report", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("\n") == 1
    r = json.loads(out)
    assert r["config"]["images"] == 3 and "synthesis" not in r
    assert r["selection"]["count"] == 3 and r["selection"]["indices"] == [0, 1, 2]
    # conv1: 3 -> 4 channels, 2 + 3 * 30 + 2 = 94 taps per axis; out: 4*16*16 -> 10
    assert r["energy"]["ann_macs"] == 4 * 3 * 94 * 94 + 4 * 16 * 16 * 10
    assert (tmp_path / "r" / "report.md").is_file()
