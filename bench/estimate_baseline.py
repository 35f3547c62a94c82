"""Benchmark: hls4ml conversion, g++ compile and emulation speed of the ANN baseline.

Random images and a random-test model of the given topology (no data needed); prints one
JSON object with the times of each phase::

    .venv/bin/python bench/estimate_baseline.py --arch 8C-P-16C-P-10 --images 200
    .venv/bin/python bench/estimate_baseline.py --arch 32C-32C-P-64C-64C-P-128C-128C-P-10
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np
from dietsnn.estimate.baseline import baseline
from dietsnn.model import load_model
from dietsnn.topology import random_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model file (default: a random-test model)")
    ap.add_argument("--arch", default="8C-P-16C-P-10")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--reuse-factor", type=int, default=16)
    args = ap.parse_args()
    model = load_model(args.model) if args.model else random_model(args.arch, seed=0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, *model.input.shape), dtype=np.uint8)
    labels = rng.integers(0, len(model.classes), args.images)
    with tempfile.TemporaryDirectory(prefix="dietsnn-hls4ml-") as out:
        r = baseline(model, images, labels, images[:32], out_dir=out,
                     reuse_factor=args.reuse_factor, progress=False)
    s = r["seconds"]
    print(json.dumps({
        "bench": "estimate_baseline", "model": model.name, "images": args.images,
        "seconds": s, "predict_ms_per_image": round(1000 * s["predict"] / args.images, 3),
        "agreement_hls4ml_vs_float": r["agreement"]["hls4ml_vs_float_ann"],
    }))


if __name__ == "__main__":
    main()
