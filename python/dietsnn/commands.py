"""Core subcommands: ``dietsnn eval``, ``dietsnn run`` and ``dietsnn models``.

All three use the golden model (:mod:`dietsnn.golden`), the specification of the network.
``--json`` prints exactly one JSON object on stdout; otherwise a short table. Progress goes to
stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import golden
from .fileio import atomic_path
from .model import Model, ModelFileError, load, load_model, resolve, shipped_models

__all__ = ["arch_string", "register"]


def arch_string(model: Model) -> str:
    """The architecture string of ``model`` (``"32C-32C-P-...-10"``, see :mod:`topology`)."""
    tokens = []
    for layer in model.layers:
        if layer.type == "conv":
            tokens.append(f"{layer.out_shape[0]}C")
        elif layer.type == "pool":
            tokens.append("P")
        elif layer.output:
            tokens.append(f"{layer.out_shape[0]}")
        else:
            tokens.append(f"{layer.out_shape[0]}L")
    return "-".join(tokens)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table: numbers right-aligned, everything else left-aligned."""
    cols = list(zip(header, *rows, strict=True))
    width = [max(len(c) for c in col) for col in cols]

    def fmt(row: list[str]) -> str:
        cells = [c.rjust(w) if _is_number(c) else c.ljust(w)
                 for c, w in zip(row, width, strict=True)]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in width])] + [fmt(r) for r in rows])


def _emit(args: argparse.Namespace, report: dict[str, Any], human: str) -> None:
    if args.json:
        print(json.dumps(report))
    else:
        print(human)


def _positive(name: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, "
                                             f"not {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, not {v}")
        return v
    return parse


# --------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> int:
    from .data import load_cifar10
    from .selection import select_subset

    model = load_model(args.model)
    ds = load_cifar10("test", args.data)
    n = len(ds) if args.images is None else min(args.images, len(ds))
    # spread over the class-sorted split, so that a subset still covers every class
    images, labels, selection = select_subset(ds, None if n == len(ds) else n, split="test")
    t_steps = args.timesteps or model.timesteps
    q = model.input.quantize(images)
    t0 = time.perf_counter()
    res = golden.run(model, q, timesteps=t_steps, batch=args.batch, progress=True)
    seconds = time.perf_counter() - t0
    correct = res.prediction == labels
    per_class = {c: float(correct[labels == i].mean()) if (labels == i).any() else None
                 for i, c in enumerate(model.classes)}
    report = {
        "model": model.name, "path": str(resolve(args.model)), "kind": model.kind,
        "arch": arch_string(model), "data": ds.source, "split": "test",
        "images": n, "selection": selection,
        "timesteps": t_steps, "correct": int(correct.sum()),
        "accuracy": float(correct.mean()) if n else 0.0,
        "per_class_accuracy": per_class,
        "spikes_per_image": {k: float(v.mean()) for k, v in res.spike_counts.items()},
        "seconds": round(seconds, 3),
        "images_per_second": round(n / seconds, 1) if seconds > 0 else None,
    }
    rows = [[c, f"{a:.4f}" if a is not None else "-"] for c, a in per_class.items()]
    human = (f"{model.name} ({model.kind}, {arch_string(model)}, T={t_steps}) on {n} test "
             f"images of {ds.source}\n\n" + _table(rows, ["class", "accuracy"]) +
             f"\n\naccuracy {report['accuracy']:.4f} ({report['correct']}/{n})   "
             f"{seconds:.1f} s, {report['images_per_second']} images/s")
    _emit(args, report, human)
    return 0


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------
def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)


