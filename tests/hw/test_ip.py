"""The accelerator's IP folder (``dietsnn rtl --target accel``, :mod:`dietsnn.hw.accel.ip`).

The shipped ``tiny`` model at 8 lanes with two spread test images: the folder holds one
Verilog module per component under the names of docs/accelerator.md, lint-clean under
``verilator --lint-only -Wall`` with the recorded waivers (run as the IP's README says, from
the folder's own ``lint_waivers.vlt`` and ``sources.f``) and yosys ``check``; its weight ROM
files decode to the model file's weights exactly (decoded here from the documented layout,
not through the plan's packing code); its plain-Verilog testbench passes under Icarus without
Python and fails, naming the mismatch, on a wrong expectation; the FuseSoC core parses and
sets up its targets; ``fmax.sh`` is valid shell and its RAM output register step runs
without dietsnn. Unit tests of the Verilog post-processing and the WaveDrom helpers need no
tools.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dietsnn.hw import lint, tools
from dietsnn.hw.accel.ipdocs import module_role, timing_diagram
from dietsnn.hw.accel.ipverilog import icarus_kick, memory_files, split_modules
from dietsnn.hw.wavedrom import GAP, wave
from dietsnn.model import load_model

LANES = 8
TB_IMAGES = 2
CLI = [sys.executable, "-c", "import sys; from dietsnn.cli import main; sys.exit(main())"]


def fusesoc() -> str | None:
    exe = Path(sys.executable).parent / "fusesoc"
    return str(exe) if exe.is_file() else shutil.which("fusesoc")


@pytest.fixture(scope="module")
def model():
    return load_model("tiny")


@pytest.fixture(scope="module")
def ip(model, tmp_path_factory):
    """The IP folder of ``tiny`` (8 lanes, two test images), written by the command line."""
    from dietsnn.data import DataError, load_cifar10
    try:
        load_cifar10(split="test", progress=False)
    except (DataError, OSError) as e:
        pytest.skip(f"CIFAR-10 test set not available: {e}")
    out = tmp_path_factory.mktemp("ip") / "tiny_ip"
    r = subprocess.run([*CLI, "rtl", "--target", "accel", "--model", "tiny", "--lanes",
                        str(LANES), "--tb-images", str(TB_IMAGES), "--out", str(out),
                        "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    params = json.loads((out / "params.json").read_text())
    return out, params, summary


def test_folder_contents_and_module_names(ip):
    out, params, summary = ip
    info = params["ip"]
    name = info["name"]
    assert name == "dietsnn_accel" == summary["top"] == params["top"]
    for f in info["files"]:
        assert (out / f).is_file(), f
    # one module per component, each described in ipdocs.MODULE_ROLES and named in the module
    # table of docs/accelerator.md
    assert info["modules"][0] == name and len(set(info["modules"])) == len(info["modules"])
    docs = (Path(__file__).resolve().parents[2] / "docs" / "accelerator.md").read_text()
    for m in info["modules"]:
        assert module_role(name, m)[0], f"{m}: add it to hw/accel/ipdocs.MODULE_ROLES"
        doc_name = re.sub(r"_(M0|M1|P0|P1)$", "_<map>", m)
        assert f"| `{doc_name}` |" in docs, f"{m}: add it to docs/accelerator.md's module table"
    for unit in ("framer", "front", "front_lif", "scanner", "engine", "engine_lif", "writer",
                 "outunit", "streamer"):
        assert f"{name}_{unit}" in info["modules"], unit
    assert (out / "sources.f").read_text().split() == info["verilog"]
    for v in info["verilog"]:
        text = (out / v).read_text()
        mods = re.findall(r"^module\s+(\S+?)\s*\(", text, re.M)
        assert mods == [v[:-2]], (v, mods)
        assert "\\dietsnn_accel." not in text            # no escaped hierarchical names
        # no memory contents written word by word
        assert not re.search(r"^\s*\S+\[\d+\] = \d+'[hdb][0-9a-fA-F]+;$", text, re.M), v
        for f in re.findall(r'\$readmemh\("([^"]+)"', text):
            assert (out / f).is_file(), f
    assert {re.sub(r"\d+$", "", m["memory"]) for m in info["memories"]} == \
        {"wfront", "wmem", "wout"}
    assert info["ports"][:2] == [{"name": "clk", "dir": "input", "width": 1},
                                 {"name": "rst", "dir": "input", "width": 1}]
    assert len(info["testbench"]["images"]) == TB_IMAGES
    assert (out / "timing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = (out / "README.md").read_text()
    for text in ("synchronous and active high", "AXI4-Stream", "timing.png", "fmax.sh",
                 f"{info['cycles']['front']:,}", "`s_axis__tready`"):
        assert text in readme, text
    assert "create_clock" in (out / info["xdc"]).read_text()


def _words(path: Path, width: int, depth: int) -> list[int]:
    """The words of a ``$readmemh`` file (``@addr`` lines honoured)."""
    words = [0] * depth
    addr = 0
    for tok in path.read_text().split():
        if tok.startswith("@"):
            addr = int(tok[1:], 16)
            continue
        v = int(tok, 16)
        assert v < 1 << width
        words[addr] = v
        addr += 1
    assert addr == depth
    return words


def _lanes(word: int, n: int, bits: int) -> list[int]:
    """``n`` signed ``bits``-bit fields of ``word``, field 0 in the low bits."""
    out = []
    for e in range(n):
        v = (word >> (e * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


def _rom(out: Path, params: dict, name: str) -> list[list[int]]:
    """Rows of weight ROM ``name`` as signed weights: the fields of ``<name>`` or of its parts
    ``<name>0``, ``<name>1``, ... (lane groups) joined in order."""
    wb = params["weight_bits"]
    parts = sorted((m for m in params["ip"]["memories"]
                    if re.fullmatch(rf"{name}(\d*)", m["memory"])),
                   key=lambda m: int(m["memory"][len(name):] or 0))
    assert parts, f"no memory {name}: {[m['memory'] for m in params['ip']['memories']]}"
    assert len({m["depth"] for m in parts}) == 1
    rows = [[] for _ in range(parts[0]["depth"])]
    for m in parts:
        assert m["width"] % wb == 0
        for r, word in enumerate(_words(out / m["file"], m["width"], m["depth"])):
            rows[r] += _lanes(word, m["width"] // wb, wb)
    return rows


def test_memory_files_reproduce_the_model_weights(ip, model):
    out, params, _ = ip
    L = params["lanes"]
    assert {re.sub(r"\d+$", "", m["memory"]) for m in params["ip"]["memories"]} == \
        {"wfront", "wmem", "wout"}
    read = {k: _rom(out, params, k) for k in ("wfront", "wmem", "wout")}

    # front ROM: row g*C_in*9 + c*9 + ky*3 + kx, lane l = W[g*L + l, c, ky, kx]
    f = params["front"]
    w = model.weights[f["name"]]
    got = np.zeros((f["g"] * L, f["c_in"], 3, 3), np.int64)
    for g in range(f["g"]):
        for c in range(f["c_in"]):
            for t in range(9):
                row = read["wfront"][g * f["c_in"] * 9 + c * 9 + t]
                assert len(row) == L
                got[g * L:(g + 1) * L, c, t // 3, t % 3] = row
    assert np.array_equal(got[:f["c_out"]], w) and not got[f["c_out"]:].any()

    # engine ROM: row = 9 taps x L lanes; conv stage row wbase + g*C_in + c
    assert params["stages"] and all(s["kind"] == "conv" for s in params["stages"])
    for s in params["stages"]:
        got = np.zeros((s["g"] * L, s["c_in"], 3, 3), np.int64)
        for g in range(s["g"]):
            for c in range(s["c_in"]):
                row = read["wmem"][s["wbase"] + g * s["c_in"] + c]
                assert len(row) == 9 * L
                for t in range(9):
                    got[g * L:(g + 1) * L, c, t // 3, t % 3] = row[t * L:(t + 1) * L]
        assert np.array_equal(got[:s["c_out"]], model.weights[s["name"]]), s["name"]
        assert not got[s["c_out"]:].any()

    # output ROM: row j*L + b (map word j = (y*W + x)*G + c // L, bit b = c % L) holds
    # W[k, (c*H + y)*W + x] of every class k
    o, last = params["out"], params["stages"][-1]
    c_in, h, wd = last["c_out"], last["ho"], last["wo"]
    gg = -(-c_in // L)
    wout = model.weights[o["name"]]
    got = np.zeros_like(wout, dtype=np.int64)
    used = set()
    for c in range(c_in):
        for y in range(h):
            for x in range(wd):
                row = ((y * wd + x) * gg + c // L) * L + c % L
                used.add(row)
                assert len(read["wout"][row]) == o["classes"]
                got[:, (c * h + y) * wd + x] = read["wout"][row]
    assert np.array_equal(got, wout)
    assert not any(any(read["wout"][r]) for r in range(len(read["wout"])) if r not in used)


@pytest.mark.skipif(tools.verilator() is None, reason="verilator is not installed")
def test_verilator_lint_with_the_recorded_waivers(ip):
    out, params, _ = ip
    info = params["ip"]
    # the README's command, from the folder's own files
    assert (out / info["waivers"]).read_text() == lint.waiver_config(lint.ACCEL_WAIVERS)
    r = subprocess.run([tools.verilator(), "--lint-only", "-Wall", "--top-module",
                        info["name"], info["waivers"], "-f", "sources.f"], cwd=out,
                       capture_output=True, text=True, env=tools.env_with_verilator())
    issues = [x for x in (r.stdout + r.stderr).splitlines() if x.startswith("%")]
    assert r.returncode == 0 and not issues, issues[:10]
    # and through the library's lint flow (the same waivers)
    res = lint.verilator_lint([out / v for v in info["verilog"]], info["name"],
                              waivers=lint.ACCEL_WAIVERS)
    assert res.ok, res.issues[:10]


@pytest.mark.skipif(tools.yosys() is None, reason="yosys is not installed")
def test_yosys_check(ip):
    out, params, _ = ip
    info = params["ip"]
    res = lint.yosys_check([out / v for v in info["verilog"]], info["name"],
                           data_files=[out / m["file"] for m in info["memories"]])
    assert res.ok, res.issues[:10]


def _icarus(folder: Path, *plusargs: str) -> subprocess.CompletedProcess:
    info = json.loads((folder / "params.json").read_text())["ip"]
    tb = info["testbench"]["verilog"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if Path(sys.executable).parent != Path(p))
    r = subprocess.run(["iverilog", "-g2012", "-o", "tb.vvp", "-c", "sources.f", tb],
                       cwd=folder, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert not r.stderr.strip(), r.stderr   # no warnings either
    return subprocess.run(["vvp", "-n", "tb.vvp", *plusargs], cwd=folder, capture_output=True,
                          text=True, env=env, timeout=900)


@pytest.mark.skipif(tools.icarus() is None, reason="Icarus Verilog is not installed")
def test_plain_verilog_testbench_passes_under_icarus(ip, tmp_path):
    out, params, _ = ip
    folder = tmp_path / "copy"            # a designer's copy of the folder
    shutil.copytree(out, folder)
    r = _icarus(folder)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[-1].startswith(f"PASS: {TB_IMAGES} images"), r.stdout[-2000:]
    for img in params["ip"]["testbench"]["images"]:
        assert any(f"(test index {img['index']}, label {img['label']}): class "
                   f"{img['class']}," in x for x in lines)
    assert "FAIL" not in r.stdout


@pytest.mark.skipif(tools.icarus() is None, reason="Icarus Verilog is not installed")
def test_testbench_reports_the_first_mismatch(ip, tmp_path):
    out, params, _ = ip
    folder = tmp_path / "bad"
    shutil.copytree(out, folder)
    expect = folder / params["ip"]["testbench"]["expect"]
    words = expect.read_text().split()
    words[4] = f"{(int(words[4], 16) + 1) & 0xFFFFFFFF:08x}"     # image 0, logit 1
    expect.write_text("\n".join(words) + "\n")
    r = _icarus(folder, "+images=1", "+nostall")
    assert r.returncode != 0
    assert "FAIL: image 0" in r.stdout and "logit 1 is" in r.stdout, r.stdout[-2000:]
    assert "PASS" not in r.stdout


@pytest.mark.skipif(fusesoc() is None, reason="fusesoc is not installed")
def test_fusesoc_parses_the_core_and_sets_up_its_targets(ip, tmp_path):
    out, params, _ = ip
    info = params["ip"]
    r = subprocess.run([fusesoc(), "--cores-root", str(out), "core-info", info["vlnv"]],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert info["vlnv"] in r.stdout
    for target in ("default", "sim", "lint", "synth_vivado"):
        assert re.search(rf"^{target}\s*:", r.stdout, re.M), (target, r.stdout)
    r = subprocess.run([fusesoc(), "--cores-root", str(out), "run", "--setup", "--build-root",
                        str(tmp_path / "fs"), "--target", "sim", info["vlnv"]],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    work = next((tmp_path / "fs").glob("*/sim"))
    for f in [m["file"] for m in info["memories"]] + [info["testbench"]["stimulus"],
                                                     info["testbench"]["expect"]]:
        assert (work / f).is_file(), f          # copyto: beside the simulation


def test_fmax_script_is_valid_and_its_outreg_step_needs_no_dietsnn(ip, tmp_path):
    out, params, _ = ip
    info = params["ip"]
    script = out / info["fmax"]["script"]
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    for m in info["modules"]:
        assert m in text
    code = re.sub(r"#.*", "", text).replace(info["name"], "NAME").replace(info["fmax"]["top"], "W")
    assert "dietsnn" not in code and "python3 ecp5_outreg.py" in code
    lpf = (out / info["fmax"]["lpf"]).read_text()
    assert 'FREQUENCY PORT "clk"' in lpf and lpf.count("LOCATE COMP") == 5
    wrap = (out / info["fmax"]["wrapper"]).read_text()
    assert f"{info['name']} u_dut" in wrap
    # the RAM output register step: stdlib only, run in isolation on a trivial netlist
    nl = tmp_path / "netlist.json"
    nl.write_text(json.dumps({"modules": {"top": {"cells": {}, "ports": {}}}}))
    shutil.copy(out / info["fmax"]["outreg"], tmp_path / "outreg.py")
    r = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "outreg.py"), str(nl)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "0 flip-flops moved" in r.stdout


def test_run_fmax_records_the_scripts_figure(ip, tmp_path):
    from dietsnn.hw.accel.ip import FmaxError, run_fmax
    out, _, _ = ip
    folder = tmp_path / "fmax"
    shutil.copytree(out, folder)
    report = {"fmax": {"clk": {"achieved": 97.75, "constraint": 200}},
              "utilization": {"TRELLIS_COMB": {"used": 17961, "available": 24288},
                              "DP16KD": {"used": 16, "available": 56},
                              "ALU54B": {"used": 0, "available": 14}}}
    (folder / "fmax.sh").write_text(
        "mkdir -p fmax_build\n"
        f"echo '{json.dumps(report)}' > fmax_build/report.json\n"
        "echo 'Fmax 97.8 MHz: 3532 images/s at 27675.0 clocks per image'\n")
    fig = run_fmax(folder)
    assert fig["fmax_mhz"] == 97.8 and fig["part"] == "LFE5U-85F"
    assert set(fig["utilisation"]) == {"TRELLIS_COMB", "DP16KD"}
    readme = (folder / "README.md").read_text()
    assert "**97.8 MHz** on the LFE5U-85F (measured by this folder's fmax.sh)" in readme
    assert "17,961 of 24,288" in readme
    assert json.loads((folder / "params.json").read_text())["ip"]["fmax_result"]["fmax_mhz"] \
        == 97.8
    (folder / "fmax.sh").write_text("echo 'nextpnr-ecp5 failed' >&2; exit 1\n")
    with pytest.raises(FmaxError, match="nextpnr-ecp5 failed"):
        run_fmax(folder)


def test_cli_arguments(tmp_path):
    r = subprocess.run([*CLI, "rtl", "--model", "random:8C-P-16C-P-10", "--out",
                        str(tmp_path / "n"), "--name", "x"], capture_output=True, text=True)
    assert r.returncode == 1 and "--name: only with --target accel" in r.stderr
    r = subprocess.run([*CLI, "rtl", "--target", "accel", "--model", "random:8C-P-16C-P-10",
                        "--lanes", "6", "--out", str(tmp_path / "a")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "--lanes must be a power of two" in r.stderr
    r = subprocess.run([*CLI, "rtl", "--target", "accel", "--model", "random:8C-P-16C-P-10",
                        "--name", "9bad", "--out", str(tmp_path / "b")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Verilog identifier" in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---- the Verilog post-processing and the diagram, without tools -------------------------------
AMARANTH_LIKE = """\
/* Generated by Amaranth Yosys */

