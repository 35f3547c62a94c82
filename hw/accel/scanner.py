"""The spike scanner: walks a stage's input spike map and hands the engine one tick per clock.

For a LIF stage (conv or linear, ``H x W`` map, ``G_in`` words per position, ``G`` output
groups) the walk is::

    for t in 0..T-1:                      time steps
      for y in 0..H:                      input rows, then one virtual row (y = H)
        for g in 0..G-1:                  one pass per output group
          for x in 0..W+1:                positions, then two virtual ones (x = W, W+1)
            for cg in words(t, y, x):     the words of a real position (x < W, y < H)

``words`` is every ``cg`` in ``0..G_in-1``, except in a **skipping** stage
(:attr:`~.plan.EventStage.skip`: a conv stage reading a ``P`` map, ``G_in >= 2``): there it is
the position's nonzero words in order, or word 0 alone if all are zero. The stage that wrote
the map recorded each position's mask of nonzero words in the ``nz`` memory
(:class:`~.engine.MapWriter`), so a skipped word costs nothing.

A word with ``n`` set bits takes ``max(1, ceil(n / 2))`` ticks: each tick carries up to two
**events**, the lowest (``ev``, ``b``) and the highest (``ev2``, ``b2``) of the word's bits not
yet emitted, or is one empty tick for a zero word (the output stage: one event per tick, lowest
bit first). A virtual position takes one empty tick.
The first tick of a position ``x >= 1`` carries ``mv`` (the engine's window moves one column
and flushes the column that left it); the first tick of a pass carries ``ps`` (the window
starts empty). The output stage walks every word of all ``T`` steps in order, with no
virtual rows or positions.

Three steps, each a clock ahead of the next, so a stage's ticks come back to back:
**A** walks the loops (one item per position in a skipping stage, else one per word) and
issues the position's mask read; the item and its mask enter a small FIFO
:data:`POS_FILL_LATENCY` clocks later. **X** issues one word per clock (the words of the
head's mask) as a map read; the word and its item enter a second FIFO :data:`FILL_LATENCY`
clocks later with the word's popcount. **B** ticks that FIFO's head out. A issues at least
as many items as X takes positions and X at least one word per tick, so the length of a
stage in clocks is exactly ``sum(max(1, ceil(n / 2)))`` over its words (``sum(max(1, n))``
in the output stage) plus the fill of the pipeline — the cycle model in :mod:`.cycles`
counts the same way.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .blocks import POP_LATENCY, delay, popcount
from .maps import MAP_READ_LATENCY

#: Clocks from a read address to its word on ``rd_data``: the map's
#: (:data:`~.maps.MAP_READ_LATENCY`), then the source select's register.
READ_LATENCY = MAP_READ_LATENCY + 1
#: Clocks from a read address to its FIFO entry: the read, the word's popcount
#: (:data:`~.blocks.POP_LATENCY`), then the entry registered before it fans out to the FIFO.
FILL_LATENCY = READ_LATENCY + POP_LATENCY + 1
#: Clocks from A's issue to the position FIFO's entry: the mask read, the entry registered.
POS_FILL_LATENCY = MAP_READ_LATENCY + 1
#: Entries of the word FIFO (X to B) and of the position FIFO (A to X).
DEPTH = FILL_LATENCY + 4
P_DEPTH = POS_FILL_LATENCY + 3
#: Word FIFO entries steered by one copy of B's take (its fan-out).
TAKE_GROUP = 3


def scan_config_layout(*, lanes: int, h: int, w: int, g_in: int, g: int, t: int,
                       wrows: int, map_depth: int, nz_width: int) -> data.StructLayout:
    """The scanner's per-stage configuration (held stable while a stage runs).

    ``out``: output-stage walk. ``linear``: weight rows of a linear stage. ``h1, w1, gin1,
    g1, t1``: the loop bounds minus one. ``wbase, gstride``: first weight row and rows per
    output group. ``w, hw``: ``W`` and ``H*W`` (line-buffer and membrane strides). ``skip``:
    A walks positions and X issues the words of each one's mask (``gmask``: the stage's
    ``G_in`` bits); ``xstep``: words from one
    position's first word to the next one's (``G_in`` when skipping, else 1).
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
        "skip": 1, "xstep": unsigned(max(1, g_in.bit_length())),
        "gmask": unsigned(max(1, nz_width)),
    })


