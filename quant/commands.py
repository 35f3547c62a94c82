"""``dietsnn train``: run the DIET-SNN training pipeline from a config file."""

from __future__ import annotations

import argparse
import json
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


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from dietsnn.cli import CLIError

    from .config import ConfigError, load_config
    from .train import STAGES, Pipeline

    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        raise CLIError(str(e)) from None
    if args.out:
        cfg = dataclasses.replace(cfg, out_dir=args.out)
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise CLIError("--device cuda: no CUDA device is available (this torch is "
                           f"{torch.__version__})")
    stages = STAGES if args.stage == "all" else (args.stage,)
    pipe = Pipeline(cfg, device=args.device, resume=args.resume, progress=not args.json,
                    budget_minutes=args.budget_minutes)
    result = pipe.run(stages)
    if args.ship and "export" in result:
        dst = Path(args.ship)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(result["export"]["path"], tmp)
        tmp.replace(dst)
    if args.json:
        print(json.dumps(result, default=str))
    return 0
