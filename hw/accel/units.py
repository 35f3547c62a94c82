"""The two compute units of the accelerator, added to the top module by :mod:`.core`.

``dense_unit``: the first layer. For each output group ``g`` (``L`` channels) and output pixel
(in 2x2 block order when a pool follows) it multiply-accumulates the valid taps
``(c, ky, kx)`` of the 3x3 window, one tap per clock for all ``L`` lanes, then runs the
``T`` LIF steps of those ``L`` neurons from registers (the current is the same at every step)
and writes one spike word per step. Pipeline: issue (image and weight read), multiply-add,
hand-over to the LIF registers; the LIF steps of one pixel overlap the taps of the next.

``scatter_unit``: an event-driven layer, one time step (or, for the output layer, all ``T``
steps) per call. The scanner reads the input spike map word by word, drops zero words and
hands the set bits, lowest first, to the engine as events ``(c, y, x)``. For each event the
engine issues one read-modify-write of ``vmem`` per (output group, valid kernel position):
``V[g, y-ky+1, x-kx+1][l] += W[g*L+l, c, ky, kx]`` (no multiply), one per clock; for a linear
layer one per output group. ``vmem``'s read port is transparent to its write port, so
back-to-back updates of the same row need no stall.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed

from .blocks import lowest_set


def C0(n: int) -> Const:  # noqa: N802
    """``n`` zero bits."""
    return Const(0, n)


def _raster_step(m: Module, xx: Signal, y: Signal, nx: Signal, ny: Signal, g: Signal, *,
                 last_x: int, h: int, dx: int, dy: int) -> None:
    """Next window position: ``x + dx`` (and ``y + dy``) along a row; past ``last_x`` wrap to
    the next row, and past the last row to the next channel group ``g``."""
    with m.If(xx == last_x):
        m.d.comb += nx.eq(0)
        with m.If(y == h - 1):
            m.d.comb += ny.eq(0)
            m.d.sync += g.eq(g + 1)
        with m.Else():
            m.d.comb += ny.eq(y + 1)
    with m.Else():
        m.d.comb += nx.eq(xx + dx)
        if dy:
            m.d.comb += ny.eq(y + dy)


def dense_unit(m: Module, x: SimpleNamespace) -> None:
    p = x.plan
    s0 = p.stages[0]
    L, T = p.lanes, p.timesteps
    C, H, W = s0.c_in, s0.h, s0.w
    pooled = s0.pooled
    x.dense_done = Signal()

    F = s0.fold  # 2: lanes [0, L/2) take pixel x, lanes [L/2, L) pixel x + 1
    run = Signal()
    g = Signal(range(max(2, s0.g_out)))
    y = Signal(range(max(2, H)))
    xx = Signal(range(max(2, W)))
    sx, sy = Signal(), Signal()
    c = Signal(range(max(2, C)))
    ky, kx = Signal(2), Signal(2)
    seq = Signal(range(max(2, s0.words_out)))
    first = Signal()
    kylo, kyhi, kxlo, kxhi = Signal(2), Signal(2), Signal(2), Signal(2)
    m.d.comb += [kylo.eq(y == 0), kyhi.eq(Mux(y == H - 1, 1, 2))]
    if F == 1:
        m.d.comb += [kxlo.eq(xx == 0), kxhi.eq(Mux(xx == W - 1, 1, 2))]
    else:  # the union of both pixels' columns; invalid taps are masked per half
        m.d.comb += [kxlo.eq(0), kxhi.eq(2)]
    blast = Signal()
    pix_last = Signal()
    tap_last = Signal()
    m.d.comb += [
        blast.eq((sy if F == 2 else sx & sy) if pooled else 1),
        tap_last.eq((c == C - 1) & (ky == kyhi) & (kx == kxhi)),
    ]
    if pooled:
        m.d.comb += pix_last.eq(blast & (y == H - 1) & (xx == W - F) & (g == s0.g_out - 1))
    else:
        m.d.comb += pix_last.eq((y == H - 1) & (xx == W - 1) & (g == s0.g_out - 1))

    # first taps of a pixel wait until the LIF registers will be free (only if T is long)
    nmin = 4 * C if F == 1 else 6 * C
    gap0 = max(0, T - nmin)
    gap = Signal(range(gap0 + 1))
    may = Signal()
    m.d.comb += may.eq(~first | (gap == 0))
    with m.If(gap != 0):
        m.d.sync += gap.eq(gap - 1)

    # stage 1 -> 2 -> LIF registers
    v1, f1, l1 = Signal(), Signal(), Signal()
    bl1, e1 = Signal(), Signal()
    seq1 = Signal.like(seq)
    v2, bl2, e2 = Signal(), Signal(), Signal()
    seq2 = Signal.like(seq)
    acc = [Signal(signed(p.acc_bits), name=f"dacc{i}") for i in range(L)]

    with m.If(x.dense_start):
        m.d.sync += [run.eq(1), g.eq(0), y.eq(0), xx.eq(0), sx.eq(0), sy.eq(0), c.eq(0),
                     ky.eq(1), kx.eq(1 if F == 1 else 0), first.eq(1), seq.eq(0), gap.eq(0)]
    m.d.sync += [v1.eq(0), v2.eq(0)]
    issue = Signal()
    m.d.comb += issue.eq(run & x.state_dense & may)
    m0_1, m1_1 = Signal(), Signal()
    with m.If(issue):
        # image row y+ky-1, column x+kx-1 of channel c
        a0 = c * (H * W) + (y + ky) * W + xx + kx - W - 1
        if F == 2:
            m.d.comb += x.img_r2.addr.eq(a0 + 1)
            m.d.sync += [m0_1.eq(~((xx == 0) & (kx == 0))),
                         m1_1.eq(~((xx == W - 2) & (kx == 2)))]
        m.d.comb += [
            x.img_r.addr.eq(a0),
            x.w_r.addr.eq(s0.wbase + g * (C * 9) + c * 9 + ky * 3 + kx),
        ]
        m.d.sync += [v1.eq(1), f1.eq(first), l1.eq(tap_last), bl1.eq(blast),
                     e1.eq(pix_last & tap_last), seq1.eq(seq), first.eq(0)]
        with m.If(~tap_last):
            with m.If(kx != kxhi):
                m.d.sync += kx.eq(kx + 1)
            with m.Elif(ky != kyhi):
                m.d.sync += [ky.eq(ky + 1), kx.eq(kxlo)]
            with m.Else():
                m.d.sync += [c.eq(c + 1), ky.eq(kylo), kx.eq(kxlo)]
        with m.Else():
            # next pixel: its window bounds come from the new (y, x) next cycle
            m.d.sync += [c.eq(0), first.eq(1), gap.eq(gap0)]
            nky_lo, nkx_lo = Signal(2), Signal(2)  # set below from the new position
            ny, nx = Signal.like(y), Signal.like(xx)
            m.d.comb += [ny.eq(y), nx.eq(xx)]
            if pooled and F == 2:
                with m.If(~sy):
                    m.d.comb += ny.eq(y + 1)
                    m.d.sync += sy.eq(1)
                with m.Else():
                    m.d.sync += [sy.eq(0), seq.eq(seq + 1)]
                    _raster_step(m, xx, y, nx, ny, g, last_x=W - 2, h=H, dx=2, dy=-1)
            elif pooled:
                with m.If(~sx):
                    m.d.comb += nx.eq(xx + 1)
                    m.d.sync += sx.eq(1)
                with m.Elif(~sy):
                    m.d.comb += [nx.eq(xx - 1), ny.eq(y + 1)]
                    m.d.sync += [sx.eq(0), sy.eq(1)]
                with m.Else():
                    m.d.sync += [sx.eq(0), sy.eq(0), seq.eq(seq + 1)]
                    _raster_step(m, xx, y, nx, ny, g, last_x=W - 1, h=H, dx=1, dy=-1)
            else:
                m.d.sync += seq.eq(seq + 1)
                _raster_step(m, xx, y, nx, ny, g, last_x=W - 1, h=H, dx=1, dy=0)
            m.d.comb += [nky_lo.eq(ny == 0), nkx_lo.eq((nx == 0) if F == 1 else 0)]
            m.d.sync += [y.eq(ny), xx.eq(nx), ky.eq(nky_lo), kx.eq(nkx_lo)]
            with m.If(pix_last):
                m.d.sync += run.eq(0)

    # multiply-accumulate
    with m.If(v1):
        q0 = x.img_r.data if F == 1 else Mux(m0_1, x.img_r.data, 0)
        q1 = x.img_r.data if F == 1 else Mux(m1_1, x.img_r2.data, 0)
        for i in range(L):
            prod = (q0 if i < L // F else q1) * x.w_lane[i]
            m.d.sync += acc[i].eq(Mux(f1, 0, acc[i]) + prod)
        m.d.sync += [v2.eq(l1), bl2.eq(bl1), e2.eq(e1), seq2.eq(seq1)]

    # LIF registers: T steps per pixel, one spike word per step
    busy = Signal()
    lt = Signal(range(max(2, T)))
    cur = [Signal(signed(p.acc_bits), name=f"dcur{i}") for i in range(L)]
    vreg = [Signal(signed(p.vbits), name=f"dv{i}") for i in range(L)]
    lbl, lend = Signal(), Signal()
    lseq = Signal.like(seq)
    ta = Signal(range(max(2, T * s0.words_out + 1)))
    por = [Signal(L, name=f"dpor{k}") for k in range(T)]
    with m.If(x.state_dense):
        m.d.comb += x.lif_last.eq(0)
        for i in range(L):
            m.d.comb += x.lif_v[i].eq(Mux(lt == 0, 0, vreg[i]) + cur[i])
    with m.If(busy):
        m.d.sync += [vreg[i].eq(x.lif_vn[i]) for i in range(L)]
        m.d.sync += [lt.eq(lt + 1), ta.eq(ta + s0.words_out)]
        s = x.lif_s
        if F == 2:  # both pixels of a block row go into the same pooled word
            s = Cat(x.lif_s[:L // 2] | x.lif_s[L // 2:], C0(L // 2))
        if pooled:
            word = Array(por)[lt] | s
            m.d.comb += x.pool_word.eq(word)
            with m.Switch(lt):
                for k in range(T):
                    with m.Case(k):
                        m.d.sync += por[k].eq(Mux(lbl, 0, word))
            with m.If(lbl):
                m.d.comb += [x.s_w.addr.eq(ta + lseq), x.s_w.data.eq(word), x.s_w.en.eq(1)]
                m.d.comb += x.inc_pool[s0.pool_count].eq(1)
        else:
            m.d.comb += [x.s_w.addr.eq(ta + lseq), x.s_w.data.eq(s), x.s_w.en.eq(1)]
        m.d.comb += x.inc_lif[s0.count].eq(1)
        with m.If(lt == T - 1):
            m.d.sync += busy.eq(0)
            with m.If(lend):
                m.d.comb += x.dense_done.eq(1)
    with m.If(v2):
        m.d.sync += [busy.eq(1), lt.eq(0), ta.eq(0), lbl.eq(bl2), lend.eq(e2),
                     lseq.eq(seq2)]
        m.d.sync += [cur[i].eq(acc[i]) for i in range(L)]
    with m.If(x.dense_start):
        m.d.sync += [por[k].eq(0) for k in range(T)]


def scatter_unit(m: Module, x: SimpleNamespace) -> None:
    p = x.plan
    L, VB = p.lanes, p.vbits
    st = x.st
    x.scat_done = Signal()
    n_max = max(s.words_in * (p.timesteps if s.kind == "out" else 1) for s in p.stages)

    # ---- scanner ------------------------------------------------------------------------
    nwords = st["nwords"]  # stable while in SCAT (the stage register changes on entry)
    ra = Signal(range(n_max + 1))
    rv = Signal()
    wmax = max(s.w_in for s in p.stages)
    hmax = max(s.h_in for s in p.stages)
    meta = dict(x=Signal(range(max(2, wmax))), y=Signal(range(max(2, hmax))),
                g=Signal(range(max(2, max(s.g_in for s in p.stages)))),
                pos=Signal(range(max(2, max(s.h_in * s.w_in for s in p.stages)))),
                widx=Signal(range(max(2, max(s.words_in for s in p.stages)))))
    imeta = {k: Signal.like(v, name=f"i_{k}") for k, v in meta.items()}
    cmeta = {k: Signal.like(v, name=f"c_{k}") for k, v in meta.items()}
    cw = Signal(L)
    rd = x.s_r.data
    ev = Signal()
    eng_ready = Signal()
    take = Signal()
    single = Signal()
    m.d.comb += [ev.eq(cw != 0), take.eq(ev & eng_ready), single.eq((cw & (cw - 1)) == 0)]
    load = Signal()
    drop = Signal()
    adv = Signal()
    m.d.comb += [
        load.eq(rv & (rd != 0) & (~ev | (take & single))),
        drop.eq(rv & (rd == 0)),
        adv.eq(~rv | load | drop),
    ]
    with m.If(x.scat_start):
        m.d.sync += [ra.eq(0), rv.eq(0), cw.eq(0)] + [v.eq(0) for v in meta.values()]
    with m.Elif(x.state_scat):
        m.d.comb += [x.s_r.addr.eq(x.rbase + ra), x.s_r.en.eq(adv)]
        with m.If(adv):
            more = ra != nwords
            m.d.sync += rv.eq(more)
            with m.If(more):
                m.d.sync += ra.eq(ra + 1)
                m.d.sync += [imeta[k].eq(v) for k, v in meta.items()]
                mx, my, mg = meta["x"], meta["y"], meta["g"]
                m.d.sync += [meta["widx"].eq(Mux(meta["widx"] == st["words_in"] - 1, 0,
                                                 meta["widx"] + 1)),
                             meta["pos"].eq(Mux(meta["pos"] == st["hw_in"] - 1, 0,
                                                meta["pos"] + 1))]
                with m.If(mx == st["w_in1"]):
                    m.d.sync += mx.eq(0)
                    with m.If(my == st["h_in1"]):
                        m.d.sync += [my.eq(0), mg.eq(Mux(mg == st["g_in1"], 0, mg + 1))]
                    with m.Else():
                        m.d.sync += my.eq(my + 1)
                with m.Else():
                    m.d.sync += mx.eq(mx + 1)
        with m.If(load):
            m.d.sync += [cw.eq(rd)] + [cmeta[k].eq(imeta[k]) for k in meta]
        with m.Elif(take):
            m.d.sync += cw.eq(cw & (cw - 1))
    bit = lowest_set(m, cw, "ev_bit")
    scan_done = Signal()
    m.d.comb += scan_done.eq((ra == nwords) & ~rv & ~ev)

    # ---- engine ----------------------------------------------------------------------
    busy = Signal()
    gq = Signal(range(max(2, max(s.g_out for s in p.stages))))
    ky, kx, kylo, kyhi, kxlo, kxhi = (Signal(2, name=n) for n in
                                       ("e_ky", "e_kx", "e_kylo", "e_kyhi", "e_kxlo", "e_kxhi"))
    vw_ = len(x.v_w.addr) + 2
    ww_ = len(x.w_r.addr) + 2
    gv, rvv = Signal(vw_), Signal(vw_)
    gw, rw = Signal(ww_), Signal(ww_)
    last = Signal()
    last_nf = Signal()
    m.d.comb += [
        last_nf.eq(busy & (kx == kxhi) & (ky == kyhi) & (gq == st["g_out1"])),
        eng_ready.eq(~busy | last),
    ]
    e_v1 = Signal()
    e_a1 = Signal.like(x.v_w.addr)
    m.d.sync += e_v1.eq(0)
    fold = x.nbanks == 2
    if fold:  # a folded stage: bank A takes kernel position j, bank B position j + 1
        sfold = st["sfold"]
        j = Signal(4)
        npos, nkx = Signal(4), Signal(2)
        m.d.comb += last.eq(Mux(sfold, busy & (j + 2 >= npos), last_nf))
        eb_v1 = Signal()
        eb_a1 = Signal.like(x.v_w.addr)
        m.d.sync += eb_v1.eq(0)

        def position(idx: Value) -> tuple[Value, Value]:
            """(ky, kx) of the idx-th valid kernel position (row-major from kylo, kxlo)."""
            row = Array(Const(k // n if n else 0, 2) for n in (1, 2, 3) for k in range(16))
            col = Array(Const(k % n if n else 0, 2) for n in (1, 2, 3) for k in range(16))
            sel = (nkx - 1) * 16 + idx
            return kylo + row[sel], kxlo + col[sel]

        def vaddr(kyv: Value, kxv: Value) -> Value:
            return gv - Mux(kyv == 2, st["w"] * 2, Mux(kyv == 1, st["w"], 0)) - kxv

        def waddr(kyv: Value, kxv: Value) -> Value:
            return gw + kyv * 3 + kxv
    else:
        m.d.comb += last.eq(last_nf)
        sfold = Const(0)
    with m.If(x.state_scat & busy & ~sfold):
        va = rvv - kx
        m.d.comb += [x.v_r.addr.eq(va), x.w_r.addr.eq(rw + kx)]
        m.d.sync += [e_v1.eq(1), e_a1.eq(va)]
        with m.If(kx != kxhi):
            m.d.sync += kx.eq(kx + 1)
        with m.Elif(ky != kyhi):
            m.d.sync += [ky.eq(ky + 1), kx.eq(kxlo), rvv.eq(rvv - st["w"]), rw.eq(rw + 3)]
        with m.Else():
            ngv = gv + st["hw"]
            ngw = gw + st["wstride"]
            m.d.sync += [gq.eq(gq + 1), ky.eq(kylo), kx.eq(kxlo), gv.eq(ngv), gw.eq(ngw),
                         rvv.eq(ngv - Mux(kylo[0], st["w"], 0)), rw.eq(ngw + Mux(kylo[0], 3, 0))]
        with m.If(last):
            m.d.sync += busy.eq(0)
    if fold:
        with m.If(x.state_scat & busy & sfold):
            kya, kxa = position(j)
            kyb, kxb = position(j + 1)
            va, vb = vaddr(kya, kxa), vaddr(kyb, kxb)
            m.d.comb += [x.v_r.addr.eq(va), x.w_r.addr.eq(waddr(kya, kxa)),
                         x.bank_b.on.eq(1), x.bank_b.v_addr.eq(vb),
                         x.bank_b.w_addr.eq(waddr(kyb, kxb))]
            m.d.sync += [e_v1.eq(1), e_a1.eq(va), eb_v1.eq(j + 1 < npos), eb_a1.eq(vb),
                         j.eq(j + 2)]
            with m.If(last):
                m.d.sync += busy.eq(0)
    with m.If(x.state_scat & take):
        conv = st["conv"]
        cy, cx = cmeta["y"], cmeta["x"]
        n_kylo = Mux(conv, cy == st["h_in1"], 0)
        n_kyhi = Mux(conv, Mux(cy == 0, 1, 2), 0)
        n_kxlo = Mux(conv, cx == st["w_in1"], 0)
        n_kxhi = Mux(conv, Mux(cx == 0, 1, 2), 0)
        ch = cmeta["g"] * L + bit
        wb0 = st["wbase"] + Mux(conv, ch * 9, cmeta["widx"] * L + bit)
        vb0 = Mux(conv, cmeta["pos"] + st["w"] + 1, 0)
        m.d.sync += [
            busy.eq(1), gq.eq(0), kylo.eq(n_kylo), kyhi.eq(n_kyhi), kxlo.eq(n_kxlo),
            kxhi.eq(n_kxhi), ky.eq(n_kylo), kx.eq(n_kxlo), gv.eq(vb0), gw.eq(wb0),
            rvv.eq(vb0 - Mux(n_kylo, st["w"], 0)), rw.eq(wb0 + Mux(n_kylo, 3, 0)),
        ]
        if fold:
            nky_ = n_kyhi - n_kylo + 1
            nkx_ = n_kxhi - n_kxlo + 1
            m.d.sync += [j.eq(0), nkx.eq(nkx_),
                         npos.eq(Mux(nky_ == 3, nkx_ * 3, Mux(nky_ == 2, nkx_ * 2, nkx_)))]
    if fold:
        with m.If(eb_v1):
            m.d.comb += [x.bank_b.on.eq(1), x.bank_b.vw_addr.eq(eb_a1), x.bank_b.vw_en.eq(1)]
        with m.If(e_v1 & sfold & ~eb_v1):
            m.d.comb += [x.bank_b.on.eq(1), x.bank_b.vw_en.eq(0)]
    with m.If(e_v1):
        m.d.comb += [x.v_w.addr.eq(e_a1), x.v_w.en.eq(1),
                     x.v_w.data.eq(Cat(*[(x.v_lane[i] + x.w_lane[i])[:VB] for i in range(L)]))]
    with m.If(x.scat_start):
        m.d.sync += busy.eq(0)
    m.d.comb += x.scat_done.eq(scan_done & ~busy & ~e_v1 & ~(eb_v1 if fold else 0))
