"""``SpikeMap`` (banked spike-map memory) in Amaranth's simulator: writes land two clock edges
after they are presented, every word reads back MAP_READ_LATENCY clocks after its address,
across bank boundaries (3 banks of 1024 words and a short last one)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from dietsnn.hw.accel.maps import BANK_WORDS, MAP_READ_LATENCY, SpikeMap


def test_banked_map_reads_back_every_word_at_its_latency():
    depth, width = 2 * BANK_WORDS + 300, 12
    rng = np.random.default_rng(7)
    addrs = rng.choice(depth, 200, replace=False).tolist()
    addrs += [0, BANK_WORDS - 1, BANK_WORDS, 2 * BANK_WORDS, depth - 1]
    addrs = list(dict.fromkeys(addrs))
    words = {a: int(rng.integers(0, 1 << width)) for a in addrs}
    dut = SpikeMap(width=width, depth=depth)
    got: dict[int, int] = {}

    async def bench(ctx):
        for a, w in words.items():
            ctx.set(dut.wr_addr, a)
            ctx.set(dut.wr_data, w)
            ctx.set(dut.wr_en, 1)
            await ctx.tick()
        ctx.set(dut.wr_en, 0)
        await ctx.tick().repeat(2)
        order = list(words)
        for k in range(len(order) + MAP_READ_LATENCY - 1):
            if k < len(order):
                ctx.set(dut.rd_addr, order[k])
            await ctx.tick()
            if k + 1 >= MAP_READ_LATENCY:
                got[order[k + 1 - MAP_READ_LATENCY]] = ctx.get(dut.rd_data)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == words


def test_map_checks_its_arguments():
    with pytest.raises(ValueError, match="width and depth"):
        SpikeMap(width=0, depth=4)
