"""The spike scanner: walks a stage's input spike map and hands the engine one tick per clock.

For a LIF stage (conv or linear, ``H x W`` map, ``G_in`` words per position, ``G`` output
groups) the walk is::

    for t in 0..T-1:                      time steps
      for y in 0..H:                      input rows, then one virtual row (y = H)
        for g in 0..G-1:                  one pass per output group
          for x in 0..W+1:                positions, then two virtual ones (x = W, W+1)
            for cg in 0..G_in-1:          the words of a real position (x < W, y < H)

A word with ``n`` set bits takes ``max(1, n)`` ticks: one **event** (``ev``) per set bit,
lowest bit first, or one empty tick for a zero word. A virtual position takes one empty tick.
The first tick of a position ``x >= 1`` carries ``mv`` (the engine's window moves one column
and flushes the column that left it); the first tick of a pass carries ``ps`` (the window
starts empty). The output stage walks every word of all ``T`` steps in order, with no
virtual rows or positions.

Map words are read ahead (stage A issues the read, the word and its item enter a small FIFO
:data:`READ_LATENCY` clocks later, B ticks the FIFO's head out), so a stage's ticks come back
to back: its length in clocks is exactly ``sum(max(1, n))`` over its items plus the fill of
the read pipeline — the cycle model in :mod:`.cycles` counts the same way.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .maps import MAP_READ_LATENCY

#: Clocks from a read address to its word on ``rd_data``: the map's
#: (:data:`~.maps.MAP_READ_LATENCY`), then the source select's register.
READ_LATENCY = MAP_READ_LATENCY + 1


def scan_config_layout(*, lanes: int, h: int, w: int, g_in: int, g: int, t: int,
                       wrows: int, map_depth: int) -> data.StructLayout:
    """The scanner's per-stage configuration (held stable while a stage runs).

    ``out``: output-stage walk. ``linear``: weight rows of a linear stage. ``h1, w1, gin1,
    g1, t1``: the loop bounds minus one. ``wbase, gstride``: first weight row and rows per
    output group. ``gw, ghw``: ``W`` and ``H*W`` (line-buffer and membrane strides).
    """
    return data.StructLayout({
        "out": 1, "linear": 1,
        "h1": unsigned(max(1, h.bit_length())),
        "w1": unsigned(max(1, w.bit_length())),
        "gin1": unsigned(max(1, g_in.bit_length())),
        "g1": unsigned(max(1, g.bit_length())),
        "t1": unsigned(max(1, t.bit_length())),
        "wbase": unsigned(max(1, wrows.bit_length())),
        "gstride": unsigned(max(1, wrows.bit_length())),
        "rowwords": unsigned(max(1, map_depth.bit_length())),
        "wlast": unsigned(max(1, (w + 1).bit_length())),
        "hlast": unsigned(max(1, h.bit_length())),
        "w": unsigned(max(1, (w + 1).bit_length())),
        "hw": unsigned(max(1, (h * w).bit_length())),
    })


def tick_layout(*, lanes: int, h: int, w: int, g_in: int, g: int, t: int, wrows: int,
                lb_depth: int, u_depth: int) -> data.StructLayout:
    """One tick: an event (``ev``: channel ``cg*L + b``, weight row ``waddr`` and tap
    ``slot``) and/or a window move (``mv``), pass start (``ps``), and where the walk is:
    ``x, y, g, t``, ``ym3 = y mod 3``, the pass's line-buffer base ``lb = g*W`` and membrane
    base ``ub = g*H*W + max(y-1, 0)*W``; ``last``: the stage's last tick."""
    return data.StructLayout({
        "ev": 1, "mv": 1, "ps": 1, "last": 1,
        "b": unsigned(max(1, (lanes - 1).bit_length())),
        "cg": unsigned(max(1, (g_in - 1).bit_length())),
        "waddr": unsigned(max(1, (wrows - 1).bit_length())),
        "slot": unsigned(4),
        "x": unsigned(max(1, (w + 1).bit_length())),
        "y": unsigned(max(1, h.bit_length())),
        "ym3": unsigned(2),
        "g": unsigned(max(1, (g - 1).bit_length())),
        "t": unsigned(max(1, (t - 1).bit_length())),
        "lb": unsigned(max(1, lb_depth.bit_length())),
        "ub": unsigned(max(1, u_depth.bit_length())),
    })


