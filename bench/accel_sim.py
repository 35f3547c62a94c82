"""Benchmark: the whole accelerator on CIFAR-10 test images in a simulator (not CI).

Streams ``--images`` test images (spread evenly over the class-sorted test set) through the
generated accelerator, compares every class, logit and spike counter with the golden model,
and reports accuracy, cycles per image next to the cycle model and the lower bound, and
simulation speed. ``--harness cpp`` (default) runs Verilator with a plain C++ driver
(:mod:`dietsnn.sim.accel_verilator`, images back to back); ``--harness cocotb`` runs the
cocotb testbench (random stalls, Verilator or Icarus). One JSON object (``--json``) or a table.

    .venv/bin/python bench/accel_sim.py --model cifar10 --images 100 --lanes 64 --json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from dietsnn import golden
from dietsnn.data import load_cifar10
from dietsnn.hw.accel import generate
from dietsnn.hw.accel.cycles import cycle_bound, cycles_per_image
from dietsnn.sim.accel_runner import pick_model, run_accel_sim, select_images
from dietsnn.sim.accel_verilator import build_fast, check, params_of, run_fast


def run_cpp(model, q, ref, lanes: int, build_dir: str | None) -> dict:
    """Verilator with the C++ driver: results in :func:`run_accel_sim`'s form."""
    import tempfile
    import time
    from pathlib import Path
    tag = f"dietsnn-accel-fast-{model.name}-L{lanes}"
    bdir = Path(build_dir or Path(tempfile.gettempdir()) / tag)
    paths = generate(model, lanes=lanes, out_dir=bdir)
    params = params_of(bdir)
    t0 = time.perf_counter()
    exe = build_fast(paths["verilog"], params, bdir)
    build_s = time.perf_counter() - t0
    out = run_fast(exe, params, q, bdir)
    errors = check(out["results"], ref, params["counters"])
    pred = np.array([r["cls"] for r in out["results"]])
    cycles = sum(r["period_cycles"] for r in out["results"])
    return {"simulator": "verilator (C++ driver)", "images": len(out["results"]),
            "mismatches": len(errors) + len(q) - len(out["results"]), "errors": errors,
            "pred": pred, "compute_cycles": [r["compute_cycles"] for r in out["results"]],
            "wall_s": out["wall_s"], "build_s": build_s,
            "images_per_s": len(q) / out["wall_s"], "simulated_time_us": cycles * 0.01}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="cifar10")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--lanes", type=int, default=64)
    ap.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--harness", default="cpp", choices=("cpp", "cocotb"))
    ap.add_argument("--build-dir", default=None)
    ap.add_argument("--no-stalls", action="store_true", help="no random idle/back-pressure")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    model = pick_model(a.model)
    ds = load_cifar10(split="test")
    idx = select_images(len(ds.labels), a.images)
    q = model.input.quantize(ds.images[idx])
    ref = golden.run(model, q, record={"spikes"})
    if a.harness == "cpp":
        if a.simulator != "verilator":
            ap.error("--harness cpp needs --simulator verilator")
        res = run_cpp(model, q, ref, a.lanes, a.build_dir)
        res["correct"] = int((res["pred"] == ds.labels[idx]).sum())
        res["accuracy"] = res["correct"] / len(idx)
    else:
        res = run_accel_sim(dict(model=model, images=a.images, simulator=a.simulator,
                                 lanes=a.lanes, build_dir=a.build_dir,
                                 stalls=not a.no_stalls))
    pred = cycles_per_image(model, ref, lanes=a.lanes)
    bound = cycle_bound(model, ref, lanes=a.lanes)
    measured = np.array(res["compute_cycles"], np.int64) + model.input.shape[0] * \
        model.input.shape[1] * model.input.shape[2] + 1
    out = {
        "model": model.name, "kind": model.kind, "simulator": res["simulator"],
        "harness": a.harness,
        "lanes": a.lanes, "images": res["images"], "mismatches": res["mismatches"],
        "correct": res["correct"], "accuracy": res["accuracy"],
        "cycles_per_image": float(measured.mean()),
        "cycles_per_image_min_max": [int(measured.min()), int(measured.max())],
        "cycle_model_per_image": float(pred.mean()),
        "cycle_model_max_rel_error": float(np.abs(pred - measured).max() / measured.min()),
        "lower_bound_per_image": float(bound.mean()),
        "ratio_to_bound": float((measured / bound).mean()),
        "sim_images_per_s": res["images_per_s"], "sim_wall_s": res["wall_s"],
        "build_s": res["build_s"], "simulated_time_us": res["simulated_time_us"],
        "errors": res["errors"][:5],
    }
    text = json.dumps(out, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    if a.json:
        print(text)
    else:
        for k, v in out.items():
            print(f"{k:28s} {v}")
    return 0 if out["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
