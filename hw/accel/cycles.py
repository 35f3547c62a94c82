"""The accelerator's cycle model and the lower bound it is measured against.

:func:`cycles_per_image` predicts, from the golden model's real spikes, the number of clock
cycles the RTL takes per image when images stream back to back at one pixel per clock and the
result is taken at once: ``pixels + compute + 1`` where ``compute`` is the ``debug.cycles``
counter (from the last pixel to the result) and the ``+ 1`` is the result handshake. It follows
the RTL's schedule cycle by cycle (see ``docs/accelerator.md``):

* dense stage: ``N_taps + gaps + T + 2`` with ``N_taps = G * C_in * (3H - 2)(3W - 2)`` (the
  valid taps of every output pixel, one per clock for ``L`` channels);
* event-driven stage, per time step: the scanner/engine recurrence below, then a LIF pass of
  ``G * H * W + 1`` cycles (none for the output stage, which scans all ``T`` steps at once);
* argmax: ``G_out + 1 + K``.

Scanner/engine recurrence (relative to the first cycle of the step): map word ``k`` reaches
the scanner at ``r_k = d_(k-1) + 1`` (``r_0 = 1``) and is consumed at ``d_k``: at once when
it is zero, else when the previous word's last event is taken. Its ``n_k`` events each take
``w_k`` engine cycles (output groups x valid kernel positions): the first is taken at
``max(d_k + 1, free)``, the next ``w_k`` cycles later. The step ends at
``max(E + w + 2, d_last + 1)`` (``E``: the last take).

:func:`cycle_bound` is the lower bound: the work the image needs on ``L`` lanes
(synaptic operations of real neurons / L, plus LIF updates of real neurons / L, plus one
clock per pixel in).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...golden import Result
from ...model import Model
from .plan import AccelPlan, Stage, make_plan


def _nk(n: int) -> np.ndarray:
    """Valid kernel rows per position along an axis of length ``n``."""
    k = np.full(n, 3, np.int64)
    k[0] -= 1
    k[-1] -= 1
    return np.maximum(k, 1)


def _word_pops(spikes: np.ndarray, lanes: int) -> np.ndarray:
    """Popcounts of the map words ``[T, G*H*W]`` of a spike map ``[T, C, H, W]`` or
    ``[T, F]`` (scan order: group, y, x)."""
    t = spikes.shape[0]
    s = spikes.reshape(t, spikes.shape[1], -1) if spikes.ndim > 2 else spikes[:, :, None]
    c, hw = s.shape[1], s.shape[2]
    g = -(-c // lanes)
    pad = np.zeros((t, g * lanes, hw), np.int64)
    pad[:, :c] = s
    return pad.reshape(t, g, lanes, hw).sum(axis=2).reshape(t, g * hw)


def _word_work(st: Stage) -> np.ndarray:
    """Engine cycles per event of each input word (scan order)."""
    if st.kind in ("linear", "out"):
        return np.full(st.words_in, st.g_out, np.int64)
    per_pos = np.outer(_nk(st.h_in), _nk(st.w_in)).ravel()
    if st.fold == 2:  # two kernel positions per clock
        per_pos = (per_pos + 1) // 2
    return np.tile(per_pos * st.g_out, st.g_in)


def scatter_step_cycles(pops: np.ndarray, work: np.ndarray) -> int:
    """Cycles of one scatter phase (see the module docstring) for word popcounts and work."""
    d = 0
    free = 0
    cur_free = 0
    last_take = -1
    last_w = 0
    for n, w in zip(pops.tolist(), work.tolist(), strict=True):
        r = d + 1
        if n == 0:
            d = r
            continue
        d = max(r, cur_free)
        e = max(d + 1, free)
        last_take = e + (n - 1) * w
        free = last_take + w
        cur_free = last_take
        last_w = w
    end = d + 1 if last_take < 0 else max(last_take + last_w + 2, d + 1)
    return end + 1


def _stage_input_spikes(model: Model, plan: AccelPlan, res: Result, i: int) -> list:
    """The spike map each event-driven stage reads, for image ``i``."""
    maps = []
    for prev in plan.stages[:-1]:
        name = prev.pool or prev.name
        if name not in res.spikes:
            raise ValueError("golden_result needs the spikes: run golden.run(..., "
                             "record={'spikes'})")
        maps.append(res.spikes[name][i])
    return maps


def cycle_breakdown(model: Model, golden_result: Result, *, lanes: int,
                    image: int = 0) -> dict[str, int]:
    """Cycles per stage (and ``load``, ``argmax``, ``handshake``) for one image."""
    plan = make_plan(model, lanes)
    T = plan.timesteps
    s0 = plan.stages[0]
    out: dict[str, int] = {"load": plan.pixels}
    n_pix = s0.h * (s0.w // s0.fold) * s0.g_out
    cols = int(_nk(s0.w).sum()) if s0.fold == 1 else 3 * (s0.w // 2)
    taps = s0.g_out * s0.c_in * int(_nk(s0.h).sum()) * cols
    gap0 = max(0, T - (4 if s0.fold == 1 else 6) * s0.c_in)
    out[s0.name] = taps + gap0 * (n_pix - 1) + T + 2
    maps = _stage_input_spikes(model, plan, golden_result, image)
    for st, spk in zip(plan.stages[1:], maps, strict=True):
        pops = _word_pops(np.asarray(spk, np.int64), lanes)
        work = _word_work(st)
        if st.kind == "out":
            cyc = scatter_step_cycles(pops.ravel(), np.tile(work, T))
            cyc += st.g_out + 1 + plan.classes  # argmax
        else:
            cyc = sum(scatter_step_cycles(pops[t], work) + st.vrows + 1 for t in range(T))
        out[st.name] = cyc
    out["handshake"] = 1
    return out


def cycles_per_image(model: Model, golden_result: Result, *, lanes: int = 16) -> np.ndarray:
    """Predicted clock cycles per image (int64 ``[N]``) from the golden model's spikes.

    ``golden_result`` must come from ``golden.run(model, q, record={"spikes"})``. The value
    is ``pixels + compute + 1`` (back-to-back images, one pixel per clock, no back-pressure);
    :func:`compute_cycles` gives the ``debug.cycles`` part alone.
    """
    n = golden_result.logits.shape[0]
    return np.array([sum(cycle_breakdown(model, golden_result, lanes=lanes, image=i).values())
                     for i in range(n)], dtype=np.int64)


def compute_cycles(model: Model, golden_result: Result, *, lanes: int = 16) -> np.ndarray:
    """The RTL's ``debug.cycles`` per image: :func:`cycles_per_image` minus load and
    handshake."""
    plan = make_plan(model, lanes)
    return cycles_per_image(model, golden_result, lanes=lanes) - plan.pixels - 1


def cycle_bound(model: Model, golden_result: Result, *, lanes: int = 16) -> np.ndarray:
    """Lower bound on cycles per image (int64 ``[N]``) for a datapath of ``lanes`` lanes.

    ``pixels`` (the input stream, one pixel per clock) plus, per layer, the synaptic
    operations of the real neurons (dense layer: multiply-accumulates of the valid taps;
    event-driven layers: one add per spike, valid kernel position and output channel) and the
    LIF updates (``T`` per real neuron), all divided by ``lanes``. In the dense layer the LIF
    steps overlap the multiply-accumulates, so it counts ``max(MACs, LIF updates)``.
    """
    plan = make_plan(model, lanes)
    T = plan.timesteps
    n = golden_result.logits.shape[0]
    s0 = plan.stages[0]
    macs = s0.c_out * s0.c_in * int(_nk(s0.h).sum()) * int(_nk(s0.w).sum())
    fixed = plan.pixels + max(macs, T * s0.c_out * s0.h * s0.w) / lanes  # LIF overlaps MACs
    out = np.zeros(n, np.int64)
    for i in range(n):
        maps = _stage_input_spikes(model, plan, golden_result, i)
        work = 0
        for st, spk in zip(plan.stages[1:], maps, strict=True):
            spk = np.asarray(spk, np.int64)
            if st.kind in ("linear", "out"):
                work += int(spk.sum()) * st.c_out
            else:
                per_pos = np.outer(_nk(st.h_in), _nk(st.w_in))
                work += int((spk.sum(axis=(0, 1)) * per_pos).sum()) * st.c_out
            if st.kind != "out":
                work += T * st.c_out * st.h * st.w
        out[i] = int(np.ceil(fixed + work / lanes))
    return out


def summary(model: Model, golden_result: Result, *, lanes: int) -> dict[str, Any]:
    """Mean predicted cycles, mean bound and their ratio, for reports."""
    c = cycles_per_image(model, golden_result, lanes=lanes)
    b = cycle_bound(model, golden_result, lanes=lanes)
    return {"lanes": lanes, "cycles_per_image": float(c.mean()), "bound": float(b.mean()),
            "ratio": float((c / b).mean())}
