"""Throughput of the golden model (:func:`dietsnn.golden.run`) on the CIFAR-10 topology.

Runs the shipped ``models/cifar10.npz`` (or, until it exists, the fixed-seed random model of
the same topology ``32C-32C-P-64C-64C-P-128C-128C-P-10``) over CIFAR-10 test images and
reports images per second as one JSON object on stdout (and in ``--out``)::

    .venv/bin/python bench/golden_bench.py                  # all 10,000 test images
    .venv/bin/python bench/golden_bench.py --images 1000 --out build/golden_bench.json

``--random-images`` uses fixed-seed uniform random pixels instead of CIFAR-10 (for machines
without the data set); the dense arithmetic, and so the speed, does not depend on the pixels.
On a busy machine ``--blas-threads 1`` is often faster: two BLAS threads that must wait for a
core spin instead of working.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from dietsnn import golden
from dietsnn.commands import arch_string
from dietsnn.fileio import write_atomic
from dietsnn.model import Model, load_model, shipped_models
from dietsnn.topology import random_model

CIFAR10_ARCH = "32C-32C-P-64C-64C-P-128C-128C-P-10"


def pick_model(name: str | None) -> Model:
    if name:
        return load_model(name)
    if "cifar10" in shipped_models():
        return load_model("cifar10")
    return random_model(CIFAR10_ARCH, seed=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model name or path (default: cifar10, else random)")
    ap.add_argument("--images", type=int, default=10_000, help="test images (default 10000)")
    ap.add_argument("--batch", type=int, default=64, help="images per golden.run block")
    ap.add_argument("--data", help="CIFAR-10 location (default: dietsnn.data's search)")
    ap.add_argument("--random-images", action="store_true",
                    help="fixed-seed random pixels instead of CIFAR-10")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--blas-threads", type=int,
                    help="restart with OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS) set to this")
    args = ap.parse_args(argv)
    if args.blas_threads and os.environ.get("OPENBLAS_NUM_THREADS") != str(args.blas_threads):
        # BLAS reads its thread count when numpy loads: start afresh with it set
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(args.blas_threads),
               "OMP_NUM_THREADS": str(args.blas_threads)}
        os.execve(sys.executable, [sys.executable, __file__, *(argv or sys.argv[1:])], env)

    model = pick_model(args.model)
    if args.random_images:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (args.images, *model.input.shape), dtype=np.uint8)
        labels, source = None, "random pixels (seed 0)"
    else:
        from dietsnn.data import load_cifar10
        from dietsnn.selection import select_subset
        ds = load_cifar10("test", args.data)
        images, labels, selection = select_subset(ds, min(args.images, len(ds.labels)),
                                                  split="test")
        source = f"{ds.source}, {selection['mode']} selection sha256 {selection['sha256'][:12]}"
    q = model.input.quantize(images)
    golden.run(model, q[:args.batch], batch=args.batch)  # warm-up: BLAS threads, buffers
    t0 = time.perf_counter()
    res = golden.run(model, q, batch=args.batch, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - t0
    n = len(q)
    report = {
        "benchmark": "golden.run",
        "model": model.name, "kind": model.kind, "arch": arch_string(model),
        "timesteps": model.timesteps, "images": n, "image_source": source,
        "batch": args.batch, "seconds": round(seconds, 3),
        "images_per_second": round(n / seconds, 2) if seconds > 0 else None,
        "seconds_per_10000_images": round(seconds * 10_000 / n, 1) if n else None,
        "accuracy": None if labels is None else float(np.mean(res.prediction == labels)),
        "spikes_per_image": {k: float(v.mean()) for k, v in res.spike_counts.items()},
        "chunk_bytes": golden.CHUNK_BYTES,
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "env": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
                                           "OMP_NUM_THREADS") if k in os.environ},
        "numpy": np.__version__, "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        write_atomic(args.out, text + "\n")
    print(f"golden.run: {n} images in {seconds:.1f} s = {n / seconds:.1f} img/s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
