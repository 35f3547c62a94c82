"""Benchmark: the whole accelerator (v2) on CIFAR-10 test images in a simulator (not CI).

Streams ``--images`` test images (spread over the class-sorted test set with
:func:`dietsnn.selection.select_images`, from ``--start``; or ``--indices``) through the
generated accelerator and compares every class, logit and spike counter with the golden model
and both cycle counters (front, back) with the cycle model (:func:`dietsnn.hw.accel.image_cycles`,
which must agree exactly). Reports accuracy, the mean front, back and interval cycles
(``interval = max(front, back) + 1``, the clocks per image of a back-to-back stream), the
interval measured between consecutive results, the lower bound, and the simulation speed.

``--harness cpp`` (default) runs Verilator with a plain C++ driver
(:mod:`dietsnn.sim.accel_verilator`: beats back to back, results taken at once); ``--jobs N``
splits the images into parts simulated at once in local processes, ``--scheduler
tcp://HOST:PORT`` on a Dask cluster (:mod:`dietsnn.parallel`), with the same per-image results
(only the intervals measured between results lose one value at each part's border);
``--harness cocotb`` runs the cocotb testbench (random stalls, spike maps checked, Verilator or
Icarus). One JSON object (``--json``) or a table; ``--out`` also writes the JSON (atomically).

    .venv/bin/python bench/accel_sim.py --model cifar10 --lanes 32 --images 500 --json \\
        --out docs/figures/accel_sim_cifar10.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from dietsnn.data import load_cifar10
from dietsnn.errors import CLIError, DietsnnError
from dietsnn.fileio import folder_lock, write_atomic
from dietsnn.hw.accel import generate
from dietsnn.model import Model
from dietsnn.parallel import check_jobs, run_points
from dietsnn.selection import select_images, selection_record
from dietsnn.sim.accel_model import beats_of, expected
from dietsnn.sim.accel_runner import (
    ROOT,
    check_images,
    check_lanes,
    default_lanes,
    folder_name,
    pick_model,
    run_accel_sim,
    write_if_changed,
)
from dietsnn.sim.accel_verilator import build_fast, check, params_of, print_progress, run_fast


@dataclass(frozen=True)
class Shard:
    """A contiguous part of the images, run by one worker (picklable)."""

    model: Model
    lanes: int
    q: np.ndarray
    idx: np.ndarray
    build_dir: str | None
    part: int
    progress: bool


def prepare(model: Model, lanes: int, build_dir: str | None) -> dict[str, Any]:
    """Generate the Verilog into the build folder and compile the C++ driver, once per
    machine: processes sharing the folder wait for each other's build (a file lock)."""
    bdir = Path(build_dir) if build_dir else \
        ROOT / "build" / "sim" / (folder_name(model, lanes, "verilator") + "-cpp")
    with folder_lock(bdir, "simulation build folder", wait=True):
        with tempfile.TemporaryDirectory() as tmp:        # rewrite only what changed
            paths = generate(model, lanes=lanes, out_dir=tmp)
            verilog = write_if_changed(bdir / paths["verilog"].name,
                                       paths["verilog"].read_text())
            write_if_changed(bdir / "params.json", paths["params"].read_text())
        params = params_of(bdir)
        t0 = time.perf_counter()
        exe = build_fast(verilog, params, bdir)
        build_s = time.perf_counter() - t0
    return {"dir": bdir, "exe": exe, "params": params, "build_s": build_s,
            "rtl_sha256": hashlib.sha256(verilog.read_bytes()).hexdigest()}


def run_shard(s: Shard) -> dict[str, Any]:
    """Verilator with the C++ driver on the shard's quantised images (built if needed)."""
    b = prepare(s.model, s.lanes, s.build_dir)
    params = b["params"]
    t0 = time.perf_counter()
    exp = expected(s.model, s.q, params, maps=False)
    golden_s = time.perf_counter() - t0
    worst = int(max(exp["front_cycles"].max(), exp["back_cycles"].max())) + params["beats"]
    run_dir = b["dir"] / ("run" if s.part == 0 else f"run{s.part}")
    out = run_fast(b["exe"], params, beats_of(params, s.q), run_dir,
                   max_cycles=2 * worst * (len(s.q) + 2) + 10_000,
                   progress=print_progress(len(s.q)) if s.progress else None)
    res = out["results"]
    errors, cyc_errors, match = check(res, exp, params, s.idx)
    return {"results": res, "match": match,
            "errors": errors + cyc_errors + out["stderr"] * (out["returncode"] != 0),
            "mismatches": (len(match) - sum(match)) + (len(s.q) - len(res)),
            "cycle_model_errors": sum(bool(r["front_cycles"] != exp["front_cycles"][i] or
                                           r["back_cycles"] != exp["back_cycles"][i])
                                      for i, r in enumerate(res)),
            "measured_intervals": np.diff(np.array([r["rise"] for r in res], np.int64)),
            "front_intervals": np.diff(np.array(out["front_done"], np.int64)),
            "status": out["status"], "sim_cycles": out["cycles"], "wall_s": out["wall_s"],
            "build_s": b["build_s"], "bound": exp["bound"][:len(res)], "golden_s": golden_s,
            "build_dir": str(b["dir"]), "rtl_sha256": b["rtl_sha256"]}


