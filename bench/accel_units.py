"""Benchmark: each unit of the accelerator placed and routed on its own (a timing map).

A whole-design nextpnr run of ``cifar10`` at 32 lanes takes about an hour on two cores and
names one critical path; this places and routes every component of the top (scanner, engine,
map writer, front, output unit, maps, framer, streamer) on its own, out of context behind the
library's pin-limited harness, in seconds to minutes each. A unit's own Fmax is an upper bound
for the whole design (in the whole design the placer spreads it further and the paths between
units are added), so every unit must clear the goal on its own first. The flow is the
library's: :func:`dietsnn.estimate.synth.synthesize` with the unit as the top, then
:func:`dietsnn.estimate.pnr.place_and_route`.

    .venv/bin/python bench/accel_units.py --out docs/figures/accel_units.json \\
        --table docs/figures/accel_units.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from dietsnn.estimate.pnr import place_and_route
from dietsnn.estimate.synth import Design, children, module_names, synthesize
from dietsnn.fileio import write_atomic
from dietsnn.hw.accel import generate
from dietsnn.model import load_model

TOP = "dietsnn_accel"


def units(model_name: str, lanes: int, part: str, freq: float,
          only: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per component of the accelerator's top: resources, Fmax, critical path."""
    model = load_model(model_name)
    with tempfile.TemporaryDirectory(prefix="dietsnn-accel-units-") as tmp:
        text = generate(model, lanes=lanes, out_dir=tmp)["verilog"].read_text()
    rows = []
    for mod in children(text, TOP, module_names(text)):
        unit = mod.removeprefix(TOP + ".")
        if only and unit not in only:
            continue
        s = synthesize(Design(text, mod, f"{model_name}-L{lanes}-{unit}"), "ecp5", part=part)
        pr = place_and_route(s, part=part, freq_mhz=freq)
        rows.append({"unit": unit, "resources": s.resources.to_json(),
                     "fmax_mhz": pr.fmax_mhz, "error": pr.error,
                     "critical": None if pr.critical is None else pr.critical.to_json()})
        print(json.dumps({"unit": unit, "fmax_mhz": pr.fmax_mhz}), file=sys.stderr)
    return rows


def table(model_name: str, lanes: int, part: str, rows: list[dict[str, Any]]) -> str:
    out = [f"{model_name}, L={lanes}, each unit alone on the {part} (nextpnr, grade 6)\n",
           "| unit | LUT4 / FF / DP16KD / MULT18 | Fmax | critical path | logic / routing | "
           "levels | span |", "|---|---|---:|---|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: r["fmax_mhz"] or 0.0):
        e, c = r["resources"], r["critical"]
        f = f"{r['fmax_mhz']:.1f} MHz" if r["fmax_mhz"] else "n/a"
        path = (f"`{_short(c['start'])}` -> `{_short(c['end'])}` | {c['logic_ns']:.2f} / "
                f"{c['routing_ns']:.2f} ns | {c['levels']} | {c['span']}") if c else "| | |"
        out.append(f"| {r['unit']} | {e['luts']:,} / {e['ffs']:,} / {e['bram']} / {e['dsp']} | "
                   f"{f} | {path} |")
    return "\n".join(out) + "\n"


def _short(cell: str) -> str:
    """A nextpnr cell name without the harness prefix and the mapping suffixes."""
    name = cell.removeprefix("u_dut.")
    for cut in ("_TRELLIS", "_LUT4", "_PFUMX", "_L6MUX", "$", "_CCU2"):
        if cut in name[1:]:
            name = name[:name.index(cut, 1)]
    return name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="cifar10")
    ap.add_argument("--lanes", type=int, default=32)
    ap.add_argument("--part", default="LFE5U-85F")
    ap.add_argument("--freq", type=float, default=200.0, help="nextpnr target (MHz)")
    ap.add_argument("--units", default="", help="only these units (comma separated)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None)
    a = ap.parse_args(argv)
    rows = units(a.model, a.lanes, a.part, a.freq, [u for u in a.units.split(",") if u])
    text = table(a.model, a.lanes, a.part, rows)
    if a.out:
        out = {"model": a.model, "lanes": a.lanes, "part": a.part, "freq_target_mhz": a.freq,
               "units": rows,
               "command": "python bench/accel_units.py " + " ".join(argv or sys.argv[1:])}
        write_atomic(a.out, json.dumps(out, indent=1) + "\n")
    if a.table:
        write_atomic(a.table, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