(* top =  1  *)
(* generator = "Amaranth" *)
module top(clk, a, y);
  reg \\$auto$verilog_backend.cc:1:dump_module$1  = 0;
  input clk;
  input [1:0] a;
  output [7:0] y;
  reg [7:0] rom [2:0];
  initial begin
    rom[0] = 8'h01;
    rom[1] = 8'hff;
    rom[2] = 8'h00;
  end
  reg [3:0] ram [1:0];
  initial begin
    ram[0] = 4'h0;
    ram[1] = 4'h0;
  end
  \\top.sub.leaf  leaf (
    .clk(clk)
  );
  \\top.sub  sub (
    .clk(clk)
  );
endmodule

(* generator = "Amaranth" *)
module \\top.sub (clk);
  input clk;
endmodule

(* generator = "Amaranth" *)
module \\top.sub.leaf (clk);
  input clk;
  reg [7:0] rom [0:0];
  initial begin
    rom[0] = 8'h05;
  end
endmodule
"""


def test_split_rename_and_memory_files():
    mods = split_modules(AMARANTH_LIKE, "top")
    assert list(mods) == ["top", "top_sub", "top_sub_leaf"]
    assert "top_sub_leaf leaf (" in mods["top"] and "top_sub sub (" in mods["top"]
    assert mods["top_sub"].startswith('(* generator = "Amaranth" *)\nmodule top_sub(clk);')
    text, recs, files = memory_files(mods["top"], "top", "top")
    assert [(r.file, r.memory, r.width, r.depth) for r in recs] == [("top_rom.hex", "rom", 8, 3)]
    assert files["top_rom.hex"].decode().split() == ["@0", "01", "ff", "00"]
    assert 'initial $readmemh("top_rom.hex", rom, 0, 2);' in text
    assert "ram[dietsnn_meminit_i] = 4'h0;" in text and "integer dietsnn_meminit_i;" in text
    assert "rom[0] =" not in text and "ram[1] =" not in text
    # a second memory of the same name elsewhere gets its module's prefix
    _, recs2, _ = memory_files(mods["top_sub_leaf"], "top_sub_leaf", "top",
                               frozenset(files))
    assert recs2[0].file == "top_sub_leaf_rom.hex"
    kicked = icarus_kick(text)
    assert "`ifdef __ICARUS__\n  initial #0 \\$auto$verilog_backend.cc:1:dump_module$1 = 1'h1;" \
        in kicked
    with pytest.raises(ValueError, match="not in the hierarchy"):
        split_modules(AMARANTH_LIKE.replace("\\top.sub ", "\\other "), "top")
    with pytest.raises(ValueError, match="identifier"):
        split_modules(AMARANTH_LIKE, "top.x")


def test_wave_strings_and_the_diagram():
    assert wave([0, 1, 1, GAP, 1, 0]) == {"wave": "01.|.0"}
    assert wave([None, "a", "a", "b", None]) == {"wave": "x=.=x", "data": ["a", "b"]}
    params = {"beats": 768, "classes": 10}
    d = timing_diagram(params)
    rows = [d["signal"][0], d["signal"][1], *d["signal"][2][1:], *d["signal"][3][1:]]
    assert len({len(r["wave"]) for r in rows}) == 1
    tdata = d["signal"][2][3]
    assert tdata["data"][-1] == "b767"
