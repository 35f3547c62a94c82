"""Simulation speed of the neuron-array cocotb check on Verilator and Icarus.

Builds the 16-lane array for the model (``tiny`` when shipped, else the random model of the
same topology), replays every LIF layer of ``--images`` CIFAR-10 test images plus
``--random-updates`` random corner-case updates, and reports for each simulator the neuron
updates checked per second of simulation (wall clock inside the cocotb test, so build time and
Python start-up are excluded; they are reported separately), simulated cycles per second and
the mismatch count (must be 0)::

    .venv/bin/python bench/neuron_sim.py --out build/bench/neuron_sim.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from dietsnn.hw import tools
from dietsnn.sim.commands import pick_model
from dietsnn.sim.runner import CheckConfig, image_jobs, make_random_jobs, run_neuron_check


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--random-updates", type=int, default=200_000)
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--simulators", nargs="+", default=["verilator", "icarus"])
    ap.add_argument("--stalls", action="store_true",
                    help="random idle cycles and back-pressure (default: full throughput)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from dietsnn.data import load_cifar10
    model = pick_model(args.model)
    ds = load_cifar10(split="test")
    jobs_img = image_jobs(model, ds.images[:args.images])
    results = []
    with tempfile.TemporaryDirectory(prefix="dietsnn-bench-sim-") as tmp:
        for sim in args.simulators:
            why = tools.simulator_available(sim)
            if why:
                results.append({"simulator": sim, "skipped": why})
                continue
            cfg = CheckConfig(simulator=sim, build_dir=Path(tmp) / sim,
                              p_valid=0.9 if args.stalls else 1.0,
                              p_ready=0.8 if args.stalls else 1.0)
            res = run_neuron_check(
                cfg, lambda p: jobs_img + make_random_jobs(p, updates=args.random_updates,
                                                           seed=1),
                model=model, lanes=args.lanes)
            s = res["seconds"]
            row = {k: res[k] for k in ("simulator", "images", "updates", "beats", "cycles",
                                       "mismatches", "build_seconds")}
            row.update(sim_seconds=round(s, 3), updates_per_s=round(res["updates"] / s),
                       cycles_per_s=round(res["cycles"] / s))
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    doc = {"bench": "neuron_sim", "model": model.name, "lanes": args.lanes,
           "stalls": args.stalls, "results": results}
    text = json.dumps(doc, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0 if all(r.get("mismatches", 0) == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
