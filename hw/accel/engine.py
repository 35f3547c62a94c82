"""The synaptic engine and the map writer of the event-driven stages.

**Engine.** Two input spikes of one map word per clock update all 9 kernel positions x ``L``
output channels (the scanner's tick carries up to two events; each tap memory has two read
ports, one per event, so the second event costs no block RAM):
a *window* of ``3 x 3 x L`` accumulators holds the partial currents of output rows
``y-1, y, y+1`` and columns ``x-1, x, x+1`` around the scanner's position ``(y, x)``. An event
(input channel ``c`` at ``(y, x)``) reads one weight row (9 taps x ``L`` lanes) and adds tap
``(ky, kx)`` to the accumulator of output ``(y + 1 - ky, x + 1 - kx)``: no multiplier, and
nothing at all for inputs that did not spike. When the scanner moves to ``x + 1`` (``mv``)
the window shifts one column and the column that left it (output column ``x - 1``) is
*flushed* into a three-row **line buffer** (one LUT-RAM bank per output row ``oy mod 3``,
``W x G`` entries of ``L`` currents each):

* row ``y + 1`` (its first contribution): written;
* row ``y``: read, added, written (at ``y = 0`` it starts from 0);
* row ``y - 1``: read and added: its current is now complete and goes to the LIF pipeline
  (:class:`~.lif.LIFPipe`), in column order, one ``L``-lane update per flush.

Every position of every row pass is visited (zero words take one tick), so every neuron gets
exactly one LIF update per time step, and the line buffer never needs clearing: each entry is
written by its first contribution before it is read (a reset or an aborted image cannot leave
stale currents behind). A linear stage is a 1x1 map whose virtual channels' weights sit in
one of 9 tap slots of a row; the slot's weights go to the centre accumulator.

Pipeline (clock after the scanner's tick, registered again on arrival): E0 weight row
addresses, E1 weight row reads, E2 the reads registered twice on their way from the block RAMs
to the window, E3 the two events' weights summed per tap and lane, E4 window update (and flush
capture), F1 line-buffer read, F2 add and write, F3 LIF accept; the LIF spikes appear
:data:`~.lif.LATENCY` clocks later, then the map writer.
A layer with a bias adds its lanes' biases to the flushed final column in F2 (``f2``): the
``bmem`` ROM row ``bbase + g`` is read at F1 with the flushed column's group, so the current
entering the LIF pipeline is ``W * S_t + b``. A model without any engine bias has no
``bmem``.

**Map writer.** Writes each LIF output word (``L`` spikes of one position and group) to the
stage's output map, or, for a pooled stage, keeps even rows in a row buffer and writes the
2x2 OR of each block when the odd row's second column arrives; counts spikes for the debug
counters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .blocks import copies, popcount
from .lif import LIFPipe, params_layout
from .plan import AccelPlan, pack


def engine_config_layout(plan: AccelPlan) -> data.StructLayout:
    """Per-stage settings of the engine: ``h1, w1`` (map size minus one), ``g1`` (groups minus
    one), ``linear``, the LIF ``params`` and, when some stage has a bias, ``bbase`` (the
    stage's first row of the bias ROM)."""
    hmax = max([s.h for s in plan.stages], default=1)
    wmax = max([s.w for s in plan.stages], default=1)
    gmax = max([s.g for s in plan.stages], default=1)
    fields: dict[str, Any] = {
        "h1": unsigned(max(1, hmax.bit_length())),
        "w1": unsigned(max(1, wmax.bit_length())),
        "g1": unsigned(max(1, gmax.bit_length())),
        "linear": 1,
        "params": params_layout(plan.mem_bits),
    }
    if len(plan.engine_bias):
        fields["bbase"] = unsigned(max(1, (len(plan.engine_bias) - 1).bit_length()))
    return data.StructLayout(fields)


def lif_tag_layout(plan: AccelPlan) -> data.StructLayout:
    """What the map writer needs of each LIF update: the line-buffer index ``lb`` (``g*W +
    ox``, also the pool row buffer's index), the parities of ``ox`` and ``oy``, and whether
    the update ends a pass (``last_x``) and a row (``last_g``)."""
    return data.StructLayout({
        "lb": unsigned(max(1, (plan.linebuf_depth - 1).bit_length())),
        "ox0": 1, "oy0": 1, "last_x": 1, "last_g": 1,
    })


def writer_config_layout(plan: AccelPlan) -> data.StructLayout:
    """Per-stage settings of the map writer: ``pooled``, ``g`` (groups) and ``rowstride``
    (words of one written row: ``W*G`` or ``W/2*G``); ``nzrec`` (record the positions' masks
    of nonzero words: the next stage skips) and ``wo`` (positions of a written row)."""
    depth = max(plan.map_depth.values())
    gmax = max([s.g for s in plan.stages], default=1)
    wmax = max([s.wo for s in plan.stages], default=1)
    return data.StructLayout({
        "pooled": 1,
        "g": unsigned(max(1, gmax.bit_length())),
        "rowstride": unsigned(max(1, depth.bit_length())),
        "nzrec": 1, "wo": unsigned(max(1, wmax.bit_length())),
    })


def spike_write_members(*, lanes: int, depth: int) -> dict[str, Any]:
    """The members of a unit that writes spike maps: ``wr_addr``, ``wr_data``, ``wr_en`` (a
    map's write port, ``depth`` words of ``lanes`` bits) and ``lif_pop``/``lif_inc``,
    ``pool_pop``/``pool_inc`` (popcounts for the debug spike counters)."""
    return {
        "wr_addr": Out(max(1, (depth - 1).bit_length())),
        "wr_data": Out(lanes),
        "wr_en": Out(1),
        "lif_pop": Out(range(lanes + 1)), "lif_inc": Out(1),
        "pool_pop": Out(range(lanes + 1)), "pool_inc": Out(1),
    }


class Engine(wiring.Component):
    """Window, line buffer and LIF pipeline of the event-driven stages (module docstring).

    Parameters (keyword-only)
    -------------------------
    plan : the :class:`~.plan.AccelPlan` (its engine weights become the ``wmem`` ROM).
    tick_shape : the scanner's :func:`~.scanner.tick_layout`.

    Members
    -------
    cfg : ``In(engine_config_layout(plan))`` the running stage.
    tick : ``In(stream.Signature(tick_shape, always_ready=True))`` from the scanner.
    o : ``Out(stream.Signature(...))`` the LIF pipeline's output: ``spikes`` and the
        :func:`lif_tag_layout` tag.
    busy : ``Out(1)`` some tick or update is still in flight.
    """

    def __init__(self, *, plan: AccelPlan, tick_shape: data.StructLayout) -> None:
        self._plan = plan
        self._tick = tick_shape
        self._lif = LIFPipe(lanes=plan.lanes, current_bits=plan.cur_bits,
                            membrane_bits=plan.mem_bits, depth=plan.umem_depth,
                            tag_shape=lif_tag_layout(plan))
        super().__init__({
            "cfg": In(engine_config_layout(plan)),
            "tick": In(stream.Signature(tick_shape, always_ready=True)),
            "o": Out(stream.Signature(self._lif.out_layout, always_ready=True)),
            "busy": Out(1),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = self._plan
        L, CB, WB = p.lanes, p.cur_bits, p.weight_bits
        cfg = Signal.like(self.cfg, name="cfg_r")   # registered here (the ROM is far)
        m.d.sync += cfg.eq(self.cfg)
        m.submodules.lif = lif = self._lif
        lane = data.ArrayLayout(signed(CB), L)
        wrow = data.ArrayLayout(data.ArrayLayout(signed(WB), L), 9)
        # the weight ROM, one memory per kernel tap (``wmem<k>``: row = L lanes), each read at
        # its own registered copy of the row address (one address into ~9*L*WB/18 block RAMs
        # spread over the die would be a long, wide fan-out)
        rows = p.engine_rows if p.wrows else np.zeros((1, 9, L), np.int64)
        taps_rd: list[tuple[Any, Any]] = []
        for k in range(9):
            mem = memory.Memory(shape=unsigned(L * WB), depth=max(1, p.wrows),
                                init=pack(rows[:, k, :], WB))
            m.submodules[f"wmem{k}"] = mem
            taps_rd.append((mem.read_port(), mem.read_port()))   # the tick's two events

        # ---- the tick registered where it lands (``tick_in``: the scanner stays compact; the
        # address copies below are spread over the die with the block RAMs they address);
        # E0: tick and address copies registered; E1: weight row reads; E2: the reads
        # registered twice (the taps' block RAMs are spread over the die, the window is not);
        # E3: the two events' taps summed (masked by their ``ev``); E4: window ---------------
        # (the tick's control goes through one register more than the addresses, ``tick_a``,
        # so everything after it lines up with the second weight register)
        ti = Signal(self._tick, name="tick_in")
        vi = Signal(name="v_in")
        m.d.sync += [ti.eq(self.tick.payload), vi.eq(self.tick.valid)]
        ta = Signal(self._tick, name="tick_a")
        va = Signal(name="v_a")
        t0 = Signal(self._tick, name="tick0")
        v0 = Signal()
        m.d.sync += [ta.eq(ti), va.eq(vi), t0.eq(ta), v0.eq(va)]
        for k, ports in enumerate(taps_rd):
            addrs = (ti.waddr, ti.waddr2)
            for e, (rd, addr) in enumerate(zip(ports, addrs, strict=True)):
                wa = Signal.like(t0.waddr, name=f"waddr{k}_{e}", attrs={"keep": 1})
                m.d.sync += wa.eq(addr)
                m.d.comb += [rd.addr.eq(wa), rd.en.eq(1)]
        tick1 = Signal(self._tick, name="tick1")
        tick2 = Signal(self._tick, name="tick2")
        tick3 = Signal(self._tick, name="tick3")
        v1, v2, v3 = Signal(), Signal(), Signal()
        m.d.sync += [tick1.eq(t0), v1.eq(v0), tick2.eq(tick1), v2.eq(v1), tick3.eq(tick2),
                     v3.eq(v2)]
        w1 = [Signal(wrow, name=f"w1_{e}", reset_less=True) for e in range(2)]  # reads, into
        w2 = [Signal(wrow, name=f"w2_{e}", reset_less=True) for e in range(2)]  # registers
        m.d.sync += [w1[e][k].eq(ports[e].data)
                     for k, ports in enumerate(taps_rd) for e in range(2)]
        m.d.sync += [w2[e].eq(w1[e]) for e in range(2)]
        has_linear = any(s.kind == "linear" for s in p.stages)
        slot_w = [Signal(data.ArrayLayout(signed(WB), L), name=f"slot_w{e}") for e in range(2)]
        if has_linear:
            for e, slot in enumerate((tick2.slot, tick2.slot2)):
                with m.Switch(slot):
                    for k in range(9):
                        with m.Case(k):
                            m.d.comb += slot_w[e].eq(w2[e][k])

        ng = (L + 7) // 8                   # lane groups of 8 (copies, line-buffer banks)
        # E3: per tap and lane, the sum of the two events' weights (each masked by its ``ev``
        # copy, two registers from tick 0); a linear stage's slot weights go to the centre only
        evc = _flag_copies(m, v0, t0, ("ev", "ev2"), count=9 * ng, tag="ev")
        lin = copies(m, (cfg.linear,), ("linear",), count=9 * ng, tag="lin")
        psum = [Signal(data.ArrayLayout(signed(WB + 1), L), name=f"psum{k}", reset_less=True)
                for k in range(9)]
        for i in range(3):
            for j in range(3):
                k = (2 - i) * 3 + (2 - j)           # the weight tap of window (i, j)
                taps = []
                for e in range(2):
                    tap = w2[e][k]
                    taps.append(tap)
                for lane_i in range(L):
                    c = (i * 3 + j) * ng + lane_i // 8
                    ev1, ev2 = evc[c]
                    t = [taps[e][lane_i] for e in range(2)]
                    if has_linear:      # a linear stage: the slot weights, at the centre only
                        t = [Mux(lin[c][0], slot_w[e][lane_i] if i == j == 1 else 0, t[e])
                             for e in range(2)]
                    m.d.sync += psum[i * 3 + j][lane_i].eq(Mux(ev1, t[0], 0) + Mux(ev2, t[1], 0))

        # E4: the window (moves and pass starts: copies two registers from tick 1)
        win = [[Signal(lane, name=f"win{i}{j}", reset_less=True) for j in range(3)]
               for i in range(3)]
        ctl = _flag_copies(m, v1, tick1, ("mv", "ps"), count=9 * ng)
        for i in range(3):
            for j in range(3):
                nxt = win[i][j + 1] if j < 2 else None
                for lane_i in range(L):
                    mv_c, ps = ctl[(i * 3 + j) * ng + lane_i // 8]
                    if nxt is not None:
                        base = Mux(ps, 0, Mux(mv_c, nxt[lane_i], win[i][j][lane_i]))
                    else:
                        base = Mux(ps | mv_c, 0, win[i][j][lane_i])
                    m.d.sync += win[i][j][lane_i].eq(base + psum[i * 3 + j][lane_i])

        # flush capture: the column x - 2 leaves the window on ``mv`` (each lane group's
        # capture enabled by its window copy of ``mv``; the flush metadata and the line-buffer
        # read addresses by copies of their own, ``fmv``)
        f1 = [Signal(lane, name=f"f1_{i}", reset_less=True) for i in range(3)]
        for i in range(3):
            for lane_i in range(L):
                with m.If(ctl[(i * 3) * ng + lane_i // 8][0]):
                    m.d.sync += f1[i][lane_i].eq(win[i][0][lane_i])
        fmv = [c[0] for c in _flag_copies(m, v1, tick1, ("mv",), count=1 + 3 * ng, tag="fmv")]
        ox_ok3 = Signal(name="ox_ok3")      # tick3's 2 <= x <= w1 + 2, registered from tick 2
        lbx3 = Signal.like(tick3.lb, name="lbx3")   # tick3.lb + tick3.x - 2, likewise
        m.d.sync += [ox_ok3.eq((tick2.x >= 2) & (tick2.x <= cfg.w1 + 2)),
                     lbx3.eq(tick2.lb + tick2.x - 2)]
        f1_on = Signal()
        f1_meta = Signal(self._tick, name="f1_meta")
        f1_y0 = Signal(name="f1_y0")        # f1_meta.y == 0, registered (its copies are far)
        m.d.sync += f1_on.eq(fmv[0] & ox_ok3)
        # the banks' roles of the flushed column (mid, final), one copy per lane group of 8
        # (``keep``: one ``ym3`` register into the selects of all lanes was the engine's
        # slowest path); F2's selects per 4 lanes copy them
        f1_role = [[{r: Signal(name=f"f1_{r}{k}_{j}", attrs={"keep": 1}) for r in ("mid", "fin")}
                    for j in range(ng)] for k in range(3)]
        with m.If(fmv[0]):
            m.d.sync += [f1_meta.eq(tick3), f1_y0.eq(tick3.y == 0)]
            m.d.sync += [f1_meta.lb.eq(lbx3), f1_meta.ub.eq(tick3.ub + tick3.x - 2)]
            for k in range(3):
                for j in range(ng):
                    m.d.sync += [f1_role[k][j]["mid"].eq(_role(tick3.ym3, k, "mid")),
                                 f1_role[k][j]["fin"].eq(_role(tick3.ym3, k, "final"))]

        # ---- F1: line-buffer read; F2: select and add; F3: write ------------------------------
        # Each bank is split into lane groups of 8, each with its own registered copies of the
        # read and write addresses and selects (``keep``: the copies cut the fan-out of one
        # address into every LUT-RAM of a bank). All three banks are read and registered; the
        # bank roles are applied after the register.
        groups = [list(range(j * 8, min(L, j * 8 + 8))) for j in range(ng)]
        lb_bits = max(1, (max(2, p.linebuf_depth) - 1).bit_length())
        rb = [Signal(lane, name=f"rb{k}", reset_less=True) for k in range(3)]
        f3_lb = [[Signal(lb_bits, name=f"f3_lb{k}_{j}", attrs={"keep": 1}) for j in range(ng)]
                 for k in range(3)]
        f3_mid = [[Signal(name=f"f3_mid{k}_{j}", attrs={"keep": 1}) for j in range(ng)]
                  for k in range(3)]
        mid3 = Signal(lane, name="mid3", reset_less=True)     # row y: old + this column
        first3 = Signal(lane, name="first3", reset_less=True)  # row y + 1: this column
        f3_wen = [Signal(name=f"f3_wen{k}") for k in range(3)]
        for k in range(3):
            for j, lanes_j in enumerate(groups):
                gl = data.ArrayLayout(signed(CB), len(lanes_j))
                mem = memory.Memory(shape=gl, depth=max(2, p.linebuf_depth), init=[])
                m.submodules[f"linebuf{k}_{j}"] = mem
                rp, wp = mem.read_port(domain="comb"), mem.write_port()
                ra = Signal(lb_bits, name=f"f1_lb{k}_{j}", attrs={"keep": 1})
                with m.If(fmv[1 + k * ng + j]):
                    m.d.sync += ra.eq(lbx3)
                m.d.comb += rp.addr.eq(ra)
                for n, lane_i in enumerate(lanes_j):
                    m.d.sync += rb[k][lane_i].eq(rp.data[n])
                    m.d.comb += wp.data[n].eq(Mux(f3_mid[k][j], mid3[lane_i], first3[lane_i]))
                m.d.comb += [wp.addr.eq(f3_lb[k][j]), wp.en.eq(f3_wen[k])]
        f2 = [Signal(lane, name=f"f2_{i}", reset_less=True) for i in range(3)]
        f2_on = Signal()
        f2_meta = Signal(self._tick, name="f2_meta")
        bias1: Any = [0] * L
        if len(p.engine_bias):
            # the bias row of the column flushed on ``mv``, read at F1 (address registered
            # from the tick one clock before the flush, data with ``f1``)
            brows = p.engine_bias
            m.submodules.bmem = bmem = memory.Memory(
                shape=lane, depth=max(2, len(brows)),
                init=[[int(v) for v in r] for r in brows])
            brd = bmem.read_port()
            baddr = Signal(range(max(2, len(brows))), name="baddr")
            m.d.sync += baddr.eq(cfg.bbase + tick2.g)
            m.d.comb += [brd.addr.eq(baddr), brd.en.eq(1)]
            bias1 = [brd.data[i] for i in range(L)]
        m.d.sync += [f2[i].eq(f1[i]) for i in (1, 2)]
        m.d.sync += [f2[0][i].eq(f1[0][i] + bias1[i]) for i in range(L)]
        m.d.sync += [f2_on.eq(f1_on), f2_meta.eq(f1_meta)]
        y2 = f2_meta.y
        # per-bank roles, write enables and data selects, decided in F1 (registered); the
        # selects of the bank outputs, one copy per 4 lanes (each drives 4 lanes' adders)
        n4 = (L + 3) // 4
        f2_wen = [Signal(name=f"f2_wen{k}") for k in range(3)]
        f2_mid = [Signal(name=f"f2_mid{k}") for k in range(3)]
        sel_mid = [[Signal(name=f"f2_smid{k}_{j}", attrs={"keep": 1}) for j in range(n4)]
                   for k in range(3)]
        sel_fin = [[Signal(name=f"f2_sfin{k}_{j}", attrs={"keep": 1}) for j in range(n4)]
                   for k in range(3)]
        y1 = f1_meta.y
        for k in range(3):
            mid_k, first_k = _role(f1_meta.ym3, k, "mid"), _role(f1_meta.ym3, k, "first")
            m.d.sync += [f2_mid[k].eq(mid_k),
                         f2_wen[k].eq(f1_on & Mux(mid_k, y1 <= cfg.h1, first_k & (y1 < cfg.h1)))]
            for j in range(n4):
                m.d.sync += [sel_mid[k][j].eq(f1_role[k][j // 2]["mid"]),
                             sel_fin[k][j].eq(f1_role[k][j // 2]["fin"])]
        f2_final = Signal()
        f2_last_x = Signal()
        f2_last_g = Signal()
        m.d.sync += [f2_final.eq(f1_on & ~f1_y0), f2_last_x.eq(f1_meta.x == cfg.w1 + 2),
                     f2_last_g.eq(f1_meta.g == cfg.g1)]
        old_mid = Signal(lane)
        old_final = Signal(lane)
        for lane_i in range(L):
            j = lane_i // 4
            m.d.comb += [
                old_mid[lane_i].eq(Mux(sel_mid[0][j], rb[0][lane_i],
                                       Mux(sel_mid[1][j], rb[1][lane_i], rb[2][lane_i]))),
                old_final[lane_i].eq(Mux(sel_fin[0][j], rb[0][lane_i],
                                         Mux(sel_fin[1][j], rb[1][lane_i], rb[2][lane_i]))),
            ]
        y2_zero = [Signal(name=f"f2_y0_{j}", attrs={"keep": 1}) for j in range(n4)]
        m.d.sync += [z.eq(f1_y0) for z in y2_zero]
        for lane_i in range(L):
            m.d.sync += mid3[lane_i].eq(f2[1][lane_i] + Mux(y2_zero[lane_i // 4], 0,
                                                            old_mid[lane_i]))
        m.d.sync += first3.eq(f2[2])
        f3_on = Signal()
        m.d.sync += f3_on.eq(f2_on)
        for k in range(3):
            m.d.sync += f3_wen[k].eq(f2_wen[k])
            for j in range(ng):
                m.d.sync += [f3_lb[k][j].eq(f2_meta.lb), f3_mid[k][j].eq(f2_mid[k])]
        # F3: the LIF update of output (y - 1, x - 2), registered into the pipeline
        li = lif.i.payload
        m.d.sync += lif.i.valid.eq(f2_final)
        for lane_i in range(L):
            m.d.sync += li.current[lane_i].eq(f2[0][lane_i] + old_final[lane_i])
        ox = f2_meta.x - 2
        m.d.sync += [
            li.addr.eq(f2_meta.ub),
            li.first.eq(f2_meta.t == 0),
            li.params.eq(cfg.params),
            li.tag.lb.eq(f2_meta.lb),
            li.tag.ox0.eq(ox[0]),
            li.tag.oy0.eq(~y2[0]),            # oy = y - 1
            li.tag.last_x.eq(f2_last_x),
            li.tag.last_g.eq(f2_last_g),
        ]
        wiring.connect(m, wiring.flipped(self.o), lif.o)
        m.d.comb += self.busy.eq(self.tick.valid | vi | va | v0 | v1 | v2 | v3 | f1_on | f2_on
                                 | f3_on | lif.busy)
        return m


def _flag_copies(m: Module, valid: Any, tick: Any, names: tuple[str, ...], *,
                 count: int, tag: str = "ctl") -> list[tuple[Any, ...]]:
    """:func:`~.blocks.copies` of the tick's flags ``names``, each ANDed with ``valid``."""
    return copies(m, tuple(valid & getattr(tick, n) for n in names), names, count=count,
                  tag=tag)


def _role(ym3: Any, k: int, role: str) -> Any:
    """Whether line-buffer bank ``k`` holds output row ``y - 1`` (final), ``y`` (mid) or
    ``y + 1`` (first) while the scanner is on input row ``y`` (``ym3 = y mod 3``)."""
    off = {"final": 2, "mid": 0, "first": 1}[role]
    return ym3 == (k - off) % 3


class MapWriter(wiring.Component):
    """Writes the LIF pipeline's spike words into the stage's output map (module docstring).

    Members
    -------
    cfg : ``In(writer_config_layout(plan))``. start : ``In(1)`` resets the addresses.
    i : ``In(stream.Signature(...))`` the engine's ``o``.
    wr_addr, wr_data, wr_en : ``Out`` the output map's write port.
    nz_addr, nz_data, nz_en : ``Out`` the mask memory's write port (``nzrec`` stages: one
        write per position, at the position (the top adds the map's bit), its ``G`` words'
        ``!= 0`` bits, when the last group's word is written).
    lif_pop, pool_pop : ``Out`` popcounts of a LIF word (every update) and of a written pooled
        word, valid with ``lif_inc`` and ``pool_inc`` (:data:`~.blocks.POP_LATENCY` clocks
        after the word). busy : ``Out(1)`` a popcount is still in its pipeline.
    """

    def __init__(self, *, plan: AccelPlan, in_shape: Any) -> None:
        self._plan = plan
        depth = max(plan.map_depth.values())
        L = plan.lanes
        super().__init__({
            "cfg": In(writer_config_layout(plan)),
            "start": In(1),
            "i": In(stream.Signature(in_shape, always_ready=True)),
            **spike_write_members(lanes=L, depth=depth),
            "nz_addr": Out(plan.nz_pos_bits), "nz_data": Out(max(1, plan.nz_width)),
            "nz_en": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = self._plan
        L = p.lanes
        cfg = Signal.like(self.cfg, name="cfg_r")   # registered here (the ROM is far)
        m.d.sync += cfg.eq(self.cfg)
        # the input registered here (the engine is far); the row buffer is read a clock ahead,
        # with the input's address, so its word arrives registered with the input
        pay = Signal.like(self.i.payload, name="i_r", reset_less=True)
        on = Signal(name="i_on")
        m.d.sync += [pay.eq(self.i.payload), on.eq(self.i.valid)]
        tag = pay.tag
        m.submodules.pbuf = pbuf = memory.Memory(shape=unsigned(L),
                                                 depth=max(2, p.linebuf_depth), init=[])
        pr, pw = pbuf.read_port(transparent_for=()), pbuf.write_port()
        row_base = Signal.like(self.wr_addr)
        a = Signal.like(self.wr_addr)
        gcur = Signal.like(cfg.g)
        hold = Signal(L)
        spikes = pay.spikes
        both = Signal(L)
        m.d.comb += [pr.addr.eq(self.i.payload.tag.lb), both.eq(pr.data | spikes),
                     pw.addr.eq(tag.lb), pw.data.eq(spikes)]
        pooled_write = cfg.pooled & tag.oy0 & tag.ox0
        write = Signal()
        m.d.comb += write.eq(on & (~cfg.pooled | pooled_write))
        m.d.comb += [
            self.wr_addr.eq(a),
            self.wr_data.eq(Mux(cfg.pooled, both | hold, spikes)),
            self.wr_en.eq(write),
            pw.en.eq(on & cfg.pooled & ~tag.oy0),
        ]
        with m.If(on & cfg.pooled & tag.oy0 & ~tag.ox0):
            m.d.sync += hold.eq(both)
        with m.If(self.start):
            m.d.sync += [row_base.eq(0), a.eq(0), gcur.eq(0)]
        with m.Elif(write):
            with m.If(tag.last_x):
                with m.If(tag.last_g):
                    m.d.sync += [row_base.eq(row_base + cfg.rowstride),
                                 a.eq(row_base + cfg.rowstride), gcur.eq(0)]
                with m.Else():
                    m.d.sync += [gcur.eq(gcur + 1), a.eq(row_base + gcur + 1)]
            with m.Else():
                m.d.sync += a.eq(a + cfg.g)
        # popcounts, pipelined (off the write path); busy until the last one is out
        pop, inc, b1 = popcount(m, spikes, on, "lif_pop")
        ppop, pinc, b2 = popcount(m, both | hold, on & pooled_write, "pool_pop")
        nz_busy = self._masks(m, cfg, write, gcur, tag) if p.nz_width else 0
        m.d.comb += [self.lif_pop.eq(pop), self.lif_inc.eq(inc),
                     self.pool_pop.eq(ppop), self.pool_inc.eq(pinc),
                     self.busy.eq(on | b1 | b2 | nz_busy)]
        return m

    def _masks(self, m: Module, cfg: Any, write: Any, gcur: Any, tag: Any) -> Signal:
        """The positions' masks of nonzero words (``nzrec``): the write registered (off the
        map's write path), then its word's ``!= 0`` bit kept per group and column of the row
        (registers), and the mask written with the last group's word. Returns the busy flag."""
        p = self._plan
        G = p.nz_width
        wmax = max(2, max(s.wo for k, s in enumerate(p.stages) if p.records_nz(k)))
        xo = Signal(range(wmax), name="nz_x")         # column of the written row
        rowpos = Signal(p.nz_pos_bits, name="nz_row")  # its first position
        with m.If(self.start):
            m.d.sync += [xo.eq(0), rowpos.eq(0)]
        with m.Elif(write):
            with m.If(tag.last_x):
                m.d.sync += xo.eq(0)
                with m.If(tag.last_g):
                    m.d.sync += rowpos.eq(rowpos + cfg.wo)
            with m.Else():
                m.d.sync += xo.eq(xo + 1)
        on = Signal(name="nz_on")
        word = Signal.like(self.wr_data, name="nz_word", reset_less=True)
        x = Signal.like(xo, name="nz_xr")
        g = Signal(range(max(2, G)), name="nz_g")
        last = Signal(name="nz_last")
        pos = Signal.like(rowpos, name="nz_pos")
        m.d.sync += [on.eq(write & cfg.nzrec), word.eq(self.wr_data), x.eq(xo),
                     g.eq(gcur), last.eq(tag.last_g), pos.eq(rowpos + xo)]
        bit = word.any()
        row = [Signal(wmax, name=f"nz_rowbits{k}") for k in range(G)]
        for k in range(G):
            with m.If(on & (g == k)):
                m.d.sync += row[k].bit_select(x, 1).eq(bit)
        m.d.comb += [
            self.nz_addr.eq(pos),
            self.nz_data.eq(Cat(*(Mux(g == k, bit, row[k].bit_select(x, 1)) for k in range(G)))),
            self.nz_en.eq(on & last),
        ]
        return on
