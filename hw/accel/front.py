"""The front unit: the first layer (a 3x3 conv on the image) and its LIF, into map ``M``.

For each output group ``g`` (``L`` channels) and output pixel (raster order, or 2x2 block
order when a pool follows) it multiply-accumulates the ``C_in * 9`` taps ``(c, ky, kx)``,
one per clock for all ``L`` lanes (``L`` multipliers; taps outside the image read 0). The
first layer's current is the same at every time step, so the finished current is held while
a :class:`~dietsnn.hw.neuron.NeuronArray` (one address, three-stage loop) runs its ``T``
LIF updates, one every 3 clocks, while the next pixel's taps accumulate. Every pixel takes
exactly ``period = max(C_in * 9, 3 T)`` clocks, so the unit's time per image is fixed::

    cycles = G * H * W * period + 3 T + 16         (cycles.front_cycles)

Pipeline of a tap: A counters -> image and weight read -> pixel select -> multiply ->
accumulate; after a pixel's last tap the current goes to the LIF feeder. A layer with a bias
starts each pixel's accumulator from its group's bias row (the ``bfront`` ROM, read with the
tap's group one clock ahead), so the held current is ``W * q + b``. The spike words
(one per pixel and step; for a pooled layer the 2x2 OR over the block, kept per step in a
small RAM) are written to ``M`` at word ``((t*H + y)*W + x)*G + g``.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..neuron import NeuronArray
from .blocks import COPY_LATENCY, copies, delay, popcount
from .cycles import front_period
from .engine import spike_write_members
from .plan import AccelPlan


class Front(wiring.Component):
    """The first layer and its LIF (module docstring).

    Parameters (keyword-only)
    -------------------------
    plan : the :class:`~.plan.AccelPlan`; its front weights become the ``wfront`` ROM.

    Members
    -------
    start : ``In(1)`` a pulse: compute the image in the image buffer. busy : ``Out(1)``.
    img_addr : ``Out`` image buffer word address (synchronous read); img_data : ``In``.
    wr_addr, wr_data, wr_en : ``Out`` the write port of map ``M``.
    lif_pop, lif_inc, pool_pop, pool_inc : ``Out`` popcounts for the debug counters.
    """

    def __init__(self, *, plan: AccelPlan) -> None:
        self._plan = plan
        L = plan.lanes
        f = plan.front
        self._array = NeuronArray(lanes=L, current_bits=f.current_bits,
                                  membrane_bits=f.membrane_bits, depth=1,
                                  timesteps=plan.timesteps, loop_stages=3)
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "img_addr": Out(max(1, (plan.beats - 1).bit_length())),
            "img_data": In(plan.data_bits),
            **spike_write_members(lanes=L, depth=plan.map_depth["M"]),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = self._plan
        f = p.front
        L, T, WB = p.lanes, p.timesteps, p.weight_bits
        C, H, W, G = f.c_in, f.h, f.w, f.g
        period = front_period(p)
        pooled = bool(f.pool)
        ppb, pbits = p.pix_per_beat, p.pix_bits
        # the weight ROM in lane groups of 8, each read at its own copy of the row address
        ng = (L + 7) // 8
        rom_ports = []
        for j in range(ng):
            lanes_j = range(j * 8, min(L, j * 8 + 8))
            mem = memory.Memory(shape=data.ArrayLayout(signed(WB), len(lanes_j)),
                                depth=len(p.front_rows),
                                init=[[int(row[i]) for i in lanes_j] for row in p.front_rows])
            m.submodules[f"wfront{j}"] = mem
            rom_ports.append((lanes_j, mem.read_port()))

        # ---- A: pixel and tap counters -------------------------------------------------------
        on = Signal()
        g = Signal(range(max(2, G)))
        yy0 = Signal(range(H + 1))      # pixel row / column (or block row / column)
        xx0 = Signal(range(W + 1))
        sub = Signal(2)                 # pooled: (dy, dx) within the block
        k = Signal(range(period + 1))   # tap
        c = Signal(range(max(2, C)))
        ky = Signal(range(3))
        kx = Signal(range(3))
        y = Signal(range(H + 1))
        x = Signal(range(W + 1))
        if pooled:
            m.d.comb += [y.eq(yy0 * 2 + sub[1]), x.eq(xx0 * 2 + sub[0])]
            rows, cols = H // 2, W // 2
        else:
            m.d.comb += [y.eq(yy0), x.eq(xx0)]
            rows, cols = H, W
        last_k = k == period - 1
        last_sub = (sub == 3) if pooled else 1
        last_col = xx0 == cols - 1
        last_row = yy0 == rows - 1
        last_px = last_k & last_sub & last_col & last_row & (g == G - 1)
        # ``start`` registered here first (it comes from the top's handshake, far away, and
        # fans out to every counter); ``busy`` covers the clock in between
        start = Signal()
        m.d.sync += start.eq(self.start)
        with m.If(start):
            m.d.sync += [on.eq(1), g.eq(0), yy0.eq(0), xx0.eq(0), sub.eq(0), k.eq(0), c.eq(0),
                         ky.eq(0), kx.eq(0)]
        with m.Elif(on):
            m.d.sync += k.eq(k + 1)
            with m.If(kx == 2):
                m.d.sync += kx.eq(0)
                with m.If(ky == 2):
                    m.d.sync += [ky.eq(0), c.eq(c + 1)]
                with m.Else():
                    m.d.sync += ky.eq(ky + 1)
            with m.Else():
                m.d.sync += kx.eq(kx + 1)
            with m.If(last_k):
                m.d.sync += [k.eq(0), c.eq(0), ky.eq(0), kx.eq(0)]
                if pooled:
                    m.d.sync += sub.eq(sub + 1)
                with m.If(last_sub):
                    m.d.sync += xx0.eq(xx0 + 1)
                    with m.If(last_col):
                        m.d.sync += [xx0.eq(0), yy0.eq(yy0 + 1)]
                        with m.If(last_row):
                            m.d.sync += [yy0.eq(0), g.eq(g + 1)]
                with m.If(last_px):
                    m.d.sync += on.eq(0)
        # tap address (the image is channel-major: pixel index (c*H + iy)*W + ix), in two
        # registered steps: the tap's coordinates and flags, then the addresses
        iy = Signal(signed(max(H, 2).bit_length() + 2))
        ix = Signal(signed(max(W, 2).bit_length() + 2))
        m.d.comb += [iy.eq(y + ky - 1), ix.eq(x + kx - 1)]
        inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W) & (k < f.taps)
        u_on, u_in, u_first, u_last = (Signal(name=f"u_{n}") for n in
                                       ("on", "in", "first", "last"))
        u_iy, u_ix, u_c, u_g, u_k = (Signal.like(v, name=f"u_{n}") for v, n in
                                     ((iy, "iy"), (ix, "ix"), (c, "c"), (g, "g"), (k, "k")))
        m.d.sync += [u_on.eq(on), u_in.eq(inside), u_first.eq(k == 0), u_last.eq(last_k),
                     u_iy.eq(iy), u_ix.eq(ix), u_c.eq(c), u_g.eq(g), u_k.eq(k)]
        pix = Signal(range(C * H * W + 1))
        m.d.comb += pix.eq(u_c * (H * W) + u_iy.as_unsigned()[:len(pix)] * W
                           + u_ix.as_unsigned()[:len(pix)])
        shift = (ppb - 1).bit_length()
        t_on, t_in, t_first, t_last = (Signal(name=f"t_{n}") for n in
                                       ("on", "in", "first", "last"))
        t_pix = Signal.like(pix)
        t_row = [Signal(range(max(2, len(p.front_rows))), name=f"t_row{j}", attrs={"keep": 1})
                 for j in range(ng)]
        m.d.sync += [t_on.eq(u_on), t_in.eq(u_in), t_first.eq(u_first), t_last.eq(u_last),
                     t_pix.eq(pix), *(r.eq(u_g * f.taps + u_k) for r in t_row)]
        # the tap's group, carried to the bias ROM read (stage C; bias layers only)
        grp = [u_g]
        if f.bias:
            for n in ("t", "a", "b", "c", "c2", "d1"):
                grp.append(Signal.like(u_g, name=f"{n}_g"))
                m.d.sync += grp[-1].eq(grp[-2])
        m.d.comb += [self.img_addr.eq(t_pix >> shift),
                     *(rp.addr.eq(r) for (_, rp), r in zip(rom_ports, t_row, strict=True)),
                     *(rp.en.eq(1) for _, rp in rom_ports)]
        # ---- B: read; C: pixel select; C2, D1, D: multiply; E: accumulate --------------------
        b_on, b_in, b_first, b_last = (Signal(name=f"b_{n}") for n in
                                       ("on", "in", "first", "last"))
        b_lane = Signal(max(1, shift), name="b_lane")
        # the image word arrives two clocks after its address (block RAM, register)
        a_on, a_in, a_first, a_last = (Signal(name=f"a_{n}") for n in
                                       ("on", "in", "first", "last"))
        a_lane = Signal(max(1, shift), name="a_lane")
        m.d.sync += [a_on.eq(t_on), a_in.eq(t_in), a_lane.eq(t_pix[:shift] if shift else 0),
                     a_first.eq(t_first), a_last.eq(t_last)]
        m.d.sync += [b_on.eq(a_on), b_in.eq(a_in), b_lane.eq(a_lane), b_first.eq(a_first),
                     b_last.eq(a_last)]
        w_b = Signal(data.ArrayLayout(signed(WB), L), reset_less=True)
        for lanes_j, rp in rom_ports:
            m.d.sync += [w_b[i].eq(rp.data[n]) for n, i in enumerate(lanes_j)]
        # the pixel, one copy per 8 multipliers (keep: the copies cut its fan-out)
        pix_c = [Signal(signed(pbits), name=f"pix_c{j}", reset_less=True, attrs={"keep": 1})
                 for j in range((L + 7) // 8)]
        w_c = Signal(data.ArrayLayout(signed(WB), L), reset_less=True)
        c_on, c_first, c_last = Signal(), Signal(), Signal()
        lanes_px = [self.img_data[i * pbits:(i + 1) * pbits].as_signed() for i in range(ppb)]
        sel = lanes_px[0]
        for i in range(1, ppb):
            sel = Mux(b_lane == i, lanes_px[i], sel)
        m.d.sync += [*(pc.eq(Mux(b_in, sel, 0)) for pc in pix_c), w_c.eq(w_b), c_on.eq(b_on),
                     c_first.eq(b_first), c_last.eq(b_last)]
        # the products, over MUL_LATENCY registered steps (C2, D1, D), in LUTs
        m.submodules.mul = mul = Multipliers(lanes=L, pix_bits=pbits, weight_bits=WB)
        m.d.comb += [*(mul.pix[j].eq(pc) for j, pc in enumerate(pix_c)), mul.w.eq(w_c)]
        prod = mul.prod
        d_on, d_last = (delay(m, c, MUL_LATENCY, n) for c, n in
                        ((c_on, "c_on"), (c_last, "c_last")))
        # the accumulators' enable and first-tap select, one copy per 4 lanes (one register
        # into every accumulator bit would be a die-wide fan-out)
        assert MUL_LATENCY >= COPY_LATENCY
        dc = copies(m, tuple(delay(m, c, MUL_LATENCY - COPY_LATENCY, n) for c, n in
                             ((c_on, "cc_on"), (c_first, "cc_first"))),
                    ("on", "first"), count=(L + 3) // 4, tag="d")
        acc = Signal(data.ArrayLayout(signed(f.current_bits), L), reset_less=True)
        init: Any = [0] * L
        if f.bias:      # the bias row of the tap's group arrives with the tap at stage D
            m.submodules.bfront = bmem = memory.Memory(
                shape=data.ArrayLayout(signed(f.current_bits), L), depth=max(2, G),
                init=[[int(v) for v in r] for r in p.front_bias])
            brd = bmem.read_port()
            m.d.comb += [brd.addr.eq(grp[-1]), brd.en.eq(1)]
            init = [brd.data[i] for i in range(L)]
        e_done = Signal()
        for i in range(L):
            on_i, first_i = dc[i // 4]
            with m.If(on_i):
                m.d.sync += acc[i].eq(Mux(first_i, init[i], acc[i]) + prod[i])
        m.d.sync += e_done.eq(d_on & d_last)

        # ---- LIF feeder: T updates of the held current, one every 3 clocks ------------------
        m.submodules.lif = arr = self._array
        cur = Signal.like(acc, reset_less=True)
        left = Signal(range(T + 1))
        step = Signal(range(max(2, T)))
        m.d.comb += [
            arr.params.leak_shift.eq(f.leak_shift),
            arr.params.threshold.eq(f.threshold),
            arr.params.membrane_bits.eq(f.membrane_bits),
            arr.i_stream.valid.eq(left != 0),
            arr.i_stream.payload.addr.eq(0),
            arr.i_stream.payload.step.eq(step),
            arr.o_stream.ready.eq(1),
        ]
        for i in range(L):
            m.d.comb += arr.i_stream.payload.current[i].eq(cur[i])
        with m.If(e_done):
            m.d.sync += [cur.eq(acc), left.eq(T), step.eq(0)]
        with m.Elif(arr.i_stream.valid & arr.i_stream.ready):
            m.d.sync += [left.eq(left - 1), step.eq(step + 1)]

        # ---- writer ------------------------------------------------------------------------------
        o = arr.o_stream
        spikes = o.payload.spikes
        beat = o.valid
        t_last = o.payload.step == T - 1
        wa = Signal.like(self.wr_addr)      # word of (t, pixel)
        pb = Signal.like(self.wr_addr)      # word of (0, pixel)
        wg = Signal(range(max(2, G)))
        wrow = Signal(range(rows + 1))
        wcol = Signal(range(cols + 1))
        wsub = Signal(2)
        step_words = f.map_words          # words of one time step
        w_last_sub = (wsub == 3) if pooled else 1
        pix_done = beat & t_last & w_last_sub
        with m.If(start):
            m.d.sync += [wa.eq(0), pb.eq(0), wg.eq(0), wrow.eq(0), wcol.eq(0), wsub.eq(0)]
        with m.Elif(beat):
            with m.If(~t_last):
                m.d.sync += wa.eq(wa + step_words)
            with m.Else():
                if pooled:
                    m.d.sync += [wsub.eq(wsub + 1), wa.eq(pb)]
                with m.If(w_last_sub):
                    with m.If(wcol == cols - 1):
                        m.d.sync += wcol.eq(0)
                        with m.If(wrow == rows - 1):
                            m.d.sync += [wrow.eq(0), wg.eq(wg + 1), pb.eq(wg + 1),
                                         wa.eq(wg + 1)]
                        with m.Else():
                            m.d.sync += [wrow.eq(wrow + 1), pb.eq(pb + G), wa.eq(pb + G)]
                    with m.Else():
                        m.d.sync += [wcol.eq(wcol + 1), pb.eq(pb + G), wa.eq(pb + G)]
        word = Signal(L)
        if pooled:
            m.submodules.pacc = pacc = memory.Memory(shape=unsigned(L), depth=max(2, T), init=[])
            pr, pw = pacc.read_port(domain="comb"), pacc.write_port()
            m.d.comb += [pr.addr.eq(o.payload.step), pw.addr.eq(o.payload.step),
                         word.eq(Mux(wsub == 0, 0, pr.data) | spikes),
                         pw.data.eq(word), pw.en.eq(beat)]
            write = beat & (wsub == 3)
        else:
            m.d.comb += word.eq(spikes)
            write = beat
        m.d.comb += [self.wr_addr.eq(wa), self.wr_data.eq(word), self.wr_en.eq(write)]
        busy = Signal()
        with m.If(start):
            m.d.sync += busy.eq(1)
        with m.Elif(pix_done & (wg == G - 1) & (wrow == rows - 1) & (wcol == cols - 1)):
            m.d.sync += busy.eq(0)
        # popcounts for the debug counters (pipelined; busy until the last one is out)
        pop, inc, pop_busy = popcount(m, spikes, beat, "front_lif_pop")
        m.d.comb += [self.lif_pop.eq(pop), self.lif_inc.eq(inc)]
        if pooled:      # (an unpooled front leaves pool_inc and pool_pop at 0)
            ppop, pinc, ppop_busy = popcount(m, word, write, "front_pool_pop")
            m.d.comb += [self.pool_pop.eq(ppop), self.pool_inc.eq(pinc)]
            pop_busy = pop_busy | ppop_busy
        m.d.comb += self.busy.eq(start | busy | pop_busy)
        return m


#: Registered steps of :class:`Multipliers` (C2, D1, D).
MUL_LATENCY = 3


class Multipliers(wiring.Component):
    """``L`` signed products ``prod[i] = pix[i // 8] * w[i]``, :data:`MUL_LATENCY` clocks after
    their operands, in LUTs and carry chains: an ECP5 MULT18X18D used without its internal
    registers (yosys does not pack registers into it) takes ~3.9 ns alone, which caps the
    front's clock.

    Each weight is split into base-4 digits, the top one signed (``-2..1``, or ``-1..0`` for
    an odd width): ``w = sum_d w_d 4^d``. Step C2 registers each pixel's multiples ``p, 3p,
    -p`` once for its 8 lanes (``2p`` and ``-2p`` are shifts of them); step D1 lets each digit
    select its multiple (``0, p, 2p, 3p``; the top digit ``0, p, -2p, -p``) and sums the
    selections in pairs; step D sums the pairs.

    Parameters (keyword-only)
    -------------------------
    lanes : ``L``. pix_bits, weight_bits : the operands' widths (signed, at least 2).

    Members
    -------
    pix : ``In(ArrayLayout(signed(pix_bits), ceil(L / 8)))`` one pixel per 8 lanes.
    w : ``In(ArrayLayout(signed(weight_bits), L))`` the weights.
    prod : ``Out(ArrayLayout(signed(pix_bits + weight_bits), L))`` the products.
    """

    def __init__(self, *, lanes: int, pix_bits: int, weight_bits: int) -> None:
        for n, v, lo in (("lanes", lanes, 1), ("pix_bits", pix_bits, 2),
                         ("weight_bits", weight_bits, 2)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise TypeError(f"Multipliers: {n} must be an integer >= {lo}, not {v!r}")
        self._lanes, self._pb, self._wb = lanes, pix_bits, weight_bits
        super().__init__({
            "pix": In(data.ArrayLayout(signed(pix_bits), (lanes + 7) // 8)),
            "w": In(data.ArrayLayout(signed(weight_bits), lanes)),
            "prod": Out(data.ArrayLayout(signed(pix_bits + weight_bits), lanes)),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        wb, nd = self._wb, (self._wb + 1) // 2
        mult = []
        for j in range((self._lanes + 7) // 8):
            v = {k: Signal(signed(self._pb + 2), name=f"p{j}_x{k}".replace("-", "m"),
                           reset_less=True) for k in (1, 3, -1)}
            px = self.pix[j]        # shifts and adds: a constant multiply may become a DSP
            m.d.sync += [v[1].eq(px), v[3].eq(px + (px << 1)), v[-1].eq(-px)]
            v[2], v[-2] = v[1] << 1, v[-1] << 1
            mult.append(v)
        w2 = Signal.like(self.w, name="w_r", reset_less=True)
        m.d.sync += w2.eq(self.w)
        pw = self._pb + self._wb
        for i in range(self._lanes):
            v, wi = mult[i // 8], Value.cast(w2[i])
            pps = []
            for d in range(nd):
                raw = wi[2 * d:min(wb, 2 * d + 2)]
                if len(raw) == 1:
                    sel = Mux(raw, v[-1], 0)
                else:
                    opts = (v[1], v[2], v[3]) if d < nd - 1 else (v[1], v[-2], v[-1])
                    sel = Mux(raw[1], Mux(raw[0], opts[2], opts[1]), Mux(raw[0], opts[0], 0))
                pps.append(sel << (2 * d))
            pairs = [Signal(signed(pw + 2), name=f"s{i}_{k}", reset_less=True)
                     for k in range(0, nd, 2)]
            m.d.sync += [ps.eq(_add(pps[2 * k:2 * k + 2])) for k, ps in enumerate(pairs)]
            pr = Signal(signed(pw), name=f"prod{i}", reset_less=True)
            m.d.sync += pr.eq(_add(pairs))
            m.d.comb += self.prod[i].eq(pr)
        return m


def _add(xs: list[Any]) -> Any:
    """The sum of one or more values (without the ``0 +`` that ``sum`` starts with)."""
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out
