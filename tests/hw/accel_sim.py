"""Amaranth-simulator harness of the v2 accelerator: AXI4-Stream driver and monitor, spike-map
write monitor, and the comparison with the golden model (shared by tests/hw/test_accel.py)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator
from dietsnn import golden
from dietsnn.hw.accel.core import Accelerator
from dietsnn.hw.accel.plan import AccelPlan


def beats_of(plan: AccelPlan, img: np.ndarray) -> list[int]:
    """One image as ``s_axis`` beats (pixels channel-major, ``pix_per_beat`` per beat)."""
    flat = [int(v) for v in img.ravel().tolist()]
    n, pb, bits = plan.pix_per_beat, plan.pix_bits, plan.pix_bits
    mask = (1 << bits) - 1
    out = []
    for i in range(0, len(flat), n):
        w = 0
        for j, v in enumerate(flat[i:i + n]):
            w |= (v & mask) << (j * pb)
        out.append(w)
    return out


def map_words(plan: AccelPlan, spikes: np.ndarray, channels: int) -> dict[int, int]:
    """Golden spikes ``[T, C, H, W]`` (or ``[T, F]``) as ``{address: word}`` of the map."""
    L = plan.lanes
    s = spikes if spikes.ndim == 4 else spikes[:, :, None, None]
    t_, c, h, w = s.shape
    g = -(-c // L)
    pad = np.zeros((t_, g * L, h, w), np.int64)
    pad[:, :c] = s
    bits = pad.reshape(t_, g, L, h, w).transpose(0, 3, 4, 1, 2)   # t, y, x, g, lane
    weights = (1 << np.arange(L, dtype=object))
    words = (bits.astype(object) * weights).sum(axis=-1).reshape(-1)
    return {i: int(v) for i, v in enumerate(words)}


def simulate(dut: Accelerator, q: np.ndarray, *, seed: int = 0, stalls: bool = True,
             bad_frames: tuple[int, ...] = (), reset_after: int | None = None) -> dict[str, Any]:
    """Stream ``q`` through ``dut``; returns results, front/back map writes and status.

    ``bad_frames``: before these images send a short frame (3 beats) and a long frame (the
    image's beats plus 2, ``tlast`` on the last). ``reset_after``: first send image 0, assert
    the reset ``reset_after`` clocks after its last beat (while it computes), then stream
    ``q``; nothing of the interrupted image may come out or leak into later ones.
    """
    p = dut.plan
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = dut
    done = [reset_after is None]
    rng = random.Random(seed)
    results: list[dict[str, Any]] = []
    f_writes: list[dict[int, int]] = [dict()]
    b_writes: list[dict[int, dict[int, int]]] = [dict()]
    n = len(q)

    async def send(ctx, beats: list[int], last_at: int) -> None:
        for j, bt in enumerate(beats):
            ctx.set(dut.s_axis.tdata, bt)
            ctx.set(dut.s_axis.tlast, j == last_at)
            ctx.set(dut.s_axis.tvalid, 1)
            await ctx.tick().until(dut.s_axis.tready)
        ctx.set(dut.s_axis.tvalid, 0)

    async def driver(ctx):
        if reset_after is not None:
            beats = beats_of(p, q[0])
            await send(ctx, beats, len(beats) - 1)
            await ctx.tick().repeat(reset_after)
            ctx.set(cd.rst, 1)
            for _ in range(3):
                await ctx.posedge(cd.clk)
            ctx.set(cd.rst, 0)
            done[0] = True
        for i, img in enumerate(q):
            beats = beats_of(p, img)
            if i in bad_frames:       # a short and a long frame before the image: dropped
                await send(ctx, beats[:3], 2)
                await send(ctx, beats + beats[:2], len(beats) + 1)
            for j, bt in enumerate(beats):
                while stalls and rng.random() < 0.2:
                    ctx.set(dut.s_axis.tvalid, 0)
                    await ctx.tick()
                ctx.set(dut.s_axis.tdata, bt)
                ctx.set(dut.s_axis.tlast, j == len(beats) - 1)
                ctx.set(dut.s_axis.tvalid, 1)
                await ctx.tick().until(dut.s_axis.tready)
            ctx.set(dut.s_axis.tvalid, 0)

    mon, ax, dbg = dut.mon, dut.m_axis, dut.debug
    sampled = [mon.f_en, mon.f_addr, mon.f_data, mon.f_done, mon.b_en, mon.b_stage, mon.b_addr,
               mon.b_data, ax.tvalid, ax.tdata, ax.tlast, dbg.front_cycles, dbg.back_cycles,
               *[dbg.counts[k] for k in range(len(p.counters))]]

    async def monitor(ctx):
        beats: list[int] = []
        cyc = 0
        while len(results) < n:
            ready = not (stalls and rng.random() < 0.3)
            ctx.set(ax.tready, ready)
            _, *v = await ctx.posedge(cd.clk).sample(*sampled)
            cyc += 1
            if not done[0]:
                continue
            f_en, f_addr, f_data, f_done, b_en, b_stage, b_addr, b_data, tv, td, tl = v[:11]
            if f_en:
                f_writes[-1][f_addr] = f_data
            if f_done:
                f_writes.append(dict())
            if b_en:
                b_writes[-1].setdefault(b_stage, {})[b_addr] = b_data
            if ready and tv:
                beats.append(td - (1 << 32) if td >> 31 else td)
                if tl:
                    results.append({"cls": beats[0], "logits": beats[1:],
                                    "front_cycles": v[11], "back_cycles": v[12],
                                    "counts": list(v[13:]), "cycle": cyc})
                    b_writes.append(dict())
                    beats = []
        for k in ("frames_ok", "frames_short", "frames_long"):
            status[k] = ctx.get(getattr(dut.status, k))

    status: dict[str, int] = {}

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(monitor)
    sim.run()
    return {"results": results, "front": f_writes[:n], "back": b_writes[:n], "status": status}


def check(model, dut: Accelerator, q: np.ndarray, out: dict[str, Any]) -> list[str]:
    """Every result, counter and spike-map word against the golden model; the errors."""
    p = dut.plan
    ref = golden.run(model, q, record={"spikes"})
    errs = []
    for i, r in enumerate(out["results"]):
        if r["cls"] != int(ref.prediction[i]):
            errs.append(f"image {i}: class {r['cls']} != {ref.prediction[i]}")
        if r["logits"] != [int(v) for v in ref.logits[i]]:
            errs.append(f"image {i}: logits {r['logits']} != {ref.logits[i].tolist()}")
        want = [int(ref.spike_counts[c][i]) for c in p.counters]
        if r["counts"] != want:
            errs.append(f"image {i}: counts {r['counts']} != {want}")
        fl = p.front.pool or p.front.name
        want_f = map_words(p, ref.spikes[fl][i], p.front.c_out)
        if out["front"][i] != want_f:
            bad = [a for a in want_f if out["front"][i].get(a) != want_f[a]][:3]
            errs.append(f"image {i}: front map {fl} differs at words {bad}")
        for s_i, s in enumerate(p.stages):
            name = s.pool or s.name
            want_s = map_words(p, ref.spikes[name][i], s.c_out)
            got = out["back"][i].get(s_i, {})
            if got != want_s:
                bad = [a for a in want_s if got.get(a) != want_s[a]][:3]
                errs.append(f"image {i}: stage {name} map differs at words {bad} "
                            f"(got {len(got)} of {len(want_s)} words)")
    if len(out["results"]) != len(q):
        errs.append(f"{len(out['results'])} results for {len(q)} images")
    return errs