def run_cpp(model: Model, q: np.ndarray, idx: np.ndarray, lanes: int, build_dir: str | None,
            progress: bool, *, jobs: int = 1, scheduler: str | None = None,
            shards: int | None = None) -> dict:
    """Verilator with the C++ driver on quantised images ``q``, in ``shards`` contiguous parts
    run through :func:`dietsnn.parallel.run_points` (``jobs`` local processes, or the Dask
    cluster ``scheduler``). Every image's result is the same whichever way it ran; only the
    intervals measured between results lose one value at each shard's border."""
    n = shards or (jobs if scheduler is None else 2 * jobs)
    n = max(1, min(n, len(q)))
    if scheduler is None:
        prepare(model, lanes, build_dir)  # one build here; the workers find it done
    bounds = np.linspace(0, len(q), n + 1).astype(int)
    parts = [Shard(model, lanes, q[lo:hi], idx[lo:hi], build_dir, k, progress and n == 1)
             for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]
    t0 = time.perf_counter()
    outs = run_points(run_shard, parts, jobs=jobs, scheduler=scheduler, desc="accel_sim",
                      progress=progress and n > 1)
    wall = time.perf_counter() - t0
    shas = {o["rtl_sha256"] for o in outs}
    if len(shas) != 1:
        raise CLIError(f"the workers generated different Verilog ({len(shas)} versions): "
                       f"run the same dietsnn commit everywhere")
    status: dict[str, int] = {}
    for o in outs:
        for k, v in o["status"].items():
            status[k] = status.get(k, 0) + v
    cat = lambda key: np.concatenate([o[key] for o in outs])  # noqa: E731
    return {"simulator": "verilator (C++ driver)", "shards": n,
            "results": [r for o in outs for r in o["results"]],
            "match": [m for o in outs for m in o["match"]],
            "errors": [e for o in outs for e in o["errors"]],
            "mismatches": sum(o["mismatches"] for o in outs),
            "cycle_model_errors": sum(o["cycle_model_errors"] for o in outs),
            "measured_intervals": cat("measured_intervals"),
            "front_intervals": cat("front_intervals"), "status": status,
            "sim_cycles": sum(o["sim_cycles"] for o in outs),
            "wall_s": wall if n > 1 else outs[0]["wall_s"],
            "build_s": max(o["build_s"] for o in outs), "bound": cat("bound"),
            "golden_s": sum(o["golden_s"] for o in outs), "build_dir": outs[0]["build_dir"],
            "rtl_sha256": shas.pop()}


