"""Synthesis figures of the neuron array, through the library's one synthesis flow.

For each configuration ``R:depth`` (default: 16 lanes, 16-bit currents and membranes; the
register schedule with the 3-stage loop ``3:3``, the single-cycle loop with a neuron's T
steps back to back ``1:1``, and the memory schedule sized for the CIFAR-10 network's largest
layer ``3:2048`` = 32x32x32 neurons / 16 lanes) this generates the Verilog of
:class:`dietsnn.hw.neuron.NeuronArray` and runs the same flow as ``dietsnn estimate`` and
``bench/accel_synth.py``:

- :func:`dietsnn.estimate.synth.synthesize` for xc7 (``synth_xilinx``, part xc7z020) and ECP5
  (``synth_ecp5``, LFE5U-85F): resources in the units of :mod:`dietsnn.estimate.parts`
  (ECP5 LUTs count a CCU2C carry cell as the two LUT4 sites it fills), the harness excluded;
- :func:`dietsnn.estimate.pnr.place_and_route` of the harness-wrapped ECP5 netlist on the
  LFE5U-85F (every path register to register, four pins) at speed grades 6 (the slowest,
  nextpnr's default) and 8.

Every tool run is cached (``~/.cache/dietsnn/synth``). One JSON object on stdout (also
``--out``, atomically) and a Markdown table (``--table``)::

    .venv/bin/python bench/neuron_synth.py --out docs/figures/neuron_synth.json \\
        --table docs/figures/neuron_synth.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dietsnn.estimate.parts import fits, get_part
from dietsnn.estimate.pnr import place_and_route
from dietsnn.estimate.synth import Design, synthesize
from dietsnn.estimate.tools import ToolMissingError, find_tool
from dietsnn.fileio import write_atomic
from dietsnn.hw.generate import to_verilog
from dietsnn.hw.neuron import NeuronArray

XC7_PART = "xc7z020"
ECP5_PART = "LFE5U-85F"


def run_config(cfg: dict[str, int], *, freq: float, seed: int, families: list[str],
               speeds: list[int]) -> dict[str, Any]:
    """Synthesis (and ECP5 place and route) of one neuron-array configuration."""
    array = NeuronArray(**cfg)
    out: dict[str, Any] = {
        "config": cfg,
        "schedule": "register" if cfg["depth"] <= cfg["loop_stages"] else "memory",
        "store": "registers/LUT RAM" if array.small_store else "block RAM"}
    label = f"neuron-{cfg['loop_stages']}:{cfg['depth']}"
    design = Design(to_verilog(array), "neuron_array", label)
    for target, part in (("xc7", XC7_PART), ("ecp5", ECP5_PART)):
        if target not in families:
            continue
        s = synthesize(design, target, part=part)
        res = s.resources.to_json()
        row: dict[str, Any] = {"part": part, "resources": res, "logic_depth": s.logic_depth,
                               "fits": fits(res, get_part(part, target)).fits,
                               "synth_seconds": round(s.seconds, 1), "cached": s.cached}
        if target == "ecp5":
            row["fmax_mhz"], row["pnr"] = {}, {}
            for speed in speeds:
                pr = place_and_route(s, part=part, freq_mhz=freq, seed=seed, speed=speed)
                row["fmax_mhz"][f"speed{speed}"] = (None if pr.fmax_mhz is None
                                                    else round(pr.fmax_mhz, 1))
                row["pnr"][f"speed{speed}"] = pr.to_json()
        out[target] = row
    return out


def table(results: list[dict[str, Any]], speeds: list[int]) -> str:
    """The README's table of the neuron array."""
    head = ("| schedule (loop stages : depth) | xc7 LUT / FF / RAMB36 / LUT RAM | "
            "ECP5 LUT (of which carry) / FF / DP16KD | ECP5-85F Fmax |")
    out = [head, "|---|---|---|---:|"]
    for r in results:
        c = r["config"]
        name = f"{r['schedule']}, {c['loop_stages']}:{c['depth']}"
        x, e = r.get("xc7", {}).get("resources"), r.get("ecp5", {}).get("resources")
        xs = (f"{x['luts']:,} / {x['ffs']:,} / {x['bram']:g} / {x['lutram']:,}" if x else "")
        es = (f"{e['luts']:,} ({2 * e['carry']:,}) / {e['ffs']:,} / {e['bram']:g}" if e
              else "")
        fm = r.get("ecp5", {}).get("fmax_mhz", {})
        fs = ", ".join(f"{fm[f'speed{s}']:.1f} MHz (grade {s})" for s in speeds
                       if fm.get(f"speed{s}"))
        out.append(f"| {name} | {xs} | {es} | {fs or 'n/a'} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--bits", type=int, default=16, help="current and membrane width")
    ap.add_argument("--timesteps", type=int, default=5)
    ap.add_argument("--configs", nargs="+", default=["3:3", "1:1", "3:2048"],
                    help="loop_stages:depth pairs (see the module docstring)")
    ap.add_argument("--speeds", type=int, nargs="+", choices=(6, 7, 8), default=[6, 8],
                    help="ECP5 speed grades for nextpnr (6 = slowest and nextpnr's default)")
    ap.add_argument("--families", nargs="+", default=["xc7", "ecp5"], choices=("xc7", "ecp5"))
    ap.add_argument("--freq", type=float, default=200.0, help="nextpnr target (MHz)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        find_tool("yosys")
        if "ecp5" in args.families:
            find_tool("nextpnr-ecp5")
    except ToolMissingError as e:
        print(f"neuron_synth: {e}", file=sys.stderr)
        return 2
    results = []
    for spec in args.configs:
        stages, depth = (int(x) for x in spec.split(":"))
        cfg = {"lanes": args.lanes, "current_bits": args.bits, "membrane_bits": args.bits,
               "depth": depth, "timesteps": args.timesteps, "loop_stages": stages}
        print(f"synthesising {cfg} ...", file=sys.stderr)
        results.append(run_config(cfg, freq=args.freq, seed=args.seed,
                                  families=args.families, speeds=args.speeds))
    doc = {"bench": "neuron_synth",
           "flow": "dietsnn.estimate: synth.synthesize (harness-wrapped, hierarchy kept) and "
                   "pnr.place_and_route",
           "target_ecp5": f"{ECP5_PART} CABGA381, speed grades "
                          + ", ".join(map(str, args.speeds)),
           "target_xc7": f"synth_xilinx -family xc7 ({XC7_PART})",
           "command": "python bench/neuron_synth.py " + " ".join(sys.argv[1:] if argv is None
                                                                  else argv),
           "results": results}
    text = json.dumps(doc, indent=1)
    if args.out:
        write_atomic(args.out, text + "\n")
    if args.table:
        write_atomic(args.table, table(results, args.speeds))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