class Scanner(wiring.Component):
    """Walks one stage's input map (module docstring) and emits its ticks.

    Parameters (keyword-only)
    -------------------------
    lanes : ``L`` (bits per map word). cfg_layout, tick_shape : :func:`scan_config_layout`
    and :func:`tick_layout`. map_depth : words addressable in a map. rows_per_word : ``R``
    (weight rows per input word of a linear stage, a power of two).

    Members
    -------
    cfg : ``In(cfg_layout)`` the stage, stable from ``start`` to ``done``.
    start : ``In(1)`` a pulse: begin the walk. busy : ``Out(1)``.
    rd_addr, rd_en : ``Out`` the map read port's address and enable.
    rd_data : ``In(L)`` the word read, :data:`READ_LATENCY` clocks after its address.
    tick : ``Out(stream.Signature(tick_shape, always_ready=True))`` one tick per clock
        (registered).
    """

    def __init__(self, *, lanes: int, cfg_layout: data.StructLayout,
                 tick_shape: data.StructLayout, map_depth: int, rows_per_word: int) -> None:
        self._lanes = lanes
        self._cfg_layout = cfg_layout
        self._tick = tick_shape
        self._map_depth = map_depth
        self._rpw = rows_per_word
        super().__init__({
            "cfg": In(cfg_layout),
            "start": In(1),
            "busy": Out(1),
            "rd_addr": Out(max(1, (map_depth - 1).bit_length())),
            "rd_en": Out(1),
            "rd_data": In(lanes),
            "tick": Out(stream.Signature(tick_shape, always_ready=True)),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        L = self._lanes
        cfg = self.cfg
        tk = self._tick
        item = data.StructLayout({
            "word": 1, "x": tk["x"].shape, "y": tk["y"].shape, "g": tk["g"].shape,
            "t": tk["t"].shape, "cg": tk["cg"].shape, "ym3": 2, "lb": tk["lb"].shape,
            "ub": tk["ub"].shape, "pw": tk["waddr"].shape, "last": 1,
        })
        # ---- stage A: the walk (the next item to issue) ------------------------------------
        # Loop-end conditions are registers, updated with their counters, so that the issue
        # decision is a few gates deep.
        a_on = Signal()
        a = Signal(item)
        ra = Signal.like(self.rd_addr)       # address of the next word
        rowbase = Signal.like(self.rd_addr)  # first word of the current input row
        yw = Signal.like(a.ub)               # max(y - 1, 0) * W
        x_real, y_real = Signal(), Signal()  # x <= W-1, y <= H-1
        x_end, y_end = Signal(), Signal()    # x == wlast, y == hlast
        cg_end, g_end, t_end = Signal(), Signal(), Signal()
        real = Signal()                      # the next item reads a word
        end_pos, end_pass, end_row, end_step = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            real.eq(x_real & y_real),
            end_pos.eq(~real | cg_end),
            end_pass.eq(end_pos & x_end),
            end_row.eq(end_pass & g_end),
            end_step.eq(end_row & y_end),
            a.word.eq(real),
            a.last.eq(end_step & t_end),
        ]
        # ---- read pipeline: A issues, the word arrives READ_LATENCY clocks later (block RAM
        # and its output register) and is pushed into a small FIFO with its item; B takes the
        # FIFO's head. Credits bound the items between A and B, so nothing is ever dropped.
        depth = READ_LATENCY + 4
        count = Signal(range(depth + 1))
        fifo_item = [Signal(item, name=f"fifo_item{k}") for k in range(depth)]
        fifo_word = [Signal(L, name=f"fifo_word{k}", reset_less=True) for k in range(depth)]
        fifo_nxt = [Signal(L, name=f"fifo_nxt{k}", reset_less=True) for k in range(depth)]
        wp = Signal(range(depth))
        rp = Signal(range(depth))
        inflight_on = [Signal(name=f"fl_on{k}") for k in range(READ_LATENCY)]
        inflight = [Signal(item, name=f"fl_item{k}") for k in range(READ_LATENCY)]
        b_on = Signal()
        b = Signal(item)
        cur = Signal(L)                      # bits not yet emitted
        nxt = Signal(L)                      # cur without its lowest set bit
        fresh = Signal()
        b_fin = Signal()
        m.d.comb += b_fin.eq(b_on & (~b.word | (nxt == 0)))
        take = Signal()                      # B loads the FIFO's head
        issue = Signal()                     # A issues its item
        stored = Signal(range(depth + 1))    # items in the FIFO
        m.d.comb += [
            take.eq((stored != 0) & (~b_on | b_fin)),
            issue.eq(a_on & (count < depth - 1)),     # credits alone: never waits for B
            self.rd_addr.eq(ra),
            self.rd_en.eq(issue & real),
            self.busy.eq(a_on | (count != 0) | b_on),
        ]
        m.d.sync += count.eq(count + issue - take)
        m.d.sync += [inflight_on[0].eq(issue), inflight[0].eq(a)]
        for k in range(1, READ_LATENCY):
            m.d.sync += [inflight_on[k].eq(inflight_on[k - 1]), inflight[k].eq(inflight[k - 1])]
        push = inflight_on[-1]
        word_in = Mux(inflight[-1].word, self.rd_data, 0)
        with m.If(push):
            m.d.sync += [Array(fifo_item)[wp].eq(inflight[-1]), Array(fifo_word)[wp].eq(word_in),
                         Array(fifo_nxt)[wp].eq(word_in & (word_in - 1)),
                         wp.eq(Mux(wp == depth - 1, 0, wp + 1))]
        with m.If(take):
            m.d.sync += rp.eq(Mux(rp == depth - 1, 0, rp + 1))
        m.d.sync += stored.eq(stored + push - take)
        with m.If(take):
            m.d.sync += [b.eq(Array(fifo_item)[rp]), b_on.eq(1), fresh.eq(1),
                         cur.eq(Array(fifo_word)[rp]), nxt.eq(Array(fifo_nxt)[rp])]
        with m.Elif(b_fin):
            m.d.sync += b_on.eq(0)
        with m.Elif(b_on):
            m.d.sync += [cur.eq(nxt), nxt.eq(nxt & (nxt - 1)), fresh.eq(0)]

        # the walk's counters and their end flags advance on ``issue``
        def set_x(v: Any) -> list[Any]:
            real_v = 1 if isinstance(v, int) else v <= cfg.w1      # (0 is always real)
            return [a.x.eq(v), x_real.eq(real_v), x_end.eq(v == cfg.wlast)]

        def set_y(v: Any) -> list[Any]:
            real_v = 1 if isinstance(v, int) else v <= cfg.h1
            return [a.y.eq(v), y_real.eq(real_v), y_end.eq(v == cfg.hlast)]

        with m.If(self.start):
            m.d.sync += [a_on.eq(1), *set_x(0), *set_y(0), a.g.eq(0), a.t.eq(0), a.cg.eq(0),
                         g_end.eq(cfg.g1 == 0), t_end.eq(cfg.t1 == 0), cg_end.eq(cfg.gin1 == 0),
                         a.ym3.eq(0), a.lb.eq(0), a.ub.eq(0), a.pw.eq(cfg.wbase), ra.eq(0),
                         rowbase.eq(0), yw.eq(0)]
        with m.Elif(issue):
            with m.If(a.last):
                m.d.sync += a_on.eq(0)
            with m.If(real):
                m.d.sync += ra.eq(ra + 1)
            with m.If(~end_pos):
                m.d.sync += [a.cg.eq(a.cg + 1), cg_end.eq(a.cg + 1 == cfg.gin1)]
            with m.Elif(~end_pass):
                m.d.sync += [a.cg.eq(0), cg_end.eq(cfg.gin1 == 0), *set_x(a.x + 1)]
            with m.Else():
                m.d.sync += [a.cg.eq(0), cg_end.eq(cfg.gin1 == 0), *set_x(0)]
                with m.If(~end_row):      # next output group: re-read the same row
                    m.d.sync += [a.g.eq(a.g + 1), g_end.eq(a.g + 1 == cfg.g1),
                                 a.pw.eq(a.pw + cfg.gstride), a.lb.eq(a.lb + cfg.w),
                                 a.ub.eq(a.ub + cfg.hw), ra.eq(rowbase)]
                with m.Else():
                    m.d.sync += [a.g.eq(0), g_end.eq(cfg.g1 == 0), a.pw.eq(cfg.wbase),
                                 a.lb.eq(0)]
                    nxt_rowbase = Mux(y_real, rowbase + cfg.rowwords, rowbase)
                    nxt_yw = Mux(a.y == 0, 0, yw + cfg.w)
                    with m.If(~end_step):
                        m.d.sync += [*set_y(a.y + 1), a.ym3.eq(Mux(a.ym3 == 2, 0, a.ym3 + 1)),
                                     yw.eq(nxt_yw), a.ub.eq(nxt_yw),
                                     ra.eq(nxt_rowbase), rowbase.eq(nxt_rowbase)]
                    with m.Else():
                        m.d.sync += [*set_y(0), a.ym3.eq(0), a.t.eq(a.t + 1),
                                     t_end.eq(a.t + 1 == cfg.t1), yw.eq(0), a.ub.eq(0),
                                     ra.eq(Mux(cfg.out, ra + 1, nxt_rowbase)),
                                     rowbase.eq(nxt_rowbase)]
        # ---- the tick (registered) ----------------------------------------------------------
        t = self.tick.payload
        onehot = Signal(L)
        m.d.comb += onehot.eq(cur ^ nxt)
        low = Signal(range(max(2, L)))
        for k in range(len(low)):
            m.d.comb += low[k].eq(Cat(*(onehot[i] for i in range(L) if (i >> k) & 1)).any())
        lowb = low[:len(t.b)]
        ev = b_on & b.word & (cur != 0)
        first_at_pos = ~b.word | (b.cg == 0)
        lin_off = b.cg * self._rpw + lowb // 9
        m.d.sync += [
            self.tick.valid.eq(b_on),
            t.ev.eq(ev),
            t.mv.eq(b_on & fresh & first_at_pos & (b.x != 0)),
            t.ps.eq(b_on & fresh & (b.x == 0) & first_at_pos),
            t.last.eq(b_fin & b.last),
            t.b.eq(lowb),
            t.cg.eq(b.cg),
            t.waddr.eq(b.pw + Mux(cfg.linear, lin_off, Cat(lowb, b.cg))),
            t.slot.eq(lowb % 9),
            t.x.eq(b.x), t.y.eq(b.y), t.g.eq(b.g), t.t.eq(b.t), t.ym3.eq(b.ym3),
            t.lb.eq(b.lb), t.ub.eq(b.ub),
        ]
        return m
