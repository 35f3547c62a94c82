"""Design-space sweep over the number of lanes: resources vs latency, and the Pareto front.

One golden pass gives the cycles per image for every lane count; each lane count is then
synthesised (and placed and routed on ECP5 / iCE40), the points in parallel when asked
(``jobs`` local processes or a Dask cluster, :mod:`dietsnn.parallel`). A point is
Pareto-optimal when no other point has both fewer LUTs and a lower latency (latency in
microseconds at each point's clock, its Fmax or ``--clock-mhz``, when every point has one,
else in cycles).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dietsnn.model import Model

from ..fileio import write_atomic
from ..parallel import run_points
from .accel import AcceleratorUnavailable, CycleModel, RTLSource
from .pipeline import CLOCK_PNR, CLOCK_USER, golden_stats, hardware, preflight
from .report import _md_table, _pyplot, save_figure
from .tools import ToolFailedError


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (cost, latency) point: True when no other point is at least as good in both
    and better in one."""
    out = []
    for i, (a, b) in enumerate(points):
        dominated = any((c <= a and d <= b) and (c < a or d < b)
                        for j, (c, d) in enumerate(points) if j != i)
        out.append(not dominated)
    return out


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep, as shipped to a worker (picklable)."""

    model: Model
    lanes: int
    target: str
    part: str | None
    source: RTLSource | None
    pnr: bool
    freq_mhz: float
    cache: bool


def hardware_point(p: SweepPoint) -> dict:
    """Synthesis, fits and timing of one point (:func:`~.pipeline.hardware`); a failed tool
    run or accelerator generation is ``{"error": ...}``: one bad point, not the sweep."""
    try:
        return hardware(p.model, p.lanes, p.target, part=p.part, source=p.source, pnr=p.pnr,
                        freq_mhz=p.freq_mhz, cache=p.cache)
    except (ToolFailedError, AcceleratorUnavailable) as e:
        return {"error": str(e)}


def sweep(model: Model, images_u8: np.ndarray, labels: np.ndarray | None, *,
          lanes: Sequence[int], target: str = "ecp5", part: str | None = None,
          source: RTLSource | None = None, cycle_model: CycleModel | None = None,
          pnr: bool = True, freq_mhz: float = 100.0, clock_mhz: float | None = None,
          cache: bool = True, progress: bool = True, selection: dict | None = None,
          jobs: int = 1, scheduler: Any = None) -> dict:
    """Estimate every lane count; returns ``{"rows": [...], "latency_unit": ...}``.

    One golden pass here gives the cycles of every lane count; the points' synthesis (and
    place and route) run through :func:`dietsnn.parallel.run_points`: serially, in ``jobs``
    local processes, or on the Dask cluster ``scheduler``, with the same rows either way.
    ``selection`` (:func:`dietsnn.selection.selection_record`) is recorded as ``"selection"``.
    """
    preflight(target, pnr=pnr)
    gs = golden_stats(model, images_u8, labels, lanes=lanes, cycle_model=cycle_model,
                      progress=progress)
    points = [SweepPoint(model, lane, target, part, source, pnr, freq_mhz, cache)
              for lane in lanes]
    hws = run_points(hardware_point, points, jobs=jobs, scheduler=scheduler, desc="sweep",
                     progress=progress)
    rows = []
    for lane, hw in zip(lanes, hws, strict=True):
        if "error" in hw:
            rows.append({"lanes": lane, "error": hw["error"], "pareto": False})
            continue
        res = hw["synthesis"]["resources"]
        cyc = gs.cycles.get(lane)
        fmax = hw["timing"]["fmax_mhz"]
        clock = fmax or clock_mhz
        mean = float(cyc.mean()) if cyc is not None else None
        rows.append({
            "lanes": lane, "luts": res["luts"], "ffs": res["ffs"], "bram": res["bram"],
            "dsp": res["dsp"], "fmax_mhz": fmax, "logic_depth": hw["timing"]["logic_depth"],
            "clock_mhz": clock if (mean and clock) else None,
            "clock_source": (CLOCK_PNR if fmax else CLOCK_USER) if (mean and clock) else None,
            "cycles_mean": mean, "cycles_std": float(cyc.std()) if cyc is not None else None,
            "latency_us": mean / clock if (mean and clock) else None,
            "images_per_s": clock * 1e6 / mean if (mean and clock) else None,
            "fits": {f["part"]: f["fits"] for f in hw["fits"]},
            "note": hw["timing"].get("note") or gs.cycle_errors.get(lane),
        })
    rows.sort(key=lambda r: r["lanes"])
    good = [r for r in rows if "error" not in r]
    unit = "us" if good and all(r["latency_us"] for r in good) else "cycles"
    key = "latency_us" if unit == "us" else "cycles_mean"
    ok = [r for r in good if r[key] is not None]
    front = pareto([(r["luts"], r[key]) for r in ok])
    for r in rows:
        r["pareto"] = False
    for r, f in zip(ok, front, strict=True):
        r["pareto"] = f
    return {"model": model.name, "target": target, "part": part, "images": gs.images,
            "golden_accuracy": gs.accuracy if labels is not None else None,
            "selection": selection, "latency_unit": unit, "rows": rows}


def sweep_table(s: dict) -> str:
    """The sweep as a markdown table (fits: the parts of the target the point fits)."""
    head = ["lanes", "LUT", "FF", "BRAM", "DSP", "fits", "Fmax MHz", "cycles/image",
            "latency (us)", "images/s", "Pareto"]

    def cyc(x: float | None) -> int | None:
        return None if x is None else round(x)

    rows = [[r["lanes"], r["luts"], r["ffs"], r["bram"], r["dsp"],
             ", ".join(p for p, ok in r["fits"].items() if ok) or "none", r["fmax_mhz"],
             cyc(r["cycles_mean"]), r["latency_us"], r["images_per_s"],
             "*" if r["pareto"] else ""] if "error" not in r else
            [r["lanes"], f"failed: {r['error']}", *[None] * 8, ""] for r in s["rows"]]
    return _md_table(head, rows)


def plot_pareto(s: dict, path: Path) -> None:
    plt = _pyplot()
    unit = s["latency_unit"]
    key = "latency_us" if unit == "us" else "cycles_mean"
    rows = [r for r in s["rows"] if r.get(key) is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([r["luts"] for r in rows], [r[key] for r in rows], c="tab:gray")
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["luts"])
    ax.plot([r["luts"] for r in front], [r[key] for r in front], "o-", c="tab:red",
            label="Pareto front")
    misfit = [r for r in rows if not any(r["fits"].values())]
    if misfit:
        ax.scatter([r["luts"] for r in misfit], [r[key] for r in misfit], s=160,
                   facecolors="none", edgecolors="k", zorder=3,
                   label=f"fits no {s['target']} part")
    for r in rows:
        ax.annotate(f"L={r['lanes']}", (r["luts"], r[key]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"LUTs ({s['target']})")
    ax.set_ylabel("latency per image (us)" if unit == "us" else "cycles per image")
    ax.set_yscale("log")
    ax.set_title(f"{s['model']}: lanes sweep on {s['target']}")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def _selected(s: dict) -> str:
    sel = s.get("selection")
    return f" ({sel['mode']} selection, sha256 {sel['sha256'][:12]})" if sel else ""


def write_sweep(s: dict, out_dir: str | os.PathLike) -> list[Path]:
    """``sweep.json``, ``sweep.md`` and ``pareto.png`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_pareto(s, out / "pareto.png")
    write_atomic(out / "sweep.json", (json.dumps(s, indent=1) + "\n").encode())
    md = (f"# dietsnn sweep: {s['model']} on {s['target']}\n\n"
          f"{s['images']} test images{_selected(s)}; Pareto front in LUTs vs latency per image "
          f"({'us at each Fmax' if s['latency_unit'] == 'us' else 'cycles: no Fmax for some'})."
          f"\n\n{sweep_table(s)}\n\n![pareto](pareto.png)\n")
    write_atomic(out / "sweep.md", md.encode())
    return [out / "sweep.json", out / "sweep.md", out / "pareto.png"]
