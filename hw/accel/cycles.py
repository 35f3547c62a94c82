"""The v2 accelerator's exact cycle model and the lower bound it is measured against.

The two halves of the accelerator work on consecutive images (:mod:`.core`), so an image
stream runs at one image per ``interval = max(front + 1, back + 1)`` clocks, where

* ``front`` (``debug.front_cycles``) is data-independent:
  ``G1 * H * W * period + 3T + 16`` with ``period = max(C_in * 9, 3T)``
  (:func:`~.front.front_cycles`);
* ``back`` (``debug.back_cycles``) follows the scanner's walk on the image's real spikes:
  ``sum over LIF stages (N_s + 42) + N_out + K + 28`` where ``N`` is the stage's tick count,
  one tick per two set bits of a map word (``max(1, ceil(n / 2))`` ticks for a word with
  ``n``; the output stage one per set bit), one for a zero word (in a skipping stage one for
  a position whose words are all zero, none for the zero words of other positions), one per
  virtual position (two per row pass, ``W + 2`` per virtual row pass) — see :mod:`.scanner`.

:func:`image_cycles` evaluates both on the golden model's spikes
(``golden.run(..., record={"spikes"})``); the tests require equality with the RTL's counters.

:func:`cycle_bound` is the lower bound of this design on the same spikes: the front needs one
clock per tap of every output pixel and group (``G1 * H * W * C_in * 9``), the back one clock
per two input spikes and output group of every event-driven stage plus one per input spike of
the output layer; the bound on the interval is the larger of the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...golden import Result
from ...model import Model
from .plan import AccelPlan, EventStage, make_plan
from .scanner import FILL_LATENCY, POS_FILL_LATENCY

#: Clocks the scanner takes from its start to its first tick, beyond its two fills: A's
#: first issue, the position FIFO's push and X's load.
SCAN_START = 2
#: Clocks a LIF stage costs beyond its ticks (start, the scanner's fills, pipeline drain).
STAGE_OVERHEAD = 27 + SCAN_START + POS_FILL_LATENCY + FILL_LATENCY
#: Events (input spikes of one map word) a LIF stage's tick carries; the output stage's
#: ticks carry one.
EVENTS_PER_TICK = 2
#: Clocks of the back's sequencing beyond the stages' ticks and the argmax (``K``).
BACK_OVERHEAD = 13 + SCAN_START + POS_FILL_LATENCY + FILL_LATENCY
#: Front clocks beyond ``G1 * H * W * period``: ``3T + FRONT_FILL``.
FRONT_FILL = 16


def front_period(plan: AccelPlan) -> int:
    """Clocks per output pixel of the front: the taps, or the ``T`` LIF updates (3 clocks
    each) if they take longer."""
    return max(plan.front.taps, 3 * plan.timesteps)


def front_cycles(plan: AccelPlan) -> int:
    f = plan.front
    return f.g * f.h * f.w * front_period(plan) + 3 * plan.timesteps + FRONT_FILL


def word_pops(spikes: np.ndarray, lanes: int) -> np.ndarray:
    """Popcounts of the map words of one image's spikes ``[T, C, H, W]`` (or ``[T, F]``):
    ``[T, H, W, G]`` in map order."""
    s = spikes if spikes.ndim == 4 else spikes[:, :, None, None]
    t, c, h, w = s.shape
    g = -(-c // lanes)
    pad = np.zeros((t, g * lanes, h, w), np.int64)
    pad[:, :c] = s
    return pad.reshape(t, g, lanes, h, w).sum(axis=2).transpose(0, 2, 3, 1)


def stage_ticks(st: EventStage, pops: np.ndarray, timesteps: int) -> int:
    """Ticks of one LIF stage on its input map's popcounts ``[T, H, W, G_in]``: a word with
    ``n`` set bits takes ``max(1, ceil(n / 2))`` (two events per tick); in a skipping stage
    a position takes ``max(1, sum(ceil(n / 2)))`` over its words (zero words cost nothing)."""
    pops = -(-pops // EVENTS_PER_TICK)
    if st.skip:
        pops = pops.sum(axis=-1, keepdims=True)
    per_word = np.maximum(pops, 1).reshape(timesteps, -1).sum(axis=1)  # per step
    if st.kind == "conv":
        rows = np.maximum(pops, 1).sum(axis=(2, 3))                    # [T, H]
        real = st.g * (rows.sum() + 2 * st.h * timesteps)
    else:
        real = st.g * (per_word.sum() + 2 * timesteps)
    virtual = timesteps * st.g * (st.w + 2)
    return int(real + virtual)


def out_ticks(pops: np.ndarray) -> int:
    return int(np.maximum(pops, 1).sum())


@dataclass
class ImageCycles:
    """Cycle counts of one image (see the module docstring)."""

    front: int
    back: int
    stage_ticks: list[int]
    out_ticks: int
    bound_front: int
    bound_back: int

    @property
    def interval(self) -> int:
        return max(self.front, self.back) + 1

    @property
    def bound(self) -> int:
        return max(self.bound_front, self.bound_back)

    def to_json(self) -> dict[str, Any]:
        return {"front": self.front, "back": self.back, "interval": self.interval,
                "stage_ticks": self.stage_ticks, "out_ticks": self.out_ticks,
                "bound": self.bound}


def image_cycles(model: Model, res: Result, i: int, *, lanes: int,
                 plan: AccelPlan | None = None) -> ImageCycles:
    """The cycle counts of image ``i`` of ``res`` (golden, with spikes recorded)."""
    plan = plan or make_plan(model, lanes)
    T, L = plan.timesteps, plan.lanes
    src = plan.front.pool or plan.front.name
    ticks, bound_back = [], 0
    for st in plan.stages:
        pops = word_pops(res.spikes[src][i], L)
        ticks.append(stage_ticks(st, pops, T))
        bound_back += -(-int(pops.sum()) * st.g // EVENTS_PER_TICK)
        src = st.pool or st.name
    pops = word_pops(res.spikes[src][i], L)
    n_out = out_ticks(pops)
    bound_back += int(pops.sum())
    back = sum(n + STAGE_OVERHEAD for n in ticks) + n_out + plan.classes + BACK_OVERHEAD
    f = plan.front
    return ImageCycles(front=front_cycles(plan), back=back, stage_ticks=ticks, out_ticks=n_out,
                       bound_front=f.g * f.h * f.w * f.taps, bound_back=bound_back)


def summary(model: Model, res: Result, *, lanes: int) -> dict[str, Any]:
    """Mean cycle figures over the images of ``res``."""
    plan = make_plan(model, lanes)
    cs = [image_cycles(model, res, i, lanes=lanes, plan=plan) for i in range(len(res.logits))]
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    return {"lanes": lanes, "images": len(cs), "front": cs[0].front if cs else 0,
            "back_mean": mean([c.back for c in cs]),
            "interval_mean": mean([c.interval for c in cs]),
            "bound_mean": mean([c.bound for c in cs]),
            "ratio": mean([c.interval for c in cs]) / max(1.0, mean([c.bound for c in cs]))}


def cycles_per_image(model: Model, res: Result, *, lanes: int) -> np.ndarray:
    """Clocks per image when images stream back to back (the ``interval``), int64 ``[N]``."""
    plan = make_plan(model, lanes)
    return np.array([image_cycles(model, res, i, lanes=lanes, plan=plan).interval
                     for i in range(len(res.logits))], np.int64)