def cmd_run(args: argparse.Namespace) -> int:
    from .data import load_cifar10
    from .errors import CLIError

    model = load_model(args.model)
    ds = load_cifar10(args.split, args.data)
    if not 0 <= args.index < len(ds):
        raise CLIError(f"--index must lie in 0..{len(ds) - 1} for the {args.split} split, "
                       f"not {args.index}")
    t_steps = args.timesteps or model.timesteps
    q = model.input.quantize(ds.images[args.index:args.index + 1])
    res = golden.run(model, q, timesteps=t_steps, record=["spikes"])
    label, pred = int(ds.labels[args.index]), int(res.prediction[0])
    logits = res.logits[0]
    counts = {k: int(v[0]) for k, v in res.spike_counts.items()}
    report = {
        "model": model.name, "split": args.split, "index": args.index, "timesteps": t_steps,
        "label": label, "label_name": model.classes[label],
        "prediction": pred, "prediction_name": model.classes[pred], "correct": pred == label,
        "logits": [int(v) for v in logits], "spike_counts": counts,
        "neurons": {x.name: x.neurons for x in model.layers if x.name in counts},
    }
    if args.dump:
        arrays = {"input": q[0], "logits": logits, "label": np.int64(label),
                  "prediction": np.int64(pred)}
        arrays.update({f"spikes/{k}": v[0] for k, v in res.spikes.items()})
        _save_npz_atomic(Path(args.dump), arrays)
        report["dump"] = str(args.dump)
    rows = [[name, str(c), str(report["neurons"][name] * t_steps),
             f"{c / (report['neurons'][name] * t_steps):.3f}"] for name, c in counts.items()]
    logit_rows = [[model.classes[i], str(int(v)), "<" if i == pred else ""]
                  for i, v in enumerate(logits)]
    human = (f"{args.split}[{args.index}]: label {label} ({model.classes[label]}), "
             f"predicted {pred} ({model.classes[pred]}) {'ok' if pred == label else 'WRONG'}"
             f"  [{model.name}, T={t_steps}]\n\n"
             + _table(rows, ["layer", "spikes", "of", "rate"]) + "\n\n"
             + _table(logit_rows, ["class", "logit", ""])
             + (f"\n\nwrote {args.dump}" if args.dump else ""))
    _emit(args, report, human)
    return 0


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def describe(model: Model, path: Path) -> dict[str, Any]:
    """The ``dietsnn models`` entry of one model."""
    lif = model.lif_layers
    return {
        "name": path.stem, "model": model.name, "path": str(path), "kind": model.kind,
        "timesteps": model.timesteps, "arch": arch_string(model),
        "weight_bits": sorted({x.weight_bits for x in model.layers if x.has_weights}),
        "membrane_bits": sorted({x.membrane_bits for x in lif}),
        "parameters": int(sum(w.size for w in model.weights.values())),
        "test_accuracy": model.metrics.get("test_accuracy"),
        "metrics": model.metrics,
    }


def cmd_models(args: argparse.Namespace) -> int:
    entries = []
    for name, path in shipped_models().items():
        try:
            entries.append(describe(load(path), path))
        except ModelFileError as e:
            entries.append({"name": name, "path": str(path), "error": str(e)})
    if args.json:
        print(json.dumps({"models": entries}))
        return 0
    if not entries:
        from .model import models_dir
        print(f"no shipped models in {models_dir()}")
        return 0
    rows = []
    for e in entries:
        if "error" in e:
            rows.append([e["name"], "INVALID", "-", "-", "-", "-", "-"])
            continue
        acc = e["test_accuracy"]
        rows.append([e["name"], e["kind"], str(e["timesteps"]), e["arch"],
                     "/".join(map(str, e["weight_bits"])), f"{e['parameters']:,}",
                     f"{acc:.4f}" if isinstance(acc, (int, float)) else "-"])
    print(_table(rows, ["name", "kind", "T", "arch", "wbits", "params", "test acc"]))
    for e in entries:
        if "error" in e:
            print(f"{e['name']}: {e['error']}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    """Add ``eval``, ``run`` and ``models`` to the ``dietsnn`` command line."""
    p = sub.add_parser("eval", help="accuracy of the golden (integer) model on CIFAR-10 test",
                       description="Accuracy of the bit-exact golden model on the test split.")
    p.add_argument("--model", required=True, help="model file or shipped name (cifar10, tiny)")
    p.add_argument("--data", help="CIFAR-10 folder or archive (default: automatic search)")
    p.add_argument("--images", type=_positive("--images"),
                   help="N test images, evenly spaced over the split (default: all)")
    p.add_argument("--timesteps", type=_positive("--timesteps"),
                   help="override the model's T")
    p.add_argument("--batch", type=_positive("--batch"), default=64,
                   help="images per golden-model block (64)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("run", help="run one image through the golden model",
                       description="One image: prediction, logits and spikes per layer.")
    p.add_argument("--model", required=True, help="model file or shipped name")
    p.add_argument("--index", type=int, required=True, help="image index in the split")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--data", help="CIFAR-10 folder or archive (default: automatic search)")
    p.add_argument("--timesteps", type=_positive("--timesteps"),
                   help="override the model's T")
    p.add_argument("--dump", metavar="OUT.npz",
                   help="write input, logits, label and spikes/<layer> [T, ...] to an .npz")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("models", help="list the shipped models",
                       description="Shipped models in models/ with their recorded accuracy.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_models)
