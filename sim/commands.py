"""``dietsnn sim``: run a cocotb bit-exact check of the RTL on CIFAR-10 test images.

Targets are plug-ins: :data:`TARGETS` maps a name to ``(add_arguments, run)``, ``run(args)``
returning a dict with at least ``images``, ``mismatches`` and ``simulator``. ``neuron`` (the
LIF neuron array, this module) is always there; ``accel`` (the whole accelerator) appears
when ``dietsnn.sim.accel_runner`` exists and has ``run_accel_sim(args) -> dict`` (and,
optionally, ``add_accel_args(parser)`` for its own options), and is then the default.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dietsnn.cli import CLIError

Runner = Callable[[argparse.Namespace], dict[str, Any]]


# --------------------------------------------------------------------------------------------
# target: neuron
# --------------------------------------------------------------------------------------------
def pick_model(spec: str) -> Any:
    """A model file / shipped name, ``random:ARCH[:SEED]``; ``tiny`` falls back to the random
    model of the same topology (``8C-P-16C-P-10``, seed 0) until ``models/tiny.npz`` ships."""
    from dietsnn.hw.commands import resolve_model
    from dietsnn.model import ModelFileError, shipped_models
    if spec == "tiny" and "tiny" not in shipped_models():
        from dietsnn.topology import random_model
        print("dietsnn sim: models/tiny.npz not found; using random_model('8C-P-16C-P-10', "
              "seed=0)", file=sys.stderr)
        return random_model("8C-P-16C-P-10", seed=0)
    try:
        return resolve_model(spec)
    except ModelFileError:
        raise
    except FileNotFoundError as e:
        raise CLIError(str(e)) from None


def run_neuron_sim(args: argparse.Namespace) -> dict[str, Any]:
    """Check every LIF layer of ``args.model`` on ``args.images`` test images (and
    ``args.random_updates`` random corner-case updates) in the RTL neuron array."""
    from dietsnn.data import load_cifar10

    from .runner import (
        CheckConfig,
        SimulatorMissing,
        image_jobs,
        make_random_jobs,
        run_neuron_check,
    )

    model = pick_model(args.model)
    n = int(args.images)
    if n < 0:
        raise CLIError(f"--images must be 0 or more, not {n}")
    jobs_img: list[Any] = []
    if n:
        ds = load_cifar10(split="test", data=getattr(args, "data", None))
        start = int(getattr(args, "start", 0) or 0)
        if start + n > len(ds.labels):
            raise CLIError(f"--start {start} --images {n}: the test set has "
                           f"{len(ds.labels)} images")
        print(f"golden model on {n} test images ...", file=sys.stderr)
        jobs_img = image_jobs(model, ds.images[start:start + n], start)
    build_dir = getattr(args, "build_dir", None) or (
        Path(tempfile.gettempdir()) / "dietsnn-neuron"
        / f"{model.name}-L{args.lanes}-{args.schedule}-R{getattr(args, 'loop_stages', 3)}")
    stalls = not getattr(args, "no_stalls", False)
    cfg = CheckConfig(simulator=args.simulator, build_dir=Path(build_dir),
                      p_valid=0.9 if stalls else 1.0, p_ready=0.8 if stalls else 1.0,
                      seed=int(getattr(args, "seed", 0) or 0),
                      waves=bool(getattr(args, "waves", False)))
    rnd = int(getattr(args, "random_updates", 0) or 0)

    def jobs_for(params: dict[str, Any]) -> list[Any]:
        extra = make_random_jobs(params, updates=rnd, seed=cfg.seed) if rnd else []
        return jobs_img + extra

    print(f"building and running {args.simulator} ...", file=sys.stderr)
    try:
        res = run_neuron_check(cfg, jobs_for, model=model, lanes=args.lanes,
                               schedule_name=args.schedule,
                               loop_stages=int(getattr(args, "loop_stages", 3)))
    except SimulatorMissing as e:
        raise CLIError(str(e)) from None
    sim_s = res.get("seconds") or 0.0
    res.update(target="neuron", model=model.name, random_updates=rnd,
               cycles_per_s=round(res["cycles"] / sim_s, 1) if sim_s else None,
               updates_per_s=round(res["updates"] / sim_s, 1) if sim_s else None)
    return res


def add_neuron_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schedule", choices=("register", "memory"), default="register",
                   help="neuron target: the array's schedule (default register)")
    p.add_argument("--loop-stages", type=int, choices=(1, 2, 3), default=3,
                   help="neuron target: cycles of the membrane recurrence (default 3)")
    p.add_argument("--random-updates", type=int, default=0, metavar="N",
                   help="neuron target: also check N random corner-case neuron updates")


# --------------------------------------------------------------------------------------------
# targets and the command
# --------------------------------------------------------------------------------------------
def targets() -> dict[str, tuple[Callable[[argparse.ArgumentParser], None] | None, Runner]]:
    """Available targets; the first one is the default."""
    found: dict[str, tuple[Any, Runner]] = {}
    try:
        accel = importlib.import_module("dietsnn.sim.accel_runner")
    except ImportError:
        accel = None
    if accel is not None and callable(getattr(accel, "run_accel_sim", None)):
        found["accel"] = (getattr(accel, "add_accel_args", None), accel.run_accel_sim)
    found["neuron"] = (add_neuron_args, run_neuron_sim)
    return found


def _defaults() -> tuple[str, int]:
    """The model and image count ``dietsnn sim`` and ``make sim`` default to (defined once, in
    ``dietsnn.sim.accel_runner``; the Makefile passes only what is set)."""
    try:
        from .accel_runner import DEFAULT_IMAGES, DEFAULT_MODEL
    except ImportError:
        return "tiny", 2
    return DEFAULT_MODEL, DEFAULT_IMAGES


def register(sub: Any) -> None:
    tg = targets()
    model, images = _defaults()
    p = sub.add_parser(
        "sim", help="check the RTL against the golden model in a cocotb simulation",
        description="Generate the RTL, simulate it with cocotb on CIFAR-10 test images and "
                    "compare every bit with the golden model. Exits 1 on any mismatch.")
    p.add_argument("--target", choices=list(tg), default=next(iter(tg)),
                   help=f"what to simulate (default {next(iter(tg))})")
    p.add_argument("--model", default=model,
                   help=f"model file, shipped name or random:ARCH[:SEED] (default {model})")
    p.add_argument("--images", type=int, default=images,
                   help=f"CIFAR-10 test images, spread over the set (default {images})")
    p.add_argument("--start", type=int, default=0,
                   help="offset of the spread selection (accel) / first test image (neuron)")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default=None,
                   help="default: $SIM or verilator")
    p.add_argument("--lanes", type=int, default=None,
                   help="parallel lanes, a power of two in 4..64 (default: accel 32 for "
                        "cifar10-sized models, else 16; neuron 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of stalls and random stimulus")
    p.add_argument("--no-stalls", action="store_true",
                   help="no random idle cycles or back-pressure")
    p.add_argument("--waves", action="store_true",
                   help="write a waveform (FST; VCD where Verilator cannot write FST)")
    p.add_argument("--build-dir", type=Path, default=None,
                   help="simulator build folder (default build/sim/<model>-L<lanes>-<sim>)")
    p.add_argument("--data", default=None, help="CIFAR-10 location (default: see dietsnn.data)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    for add, _ in tg.values():
        if add is not None:
            add(p)
    p.set_defaults(func=run_sim, stalls=True)


def run_sim(args: argparse.Namespace) -> int:
    from .runner import default_simulator
    if args.simulator is None:
        args.simulator = default_simulator()
    args.stalls = not args.no_stalls
    if args.target == "neuron" and args.lanes is None:
        args.lanes = 16
    if os.environ.get("WAVES", "").lower() in ("1", "true", "yes", "on"):
        args.waves = True
    json_out = args.json
    args.json = None              # the accel runner takes a path here; this flag prints
    _, run = targets()[args.target]
    res = run(args)
    if json_out:
        print(json.dumps({k: v for k, v in res.items() if k != "details"}, default=str))
    else:
        _print_table(args.target, res)
    return 1 if res.get("mismatches", 1) or res.get("failed") else 0


def _print_table(target: str, res: dict[str, Any]) -> None:
    rows = [("target", target), ("simulator", res.get("simulator")),
            ("model", res.get("model")), ("images", res.get("images"))]
    for key in ("lanes", "updates", "mismatches", "correct", "accuracy", "cycles",
                "cycles_per_image", "front_cycles", "back_mean", "interval_mean",
                "cycle_model_errors", "cycles_per_s", "updates_per_s", "images_per_s",
                "simulated_time_us", "wall_s", "build_seconds", "sim_seconds", "build_dir",
                "waves"):
        if key in res:
            rows.append((key, res[key]))
    w = max(len(k) for k in [r[0] for r in rows] + [f"test {t}" for t in res.get("tests", {})])
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    for name, t in res.get("tests", {}).items():
        print(f"{'test ' + name:<{w}}  {'passed' if t['passed'] else 'FAILED'}")
    for e in [*res.get("details", []), *res.get("errors", [])][:20] if target == "neuron" \
            else res.get("errors", [])[:20]:
        print(e, file=sys.stderr)
