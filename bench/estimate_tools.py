"""Benchmark: yosys synthesis and nextpnr place and route of the accelerator.

Runs the estimate flow (uncached) for one model, lane count and target, and prints one JSON
object with the wall times and the figures::

    .venv/bin/python bench/estimate_tools.py --arch 8C-P-16C-P-10 --lanes 8 --target ecp5
    .venv/bin/python bench/estimate_tools.py --model models/cifar10.npz --lanes 16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

from dietsnn.estimate.accel import accelerator_source
from dietsnn.estimate.pnr import place_and_route
from dietsnn.estimate.synth import synthesize
from dietsnn.model import Model, load_model
from dietsnn.topology import random_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model file (default: a random-test model)")
    ap.add_argument("--arch", default="8C-P-16C-P-10", help="arch of the random-test model")
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--target", default="ecp5", choices=("ecp5", "ice40", "xc7"))
    ap.add_argument("--part", default=None)
    ap.add_argument("--cached", action="store_true", help="use the tool cache (default: not)")
    args = ap.parse_args()
    model = load_model(args.model) if args.model else random_model(args.arch, seed=0)
    private = None
    if not args.cached:  # a private cache: every tool really runs
        private = tempfile.mkdtemp(prefix="dietsnn-bench-")
        os.environ["DIETSNN_CACHE"] = private
    try:
        run(model, args)
    finally:
        if private:
            shutil.rmtree(private, ignore_errors=True)


def run(model: Model, args: argparse.Namespace) -> None:
    t0 = time.time()
    design = accelerator_source(model, args.lanes)
    t1 = time.time()
    syn = synthesize(design, args.target, part=args.part)
    t2 = time.time()
    pr = place_and_route(syn, part=args.part) if args.target != "xc7" else None
    t3 = time.time()
    print(json.dumps({
        "bench": "estimate_tools", "model": model.name, "lanes": args.lanes,
        "target": args.target, "verilog_bytes": len(design.verilog),
        "seconds": {"generate": round(t1 - t0, 2), "synthesis": round(t2 - t1, 2),
                    "place_route": round(t3 - t2, 2) if pr else None},
        "resources": syn.resources.to_json(), "logic_depth": syn.logic_depth,
        "fmax_mhz": pr.fmax_mhz if pr else None, "pnr_error": pr.error if pr else None,
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
