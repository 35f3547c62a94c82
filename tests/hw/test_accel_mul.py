"""The front's LUT multipliers (``Multipliers``) in Amaranth's simulator against Python's
integer product: every product of two 8-bit signed operands, odd and small widths, the latency,
and the argument checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator
from dietsnn.hw.accel.front import MUL_LATENCY, Multipliers


def _run(lanes: int, pb: int, wb: int, ops: list[tuple[list[int], list[int]]]) -> list[list[int]]:
    """Present one (pixels, weights) pair per clock; the products MUL_LATENCY clocks later."""
    dut = Multipliers(lanes=lanes, pix_bits=pb, weight_bits=wb)
    out: list[list[int]] = []

    async def bench(ctx):
        for k in range(len(ops) + MUL_LATENCY):
            if k < len(ops):
                px, w = ops[k]
                for j, v in enumerate(px):
                    ctx.set(dut.pix[j], v)
                for i, v in enumerate(w):
                    ctx.set(dut.w[i], v)
            await ctx.tick()
            if k + 1 >= MUL_LATENCY:
                out.append([ctx.get(dut.prod[i]) for i in range(lanes)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out[:len(ops)]


def test_every_8bit_product_exact():
    lanes = 16                      # two pixels, 8 weights each
    vals = range(-128, 128)
    combos = list(itertools.product(vals, vals))   # (pixel, weight), pixel-major: 65,536
    ops = [([combos[k][0], combos[k + 8][0]], [w for _, w in combos[k:k + lanes]])
           for k in range(0, len(combos), lanes)]
    got = _run(lanes, 8, 8, ops)
    for k, row in zip(range(0, len(combos), lanes), got, strict=True):
        assert row == [p * w for p, w in combos[k:k + lanes]]


@pytest.mark.parametrize(("pb", "wb"), [(8, 5), (6, 3), (9, 2), (8, 7), (5, 10)])
def test_other_widths_exact(pb, wb):
    rng = np.random.default_rng(pb * 16 + wb)
    lanes = 12                      # a last group of 4 lanes
    lo_p, lo_w = -(1 << (pb - 1)), -(1 << (wb - 1))
    ops = [(rng.integers(lo_p, -lo_p, 2).tolist(), rng.integers(lo_w, -lo_w, lanes).tolist())
           for _ in range(60)]
    ops += [([lo_p] * 2, [lo_w] * lanes), ([-lo_p - 1] * 2, [lo_w] * lanes)]   # the extremes
    got = _run(lanes, pb, wb, ops)
    for (px, w), row in zip(ops, got, strict=True):
        assert row == [px[i // 8] * w[i] for i in range(lanes)]


def test_arguments_checked():
    with pytest.raises(TypeError, match="weight_bits must be an integer >= 2, not 1"):
        Multipliers(lanes=8, pix_bits=8, weight_bits=1)
    with pytest.raises(TypeError, match="lanes must be an integer >= 1, not 0"):
        Multipliers(lanes=0, pix_bits=8, weight_bits=8)
