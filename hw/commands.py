"""``dietsnn rtl``: Verilog for a model: the neuron array (``--target neuron``, the default) and
``params.json``, or the whole accelerator as an IP folder (``--target accel``,
:func:`dietsnn.hw.accel.ip.write_ip`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dietsnn.cli import CLIError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "rtl", help="generate Verilog for a model: the LIF neuron array, or the accelerator "
                    "as an IP folder",
        description="--target neuron (default): write neuron_array.v (plain Verilog from "
                    "Amaranth) and params.json (widths, per-layer k/theta/B, port layout) for "
                    "testbenches. --target accel: write the whole accelerator as a "
                    "self-contained IP folder: one Verilog file per module, the weight ROMs "
                    "as $readmemh files, params.json, README.md with ports, handshake, "
                    "latency and a timing diagram, a FuseSoC core, an XDC clock constraint, "
                    "fmax.sh (yosys + nextpnr-ecp5) and a self-checking plain-Verilog "
                    "testbench with golden-model results for Icarus.")
    p.add_argument("--target", choices=("neuron", "accel"), default="neuron",
                   help="neuron (default): the LIF neuron array; accel: the accelerator's IP "
                        "folder")
    p.add_argument("--model", required=True,
                   help="model file or shipped name (tiny, cifar10), or "
                        "random:ARCH[:SEED][:bias] for a fixed-seed random model (with random "
                        "biases)")
    p.add_argument("--lanes", type=int, default=None,
                   help="parallel lanes: neuron 1..64 (default 16); accel a power of two in "
                        "4..64 (default 32 for cifar10-sized models, else 16)")
    p.add_argument("--schedule", choices=("register", "memory"), default="register",
                   help="register (default): groups of neurons interleaved loop-stages at a "
                        "time, membranes in registers; memory: membranes of the largest "
                        "layer in on-chip memory, any order")
    p.add_argument("--loop-stages", type=int, choices=(1, 2, 3), default=3,
                   help="cycles of the membrane recurrence (3: highest Fmax; 1: smallest)")
    p.add_argument("--data-bits", type=int, choices=(32, 64), default=32,
                   help="accel: width of s_axis tdata (default 32)")
    p.add_argument("--name", default=None,
                   help="accel: top module name, prefix of every file (default dietsnn_accel)")
    p.add_argument("--tb-images", type=int, default=None,
                   help="accel: test images in the testbench, spread over the classes "
                        "(default 4)")
    p.add_argument("--data", default=None,
                   help="accel: CIFAR-10 location for the testbench images (default: see "
                        "dietsnn.data)")
    p.add_argument("--part", default="LFE5U-85F",
                   choices=("LFE5U-25F", "LFE5U-45F", "LFE5U-85F"),
                   help="accel: the ECP5 part of fmax.sh (default LFE5U-85F)")
    p.add_argument("--clock-mhz", type=float, default=100.0,
                   help="accel: clock of the XDC constraint (default 100)")
    p.add_argument("--fmax", action="store_true",
                   help="accel: also run the folder's fmax.sh (minutes) and record its Fmax "
                        "and resources in README.md")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--lint", action="store_true",
                   help="also run verilator --lint-only -Wall and yosys check -assert")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_rtl)


def resolve_model(spec: str) -> Any:
    """A model file / shipped name, or ``random:ARCH[:SEED][:bias]`` (``bias``: every layer
    gets a random integer bias)."""
    if spec.startswith("random:"):
        from dietsnn.topology import random_model
        parts = spec.split(":")
        try:
            bias = len(parts) > 3 and parts[3] == "bias"
            if len(parts) > 4 or (len(parts) > 3 and not bias):
                raise ValueError("the fourth part can only be 'bias'")
            seed = int(parts[2]) if len(parts) > 2 else 0
            return random_model(parts[1], seed=seed, bias=bias)
        except (ValueError, IndexError) as e:
            raise CLIError(f"--model {spec!r}: expected random:ARCH[:SEED][:bias], e.g. "
                           f"random:8C-P-16C-P-10:0:bias ({e})") from None
    from dietsnn.model import load_model
    return load_model(spec)


def run_rtl(args: argparse.Namespace) -> int:
    if args.target == "accel":
        return run_accel_ip(args)
    given = [f"--{k.replace('_', '-')}" for k in ("name", "tb_images", "data")
             if getattr(args, k) is not None] + (["--fmax"] if args.fmax else [])
    if given:
        raise CLIError(f"{', '.join(given)}: only with --target accel")
    from .generate import array_config, write_rtl
    if args.lanes is None:
        args.lanes = 16
    model = resolve_model(args.model)
    try:
        array_config(model, lanes=args.lanes, schedule=args.schedule,
                     loop_stages=args.loop_stages)
    except ValueError as e:
        raise CLIError(str(e)) from None
    params = write_rtl(args.out, model=model, lanes=args.lanes, schedule=args.schedule,
                       loop_stages=args.loop_stages)
    summary: dict[str, Any] = {
        "verilog": str(Path(args.out) / params["verilog"]),
        "params": str(Path(args.out) / "params.json"),
        **{k: params[k] for k in ("lanes", "schedule", "current_bits", "membrane_bits",
                                  "depth", "timesteps", "loop_stages")},
        "layers": [x["name"] for x in params["layers"]],
    }
    rc = 0
    if args.lint:
        from .lint import verilator_lint, yosys_check
        v = Path(args.out) / params["verilog"]
        try:
            results = [verilator_lint(v, params["top"]), yosys_check(v, params["top"])]
        except FileNotFoundError as e:
            raise CLIError(str(e)) from None
        summary["lint"] = {r.tool: {"ok": r.ok, "issues": r.issues[:20]} for r in results}
        rc = 0 if all(r.ok for r in results) else 1
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {summary['verilog']} and {summary['params']}")
        print(f"  {params['lanes']} lanes, {params['schedule']} schedule, current "
              f"{params['current_bits']} b, membrane {params['membrane_bits']} b, depth "
              f"{params['depth']}, T {params['timesteps']}; layers "
              f"{', '.join(summary['layers'])}")
        for tool, r in summary.get("lint", {}).items():
            print(f"  {tool}: {'clean' if r['ok'] else 'FAILED'}")
            for line in r["issues"]:
                print(f"    {line}", file=sys.stderr)
    return rc


def run_accel_ip(args: argparse.Namespace) -> int:
    """``dietsnn rtl --target accel``: the accelerator's IP folder."""
    from .accel.gen import TOP
    from .accel.ip import TB_IMAGES, run_fmax, write_ip
    from .accel.plan import LANES, PlanError
    if args.lanes is not None and args.lanes not in LANES:
        raise CLIError(f"--lanes must be a power of two in 4..64 "
                       f"({', '.join(map(str, LANES))}), not {args.lanes}")
    tb_images = TB_IMAGES if args.tb_images is None else args.tb_images
    if tb_images < 1:
        raise CLIError(f"--tb-images must be 1 or more, not {tb_images}")
    model = resolve_model(args.model)
    try:
        params = write_ip(model, args.out, lanes=args.lanes, data_bits=args.data_bits,
                          name=args.name or TOP, tb_images=tb_images, data=args.data,
                          ecp5_part=args.part, clock_mhz=args.clock_mhz)
    except PlanError:
        raise
    except ValueError as e:
        raise CLIError(str(e)) from None
    ip = params["ip"]
    out = Path(args.out)
    summary: dict[str, Any] = {
        "folder": str(out), "top": ip["name"], "model": params["model"],
        "lanes": params["lanes"], "data_bits": params["data_bits"],
        "modules": ip["modules"], "memories": [m["file"] for m in ip["memories"]],
        "testbench": ip["testbench"]["verilog"], "tb_images": len(ip["testbench"]["images"]),
        "core": ip["core"], "vlnv": ip["vlnv"], "cycles": ip["cycles"],
    }
    rc = 0
    if args.lint:
        from .lint import ACCEL_WAIVERS, verilator_lint, yosys_check
        srcs = [out / f for f in ip["verilog"]]
        mems = [out / m["file"] for m in ip["memories"]]
        try:
            results = [verilator_lint(srcs, ip["name"], waivers=ACCEL_WAIVERS),
                       yosys_check(srcs, ip["name"], data_files=mems)]
        except FileNotFoundError as e:
            raise CLIError(str(e)) from None
        summary["lint"] = {r.tool: {"ok": r.ok, "issues": r.issues[:20]} for r in results}
        rc = 0 if all(r.ok for r in results) else 1
    if args.fmax:
        print(f"running {out / 'fmax.sh'} (yosys + nextpnr-ecp5, minutes) ...", file=sys.stderr)
        from .accel.ip import FmaxError
        try:
            fig = run_fmax(out)
        except FmaxError as e:
            raise CLIError(str(e)) from None
        summary["fmax"] = {k: fig[k] for k in ("fmax_mhz", "part", "utilisation")}
    if args.json:
        print(json.dumps(summary))
        return rc
    c = ip["cycles"]
    print(f"wrote the IP folder {out}: {len(ip['modules'])} modules, "
          f"{len(ip['memories'])} memory files, {ip['testbench']['verilog']} "
          f"({summary['tb_images']} test image{'s' if summary['tb_images'] > 1 else ''}), "
          f"{ip['core']}, fmax.sh, README.md")
    print(f"  {params['model']}, {params['lanes']} lanes, {params['data_bits']}-bit s_axis; "
          f"front {c['front']:,} clocks, back {c['back_min']:,}..{c['back_max']:,}, "
          f"{c['interval_mean']:,.1f} clocks per image in a stream")
    print(f"  simulate: cd {out} && iverilog -g2012 -o tb.vvp -c sources.f "
          f"{ip['testbench']['verilog']} && vvp tb.vvp")
    for tool, r in summary.get("lint", {}).items():
        print(f"  {tool}: {'clean' if r['ok'] else 'FAILED'}")
        for line in r["issues"]:
            print(f"    {line}", file=sys.stderr)
    if "fmax" in summary:
        print(f"  Fmax {summary['fmax']['fmax_mhz']:.1f} MHz on the {summary['fmax']['part']}")
    return rc