def _revision() -> dict:
    """The git commit of the checkout and whether ``hw/`` differs from it."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hw"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"git_commit": head, "hw_modified": bool(dirty)}


def s_params(summary: dict) -> dict:
    """``params.json`` of a cocotb run's build folder."""
    return json.loads((Path(summary["build_dir"]) / "rtl" / "params.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="cifar10")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--start", type=int, default=0, help="offset of the spread selection")
    ap.add_argument("--indices", default=None,
                    help="comma-separated test-set indices instead of --images/--start")
    ap.add_argument("--lanes", type=int, default=None,
                    help="default 32 for cifar10-sized models, else 16")
    ap.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--harness", default="cpp", choices=("cpp", "cocotb"))
    ap.add_argument("--build-dir", default=None)
    ap.add_argument("--no-stalls", action="store_true", help="cocotb: no idle/back-pressure")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--jobs", type=int, default=1,
                    help="cpp harness: simulate this many parts of the images at once in "
                         "local processes (default 1)")
    ap.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                    help="cpp harness: run the parts on this Dask cluster's workers (each "
                         "builds the simulator once per machine)")
    ap.add_argument("--shards", type=int, default=None,
                    help="parts the images are split into (default: --jobs, or twice that "
                         "with --scheduler)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=None, help="also write the JSON here (atomically)")
    a = ap.parse_args(argv)
    try:
        return _main(a, ap)
    except DietsnnError as e:
        print(f"accel_sim: {e}", file=sys.stderr)
        return 1


def _main(a: argparse.Namespace, ap: argparse.ArgumentParser) -> int:
    model = pick_model(a.model)
    lanes = check_lanes(a.lanes or default_lanes(model))
    ds = load_cifar10(split="test", progress=False)
    total = len(ds.labels)
    if a.indices:
        try:
            idx = np.array([int(v) for v in a.indices.split(",")], np.int64)
        except ValueError:
            raise CLIError(f"--indices: not a list of integers: {a.indices!r}") from None
        if idx.min() < 0 or idx.max() >= total:
            raise CLIError(f"--indices must be in 0..{total - 1}")
        sel = selection_record(idx, split="test", total=total, labels=ds.labels[idx])
        sel.update(mode="explicit", rule="explicit indices")
        sel.pop("start", None)
    else:
        check_images(a.images, total)
        idx = select_images(ds.labels, a.images, start=a.start)
        sel = selection_record(idx, split="test", total=total, start=a.start,
                               labels=ds.labels[idx], dataset=getattr(ds, "source", None))
    q = model.input.quantize(ds.images[idx])
    labels = ds.labels[idx]
    if a.harness == "cpp":
        if a.simulator != "verilator":
            ap.error("--harness cpp needs --simulator verilator")
        check_jobs(a.jobs)
        if a.shards is not None and a.shards < 1:
            raise CLIError(f"--shards must be a positive integer, not {a.shards}")
        r = run_cpp(model, q, idx, lanes, a.build_dir, not a.no_progress, jobs=a.jobs,
                    scheduler=a.scheduler, shards=a.shards)
        res = r["results"]
        pred = np.array([x["cls"] for x in res], np.int64)
        fc = np.array([x["front_cycles"] for x in res], np.int64)
        bc = np.array([x["back_cycles"] for x in res], np.int64)
        meas = r["measured_intervals"]
        bound = r["bound"]
        fi = r["front_intervals"]
        extra = {"measured_result_interval_mean": float(meas.mean()) if len(meas) else None,
                 "measured_result_interval_min_max": [int(meas.min()), int(meas.max())]
                 if len(meas) else None,
                 "measured_front_interval_mean": float(fi.mean()) if len(fi) else None,
                 "status": r["status"], "sim_cycles": r["sim_cycles"],
                 "sim_mcycles_per_s": round(r["sim_cycles"] / r["wall_s"] / 1e6, 3),
                 "golden_s": round(r["golden_s"], 2), "build_dir": r["build_dir"],
                 "rtl_sha256": r["rtl_sha256"], "shards": r["shards"]}
        n_res, wall, build_s = len(res), r["wall_s"], r["build_s"]
        mism, cme, errors, simulator = (r["mismatches"], r["cycle_model_errors"],
                                        r["errors"], r["simulator"])
    else:
        s = run_accel_sim(dict(model=model, indices=idx.tolist(), simulator=a.simulator,
                               lanes=lanes, build_dir=a.build_dir, stalls=not a.no_stalls,
                               tests="stream_images", progress=not a.no_progress))
        stream = [d for d in s["details"] if d["test"] == "stream_images"]
        pred = np.array([d["cls"] for d in stream], np.int64)
        fc = np.array([d["front_cycles"] for d in stream], np.int64)
        bc = np.array([d["back_cycles"] for d in stream], np.int64)
        bound = expected(model, q[:len(stream)], s_params(s), maps=False)["bound"]
        extra = {"spike_maps_checked": True, "build_dir": s["build_dir"],
                 "rtl_sha256": hashlib.sha256((Path(s["build_dir"]) / "rtl" /
                                               "dietsnn_accel.v").read_bytes()).hexdigest()}
        n_res, wall, build_s = len(stream), s["wall_s"], s["build_s"]
        mism, cme, errors, simulator = (s["mismatches"], s["cycle_model_errors"],
                                        s["errors"], s["simulator"])
    interval = np.maximum(fc, bc) + 1
    correct = int((pred == labels[:n_res]).sum())
    cmd = "python bench/accel_sim.py " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    out = {
        "model": model.name, "harness": a.harness, "simulator": simulator, "lanes": lanes,
        "images": n_res, "mismatches": mism, "correct": correct,
        "accuracy": correct / n_res if n_res else 0.0,
        "cycle_model_errors": cme,
        "front_cycles": int(fc[0]) if n_res else None,
        "back_mean": float(bc.mean()) if n_res else None,
        "back_min_max": [int(bc.min()), int(bc.max())] if n_res else None,
        "interval_mean": float(interval.mean()) if n_res else None,
        "lower_bound_mean": float(bound.mean()) if n_res else None,
        "ratio_to_bound": float((interval / bound).mean()) if n_res else None,
        **{k: v for k, v in extra.items() if k != "build_dir"},
        "sim_wall_s": round(wall, 2), "sim_images_per_s": round(n_res / wall, 3) if wall else 0,
        "build_s": round(build_s, 1), "errors": errors[:5],
        "selection": sel, "command": cmd, "cpus": os.cpu_count(), **_revision(),
        "build_dir": extra["build_dir"],
    }
    text = json.dumps(out, indent=1)
    if a.out:
        write_atomic(a.out, text + "\n")
    if a.json:
        print(text)
    else:
        for k, v in out.items():
            if k not in ("selection", "errors"):
                print(f"{k:28s} {v}")
        for e in errors[:5]:
            print(e, file=sys.stderr)
    return 0 if mism == 0 and cme == 0 and n_res == len(idx) else 1


if __name__ == "__main__":
    sys.exit(main())
