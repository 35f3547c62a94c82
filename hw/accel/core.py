"""The whole-network accelerator, v2: AXI4-Stream image in, class and logits out.

Two halves run as a macro-pipeline on consecutive images:

* the **front** (:class:`~.front.Front`) computes the first layer of image ``n + 1`` from an
  image buffer into map ``M[(n + 1) % 2]``,
* while the **back** (:class:`~.scanner.Scanner`, :class:`~.engine.Engine`,
  :class:`~.engine.MapWriter`, :class:`~.outunit.OutUnit`) runs the event-driven layers of
  image ``n`` (reading ``M[n % 2]``, then ping-ponging between ``P0`` and ``P1``), the output
  layer and the argmax.

The :class:`~.axis.PixelFramer` fills two image buffers from ``s_axis`` while both halves
work; the :class:`~.axis.ResultStreamer` sends each result on ``m_axis``. See
``docs/accelerator.md`` for the interface timing and the cycle model.

Ports (Verilog names ``<port>__<member>``)
    ``s_axis`` : ``In(axis_signature(data_bits))`` images (:mod:`.axis`).
    ``m_axis`` : ``Out(axis_signature(32))`` results: class, then the logits; ``tlast``.
    ``status`` : ``Out(status_layout())`` frame counters.
    ``debug`` : ``Out(debug_layout(plan))`` the image on ``m_axis``: ``front_cycles``,
        ``back_cycles`` and the spike ``counts`` (golden ``Result.spike_counts`` order).
    ``mon`` : ``Out(monitor_layout(plan))`` every spike-map write, for testbenches:
        ``f_en, f_addr, f_data`` (front, map ``M``), ``b_en, b_stage, b_addr, b_data``
        (back, engine stage ``b_stage``), ``f_done`` (the front finished an image).

Reset: synchronous, active high (``rst``), clears every control register; no memory needs
clearing (the line buffer is written before it is read, membranes start from 0 at step 0,
the output accumulators at each image, the masks of nonzero words are written by each image's
stage before the next stage reads them).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ...model import Model
from .axis import PixelFramer, ResultStreamer, axis_signature, status_layout
from .engine import Engine, MapWriter, engine_config_layout, writer_config_layout
from .front import Front
from .maps import SpikeMap
from .outunit import OutUnit, result_layout
from .plan import OUT_DATA_BITS, AccelPlan, make_plan
from .scanner import Scanner, scan_config_layout, tick_layout

#: Maps by index in the ``src`` / ``dst`` fields.
MAPS = ("M", "P0", "P1")


def debug_layout(plan: AccelPlan) -> data.StructLayout:
    return data.StructLayout({
        "front_cycles": unsigned(32),
        "back_cycles": unsigned(32),
        "counts": data.ArrayLayout(unsigned(plan.count_bits), len(plan.counters)),
    })


def monitor_layout(plan: AccelPlan) -> data.StructLayout:
    depth = max(plan.map_depth.values())
    abits = max(1, (depth - 1).bit_length())
    return data.StructLayout({
        "f_en": 1, "f_addr": unsigned(abits), "f_data": unsigned(plan.lanes), "f_done": 1,
        "b_en": 1, "b_stage": unsigned(max(1, len(plan.stages).bit_length())),
        "b_addr": unsigned(abits), "b_data": unsigned(plan.lanes),
    })


def stage_layout(plan: AccelPlan, scan: data.StructLayout) -> data.StructLayout:
    """One back stage (engine stages, then the output stage) as the sequencer holds it."""
    nc = max(1, len(plan.counters))
    return data.StructLayout({
        "scan": scan,
        "engine": engine_config_layout(plan),
        "writer": writer_config_layout(plan),
        "src": unsigned(2), "dst": unsigned(2), "out": 1,
        "count": unsigned(max(1, nc.bit_length())), "has_count": 1,
        "pool_count": unsigned(max(1, nc.bit_length())), "has_pool": 1,
    })


class Accelerator(wiring.Component):
    """The v2 accelerator for one model (module docstring).

    Parameters (keyword-only)
    -------------------------
    model : the integer model (first layer a 3x3 conv, pools after convs, linear output).
    lanes : ``L``, output channels per event and clock (4..64, a power of two).
    data_bits : width of ``s_axis.tdata`` (32 or 64).

    Members
    -------
    plan : the :class:`~.plan.AccelPlan` (read-only).
    """

    def __init__(self, model: Model, *, lanes: int = 32, data_bits: int = 32) -> None:
        try:
            self._plan = make_plan(model, lanes, data_bits=data_bits)
        except ValueError:
            self._MustUse__silence = True
            raise
        p = self._plan
        super().__init__({
            "s_axis": In(axis_signature(p.data_bits)),
            "m_axis": Out(axis_signature(OUT_DATA_BITS)),
            "status": Out(status_layout()),
            "debug": Out(debug_layout(p)),
            "mon": Out(monitor_layout(p)),
        })

    @property
    def plan(self) -> AccelPlan:
        return self._plan

    def _dims(self) -> dict[str, int]:
        p = self._plan
        st = p.stages
        return {
            "lanes": p.lanes, "t": p.timesteps,
            "h": max([s.h for s in st], default=1),
            "w": max([s.w for s in st], default=1),
            "g_in": max([s.g_in for s in st] + [p.out.in_words]),
            "g": max([s.g for s in st], default=1),
        }

    def _stage_records(self, lay: data.StructLayout) -> list[Const]:
        p = self._plan
        recs = []
        n = len(p.counters)
        for k, s in enumerate(p.stages):
            recs.append({
                "scan": {"out": 0, "linear": int(s.kind == "linear"), "h1": s.h - 1,
                         "w1": s.w - 1, "gin1": 0 if s.skip else s.g_in - 1, "g1": s.g - 1,
                         "t1": p.timesteps - 1, "wbase": s.wbase,
                         "gstride": s.c_in if s.kind == "conv" else s.g_in * p.rows_per_word,
                         "rowwords": s.w * s.g_in, "w": s.w, "hw": s.h * s.w,
                         "wlast": s.w + 1, "hlast": s.h, "skip": int(s.skip),
                         "xstep": s.g_in if s.skip else 1,
                         "gmask": (1 << s.g_in) - 1 if s.skip else 0},
                "engine": {"h1": s.h - 1, "w1": s.w - 1, "g1": s.g - 1,
                           "linear": int(s.kind == "linear"),
                           **({"bbase": s.bbase} if len(p.engine_bias) else {}),
                           "params": {"threshold": s.threshold, "leak_shift": s.leak_shift,
                                      "membrane_bits": s.membrane_bits}},
                "writer": {"pooled": int(bool(s.pool)), "g": s.g,
                           "rowstride": s.wo * s.g, "nzrec": int(p.records_nz(k)),
                           "wo": s.wo},
                "src": MAPS.index(s.src), "dst": MAPS.index(s.dst), "out": 0,
                "count": max(s.count, 0) % max(1, n), "has_count": int(s.count >= 0),
                "pool_count": max(s.pool_count, 0), "has_pool": int(s.pool_count >= 0),
            })
        o = p.out
        recs.append({
            "scan": {"out": 1, "linear": 0, "h1": 0, "w1": 0, "gin1": o.in_words - 1, "g1": 0,
                     "t1": p.timesteps - 1, "wbase": 0, "gstride": 0, "rowwords": 0, "w": 1,
                     "hw": 1, "wlast": 0, "hlast": 0, "skip": 0, "xstep": 1, "gmask": 0},
            "engine": {"h1": 0, "w1": 0, "g1": 0, "linear": 0,
                       "params": {"threshold": 1, "leak_shift": 0, "membrane_bits": 2}},
            "writer": {"pooled": 0, "g": 1, "rowstride": 0, "nzrec": 0, "wo": 1},
            "src": MAPS.index(o.src), "dst": 0, "out": 1, "count": 0, "has_count": 0,
            "pool_count": 0, "has_pool": 0,
        })
        return [lay.const(r) for r in recs]

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = self._plan
        L = p.lanes
        dims = self._dims()
        depth_all = max(p.map_depth.values())
        scan_cfg = scan_config_layout(lanes=L, h=dims["h"], w=dims["w"], g_in=dims["g_in"],
                                      g=dims["g"], t=p.timesteps, wrows=max(1, p.wrows),
                                      map_depth=depth_all, nz_width=p.nz_width)
        tick = tick_layout(lanes=L, h=dims["h"], w=dims["w"], g_in=dims["g_in"], g=dims["g"],
                           t=p.timesteps, wrows=max(2, p.wrows, p.out.wrows),
                           lb_depth=p.linebuf_depth, u_depth=p.umem_depth)
        slay = stage_layout(p, scan_cfg)

        # ---- units and memories ------------------------------------------------------------
        m.submodules.framer = framer = PixelFramer(plan=p)
        m.submodules.front = front = Front(plan=p)
        m.submodules.scanner = scanner = Scanner(lanes=L, cfg_layout=scan_cfg, tick_shape=tick,
                                                 map_depth=depth_all,
                                                 rows_per_word=p.rows_per_word,
                                                 linear=any(s.kind == "linear" for s in p.stages),
                                                 nz_width=p.nz_width,
                                                 nz_pos_bits=p.nz_pos_bits)
        m.submodules.engine = engine = Engine(plan=p, tick_shape=tick)
        m.submodules.writer = writer = MapWriter(plan=p, in_shape=engine.o.payload.shape())
        m.submodules.outunit = outu = OutUnit(plan=p, tick_shape=tick)
        info = data.StructLayout({"debug": debug_layout(p)})
        m.submodules.streamer = streamer = ResultStreamer(
            plan=p, result_shape=result_layout(p), info_shape=info)
        wiring.connect(m, wiring.flipped(self.s_axis), framer.s_axis)
        wiring.connect(m, streamer.m_axis, wiring.flipped(self.m_axis))
        wiring.connect(m, engine.o, writer.i)
        m.d.comb += self.status.eq(framer.status)

        imgs = []
        for b in range(2):
            # (the framer never writes the buffer the front reads: no read-write collision,
            # so synthesis needs no collision logic between the RAM and its register)
            mem = memory.Memory(shape=unsigned(p.data_bits), depth=p.beats, init=[],
                                attrs={"no_rw_check": 1})
            m.submodules[f"img{b}"] = mem
            wp, rp = mem.write_port(), mem.read_port()
            m.d.comb += [wp.addr.eq(framer.wr_addr), wp.data.eq(framer.wr_data),
                         wp.en.eq(framer.wr_en & (framer.wr_buf == b)),
                         rp.addr.eq(front.img_addr), rp.en.eq(1)]
            q = Signal(p.data_bits, name=f"img{b}_q", reset_less=True)
            m.d.sync += q.eq(rp.data)
            imgs.append(q)
        m.d.comb += front.img_data.eq(Mux(framer.rd_buf, imgs[1], imgs[0]))

        mb = Signal()                 # M buffer the front writes next
        bb = Signal()                 # M buffer the back reads next
        m_full = Signal(2)
        maps: dict[str, SpikeMap] = {}
        for name in ("M0", "M1", "P0", "P1"):
            key = "M" if name[0] == "M" else name
            if key not in p.map_depth:
                continue
            sm = maps[name] = SpikeMap(width=L, depth=p.map_depth[key])
            m.submodules[f"map_{name}"] = sm
            m.d.comb += sm.rd_addr.eq(scanner.rd_addr)
        for b in range(2):
            sm = maps[f"M{b}"]
            m.d.comb += [sm.wr_addr.eq(front.wr_addr), sm.wr_data.eq(front.wr_data),
                         sm.wr_en.eq(front.wr_en & (mb == b))]
        m.d.comb += [self.mon.f_en.eq(front.wr_en), self.mon.f_addr.eq(front.wr_addr),
                     self.mon.f_data.eq(front.wr_data)]

        # ---- front control -------------------------------------------------------------------
        f_run = Signal()
        f_cyc = Signal(32)
        f_cycles = [Signal(32, name=f"f_cycles{b}") for b in range(2)]
        nc = len(p.counters)
        f_counts = [[Signal(p.count_bits, name=f"f_count{b}_{k}") for k in range(nc)]
                    for b in range(2)]
        f_start = Signal()
        m.d.comb += f_start.eq(~f_run & framer.avail & ~m_full.bit_select(mb, 1))
        m.d.comb += front.start.eq(f_start)
        # the front's busy registered here (the front is far); a run ends from its second clock
        f_end = Signal()
        f_busy, f_run2 = Signal(), Signal()
        m.d.sync += [f_busy.eq(front.busy), f_run2.eq(f_run)]
        m.d.comb += f_end.eq(f_run & f_run2 & ~f_busy)
        with m.If(f_start):
            m.d.sync += [f_run.eq(1), f_cyc.eq(1)]
            for b in range(2):
                with m.If(mb == b):
                    m.d.sync += [c.eq(0) for c in f_counts[b]]
        with m.Elif(f_run):
            m.d.sync += f_cyc.eq(f_cyc + 1)
        f = p.front
        for b in range(2):
            with m.If(mb == b):
                if f.count >= 0:
                    with m.If(front.lif_inc):
                        m.d.sync += f_counts[b][f.count].eq(f_counts[b][f.count] + front.lif_pop)
                if f.pool_count >= 0:
                    with m.If(front.pool_inc):
                        m.d.sync += f_counts[b][f.pool_count].eq(
                            f_counts[b][f.pool_count] + front.pool_pop)
        m.d.comb += [framer.release.eq(f_end), self.mon.f_done.eq(f_end)]
        m_set = Signal(2)
        m_clr = Signal(2)
        with m.If(f_end):
            m.d.sync += [f_run.eq(0), mb.eq(~mb)]
            m.d.comb += m_set.eq(Mux(mb, 0b10, 0b01))
            for b in range(2):
                with m.If(mb == b):
                    m.d.sync += f_cycles[b].eq(f_cyc)
        m.d.sync += m_full.eq((m_full | m_set) & ~m_clr)

        # ---- back sequencer ------------------------------------------------------------------
        n_st = len(p.stages) + 1
        s_idx = Signal(range(max(2, n_st)))
        cfg = Signal(slay)
        m.d.sync += cfg.eq(Array(self._stage_records(slay))[s_idx])
        m.d.comb += [scanner.cfg.eq(cfg.scan), engine.cfg.eq(cfg.engine),
                     writer.cfg.eq(cfg.writer),
                     engine.tick.valid.eq(scanner.tick.valid & ~cfg.out),
                     engine.tick.payload.eq(scanner.tick.payload),
                     outu.tick.valid.eq(scanner.tick.valid & cfg.out),
                     outu.tick.payload.eq(scanner.tick.payload)]
        b_cyc = Signal(32)
        b_counts = [Signal(p.count_bits, name=f"b_count{k}") for k in range(nc)]
        b_fcyc = Signal(32)
        start_stage = Signal()
        m.d.sync += start_stage.eq(0)     # (set in state CFG2 below: high exactly in START)
        # the units' busy flags registered here (they are far): a stage is over when they were
        # all low a clock ago and that clock was not START's
        units_idle, scan_idle, start_d1 = Signal(), Signal(), Signal()
        m.d.sync += [units_idle.eq(~scanner.busy & ~engine.busy & ~writer.busy),
                     scan_idle.eq(~scanner.busy), start_d1.eq(start_stage)]
        m.d.comb += [scanner.start.eq(start_stage), writer.start.eq(start_stage),
                     outu.start.eq(start_stage & cfg.out)]
        # scanner source map: each map's registered read, then the source select (registered:
        # the scanner's READ_LATENCY is the map's plus one)
        src_data = Signal(L, name="src_q", reset_less=True)
        for name, sm in maps.items():
            if name[0] == "M":
                sel = (cfg.src == 0) & (bb == int(name[1]))
            else:
                sel = cfg.src == MAPS.index(name)
            with m.If(sel):
                m.d.sync += src_data.eq(sm.rd_data)
        m.d.comb += scanner.rd_data.eq(src_data)
        for name in ("P0", "P1"):
            if name in maps:
                sm = maps[name]
                m.d.comb += [sm.wr_addr.eq(writer.wr_addr), sm.wr_data.eq(writer.wr_data),
                             sm.wr_en.eq(writer.wr_en & (cfg.dst == MAPS.index(name)))]
        if p.nz_width:
            # the masks of nonzero words (both P maps, ``Cat(position, map)``, map 1 for P1):
            # the writer writes the masks of the map a stage writes, the scanner reads those of
            # the one it reads
            nz = SpikeMap(width=p.nz_width, depth=2 << p.nz_pos_bits)
            m.submodules.map_nz = nz
            p1 = MAPS.index("P1")
            m.d.comb += [nz.wr_addr.eq(Cat(writer.nz_addr, cfg.dst == p1)),
                         nz.wr_data.eq(writer.nz_data), nz.wr_en.eq(writer.nz_en),
                         nz.rd_addr.eq(Cat(scanner.nz_addr, cfg.src == p1)),
                         scanner.nz_data.eq(nz.rd_data)]
        m.d.comb += [self.mon.b_en.eq(writer.wr_en), self.mon.b_addr.eq(writer.wr_addr),
                     self.mon.b_data.eq(writer.wr_data), self.mon.b_stage.eq(s_idx)]
        for k in range(nc):     # (a stage's counters are distinct: never both at once)
            with m.If(writer.lif_inc & cfg.has_count & (cfg.count == k)):
                m.d.sync += b_counts[k].eq(b_counts[k] + writer.lif_pop)
            with m.If(writer.pool_inc & cfg.has_pool & (cfg.pool_count == k)):
                m.d.sync += b_counts[k].eq(b_counts[k] + writer.pool_pop)

        with m.FSM(name="back"):
            with m.State("IDLE"):
                with m.If(m_full.bit_select(bb, 1)):
                    m.d.sync += [s_idx.eq(0), b_cyc.eq(1)]
                    for k in range(nc):
                        m.d.sync += b_counts[k].eq(Mux(bb, f_counts[1][k], f_counts[0][k]))
                    m.d.sync += b_fcyc.eq(Mux(bb, f_cycles[1], f_cycles[0]))
                    m.next = "CFG"
            with m.State("CFG"):          # cfg follows s_idx one clock later
                m.d.sync += b_cyc.eq(b_cyc + 1)
                m.next = "CFG2"
            with m.State("CFG2"):         # the units register cfg
                m.d.sync += [b_cyc.eq(b_cyc + 1), start_stage.eq(1)]
                m.next = "START"
            with m.State("START"):        # start_stage: a register, high in this state
                m.d.sync += b_cyc.eq(b_cyc + 1)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.sync += b_cyc.eq(b_cyc + 1)
                with m.If(cfg.out):
                    with m.If(outu.done):
                        m.next = "RESULT"
                with m.Elif(units_idle & ~start_stage & ~start_d1):
                    m.d.sync += s_idx.eq(s_idx + 1)
                    m.next = "CFG"
            with m.State("RESULT"):
                m.d.comb += streamer.load.eq(streamer.free)
                with m.If(streamer.free):
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += b_cyc.eq(b_cyc + 1)
        m.d.comb += streamer.result.eq(outu.result)
        m.d.comb += streamer.info.debug.front_cycles.eq(b_fcyc)
        m.d.comb += streamer.info.debug.back_cycles.eq(b_cyc)
        for k in range(nc):
            m.d.comb += streamer.info.debug.counts[k].eq(b_counts[k])
        m.d.comb += self.debug.eq(streamer.held_info.debug)
        # release of M[bb]: after the stage that reads M has scanned its last word
        with m.If(self._release_condition(m, cfg, scan_idle, start_stage | start_d1)):
            m.d.comb += m_clr.eq(Mux(bb, 0b10, 0b01))
            m.d.sync += bb.eq(~bb)
        return m

    def _release_condition(self, m: Module, cfg: Any, scan_idle: Any,
                           starting: Any) -> Signal:
        """A pulse when the stage reading ``M`` has issued its last read (``scan_idle``: the
        scanner's idle flag a clock late; ``starting``: START or the clock after it)."""
        was = Signal()
        rel = Signal()
        m.d.comb += rel.eq(was & scan_idle & ~starting)
        with m.If(starting & (cfg.src == 0)):
            m.d.sync += was.eq(1)
        with m.Elif(rel):
            m.d.sync += was.eq(0)
        return rel
