"""The whole-network accelerator: image in, class and logits out (Amaranth 0.5).

One :class:`Accelerator` is generated for one model (its weights become ROM contents) and a
number of ``lanes``. It runs the network layer-major: the dense first layer over all ``T``
steps, then each event-driven layer over all ``T`` steps, then the output layer and argmax.
See ``docs/accelerator.md`` for the schedule and the cycle bound, :mod:`.plan` for the memory
layouts and :mod:`.cycles` for the exact cycle model.

Ports (Verilog names in brackets; ``lib.data`` payloads are flattened to one vector)
    ``i`` : ``In(stream.Signature(signed(in_bits)))`` [``i__valid/ready/payload``] the
        quantised image, one pixel per beat, **channel-major** (``c``, then ``y``, then ``x``:
        the order of ``q[n].ravel()``). ``ready`` is high while the accelerator waits for
        pixels; the image starts computing after its last pixel.
    ``o`` : ``Out(stream.Signature(result_layout))`` [``o__*``] one beat per image:
        ``cls`` (the argmax, ties to the lowest index) and ``logits`` (``classes`` x
        ``signed(out_bits)``, class ``j`` at bits ``[j*out_bits, (j+1)*out_bits)``).
    ``debug`` : ``Out(debug_layout)`` [``debug``] ``cycles`` (clock cycles from the last
        pixel to the result) and ``counts`` (spike counters in ``plan.counters`` order, equal
        to the golden ``Result.spike_counts``); valid while ``o.valid`` and held until the
        next image's last pixel.
    ``wload`` (only with ``weights="loadable"``) : ``In(stream.Signature(load_layout))``
        [``wload__*``] one row per beat: ``addr < wrows`` writes weight row ``addr``
        (``data``: ``lanes`` x ``weight_bits``); ``addr = wrows + s`` writes the threshold
        (``data[0:32]``) and leak shift (``data[32:37]``) of stage ``s``. Accepted only between
        images (``ready`` while no pixel of the next image has arrived). Build the beats with
        :func:`~.loader.load_beats`, which checks that the new model has the same shape.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...model import Model
from .blocks import lif_lane, popcount
from .plan import AccelPlan, make_plan, pack_rows
from .units import dense_unit, scatter_unit

WEIGHT_STYLES = ("rom", "loadable")
#: A parameter row of ``wload``: threshold in bits [0, 32), leak shift in bits [32, 37).
PARAM_BITS = 37


def result_layout(plan: AccelPlan) -> data.StructLayout:
    """Payload of ``o``: ``cls`` and ``logits``."""
    return data.StructLayout({
        "cls": unsigned(max(1, (plan.classes - 1).bit_length())),
        "logits": data.ArrayLayout(signed(plan.out_bits), plan.classes),
    })


def debug_layout(plan: AccelPlan) -> data.StructLayout:
    """The ``debug`` port: ``cycles`` then ``counts``."""
    return data.StructLayout({
        "cycles": unsigned(32),
        "counts": data.ArrayLayout(unsigned(plan.count_bits), len(plan.counters)),
    })


def load_layout(plan: AccelPlan) -> data.StructLayout:
    """Payload of ``wload``: a row address and its data (weights, or stage parameters)."""
    return data.StructLayout({
        "addr": unsigned(max(1, (plan.wrows + len(plan.stages) - 1).bit_length())),
        "data": unsigned(plan.lanes * plan.weight_bits),
    })


class Accelerator(wiring.Component):
    """The accelerator for one model; see the module docstring.

    Parameters
    ----------
    model : the integer model (its first layer must be a conv; pools follow convs).
    lanes : output channels updated per clock, a power of two.
    weights : ``"rom"`` (weights fixed at generation) or ``"loadable"`` (the same memories,
        initialised from ``model``, plus the ``wload`` stream to replace them).

    Members
    -------
    plan : the :class:`~.plan.AccelPlan` (read-only).
    lanes, weights : the parameters (read-only).
    """

    def __init__(self, model: Model, *, lanes: int, weights: str = "rom") -> None:
        try:
            if weights not in WEIGHT_STYLES:
                raise ValueError(f"weights must be one of {', '.join(WEIGHT_STYLES)}, "
                                 f"not {weights!r}")
            self._plan = make_plan(model, lanes)
            if weights == "loadable" and self._plan.lanes * self._plan.weight_bits < PARAM_BITS:
                raise ValueError(f"weights='loadable' needs lanes * weight_bits >= "
                                 f"{PARAM_BITS} (a parameter row), not {lanes} * "
                                 f"{self._plan.weight_bits}")
        except ValueError:
            self._MustUse__silence = True  # never built: no "created but never used" warning
            raise
        self._weights = weights
        sig = {
            "i": In(stream.Signature(signed(self._plan.in_bits))),
            "o": Out(stream.Signature(result_layout(self._plan))),
            "debug": Out(debug_layout(self._plan)),
        }
        if weights == "loadable":
            sig["wload"] = In(stream.Signature(load_layout(self._plan)))
        super().__init__(sig)

    @property
    def plan(self) -> AccelPlan:
        return self._plan

    @property
    def lanes(self) -> int:
        return self._plan.lanes

    @property
    def weights(self) -> str:
        return self._weights

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform: object) -> Module:
        m = Module()
        p = self._plan
        L, T, VB, WB = p.lanes, p.timesteps, p.vbits, p.weight_bits
        stages = p.stages
        x = SimpleNamespace(plan=p)  # the shared signals handed to the units

        # ---- memories ----------------------------------------------------------------
        m.submodules.img = img = memory.Memory(shape=signed(p.in_bits), depth=p.pixels, init=[])
        m.submodules.smap = smap = memory.Memory(shape=unsigned(L), depth=2 * p.map_words,
                                                 init=[])
        x.img_w, x.img_r = img.write_port(), img.read_port()
        x.img_r2 = img.read_port() if stages[0].fold == 2 else None
        x.s_w, x.s_r = smap.write_port(), smap.read_port()
        self._banked_memories(m, x)
        x.w_lane = [x.w_r.data[i * WB:(i + 1) * WB].as_signed() for i in range(L)]
        x.v_lane = [x.v_r.data[i * VB:(i + 1) * VB].as_signed() for i in range(L)]

        # ---- sequencer state -----------------------------------------------------------
        x.stage = stage = Signal(range(max(2, len(stages))))
        x.t = t = Signal(range(max(2, T)))
        x.st = {}  # per-stage constants, indexed by the stage register

        def par(name: str, values: list[int], shape=None) -> None:
            if shape is None:
                lo, hi = min(values + [0]), max(values + [1])
                shape = signed(max(lo.bit_length(), hi.bit_length()) + 1) if lo < 0 \
                    else unsigned(hi.bit_length())
            sel = Signal(shape, name=f"par_{name}")
            m.d.comb += sel.eq(Array(Const(v, shape) for v in values)[stage])
            x.st[name] = sel

        def bound(s, b):  # saturation limits of a stage (0 for non-LIF stages)
            return (-(2 ** (s.membrane_bits - 1)) if b == "lo" else 2 ** (s.membrane_bits - 1)
                    - 1) if s.membrane_bits else 0

        if self._weights == "loadable":  # thresholds and leaks in registers, loadable
            x.theta_regs = [Signal(signed(VB + 1), init=s.threshold, name=f"theta{k}")
                            for k, s in enumerate(stages)]
            x.leak_regs = [Signal(5, init=s.leak_shift, name=f"leak{k}")
                           for k, s in enumerate(stages)]
            x.st["theta"] = Signal(signed(VB + 1))
            x.st["leak"] = Signal(5)
            m.d.comb += [x.st["theta"].eq(Array(x.theta_regs)[stage]),
                         x.st["leak"].eq(Array(x.leak_regs)[stage])]
        else:
            par("theta", [s.threshold for s in stages], signed(VB + 1))
            par("leak", [s.leak_shift for s in stages])
        par("lo", [bound(s, "lo") for s in stages], signed(VB + 1))
        par("hi", [bound(s, "hi") for s in stages], signed(VB + 1))
        par("conv", [int(s.conv) for s in stages])
        par("pooled", [int(s.pooled) for s in stages])
        for key in ("g_in", "h_in", "w_in", "g_out", "h", "w", "ho", "wo"):
            par(key + "1", [max(getattr(s, key) - 1, 0) for s in stages])
        par("w", [s.w for s in stages])
        par("hw", [s.h * s.w for s in stages])
        par("hw_in", [s.h_in * s.w_in for s in stages])
        par("words_in", [s.words_in for s in stages])
        par("words_out", [s.words_out for s in stages])
        par("vrows1", [max(s.vrows - 1, 0) for s in stages])
        par("wbase", [s.wbase for s in stages])
        par("wstride", [s.wstride for s in stages])
        par("nwords", [s.words_in * (T if s.kind == "out" else 1) for s in stages])
        par("sfold", [int(s.fold == 2 and s.kind != "dense") for s in stages])
        par("is_out", [int(s.kind == "out") for s in stages])

        # ---- shared LIF lanes (dense stage: V from registers; LIF pass: V from vmem) ----
        x.lif_v = [Signal(signed(VB), name=f"lif_v{i}") for i in range(L)]
        x.lif_last = Signal()
        x.lif_s = Signal(L)
        x.lif_vn = []
        for i in range(L):
            s_i, vn = lif_lane(m, x.lif_v[i], theta=x.st["theta"], leak=x.st["leak"],
                               lo=x.st["lo"], hi=x.st["hi"], last=x.lif_last, width=VB,
                               name=f"lif{i}")
            m.d.comb += x.lif_s[i].eq(s_i)
            x.lif_vn.append(vn)

        # ---- spike counters --------------------------------------------------------------
        n_cnt = len(p.counters)
        x.cnt = [Signal(p.count_bits, name=f"cnt_{name}") for name in p.counters]
        x.pool_word = Signal(L)
        # The units raise inc_lif[k] / inc_pool[k] with the spike word of this clock; the
        # counters add its popcount one clock later (off the LIF lanes' critical path).
        x.inc_lif = [Signal(name=f"inc_lif{k}") for k in range(n_cnt)]
        x.inc_pool = [Signal(name=f"inc_pool{k}") for k in range(n_cnt)]
        s_r, pw_r = Signal(L), Signal(L)
        inc_lif_r = [Signal(name=f"inc_lif_r{k}") for k in range(n_cnt)]
        inc_pool_r = [Signal(name=f"inc_pool_r{k}") for k in range(n_cnt)]
        m.d.sync += [s_r.eq(x.lif_s), pw_r.eq(x.pool_word)]
        m.d.sync += [a.eq(b) for a, b in zip(inc_lif_r + inc_pool_r, x.inc_lif + x.inc_pool,
                                             strict=True)]
        pc_lif = popcount(m, s_r, "pc_lif")
        pc_pool = popcount(m, pw_r, "pc_pool")
        for k in range(n_cnt):
            with m.If(inc_lif_r[k]):
                m.d.sync += x.cnt[k].eq(x.cnt[k] + pc_lif)
            with m.If(inc_pool_r[k]):
                m.d.sync += x.cnt[k].eq(x.cnt[k] + pc_pool)

        # ---- units -------------------------------------------------------------------------
        x.state_dense = Signal()
        x.state_scat = Signal()
        x.state_lif = Signal()
        x.dense_start = Signal()
        x.scat_start = Signal()
        x.rbase = Signal(range(2 * p.map_words + 1))
        x.wobase = Signal(range(2 * p.map_words + 1))
        dense_unit(m, x)
        scatter_unit(m, x)
        self._lif_pass(m, x)

        # ---- V clear sweep (during LOAD and DENSE) ---------------------------------------
        clr = Signal(range(p.vrows + 1))
        clr_busy = Signal()
        with m.If(clr_busy & ~x.state_scat & ~x.state_lif):
            m.d.comb += [x.v_w.addr.eq(clr), x.v_w.data.eq(0), x.v_w.en.eq(1)]
            m.d.sync += clr.eq(clr + 1)
            with m.If(clr == p.vrows - 1):
                m.d.sync += clr_busy.eq(0)

        # ---- output registers, argmax ------------------------------------------------------
        K = p.classes
        logits = [Signal(signed(p.out_bits), name=f"logit{j}") for j in range(K)]
        best = Signal(signed(p.out_bits))
        cls = Signal(range(max(2, K)))
        ag = Signal(range(max(2, stages[-1].g_out + 1)))
        ag_v1 = Signal()
        ag_g1 = Signal.like(ag)
        aj = Signal(range(max(2, K + 1)))
        cyc = Signal(32)
        pix = Signal(range(p.pixels + 1))

        with m.If(ag_v1):
            for j in range(K):
                with m.If(ag_g1 == j // L):
                    m.d.sync += logits[j].eq(x.v_lane[j % L])
        m.d.sync += ag_v1.eq(0)

        with m.FSM(name="seq"):
            with m.State("LOAD"):
                ready = Signal()
                m.d.comb += [ready.eq(1), self.i.ready.eq(ready)]
                if self._weights == "loadable":
                    wl_w = x.wl_w
                    m.d.comb += self.wload.ready.eq(pix == 0)
                    wl = self.wload.payload
                    with m.If(self.wload.valid & (pix == 0)):
                        with m.If(wl.addr < p.wrows):
                            m.d.comb += [wl_w.addr.eq(wl.addr), wl_w.data.eq(wl.data),
                                         wl_w.en.eq(1)]
                        for k in range(len(stages)):
                            with m.If(wl.addr == p.wrows + k):
                                m.d.sync += [x.theta_regs[k].eq(wl.data[:32]),
                                             x.leak_regs[k].eq(wl.data[32:37])]
                with m.If(self.i.valid):
                    m.d.comb += [x.img_w.addr.eq(pix), x.img_w.data.eq(self.i.payload),
                                 x.img_w.en.eq(1)]
                    m.d.sync += pix.eq(pix + 1)
                    with m.If(pix == p.pixels - 1):
                        m.d.sync += [pix.eq(0), cyc.eq(0), stage.eq(0), t.eq(0)]
                        m.d.sync += [c.eq(0) for c in x.cnt]
                        m.d.comb += x.dense_start.eq(1)
                        m.next = "DENSE"
            with m.State("DENSE"):
                m.d.comb += x.state_dense.eq(1)
                m.d.sync += cyc.eq(cyc + 1)
                with m.If(x.dense_done & ~clr_busy):
                    m.d.sync += [stage.eq(1), t.eq(0), x.rbase.eq(0),
                                 x.wobase.eq(p.map_words)]
                    m.d.comb += x.scat_start.eq(1)
                    m.next = "SCAT"
            with m.State("SCAT"):
                m.d.comb += x.state_scat.eq(1)
                m.d.sync += cyc.eq(cyc + 1)
                with m.If(x.scat_done):
                    with m.If(x.st["is_out"]):
                        m.d.sync += [ag.eq(0), aj.eq(0)]
                        m.next = "ARGMAX"
                    with m.Else():
                        m.d.comb += x.lif_start.eq(1)
                        m.next = "LIF"
            with m.State("LIF"):
                m.d.comb += x.state_lif.eq(1)
                m.d.sync += cyc.eq(cyc + 1)
                with m.If(x.lif_done):
                    m.d.comb += x.scat_start.eq(1)
                    m.d.sync += x.wobase.eq(x.wobase + x.st["words_out"])
                    with m.If(t == T - 1):
                        half = Mux(stage[0], p.map_words, 0)  # stage s reads half (s-1)%2
                        m.d.sync += [t.eq(0), stage.eq(stage + 1), x.rbase.eq(half),
                                     x.wobase.eq(Mux(stage[0], 0, p.map_words))]
                    with m.Else():
                        m.d.sync += [t.eq(t + 1), x.rbase.eq(x.rbase + x.st["words_in"])]
                    m.next = "SCAT"
            with m.State("ARGMAX"):
                m.d.sync += cyc.eq(cyc + 1)
                g_last = stages[-1].g_out - 1
                with m.If(ag <= g_last):
                    m.d.comb += x.v_r.addr.eq(ag)
                    m.d.sync += [ag.eq(ag + 1), ag_v1.eq(1), ag_g1.eq(ag)]
                with m.Elif(~ag_v1):
                    cur = Array(logits)[aj]
                    with m.If((aj == 0) | (cur > best)):
                        m.d.sync += [best.eq(cur), cls.eq(aj)]
                    m.d.sync += aj.eq(aj + 1)
                    with m.If(aj == K - 1):
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += [clr.eq(0), clr_busy.eq(1)]
                    m.next = "LOAD"

        m.d.comb += self.o.payload.cls.eq(cls)
        for j in range(K):
            m.d.comb += self.o.payload.logits[j].eq(logits[j])
        m.d.comb += self.debug.cycles.eq(cyc)
        for k in range(n_cnt):
            m.d.comb += self.debug.counts[k].eq(x.cnt[k])
        return m

    # ------------------------------------------------------------------------------------
    def _banked_memories(self, m: Module, x: SimpleNamespace) -> None:
        """``wmem`` and ``vmem`` as two banks of ``L/2`` lanes each (one bank when no stage
        is folded). ``x.w_r``, ``x.v_r``, ``x.v_w`` (and ``x.wl_w``) address both banks
        alike; a folded event-driven stage overrides bank B's addresses through ``x.bank_b``
        so that the halves work on two kernel positions at once."""
        p = self._plan
        L, VB, WB = p.lanes, p.vbits, p.weight_bits
        nb = 2 if any(s.fold == 2 and s.kind != "dense" for s in p.stages) else 1
        h = L // nb
        words = pack_rows(p.weight_rows, WB)
        mask = (1 << (h * WB)) - 1
        wbanks, vbanks = [], []
        for b in range(nb):
            wm = memory.Memory(shape=unsigned(h * WB), depth=p.wrows,
                               init=[(v >> (b * h * WB)) & mask for v in words])
            vm = memory.Memory(shape=unsigned(h * VB), depth=p.vrows, init=[])
            m.submodules[f"wmem{b}"], m.submodules[f"vmem{b}"] = wm, vm
            vw = vm.write_port()
            wbanks.append((wm, wm.read_port(), wm.write_port() if self._weights == "loadable"
                           else None))
            vbanks.append((vm, vm.read_port(transparent_for=(vw,)), vw))
        x.mems = {"wmem": [w[0] for w in wbanks], "vmem": [v[0] for v in vbanks]}

        def port(width: int, abits: int, name: str) -> SimpleNamespace:
            return SimpleNamespace(addr=Signal(abits, name=f"{name}_addr"),
                                   data=Signal(width, name=f"{name}_data"),
                                   en=Signal(name=f"{name}_en"))
        x.w_r = port(L * WB, len(wbanks[0][1].addr), "w_r")
        x.v_r = port(L * VB, len(vbanks[0][1].addr), "v_r")
        x.v_w = port(L * VB, len(vbanks[0][2].addr), "v_w")
        x.wl_w = port(L * WB, len(wbanks[0][1].addr), "wl_w")
        # bank B overrides for folded stages
        x.bank_b = SimpleNamespace(on=Signal(), w_addr=Signal.like(x.w_r.addr),
                                   v_addr=Signal.like(x.v_r.addr),
                                   vw_addr=Signal.like(x.v_w.addr), vw_en=Signal())
        x.nbanks = nb
        m.d.comb += [x.w_r.data.eq(Cat(*[w[1].data for w in wbanks])),
                     x.v_r.data.eq(Cat(*[v[1].data for v in vbanks]))]
        for b in range(nb):
            _, wr, wl = wbanks[b]
            _, vr, vw = vbanks[b]
            m.d.comb += [wr.addr.eq(x.w_r.addr), vr.addr.eq(x.v_r.addr),
                         vw.addr.eq(x.v_w.addr), vw.en.eq(x.v_w.en),
                         vw.data.eq(x.v_w.data[b * h * VB:(b + 1) * h * VB])]
            if wl is not None:
                m.d.comb += [wl.addr.eq(x.wl_w.addr), wl.en.eq(x.wl_w.en),
                             wl.data.eq(x.wl_w.data[b * h * WB:(b + 1) * h * WB])]
            if b == 1:
                with m.If(x.bank_b.on):
                    m.d.comb += [wr.addr.eq(x.bank_b.w_addr), vr.addr.eq(x.bank_b.v_addr),
                                 vw.addr.eq(x.bank_b.vw_addr), vw.en.eq(x.bank_b.vw_en)]

    def _lif_pass(self, m: Module, x: SimpleNamespace) -> None:
        """One sweep over a stage's neurons per time step (2x2 block order when pooled)."""
        p = x.plan
        L = p.lanes
        st = x.st
        x.lif_start = Signal()
        x.lif_done = Signal()
        on = Signal()
        blk = Signal(range(p.vrows + 2 * max(s.w for s in p.stages) + 3))
        sx, sy = Signal(), Signal()
        bx = Signal(range(max(2, max(s.wo for s in p.stages))))
        by = Signal(range(max(2, max(s.ho for s in p.stages))))
        g = Signal(range(max(2, max(s.g_out for s in p.stages))))
        wa = Signal(range(max(2, p.map_words + 1)))
        por = Signal(L)
        v1, bl1, end1 = Signal(), Signal(), Signal()
        a1 = Signal.like(x.v_w.addr)
        pooled = st["pooled"]
        blast = Signal()
        last = Signal()
        m.d.comb += [
            blast.eq(~pooled | (sx & sy)),
            last.eq(Mux(pooled, blast & (bx == st["wo1"]) & (by == st["ho1"]) & (g == st["g_out1"]),
                        blk == st["vrows1"])),
        ]
        with m.If(x.lif_start):
            m.d.sync += [on.eq(1), blk.eq(0), sx.eq(0), sy.eq(0), bx.eq(0), by.eq(0), g.eq(0),
                         wa.eq(0), por.eq(0)]
        m.d.sync += v1.eq(0)
        with m.If(on & x.state_lif):
            addr = blk + Mux(sy, st["w"], 0) + sx
            m.d.comb += x.v_r.addr.eq(addr)
            m.d.sync += [v1.eq(1), a1.eq(addr), bl1.eq(blast), end1.eq(last)]
            with m.If(last):
                m.d.sync += on.eq(0)
            with m.If(~pooled):
                m.d.sync += blk.eq(blk + 1)
            with m.Elif(~sx):
                m.d.sync += sx.eq(1)
            with m.Elif(~sy):
                m.d.sync += [sx.eq(0), sy.eq(1)]
            with m.Else():
                m.d.sync += [sx.eq(0), sy.eq(0)]
                with m.If(bx == st["wo1"]):
                    m.d.sync += [bx.eq(0), blk.eq(blk + st["w"] + 2)]
                    with m.If(by == st["ho1"]):
                        m.d.sync += [by.eq(0), g.eq(g + 1)]
                    with m.Else():
                        m.d.sync += by.eq(by + 1)
                with m.Else():
                    m.d.sync += [bx.eq(bx + 1), blk.eq(blk + 2)]
        with m.If(x.state_lif):
            m.d.comb += [x.lif_v[i].eq(x.v_lane[i]) for i in range(L)]
            if x.nbanks == 2:  # folded stage: channel l = bank A lane l + bank B lane l
                with m.If(st["sfold"]):
                    h = L // 2
                    m.d.comb += [x.lif_v[i].eq(x.v_lane[i] + x.v_lane[i + h]) for i in range(h)]
                    m.d.comb += [x.lif_v[i].eq(0) for i in range(h, L)]
            m.d.comb += x.lif_last.eq(x.t == p.timesteps - 1)
        with m.If(v1):
            m.d.comb += [x.v_w.addr.eq(a1), x.v_w.en.eq(1),
                         x.v_w.data.eq(Cat(*x.lif_vn))]
            word = por | x.lif_s
            m.d.comb += x.pool_word.eq(word)
            with m.If(bl1):
                m.d.comb += [x.s_w.addr.eq(x.wobase + wa), x.s_w.data.eq(word), x.s_w.en.eq(1)]
                m.d.sync += [wa.eq(wa + 1), por.eq(0)]
            with m.Else():
                m.d.sync += por.eq(word)
            with m.Switch(x.stage):
                for k, s in enumerate(p.stages):
                    if s.kind in ("conv", "linear"):
                        with m.Case(k):
                            m.d.comb += x.inc_lif[s.count].eq(1)
                            if s.pooled:
                                with m.If(bl1):
                                    m.d.comb += x.inc_pool[s.pool_count].eq(1)
            with m.If(end1):
                m.d.comb += x.lif_done.eq(1)

