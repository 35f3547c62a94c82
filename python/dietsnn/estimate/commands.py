"""``dietsnn estimate``, ``dietsnn sweep`` and ``dietsnn baseline``."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import numpy as np

from dietsnn.errors import CLIError
from dietsnn.model import Model
from dietsnn.parallel import check_jobs
from dietsnn.selection import MODES

from .energy import HOROWITZ_45NM, load_energy_table
from .parts import PARTS, TARGETS, get_part

#: Images of the training split (stratified, seeded by ``--seed``) that set the baseline's
#: fixed-point layer scales.
CALIBRATION_IMAGES = 64


def _images(model: Model, n: int, data: str | None, *, split: str = "test",
            mode: str = "spread", seed: int = 0, progress: bool = True
            ) -> tuple[np.ndarray, np.ndarray, dict]:
    """``n`` representative CIFAR-10 images (uint8) of ``split``, their labels, and the
    selection record for the JSON output (:mod:`dietsnn.selection`)."""
    from dietsnn.data import load_cifar10
    from dietsnn.selection import select_subset

    if model.input.shape != (3, 32, 32):
        raise CLIError(f"model {model.name} takes {list(model.input.shape)} inputs; the "
                       f"CIFAR-10 {split} set is [3, 32, 32]")
    if n < 1:
        raise CLIError(f"--images must be a positive integer, not {n}")
    ds = load_cifar10(split=split, data=data, progress=progress)
    if n > len(ds.labels):
        raise CLIError(f"--images {n}: the {split} set has only {len(ds.labels)} images")
    try:
        return select_subset(ds, n, split=split, mode=mode, seed=seed)
    except ValueError as e:
        raise CLIError(f"image selection: {e}") from None


def load_model(spec: str) -> Model:
    """A model file, a shipped name or ``random:ARCH[:SEED][:bias]``: the one resolver of the
    command line (:func:`dietsnn.hw.commands.resolve_model`, as ``rtl`` and ``sim`` use)."""
    from dietsnn.hw.commands import resolve_model

    return resolve_model(spec)


def _jobs(text: str) -> int:
    try:
        return check_jobs(int(text))
    except (ValueError, CLIError):
        raise argparse.ArgumentTypeError(
            f"--jobs must be a positive integer, not {text!r}") from None


def _lanes(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"lanes must be integers like 4,8,16, not {text!r}") from None
    if not vals or any(v < 1 or v & (v - 1) for v in vals):
        raise argparse.ArgumentTypeError(f"lanes must be positive powers of two, not {text!r}")
    return vals


def _target_part(args: argparse.Namespace) -> tuple[str, str | None]:
    """The target, inferred from ``--part`` when only the part is given."""
    if args.part and args.target is None:
        return get_part(args.part).family, args.part
    target = args.target or "ecp5"
    if target not in TARGETS:
        raise CLIError(f"--target must be one of {', '.join(TARGETS)}, not {target!r}")
    if args.part:
        get_part(args.part, target)
    return target, args.part


def _common(p: argparse.ArgumentParser, images: int) -> None:
    p.add_argument("--model", required=True,
                   help="model file, shipped name (cifar10, tiny) or "
                        "random:ARCH[:SEED][:bias]")
    p.add_argument("--images", type=int, default=images,
                   help=f"CIFAR-10 test images to run (default {images}), chosen by --select")
    p.add_argument("--select", choices=MODES, default="spread",
                   help="image selection: 'spread' evenly over the class-sorted test set "
                        "(default) or 'stratified' (seeded random, equal count per class)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the stratified selection (default 0)")
    p.add_argument("--data", default=None, help="CIFAR-10 folder or archive (default: search)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _hw_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default=None, help=f"one of {', '.join(TARGETS)} (default ecp5, "
                   f"or the family of --part)")
    p.add_argument("--part", default=None,
                   help=f"part for the fit headline and place and route: "
                        f"{', '.join(x.name for x in PARTS)}")
    p.add_argument("--freq", type=float, default=100.0,
                   help="nextpnr target frequency in MHz (default 100)")
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="clock (MHz) for latency and images/s wherever place and route gives "
                        "no Fmax: xc7 (no open place and route), --no-pnr, --no-synth, a "
                        "failed fit; reported as user-given")
    p.add_argument("--no-pnr", action="store_true", help="skip place and route")
    p.add_argument("--no-cache", action="store_true", help="rerun the tools even if cached")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="FPGA resources, clock, latency and energy of a model",
                       description="Synthesise the accelerator, place and route it, and "
                                   "estimate latency and energy from real spike counts.")
    _common(p, 100)
    p.add_argument("--lanes", type=int, default=None,
                   help="accelerator lanes (default: the design point of the model, 32 for "
                        "cifar10-sized models, else 16)")
    _hw_args(p)
    p.add_argument("--energy-table", default=None,
                   help="JSON energy table (default: Horowitz 45 nm, see docs/estimate.md)")
    p.add_argument("--no-synth", action="store_true",
                   help="only energy, sparsity and cycles (no synthesis)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write report.json, report.md and PNG plots to DIR")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("sweep", help="lanes sweep: resources vs latency and the Pareto front")
    _common(p, 50)
    p.add_argument("--lanes", type=_lanes, default=[4, 8, 16, 32, 64],
                   help="comma-separated lane counts (default 4,8,16,32,64)")
    _hw_args(p)
    p.add_argument("--out", default="build/sweep", help="output folder (default build/sweep)")
    p.add_argument("--jobs", type=_jobs, default=1,
                   help="points synthesised at once in local processes (default 1)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run the points on this Dask distributed scheduler's workers "
                        "(README: a sweep on a cluster)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("baseline", help="the ANN baseline with hls4ml (Vitis, io_stream)")
    _common(p, 200)
    p.add_argument("--out", default=None,
                   help="folder for the hls4ml project and baseline.json "
                        "(default build/baseline/<model>)")
    p.add_argument("--reuse-factor", type=int, default=16,
                   help="hls4ml reuse factor of the written project (default 16)")
    p.add_argument("--ann-checkpoint", default=None,
                   help="trained ANN checkpoint (<run>/ann.pt of dietsnn train) for the "
                        "weights (default: provenance 'ann_checkpoint', else the SNN's)")
    p.add_argument("--fpga-part", default="xc7z020clg400-1",
                   help="Vitis part of the written project (default xc7z020clg400-1)")
    p.set_defaults(func=cmd_baseline)


def _emit(args: argparse.Namespace, result: dict, text: str) -> None:
    if args.json:
        print(json.dumps(result))
    else:
        print(text)


def _command_line(args: argparse.Namespace, target: str, part: str | None) -> str:
    """The estimate command that reproduces this report (defaults spelt out)."""
    words = ["dietsnn", "estimate", "--model", args.model, "--lanes", str(args.lanes),
             "--target", target, "--images", str(args.images)]
    if args.select != "spread":
        words += ["--select", args.select, "--seed", str(args.seed)]
    if part:
        words += ["--part", part]
    for flag in ("energy_table", "clock_mhz", "data"):
        if getattr(args, flag) is not None:
            words += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    words += [f"--{f.replace('_', '-')}" for f in ("no_pnr", "no_synth") if getattr(args, f)]
    return " ".join(shlex.quote(w) for w in words)


def _default_lanes(model) -> int:
    """The accelerator's default design point for ``model`` (16 without the hardware part)."""
    try:
        from ..hw.accel.plan import default_lanes
    except ImportError:
        return 16
    return default_lanes(model)


