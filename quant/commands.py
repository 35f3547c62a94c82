"""``dietsnn train``: run the DIET-SNN training pipeline from a config file."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a DIET-SNN network (ANN, threshold init, SNN QAT, "
                                     "export) from a TOML config")
    p.add_argument("--config", required=True, help="TOML config (see configs/)")
    p.add_argument("--stage", default="all", choices=("all", "ann", "init", "snn", "export"),
                   help="run one stage (default: all, in order)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoints in the run folder")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cuda when available")
    p.add_argument("--out", default=None, help="run folder (default: the config's out_dir or "
                                               "runs/<name>)")
    p.add_argument("--ship", default=None, metavar="PATH",
                   help="after export, copy the model file here (e.g. models/tiny.npz)")
    p.add_argument("--budget-minutes", type=float, default=0.0,
                   help="lower the ANN and SNN epochs to fit this much training time on this "
                        "device (measured; recorded in the model's provenance)")
    p.add_argument("--json", action="store_true", help="print the stage results as JSON")
    p.set_defaults(func=_train)

    p = sub.add_parser("accuracy-vs-t", help="golden-model test accuracy for T = 1..T_max "
                                             "(one causal run), table + PNG")
    p.add_argument("--model", action="append", required=True,
                   help="model name or path (repeat for several)")
    p.add_argument("--tmax", type=int, default=8)
    p.add_argument("--images", type=int, default=0,
                   help="N test images chosen by --select (0: all)")
    _select_args(p)
    p.add_argument("--data", default=None)
    p.add_argument("--out", default=None, help="folder for accuracy_vs_T.json and .png")
    p.add_argument("--record", action="store_true",
                   help="store the curve in each model file's metrics (accuracy_vs_T)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_accuracy_vs_t)

    p = sub.add_parser("qat-check", help="check that the QAT network rebuilt from a model "
                                         "file equals the golden model bit for bit")
    p.add_argument("--model", required=True)
    p.add_argument("--images", type=int, default=256,
                   help="N test images chosen by --select (0: all)")
    _select_args(p)
    p.add_argument("--data", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_qat_check)


def _select_args(p: argparse.ArgumentParser) -> None:
    from dietsnn.selection import MODES

    p.add_argument("--select", choices=MODES, default="spread",
                   help="image selection: 'spread' evenly over the class-sorted test set "
                        "(default) or 'stratified' (seeded random, equal count per class)")
    p.add_argument("--seed", type=int, default=0, help="seed of --select stratified")


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from dietsnn.errors import CLIError
    from dietsnn.fileio import atomic_path

    from .config import load_config
    from .train import STAGES, Pipeline

    cfg = load_config(args.config)  # checked completely, before anything runs
    if not (math.isfinite(args.budget_minutes) and args.budget_minutes >= 0):
        raise CLIError(f"--budget-minutes must be a finite number >= 0, "
                       f"not {args.budget_minutes}")
    if args.out:
        cfg = dataclasses.replace(cfg, out_dir=args.out)
    if cfg.run_dir.exists() and not cfg.run_dir.is_dir():
        raise CLIError(f"run folder {cfg.run_dir} exists and is not a folder")
    if args.ship:
        ship = Path(args.ship)
        if ship.is_dir():
            raise CLIError(f"--ship {ship}: is a folder; give the model file's path "
                           f"(e.g. {ship / (cfg.name + '.npz')})")
        if ship.parent.exists() and not ship.parent.is_dir():
            raise CLIError(f"--ship {ship}: {ship.parent} is not a folder")
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise CLIError("--device cuda: no CUDA device is available (this torch is "
                           f"{torch.__version__})")
    stages = STAGES if args.stage == "all" else (args.stage,)
    pipe = Pipeline(cfg, device=args.device, resume=args.resume, progress=not args.json,
                    budget_minutes=args.budget_minutes)
    if pipe.device.type == "cpu":  # this process only trains: keep freed memory
        from .kernel import keep_freed_memory
        keep_freed_memory()
    result = pipe.run(stages)
    if args.ship and "export" in result:
        with atomic_path(args.ship) as tmp:
            shutil.copyfile(result["export"]["path"], tmp)
    if args.json:
        print(json.dumps(result, default=str))
    return 0


def _test_set(args: argparse.Namespace):
    """``(dataset, images, labels, selection record)``: ``--images`` test images chosen by
    :func:`dietsnn.selection.select_images` (all of them for 0)."""
    from dietsnn.data import load_cifar10
    from dietsnn.errors import CLIError
    from dietsnn.selection import select_subset

    ds = load_cifar10("test", data=args.data)
    if args.images < 0 or args.images > len(ds.labels):
        raise CLIError(f"--images must be in 0..{len(ds.labels)} (0: all), not {args.images}")
    try:
        images, labels, sel = select_subset(ds, args.images, split="test", mode=args.select,
                                            seed=args.seed)
    except ValueError as e:
        raise CLIError(f"image selection: {e}") from None
    return ds, images, labels, sel


def _accuracy_vs_t(args: argparse.Namespace) -> int:
    from dietsnn.errors import CLIError
    from dietsnn.fileio import write_atomic
    from dietsnn.model import load_model, resolve

    from .report import accuracy_vs_t, plot_accuracy_vs_t, record_in_model, table

    if not 1 <= args.tmax <= 1024:
        raise CLIError(f"--tmax must be an integer in 1..1024, not {args.tmax}")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: exists and is not a folder")
    models = [load_model(name) for name in args.model]  # every model checked before the run
    ds, images, labels, sel = _test_set(args)
    curves = {}
    for name, model in zip(args.model, models, strict=True):
        curves[model.name] = accuracy_vs_t(model, images, labels, t_max=args.tmax,
                                           progress=not args.json)
        if args.record:
            what = "" if len(labels) == len(ds.labels) else f" ({sel['mode']} selection)"
            record_in_model(model, curves[model.name],
                            f"{ds.source}, {len(labels)} test images{what}")
            model.save(resolve(name))
    if out is not None:
        write_atomic(out / "accuracy_vs_T.json", json.dumps(
            {"images": len(labels), "dataset": ds.source, "selection": sel, "curves": curves},
            indent=1))
        plot_accuracy_vs_t(curves, out / "accuracy_vs_T.png")
    if args.json:
        print(json.dumps({"images": len(labels), "selection": sel, "curves": curves}))
    else:
        print(table(curves))
    return 0


def _qat_check(args: argparse.Namespace) -> int:
    from dietsnn.model import load_model

    from .export import compare_with_golden, net_from_model

    model = load_model(args.model)  # before the data: a bad model fails fast
    _, images, _, sel = _test_set(args)
    rep = compare_with_golden(net_from_model(model), model, images, device=args.device)
    rep["selection"] = sel
    if args.json:
        print(json.dumps(rep))
    else:
        mism = sum(rep["spike_mismatches"].values())
        print(f"{model.name}: {rep['images']} images, logit mismatches "
              f"{rep['logit_mismatches']}, spike mismatches {mism}: "
              f"{'bit-exact' if rep['exact'] else 'MISMATCH'}")
    return 0 if rep["exact"] else 1
