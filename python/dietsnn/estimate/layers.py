"""Per-layer figures of the accelerator's design point: spikes, operations, LIF updates, cycles.

For every unit of the accelerator (:mod:`dietsnn.hw.accel`) and the layer it runs, averaged
over the images of a golden run (spikes recorded):

* **front** (the first conv layer, direct input): MACs per image, LIF updates (neurons x T),
  and its cycles, ``front_cycles`` (data-independent);
* **engine**, one row per hidden layer after the first (its 2x2 OR pool folded in): the input
  spikes it receives (the spikes of the map it reads), its accumulates (one per synapse of
  every input spike, as in :mod:`.energy`), LIF updates (neurons x T) and its cycles: the
  scanner's ticks on the real spikes plus the stage's fixed overhead
  (:data:`~dietsnn.hw.accel.cycles.STAGE_OVERHEAD`);
* **output**: input spikes, accumulates, no LIF (the output layer sums over all steps), cycles
  = ticks + one per class (argmax) + the back's sequencing
  (:data:`~dietsnn.hw.accel.cycles.BACK_OVERHEAD`).

The engine and output rows add up to the back's cycles exactly (:func:`image_cycles`).
``share`` is each row's cycles over the mean interval of a back-to-back stream
(``max(front, back) + 1``): front and back run concurrently on consecutive images, so the
front's share and the back's shares are of the same interval, and the larger unit (the
``bottleneck``) sets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dietsnn.errors import CLIError
from dietsnn.golden import Result
from dietsnn.model import Model


@dataclass
class _Sum:
    """Running sum, sum of squares, min and max of one per-image figure."""

    n: int = 0
    s: float = 0.0
    s2: float = 0.0
    lo: float = float("inf")
    hi: float = float("-inf")

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.size:
            self.n += x.size
            self.s += float(x.sum())
            self.s2 += float((x * x).sum())
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))

    @property
    def mean(self) -> float:
        return self.s / self.n if self.n else 0.0

    def to_json(self) -> dict[str, float]:
        if not self.n:
            return {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0}
        var = max(self.s2 / self.n - self.mean ** 2, 0.0)
        return {"mean": self.mean, "std": float(np.sqrt(var)), "min": self.lo, "max": self.hi}


@dataclass
class LayerTally:
    """Per-layer sums over chunks of golden results for the accelerator at ``lanes``.

    ``add`` one golden result (``record={"spikes"}``) at a time, then :meth:`to_json`.
    Raises :class:`~dietsnn.errors.CLIError` at construction when the accelerator's plan is
    not available for the model (the message says why).
    """

    model: Model
    lanes: int
    images: int = 0
    plan: Any = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    spikes: list[_Sum] = field(default_factory=list)
    cycles: list[_Sum] = field(default_factory=list)
    front: _Sum = field(default_factory=_Sum)
    back: _Sum = field(default_factory=_Sum)
    interval: _Sum = field(default_factory=_Sum)
    bound: _Sum = field(default_factory=_Sum)

    def __post_init__(self) -> None:
        try:
            from dietsnn.hw.accel.plan import make_plan
        except ImportError as e:
            raise CLIError(f"per-layer figures need dietsnn.hw.accel ({e})") from None
        try:
            self.plan = make_plan(self.model, self.lanes)
        except ValueError as e:  # PlanError, bad lanes
            raise CLIError(f"per-layer figures: {e}") from None
        p = self.plan
        # (row label, unit, the layer whose ops count, the map it reads or None)
        self.rows = [{"layer": _label(p.front.name, p.front.pool), "unit": "front",
                      "name": p.front.name, "src": None}]
        src = p.front.pool or p.front.name
        for st in p.stages:
            self.rows.append({"layer": _label(st.name, st.pool), "unit": "engine",
                              "name": st.name, "src": src})
            src = st.pool or st.name
        self.rows.append({"layer": p.out.name, "unit": "output", "name": p.out.name,
                          "src": src})
        self.spikes = [_Sum() for _ in self.rows]
        self.cycles = [_Sum() for _ in self.rows]

    def add(self, result: Result) -> None:
        from dietsnn.hw.accel.cycles import BACK_OVERHEAD, STAGE_OVERHEAD, image_cycles

        n = int(result.logits.shape[0])
        per = [image_cycles(self.model, result, i, lanes=self.lanes, plan=self.plan)
               for i in range(n)]
        k = self.plan.classes
        for j, row in enumerate(self.rows):
            if row["src"] is not None:
                self.spikes[j].add(result.spike_counts[row["src"]])
            if row["unit"] == "front":
                c = [x.front for x in per]
            elif row["unit"] == "engine":
                c = [x.stage_ticks[j - 1] + STAGE_OVERHEAD for x in per]
            else:
                c = [x.out_ticks + k + BACK_OVERHEAD for x in per]
            self.cycles[j].add(np.array(c))
        self.front.add(np.array([x.front for x in per]))
        self.back.add(np.array([x.back for x in per]))
        self.interval.add(np.array([x.interval for x in per]))
        self.bound.add(np.array([x.bound for x in per]))
        self.images += n

    def to_json(self, energy: dict | None = None) -> dict[str, Any]:
        """The per-layer table as plain JSON; ``energy`` (:func:`.energy.summarise`) supplies
        the MACs and accumulates per layer."""
        ops = {x["name"]: x for x in (energy or {}).get("layers", [])}
        layers = {x.name: x for x in self.model.layers}
        t = self.plan.timesteps
        interval = self.interval.mean
        rows = []
        for j, row in enumerate(self.rows):
            layer = layers[row["name"]]
            op = ops.get(row["name"], {})
            cyc = self.cycles[j].to_json()
            rows.append({
                "layer": row["layer"], "unit": row["unit"],
                "input_spikes": self.spikes[j].to_json() if row["src"] else None,
                "macs": op.get("snn_macs"),
                "accumulates": (op.get("snn_acs") or {}).get("mean") if row["src"] else 0,
                "lif_updates": 0 if layer.output else layer.neurons * t,
                "cycles": cyc,
                "share": cyc["mean"] / interval if interval else None,
            })
        front, back = self.front.mean, self.back.mean
        return {"lanes": self.lanes, "images": self.images, "timesteps": t,
                "front_cycles": front, "back_cycles": self.back.to_json(),
                "interval": self.interval.to_json(), "bound_mean": self.bound.mean,
                "bottleneck": "front" if front >= back else "back", "rows": rows}


def _label(name: str, pool: str) -> str:
    return f"{name} + {pool}" if pool else name


def layer_rows_table(layers: dict) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the per-layer table (for Markdown, HTML and the terminal)."""
    head = ["layer", "unit", "input spikes", "MAC", "AC", "LIF updates", "cycles", "share"]
    rows = []
    for r in layers["rows"]:
        sp = r["input_spikes"]
        rows.append([r["layer"], r["unit"], round(sp["mean"]) if sp else "image",
                     r["macs"] or 0, round(r["accumulates"] or 0), r["lif_updates"],
                     round(r["cycles"]["mean"]),
                     f"{100 * r['share']:.1f}%" if r["share"] is not None else None])
    return head, rows