def cmd_estimate(args: argparse.Namespace) -> int:
    from .layers import layer_rows_table
    from .pipeline import estimate
    from .report import _md_table, summary_table, write_report

    target, part = _target_part(args)
    if args.lanes is not None and (args.lanes < 1 or args.lanes & (args.lanes - 1)):
        raise CLIError(f"--lanes must be a positive power of two, not {args.lanes}")
    if args.clock_mhz is not None and not args.clock_mhz > 0:
        raise CLIError(f"--clock-mhz must be a positive number of MHz, not {args.clock_mhz}")
    table = load_energy_table(args.energy_table) if args.energy_table else HOROWITZ_45NM
    model = load_model(args.model)
    if args.lanes is None:
        args.lanes = _default_lanes(model)
    images, labels, sel = _images(model, args.images, args.data, mode=args.select,
                                  seed=args.seed)
    r = estimate(model, images, labels, lanes=args.lanes, target=target, part=part,
                 table=table, synth=not args.no_synth, pnr=not args.no_pnr,
                 freq_mhz=args.freq, clock_mhz=args.clock_mhz, cache=not args.no_cache,
                 selection=sel)
    r["command"] = _command_line(args, target, part)
    if args.report:
        paths = write_report(r, args.report, command=r["command"])
        r["report_files"] = [str(x) for x in paths]
    text = summary_table(r)
    if (r.get("layers") or {}).get("rows"):
        head, rows = layer_rows_table(r["layers"])
        text += "\n\nper layer (mean per image):\n" + _md_table(head, rows)
    if args.report:
        text += f"\nreport: {args.report}/report.md, {args.report}/report.html"
    _emit(args, r, text)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import sweep, sweep_table, write_sweep

    target, part = _target_part(args)
    model = load_model(args.model)
    images, labels, sel = _images(model, args.images, args.data, mode=args.select,
                                  seed=args.seed)
    s = sweep(model, images, labels, lanes=args.lanes, target=target, part=part,
              pnr=not args.no_pnr, freq_mhz=args.freq, clock_mhz=args.clock_mhz,
              cache=not args.no_cache, selection=sel, jobs=args.jobs,
              scheduler=args.scheduler)
    paths = write_sweep(s, args.out)
    s["files"] = [str(x) for x in paths]
    _emit(args, s, sweep_table(s) + f"\nwritten: {', '.join(map(str, paths))}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from ..fileio import write_atomic
    from .baseline import baseline

    model = load_model(args.model)
    images, labels, sel = _images(model, args.images, args.data, mode=args.select,
                                  seed=args.seed)
    # calibration from the training split: never an image the accuracy is measured on
    calib, _, calib_sel = _images(model, CALIBRATION_IMAGES, args.data, split="train",
                                  mode="stratified", seed=args.seed, progress=False)
    out = Path(args.out or Path("build") / "baseline" / model.name)
    r = baseline(model, images, labels, calib, out_dir=out, reuse_factor=args.reuse_factor,
                 part=args.fpga_part, ann_checkpoint=args.ann_checkpoint)
    r["selection"] = sel
    r["calibration"] = calib_sel
    write_atomic(out / "baseline.json", (json.dumps(r, indent=1) + "\n").encode())
    a = r["accuracy"]
    text = (f"ANN baseline of {model.name} on {r['images']} CIFAR-10 test images\n"
            f"  hls4ml {r['hls4ml']['version']} (Vitis, io_stream, {r['precision']['activations']}"
            f"): accuracy {a['hls4ml']:.4f}\n"
            f"  float ANN: {a['float_ann']:.4f} (agreement with hls4ml "
            f"{r['agreement']['hls4ml_vs_float_ann']:.4f})\n"
            f"  SNN golden: {a['snn_golden']:.4f}\n"
            f"  weights: {r['weights']}\n"
            f"  project: {r['hls4ml']['project']} (compile {r['seconds']['compile']} s)")
    _emit(args, r, text)
    return 0