def tick_layout(*, lanes: int, h: int, w: int, g_in: int, g: int, t: int, wrows: int,
                lb_depth: int, u_depth: int) -> data.StructLayout:
    """One tick: up to two events of one map word (``ev``: channel ``cg*L + b``, weight row
    ``waddr`` and tap ``slot``; ``ev2``: ``b2``, ``waddr2``, ``slot2``) and/or a window move
    (``mv``), pass start (``ps``), and where the walk is: ``x, y, g, t``, ``ym3 = y mod 3``,
    the pass's line-buffer base ``lb = g*W`` and membrane base ``ub = g*H*W + max(y-1, 0)*W``;
    ``last``: the stage's last tick."""
    return data.StructLayout({
        "ev": 1, "ev2": 1, "mv": 1, "ps": 1, "last": 1,
        "b": unsigned(max(1, (lanes - 1).bit_length())),
        "b2": unsigned(max(1, (lanes - 1).bit_length())),
        "cg": unsigned(max(1, (g_in - 1).bit_length())),
        "waddr": unsigned(max(1, (wrows - 1).bit_length())),
        "waddr2": unsigned(max(1, (wrows - 1).bit_length())),
        "slot": unsigned(4),
        "slot2": unsigned(4),
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
    (weight rows per input word of a linear stage, a power of two). linear : whether any
    stage is linear (else the linear weight-row arithmetic is left out).

    Members
    -------
    cfg : ``In(cfg_layout)`` the stage, stable from a clock before ``start`` to ``done``.
    start : ``In(1)`` a pulse: begin the walk. busy : ``Out(1)``.
    rd_addr : ``Out`` the map read address (the map reads every clock; the word of an
        issued item is taken :data:`READ_LATENCY` clocks later).
    rd_data : ``In(L)`` the word read, :data:`READ_LATENCY` clocks after its address.
    tick : ``Out(stream.Signature(tick_shape, always_ready=True))`` one tick per clock
        (registered).
    """

    def __init__(self, *, lanes: int, cfg_layout: data.StructLayout,
                 tick_shape: data.StructLayout, map_depth: int, rows_per_word: int,
                 linear: bool = True, nz_width: int = 0, nz_pos_bits: int = 1) -> None:
        if nz_width < 0 or nz_pos_bits < 1:
            raise ValueError(f"Scanner: nz_width must be >= 0 and nz_pos_bits >= 1, not "
                             f"{nz_width}, {nz_pos_bits}")
        self._nz_width, self._nz_pos_bits = nz_width, nz_pos_bits
        self._lanes = lanes
        self._linear = linear
        self._cfg_layout = cfg_layout
        self._tick = tick_shape
        self._map_depth = map_depth
        self._rpw = rows_per_word
        super().__init__({
            "cfg": In(cfg_layout),
            "start": In(1),
            "busy": Out(1),
            "rd_addr": Out(max(1, (map_depth - 1).bit_length())),
            "rd_data": In(lanes),
            "nz_addr": Out(nz_pos_bits),
            "nz_data": In(max(1, nz_width)),
            "tick": Out(stream.Signature(tick_shape, always_ready=True)),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        L = self._lanes
        # the stage's settings registered here (they come from the top's stage ROM, far away;
        # ``start`` comes a clock after they change)
        self._cfg_r = cfg = Signal(self._cfg_layout, name="cfg_r")
        m.d.sync += cfg.eq(self.cfg)
        tk = self._tick
        item = data.StructLayout({
            "word": 1, "x": tk["x"].shape, "y": tk["y"].shape, "g": tk["g"].shape,
            "t": tk["t"].shape, "cg": tk["cg"].shape, "ym3": 2, "lb": tk["lb"].shape,
            "ub": tk["ub"].shape, "pw": tk["waddr"].shape, "last": 1, "first": 1,
        })
        ra_shape = self.rd_addr.shape()
        nzw = max(1, self._nz_width)
        issue_a = Signal()                   # A issues its item (a word, or a position)
        load = Signal()                      # X loads the position FIFO's head
        issue = Signal()                     # X issues a word
        take = Signal()                      # B loads the word FIFO's head
        take_c = Signal()                    # the same, for the counters (below)
        self._walk(m, item, issue_a)
        # ---- A -> X: the position's mask read (``nz``), then a small FIFO. Credits bound the
        # items between A and X, so nothing is ever dropped; the credit test is a register.
        p_count, p_ok = _credits(m, issue_a, load, P_DEPTH, "pos")
        m.d.comb += issue_a.eq(self._a_on & p_ok)
        # the item meets its mask MAP_READ_LATENCY clocks after the issue
        p_on = delay(m, issue_a, MAP_READ_LATENCY, "pl_on")
        it = delay(m, self._a, MAP_READ_LATENCY, "pl_item")
        ra_in = delay(m, self._ra, MAP_READ_LATENCY, "pl_ra")
        m.d.comb += self.nz_addr.eq(self._na)
        # the position's words: every word (``skip`` low: A walked them one by one), or the
        # words its mask marks (word 0 alone if none)
        pent = data.StructLayout({"item": item, "base": ra_shape, "ra0": ra_shape,
                                  "rest": nzw, "alast": 1, "plast": 1})
        use = Signal(name="pl_use")
        mk = Signal(nzw, name="pl_mask")
        mz = Signal(nzw, name="pl_mz")
        m.d.comb += [use.eq(cfg.skip & it.word), mz.eq(self.nz_data & cfg.gmask),
                     mk.eq(Mux(mz.any(), mz, 1))]
        lo = _lowest(mk)
        cg0 = Mux(use, _encode(lo), it.cg)
        alast = Signal(name="pl_alast")       # the position has one word to issue
        m.d.comb += alast.eq(~use | _at_most_one(mk))
        pnew = Signal(pent, name="pos_new", reset_less=True)
        pnew_on = Signal(name="pos_new_on")
        m.d.sync += [pnew_on.eq(p_on), pnew.item.eq(it), pnew.item.cg.eq(cg0),
                     pnew.item.first.eq(use | ~it.word | (it.cg == 0)),
                     pnew.item.last.eq(it.last & alast), pnew.plast.eq(it.last),
                     pnew.base.eq(ra_in), pnew.ra0.eq(ra_in + Mux(use, cg0, 0)),
                     pnew.rest.eq(Mux(use, mk & ~lo, 0)), pnew.alast.eq(alast)]
        phead, pocc = _shift_fifo(m, pent, P_DEPTH, pnew_on, pnew, load, "pfifo")
        # ---- X: one word of the position per clock -----------------------------------------
        x_on = Signal(name="x_on")
        xa = Signal(item, name="x_item")
        xra = Signal(ra_shape, name="x_ra")
        xbase = Signal(ra_shape, name="x_base")
        xrest = Signal(nzw, name="x_rest")
        xalast = Signal(name="x_alast")          # this word is the position's last
        xplast = Signal(name="x_plast")          # the position is the walk's last
        count, credit_ok = _credits(m, issue, take_c, DEPTH, "word")
        m.d.comb += [issue.eq(x_on & credit_ok),
                     load.eq(~pocc[0] & (~x_on | (issue & xalast)))]
        xlo = _lowest(xrest)
        with m.If(load):
            m.d.sync += [x_on.eq(1), xa.eq(phead.item), xra.eq(phead.ra0),
                         xbase.eq(phead.base), xrest.eq(phead.rest), xalast.eq(phead.alast),
                         xplast.eq(phead.plast)]
        with m.Elif(issue & xalast):
            m.d.sync += x_on.eq(0)
        with m.Elif(issue):
            xcg = _encode(xlo)
            m.d.sync += [xa.cg.eq(xcg), xa.first.eq(0), xra.eq(xbase + xcg),
                         xrest.eq(xrest & ~xlo), xalast.eq(_at_most_one(xrest)),
                         xa.last.eq(xplast & _at_most_one(xrest))]
        a = xa
        # ---- X -> B: read pipeline: X issues, the word arrives READ_LATENCY clocks later,
        # its popcount POP_LATENCY clocks after that, and the word is pushed into a small FIFO
        # with its item; B takes the FIFO's head.
        # per FIFO entry, precomputed from the word read: ``lo``/``hi`` the lowest and highest
        # set bit (one-hot; the tick's two events), ``nxt`` the word without them, ``nz``
        # (word != 0), ``two`` (a second event), ``fin`` (``nxt == 0``: the word's last tick),
        # ``rem`` (the bits in ``nxt``)
        pair = Signal(name="pair")           # two events per tick (not the output stage)
        m.d.sync += pair.eq(~cfg.out)
        names = ("nxt", "lo", "hi")
        rem_bits = max(1, L.bit_length())
        entry = data.StructLayout({"item": item, "nxt": L, "lo": L, "hi": L, "nz": 1, "two": 1,
                                   "fin": 1, "rem": rem_bits})
        inflight_on = [Signal(name=f"fl_on{k}") for k in range(FILL_LATENCY)]
        inflight = [Signal(item, name=f"fl_item{k}") for k in range(FILL_LATENCY)]
        b_on = Signal(attrs={"keep": 1})    # keep: never merged with its copy below
        b = Signal(item, attrs={"keep": 1})
        bv = {n: Signal(L, name=f"b_{n}") for n in names}   # the word's state (bits left)
        cur_nz = Signal()                    # some bit left: this tick has an event
        two = Signal()                       # two bits left: a second event
        fin = Signal(attrs={"keep": 1})      # nxt == 0: the tick now is the word's last
        fresh = Signal()
        b_fin = Signal()
        m.d.comb += b_fin.eq(b_on & (~b.word | fin))
        # ``take`` loads ~L*3 + item bits into every FIFO entry: copies of it, each computed
        # from copies of its inputs (keep registers), steer the counters (copy 0) and each
        # group of TAKE_GROUP entries
        n_cp = 1 + -(-DEPTH // TAKE_GROUP)
        cps = [{n: Signal(name=f"{n}_c{j}", init=int(n == "empty"), attrs={"keep": 1})
                for n in ("b_on", "word", "fin", "empty")} for j in range(n_cp)]
        takes = [Signal(name=f"take_c{j}") for j in range(n_cp)]
        m.d.comb += [t.eq(~c["empty"] & (~c["b_on"] | ~c["word"] | c["fin"]))
                     for t, c in zip(takes, cps, strict=True)]
        m.d.comb += take_c.eq(takes[0])
        m.d.comb += [
            self.rd_addr.eq(xra),
            self.busy.eq(self._a_on | (p_count != 0) | x_on | (count != 0) | b_on),
        ]
        m.d.sync += [inflight_on[0].eq(issue), inflight[0].eq(a)]
        for k in range(1, FILL_LATENCY):
            m.d.sync += [inflight_on[k].eq(inflight_on[k - 1]), inflight[k].eq(inflight[k - 1])]
        push = inflight_on[-1]

        def state(v: Any) -> dict[str, Any]:
            """The tick's two events of bits ``v`` and the bits left after them."""
            lo, hi = _lowest(v), _highest(v)
            hi_p = Mux(pair, hi, 0)
            return {"nxt": v & ~lo & ~hi_p, "lo": lo, "hi": hi}

        # ``rem``: how many bits are left after the tick now; the word's flags for its next
        # tick are small compares on it (a popcount of the bits left inside the tick loop was
        # the scanner's slowest path). An entry's count comes from the word's pipelined
        # popcount, the word delayed to meet it.
        per_tick = Mux(pair, 2, 1)
        rem = Signal(rem_bits, name="b_rem")
        pc, _, _ = popcount(m, self.rd_data, inflight_on[READ_LATENCY - 1], "rd_pop")
        # the entry's bits, registered beside the popcount's last step (a virtual item's word
        # is 0: the mask comes after the arithmetic on the word read)
        assert POP_LATENCY >= 1 and FILL_LATENCY >= 3
        rd = delay(m, self.rd_data, POP_LATENCY - 1, "rd")
        is_word = inflight[-2].word
        sr = {n: Signal(L, name=f"rd_{n}", reset_less=True) for n in names}
        m.d.sync += [sr[n].eq(Mux(inflight[-3].word, v, 0)) for n, v in state(rd).items()]
        # the entry, registered before it fans out to every FIFO entry
        new = Signal(entry, name="fifo_new", reset_less=True)
        m.d.sync += [new.item.eq(inflight[-2]), new.nz.eq(is_word & (pc != 0)),
                     new.two.eq(is_word & pair & (pc >= 2)),
                     new.fin.eq(~is_word | (pc <= per_tick)),
                     new.rem.eq(Mux(is_word & (pc > per_tick), pc - per_tick, 0)),
                     *(getattr(new, n).eq(sr[n]) for n in names)]
        # the FIFO is a shift register with its head at entry 0 (B loads entry 0, no read
        # multiplexer in the take loop)
        head, occ = _shift_fifo(m, entry, DEPTH, push, new, take, "fifo",
                                takes=[takes[1 + k // TAKE_GROUP] for k in range(DEPTH)])
        m.d.comb += take.eq(~occ[0] & (~b_on | b_fin))
        for t, c in zip(takes, cps, strict=True):
            with m.If(push & ~t):
                m.d.sync += c["empty"].eq(0)
            with m.Elif(t & ~push):
                m.d.sync += c["empty"].eq(occ[1])
        sn = state(bv["nxt"])
        with m.If(take):
            m.d.sync += [b.eq(head.item), b_on.eq(1), fresh.eq(1), cur_nz.eq(head.nz),
                         two.eq(head.two), fin.eq(head.fin), rem.eq(head.rem),
                         *(v for c in cps for v in (c["b_on"].eq(1), c["word"].eq(head.item.word),
                                                    c["fin"].eq(head.fin)))]
            m.d.sync += [bv[n].eq(getattr(head, n)) for n in names]
        with m.Elif(b_fin):
            m.d.sync += [b_on.eq(0), *(c["b_on"].eq(0) for c in cps)]
        with m.Elif(b_on):
            fin_n = Mux(pair, rem <= 2, rem <= 1)
            m.d.sync += [fresh.eq(0), cur_nz.eq(~fin), two.eq(pair & (rem >= 2)),
                         fin.eq(fin_n), *(c["fin"].eq(fin_n) for c in cps),
                         rem.eq(rem - per_tick)]
            m.d.sync += [bv[n].eq(sn[n]) for n in names]

        # ---- the tick, in two registered steps: the event's bit, then its weight row -------
        t = self.tick.payload
        pre = Signal(tk, name="pre")
        pre_on = Signal()
        pre_pw = Signal.like(b.pw, name="pre_pw")
        m.d.sync += [
            pre_on.eq(b_on),
            pre.ev.eq(b_on & b.word & cur_nz),
            pre.ev2.eq(b_on & b.word & two),
            pre.mv.eq(b_on & fresh & b.first & (b.x != 0)),
            pre.ps.eq(b_on & fresh & (b.x == 0) & b.first),
            pre.last.eq(b_fin & b.last),
            pre.b.eq(_encode(bv["lo"])[:len(t.b)]),
            pre.b2.eq(_encode(bv["hi"])[:len(t.b2)]),
            pre.cg.eq(b.cg), pre.x.eq(b.x), pre.y.eq(b.y), pre.g.eq(b.g), pre.t.eq(b.t),
            pre.ym3.eq(b.ym3), pre.lb.eq(b.lb), pre.ub.eq(b.ub), pre_pw.eq(b.pw),
        ]
        m.d.sync += [self.tick.valid.eq(pre_on), t.eq(pre)]
        for waddr, slot, bit in ((t.waddr, t.slot, pre.b), (t.waddr2, t.slot2, pre.b2)):
            if self._linear:
                off = Mux(cfg.linear, pre.cg * self._rpw + bit // 9, Cat(bit, pre.cg))
            else:
                off = Cat(bit, pre.cg)
            m.d.sync += [waddr.eq(pre_pw + off), slot.eq(bit % 9 if self._linear else 0)]
        return m

    def _walk(self, m: Module, item: data.StructLayout, issue: Any) -> None:
        """Stage A: the walk's state, the next item ``self._a`` and its read address
        ``self._ra``, advanced on ``issue``.

        The loop ends are registers, and so is the branch the next issue takes (``br``: next
        word ``P``, position ``X``, group ``G``, row ``Y``, step ``T``); every loop counter has
        a down-counter beside it whose compares with 0, 1 and 2 give the end flags after this
        issue and after the next one, so no increment and compare sits before a decision.
        """
        cfg = self._cfg_r
        self._a_on = a_on = Signal()
        self._a = a = Signal(item)
        self._ra = ra = Signal.like(self.rd_addr)   # address of the next word
        rowbase = Signal.like(self.rd_addr)         # first word of the current input row
        self._na = na = Signal(self._nz_pos_bits, name="na")   # its position (mask address)
        narow = Signal.like(na)                     # first position of the current input row
        yw = Signal.like(a.ub)                      # max(y - 1, 0) * W
        # loops: (counter field, down-counter, bound = cfg value of its last index)
        cnt = {"cg": (a.cg, cfg.gin1), "x": (a.x, cfg.wlast), "g": (a.g, cfg.g1),
               "y": (a.y, cfg.hlast), "t": (a.t, cfg.t1)}
        left = {n: Signal(len(bound), name=f"{n}_left") for n, (_, bound) in cnt.items()}
        # flags of the current item and after one more step of their loop ("1"), and their
        # values right after a loop restarts ("0", stage constants)
        f = {n: Signal(name=n) for n in ("ce", "xe", "xr", "ge", "ye", "yr", "te")}
        f1 = {n: Signal(name=f"{n}1") for n in f}
        f0 = {n: Signal(name=f"{n}0") for n in f}
        br = {n: Signal(name=f"br_{n}") for n in "PXGYT"}

        def branch(ce: Any, xe: Any, xr: Any, ge: Any, ye: Any, yr: Any) -> dict[str, Any]:
            end_pos = ~(xr & yr) | ce
            return {"P": ~end_pos, "X": end_pos & ~xe, "G": end_pos & xe & ~ge,
                    "Y": end_pos & xe & ge & ~ye, "T": end_pos & xe & ge & ye}

        out = cfg.out
        const0 = {"ce": cfg.gin1 == 0, "xe": cfg.wlast == 0, "xr": 1, "ge": cfg.g1 == 0,
                  "ye": cfg.hlast == 0, "yr": 1, "te": cfg.t1 == 0}
        const1 = {"ce": cfg.gin1 == 1, "xe": cfg.wlast == 1, "xr": (cfg.w1 >= 1) | out,
                  "ge": cfg.g1 == 1, "ye": cfg.hlast == 1, "yr": (cfg.h1 >= 1) | out,
                  "te": cfg.t1 == 1}
        cl, xl, gl, yl, tl = (left[n] for n in ("cg", "x", "g", "y", "t"))
        # the flags after one step of their own loop, and the look-ahead after it
        step = {"ce": (cl == 1, cl == 2), "xe": (xl == 1, xl == 2),
                "xr": (xl >= 3, xl >= 4), "ge": (gl == 1, gl == 2),
                "ye": (yl == 1, yl == 2), "yr": (yl >= 2, yl >= 3), "te": (tl == 1, tl == 2)}
        # which loop each branch steps, and which it restarts
        steps = {"P": "cg", "X": "x", "G": "g", "Y": "y", "T": "t"}
        order = ["cg", "x", "g", "y", "t"]
        loop_of = {"ce": "cg", "xe": "x", "xr": "x", "ge": "g", "ye": "y", "yr": "y",
                   "te": "t"}

        def after(bn: str) -> tuple[dict[str, Any], dict[str, Any]]:
            """(flags, look-ahead flags) after an issue that takes branch ``bn``."""
            k = order.index(steps[bn])
            fa, fb = {}, {}
            for n in f:
                lk = order.index(loop_of[n])
                if lk < k:                    # an inner loop: restarts
                    fa[n], fb[n] = f0[n], const1[n]
                elif lk == k:                 # this loop: one step
                    fa[n], fb[n] = f1[n], step[n][1]
                else:                         # an outer loop: unchanged
                    fa[n], fb[n] = f[n], f1[n]
            return fa, fb

        with m.If(self.start):
            m.d.sync += [a_on.eq(1), a.x.eq(0), a.y.eq(0), a.g.eq(0), a.t.eq(0), a.cg.eq(0),
                         a.ym3.eq(0), a.lb.eq(0), a.ub.eq(0), a.pw.eq(cfg.wbase), ra.eq(0),
                         rowbase.eq(0), yw.eq(0), na.eq(0), narow.eq(0)]
            m.d.sync += [left[n].eq(bound) for n, (_, bound) in cnt.items()]
            m.d.sync += [f[n].eq(const0[n]) for n in f]
            m.d.sync += [f1[n].eq(const1[n]) for n in f]
            m.d.sync += [f0[n].eq(const0[n]) for n in f]
            m.d.sync += [br[n].eq(v) for n, v in branch(*(const0[n] for n in
                                                         ("ce", "xe", "xr", "ge", "ye",
                                                          "yr"))).items()]
        # next values, per branch (a one-hot AND-OR; the enable is ``issue`` alone)
        # ``sel[set]``: a register, high when the next issue takes one of the branches in the
        # set (its own look-ahead, like ``br``): every select of a next value is one register
        sel: dict[frozenset[str], Signal] = {}

        def group(bns: list[str]) -> Signal:
            key = frozenset(bns)
            if len(key) == 1:
                return br[bns[0]]
            if key not in sel:
                sel[key] = Signal(name="br_" + "".join(b for b in "PXGYT" if b in key))
            return sel[key]

        def pick(vals: dict[str, Any], reg: Any) -> Any:
            """The register's next value: ``reg`` unless a branch in ``vals`` changes it (one
            that every branch changes needs no hold)."""
            groups: dict[int, tuple[list[str], Any]] = {}
            for bn in "PXGYT":
                v = vals.get(bn, reg)
                if v is not reg:
                    groups.setdefault(id(v), ([], v))[0].append(bn)
            gl = list(groups.values())
            if sum(len(bns) for bns, _ in gl) == 5:
                out, gl = gl[-1][1], gl[:-1]
            else:
                out = reg
            for bns, v in gl:
                out = Mux(group(bns), v, out)
            return out

        nxt: list[tuple[Any, Any]] = []
        nbr = {n: 0 for n in br}
        aft = {bn: after(bn) for bn in "PXGYT"}
        nbs = {}
        for bn in "PXGYT":
            fa = aft[bn][0]
            nbs[bn] = branch(fa["ce"], fa["xe"], fa["xr"], fa["ge"], fa["ye"], fa["yr"])
            nbr = {n: nbr[n] | (br[bn] & nbs[bn][n]) for n in br}
        nxt += [(br[n], nbr[n]) for n in br]
        for n in f:
            nxt.append((f[n], pick({bn: aft[bn][0][n] for bn in "PXGYT"}, f[n])))
            nxt.append((f1[n], pick({bn: aft[bn][1][n] for bn in "PXGYT"}, f1[n])))
        for j, ln in enumerate(order):
            field, bound = cnt[ln]
            fv: dict[str, Any] = {}
            lv: dict[str, Any] = {}
            zero, inc, dec = Const(0, len(field)), field + 1, left[ln] - 1
            for bn in "PXGYT":
                k = order.index(steps[bn])
                if j < k:
                    fv[bn], lv[bn] = zero, bound
                elif j == k:
                    fv[bn], lv[bn] = inc, dec
            nxt += [(field, pick(fv, field)), (left[ln], pick(lv, left[ln]))]
        real = f["xr"] & f["yr"]
        nxt_rowbase = Mux(f["yr"], rowbase + cfg.rowwords, rowbase)
        nxt_yw = Mux(a.y == 0, 0, yw + cfg.w)
        # a word's successor at the same position is the next word; the next position's first
        # word is ``xstep`` words on (``G_in``, or 1 after the last word of a position)
        nxt_narow = Mux(f["yr"], narow + cfg.w, narow)
        zero_lb, zero_ub = Const(0, len(a.lb)), Const(0, len(a.ub))
        nxt += [
            (ra, pick({"P": Mux(real, ra + 1, ra), "X": Mux(real, ra + cfg.xstep, ra),
                       "G": rowbase, "Y": nxt_rowbase,
                       "T": Mux(out, ra + 1, nxt_rowbase)}, ra)),
            (rowbase, pick({"Y": nxt_rowbase, "T": nxt_rowbase}, rowbase)),
            (na, pick({"X": Mux(real, na + 1, na), "G": narow, "Y": nxt_narow,
                       "T": nxt_narow}, na)),
            (narow, pick({"Y": nxt_narow, "T": nxt_narow}, narow)),
            (a.pw, pick({"G": a.pw + cfg.gstride, "Y": cfg.wbase, "T": cfg.wbase}, a.pw)),
            (a.lb, pick({"G": a.lb + cfg.w, "Y": zero_lb, "T": zero_lb}, a.lb)),
            (a.ub, pick({"G": a.ub + cfg.hw, "Y": nxt_yw, "T": zero_ub}, a.ub)),
            (a.ym3, pick({"Y": Mux(a.ym3 == 2, 0, a.ym3 + 1), "T": Const(0, 2)}, a.ym3)),
            (yw, pick({"Y": nxt_yw, "T": Const(0, len(yw))}, yw)),
        ]
        with m.Elif(issue):
            with m.If(br["T"] & f["te"]):
                m.d.sync += a_on.eq(0)
            m.d.sync += [r.eq(v) for r, v in nxt]
        # the group selects, computed beside ``br``
        b0 = branch(*(const0[n] for n in ("ce", "xe", "xr", "ge", "ye", "yr")))
        for key, sg in sel.items():
            with m.If(self.start):
                m.d.sync += sg.eq(Cat(*(b0[n] for n in sorted(key))).any())
            with m.Elif(issue):
                m.d.sync += sg.eq(Cat(*(br[bn] & Cat(*(nbs[bn][n] for n in sorted(key))).any()
                                        for bn in "PXGYT")).any())
        m.d.comb += [a.word.eq(f["xr"] & f["yr"]), a.last.eq(br["T"] & f["te"])]


def _credits(m: Module, issue: Any, release: Any, depth: int,
             name: str) -> tuple[Signal, Signal]:
    """Items issued and not yet released, and ``ok`` (a register): the count after this clock
    is below ``depth - 1`` (compares of the count now, chosen by what happens this clock)."""
    count = Signal(range(depth + 1), name=f"{name}_count")
    ok = Signal(init=1, name=f"{name}_credit_ok")
    m.d.sync += count.eq(count + issue - release)
    lt = {d: Signal(name=f"{name}_count_lt{d + 1}") for d in (-1, 0, 1)}
    m.d.comb += [lt[d].eq(count < depth - 1 - d) for d in lt]
    m.d.sync += ok.eq(Mux(issue & ~release, lt[1], Mux(release & ~issue, lt[-1], lt[0])))
    return count, ok


def _shift_fifo(m: Module, shape: data.StructLayout, depth: int, push: Any, new: Any,
                take: Any, name: str, takes: list[Any] | None = None) -> tuple[Any, Signal]:
    """A FIFO as a shift register with its head at entry 0 (no read multiplexer): ``new``
    lands at the first free entry on ``push``, every entry moves down on ``take``. Returns the
    head and the one-hot occupancy (``occ[0]``: empty). ``push`` never comes when full.
    ``takes``: a copy of ``take`` for each entry (its enable and select; default ``take``)."""
    fifo = [Signal(shape, name=f"{name}{k}", reset_less=True) for k in range(depth)]
    occ = Signal(depth + 1, name=f"{name}_occ", init=1)
    for k in range(depth):
        tk = take if takes is None else takes[k]
        # entry k loads on a take (the next entry, or the new one if it lands here at the
        # occupancy after the take) or when the new entry lands here without one
        land = Signal(name=f"{name}_land{k}")
        en = Signal(name=f"{name}_en{k}")
        m.d.comb += [land.eq(push & Mux(tk, occ[k + 1], occ[k])),
                     en.eq(tk | (push & occ[k]))]
        with m.If(en):
            m.d.sync += fifo[k].eq(Mux(land, new, fifo[k + 1]) if k + 1 < depth else new)
    with m.If(push & ~take):
        m.d.sync += occ.eq(occ << 1)
    with m.Elif(take & ~push):
        m.d.sync += occ.eq(occ >> 1)
    return fifo[0], occ


def _at_most_one(v: Any) -> Any:
    """``v`` has at most one set bit."""
    return ~(v & ~_lowest(v)).any()


def _lowest(v: Any) -> Any:
    """The lowest set bit of ``v``, one-hot (0 if none): bit ``k`` is set and no bit below it
    (OR trees that synthesis shares as a prefix network; no carry chain, so it stays a few
    LUT levels inside the scanner's tick loop)."""
    return Cat(*(v[k] & ~v[:k].any() if k else v[0] for k in range(len(v))))


def _highest(v: Any) -> Any:
    """The highest set bit of ``v``, one-hot (0 if none); see :func:`_lowest`."""
    n = len(v)
    return Cat(*(v[k] & ~v[k + 1:].any() if k < n - 1 else v[k] for k in range(n)))


def _encode(onehot: Any) -> Any:
    """The index of the set bit of a one-hot ``onehot`` (an OR per index bit)."""
    n = len(onehot)
    width = max(1, (n - 1).bit_length())
    return Cat(*(Cat(*(onehot[i] for i in range(n) if (i >> k) & 1)).any()
                 for k in range(width)))
