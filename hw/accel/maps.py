"""Spike-map memories in banks of block-RAM depth, with a registered read path.

A map deeper than :data:`BANK_WORDS` words is split into banks; each bank's read goes straight
into a register (synthesis moves it into the block RAM's output register), and the bank
select is registered after it, so no path runs from a block RAM's array through a multiplexer
to a flip-flop. The accelerator never reads a map word in the clock it is written (the front
writes one ``M`` buffer while the back reads the other; a stage reads one ``P`` map and writes
the other), so the RAMs carry ``no_rw_check``: synthesis adds no collision logic.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

#: Words per bank of a map of 10 or more bits (the depth of one block RAM column: ECP5 DP16KD
#: 1024 x 18, xc7 RAMB36 1024 x 36); narrower maps (the masks of nonzero words) bank by the
#: block RAM's deeper shapes (:func:`bank_words`).
BANK_WORDS = 1024

#: Clocks from ``rd_addr`` to ``rd_data``: the address register, the RAM, its output register,
#: the bank select.
MAP_READ_LATENCY = 4


def bank_words(width: int) -> int:
    """Words per bank of a ``width``-bit map: DP16KD's 16384 x 1, 8192 x 2, 4096 x 4,
    2048 x 9, else :data:`BANK_WORDS`."""
    for bits, words in ((1, 16384), (2, 8192), (4, 4096), (9, 2048)):
        if width <= bits:
            return words
    return BANK_WORDS


class SpikeMap(wiring.Component):
    """One spike map: ``depth`` words of ``width`` bits, one write and one read port.

    Parameters (keyword-only)
    -------------------------
    width : bits per word (the lanes). depth : words.

    Members
    -------
    wr_addr, wr_data, wr_en : ``In`` the write port (registered, then written: the word is in
        the RAM two clock edges later).
    rd_addr : ``In`` the read address (the RAMs read every clock: no enable logic between a
        RAM and its output register); rd_data : ``Out`` the word at the address of
        :data:`MAP_READ_LATENCY` clocks earlier.
    """

    def __init__(self, *, width: int, depth: int) -> None:
        if width < 1 or depth < 1:
            raise ValueError(f"SpikeMap: width and depth must be >= 1, not {width}, {depth}")
        self._width, self._depth = width, depth
        abits = max(1, (depth - 1).bit_length())
        super().__init__({
            "wr_addr": In(abits), "wr_data": In(width), "wr_en": In(1),
            "rd_addr": In(abits),
            "rd_data": Out(width),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        bw = bank_words(self._width)
        n = -(-self._depth // bw)
        lo = min(len(self.rd_addr), (bw - 1).bit_length())
        # the write port registered here first (its sources are other units, far away)
        wa = Signal.like(self.wr_addr, name="wa")
        wd = Signal.like(self.wr_data, name="wd")
        we = Signal(name="we")
        m.d.sync += [wa.eq(self.wr_addr), wd.eq(self.wr_data), we.eq(self.wr_en)]
        # and the read address, near the RAMs (the scanner that drives it stays compact)
        ra = Signal.like(self.rd_addr, name="ra")
        m.d.sync += ra.eq(self.rd_addr)
        qs = []
        for b in range(n):
            depth = min(bw, self._depth - b * bw)
            mem = memory.Memory(shape=unsigned(self._width), depth=max(2, depth), init=[],
                                attrs={"no_rw_check": 1})
            m.submodules[f"bank{b}"] = mem
            wp, rp = mem.write_port(), mem.read_port()
            hit_w = (wa[lo:] == b) if n > 1 else 1
            m.d.comb += [wp.addr.eq(wa[:lo]), wp.data.eq(wd), wp.en.eq(we & hit_w),
                         rp.addr.eq(ra[:lo])]
            q = Signal(self._width, name=f"q{b}", reset_less=True)
            m.d.sync += q.eq(rp.data)      # straight into a register: the RAM's output register
            qs.append(q)
        # the bank select follows the address two clocks behind (RAM, register)
        out = Signal(self._width, name="rd_q", reset_less=True)
        if n == 1:
            m.d.sync += out.eq(qs[0])
        else:
            hi = [Signal(len(self.rd_addr) - lo, name=f"bank_d{k}") for k in range(2)]
            m.d.sync += [hi[0].eq(ra[lo:]), hi[1].eq(hi[0])]
            with m.Switch(hi[1]):
                for b, q in enumerate(qs):
                    with m.Case(b):
                        m.d.sync += out.eq(q)
        m.d.comb += self.rd_data.eq(out)
        return m
