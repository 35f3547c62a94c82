"""``dietsnn rtl``: generate the neuron array's Verilog and ``params.json`` for a model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dietsnn.cli import CLIError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "rtl", help="generate the LIF neuron array's Verilog and params.json for a model",
        description="Write neuron_array.v (plain Verilog from Amaranth) and params.json "
                    "(widths, per-layer k/theta/B, port layout) for testbenches.")
    p.add_argument("--model", required=True,
                   help="model file or shipped name (tiny, cifar10), or random:ARCH[:SEED] "
                        "for a fixed-seed random model")
    p.add_argument("--lanes", type=int, default=16, help="parallel neuron lanes (1..64)")
    p.add_argument("--schedule", choices=("register", "memory"), default="register",
                   help="register (default): groups of neurons interleaved loop-stages at a "
                        "time, membranes in registers; memory: membranes of the largest "
                        "layer in on-chip memory, any order")
    p.add_argument("--loop-stages", type=int, choices=(1, 2, 3), default=3,
                   help="cycles of the membrane recurrence (3: highest Fmax; 1: smallest)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--lint", action="store_true",
                   help="also run verilator --lint-only -Wall and yosys check -assert")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_rtl)


def resolve_model(spec: str) -> Any:
    """A model file / shipped name, or ``random:ARCH[:SEED]``."""
    if spec.startswith("random:"):
        from dietsnn.topology import random_model
        parts = spec.split(":")
        try:
            seed = int(parts[2]) if len(parts) > 2 else 0
            return random_model(parts[1], seed=seed)
        except (ValueError, IndexError) as e:
            raise CLIError(f"--model {spec!r}: expected random:ARCH[:SEED], e.g. "
                           f"random:8C-P-16C-P-10:0 ({e})") from None
    from dietsnn.model import load_model
    return load_model(spec)


def run_rtl(args: argparse.Namespace) -> int:
    from .generate import array_config, write_rtl
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
