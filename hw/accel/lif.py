"""The engine's LIF pipeline: ``L`` membrane updates per clock, membranes in a store.

Every hidden neuron after the first layer is updated once per time step, when the engine
has summed its current (:mod:`.engine`). Updates of one neuron are therefore a whole time
step apart, so this pipeline needs no loop closed within a few clocks: it reads the
membrane, runs the same three-stage LIF circuit as the neuron array
(:func:`dietsnn.hw.neuron.lif_recurrence`) and writes the membrane back, feed-forward::

    c0  accept: read U[addr] (block RAM), register I and the parameters
    c1  U arrives                      -> register (the RAM's output register);
        the operands I, I - theta, ... -> register
    c2  U                              -> register (at step 0 the lane's shift is 0 with
                                          the leak on: U - U, nothing is masked)
    c3  shift                          -> register
    c4  carry-save rows, carry chains  -> register
    c5  saturate / spike / reset select; write U'[addr]; spikes registered
    c6  ``o.valid`` with the spikes and the tag

Two updates of the same address must be accepted at least :data:`SAME_ADDR_GAP` clocks
apart (the engine's schedule guarantees it: see :mod:`.engine`).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..neuron import lif_recurrence, operand_widths, operands, saturation_constants

#: Clocks from accepting an update to ``o.valid``.
LATENCY = 6
#: Smallest distance in clocks between two accepted updates of one address.
SAME_ADDR_GAP = 6


def params_layout(membrane_bits: int) -> data.StructLayout:
    """Per-update LIF parameters: ``threshold``, ``leak_shift`` and ``membrane_bits``
    (``b <= B``: the layer's own saturation width)."""
    return data.StructLayout({
        "threshold": unsigned(membrane_bits - 1),
        "leak_shift": unsigned(max(1, (membrane_bits - 1).bit_length())),
        "membrane_bits": unsigned(membrane_bits.bit_length()),
    })


class LIFPipe(wiring.Component):
    """``lanes`` LIF updates per clock against a membrane store of ``depth`` rows.

    Parameters (keyword-only)
    -------------------------
    lanes : ``L``. current_bits : signed width of a lane's current. membrane_bits : ``B``,
    the widest membrane stored. depth : rows of the store (neurons per lane of the largest
    layer). tag_shape : a shape carried from input to output unchanged.

    Members
    -------
    i : ``In(stream.Signature(..., always_ready=True))`` one update: ``addr``, ``first``
        (step 0: start from ``U = 0``), ``params`` (:func:`params_layout`), ``current``
        (``lanes`` x ``signed(current_bits)``) and ``tag``.
    o : ``Out(stream.Signature(..., always_ready=True))`` ``spikes`` (``lanes`` bits) and the
        ``tag``, :data:`LATENCY` clocks after ``i``.
    busy : ``Out(1)`` an update is in the pipeline (including one on ``i`` or ``o``).
    """

    def __init__(self, *, lanes: int, current_bits: int, membrane_bits: int, depth: int,
                 tag_shape: Any) -> None:
        self._lanes, self._cb, self._mb, self._depth = lanes, current_bits, membrane_bits, depth
        self._in_layout = data.StructLayout({
            "addr": unsigned(max(1, (depth - 1).bit_length())),
            "first": 1,
            "params": params_layout(membrane_bits),
            "current": data.ArrayLayout(signed(current_bits), lanes),
            "tag": tag_shape,
        })
        self._out_layout = data.StructLayout({"spikes": unsigned(lanes), "tag": tag_shape})
        super().__init__({
            "i": In(stream.Signature(self._in_layout, always_ready=True)),
            "o": Out(stream.Signature(self._out_layout, always_ready=True)),
            "busy": Out(1),
        })

    lanes = property(lambda self: self._lanes)
    out_layout = property(lambda self: self._out_layout)
    depth = property(lambda self: self._depth)

    @property
    def loop_bits(self) -> int:
        return (2 ** self._mb + 2 ** (self._cb - 1) + 2).bit_length() + 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        L, B, W = self._lanes, self._mb, self.loop_bits
        inp, pay = self.i, self.i.payload
        lay = data.ArrayLayout(signed(B), L)
        # a read never meets a write of its address in one clock (SAME_ADDR_GAP): synthesis
        # needs no collision logic between the RAM and its register
        m.submodules.umem = umem = memory.Memory(shape=lay, depth=self._depth, init=[],
                                                 attrs={"no_rw_check": 1})
        rd, wr = umem.read_port(), umem.write_port()

        def delay(v: Any, n: int, name: str, reset: bool = False) -> list[Signal]:
            out = [v]
            for i in range(n):
                r = Signal.like(v, name=f"{name}_d{i + 1}", reset_less=not reset)
                m.d.sync += r.eq(out[-1])
                out.append(r)
            return out

        m.d.comb += [rd.addr.eq(pay.addr), rd.en.eq(1)]
        valid = delay(inp.valid, LATENCY, "valid", reset=True)
        addr = delay(pay.addr, 5, "addr")
        tag = delay(pay.tag, LATENCY, "tag")
        first = delay(pay.first, 1, "first")
        k = delay(pay.params.leak_shift, 1, "k")
        # the shift amount and step 0, one copy per lane (each drives a B-bit barrel shifter;
        # step 0 is shift 0 with the leak enabled, ``lif_recurrence``), through one copy per
        # group of 8 lanes (``keep``: never merged back into one flip-flop)
        ngr = (L + 7) // 8
        grp_k = [Signal.like(k[1], name=f"k_g{j}", attrs={"keep": 1}) for j in range(ngr)]
        grp_first = [Signal(name=f"first_g{j}", attrs={"keep": 1}) for j in range(ngr)]
        m.d.sync += [gk.eq(Mux(first[1], 0, k[1])) for gk in grp_k]
        m.d.sync += [gf.eq(first[1]) for gf in grp_first]
        lane_k = [Signal.like(k[1], name=f"k_{p}", init=p % 2, attrs={"keep": 1})
                  for p in range(L)]
        lane_first = [Signal(name=f"first_{p}", init=p % 2, attrs={"keep": 1}) for p in range(L)]
        m.d.sync += [lk.eq(grp_k[p // 8]) for p, lk in enumerate(lane_k)]
        m.d.sync += [lf.eq(grp_first[p // 8]) for p, lf in enumerate(lane_first)]
        # c1: the parameters registered, 2^(b-1) and 2^(b-1) - 1 decoded from b: one copy per
        # group of 8 lanes (their operands) and one for the saturation constants (``keep``:
        # one register into every lane's subtractors and the constants would be spread over
        # all of them)
        b = pay.params.membrane_bits
        decoded = (Cat(*(b == i + 1 for i in range(B))), Cat(*(b > i + 1 for i in range(B))),
                   pay.params.threshold)
        pset = []
        for j in range(ngr + 1):
            sfx = "s" if j == ngr else f"g{j}"
            regs = tuple(Signal(signed(W), name=f"{n}_c1_{sfx}", reset_less=True,
                                attrs={"keep": 1}) for n in ("half", "hm1", "theta"))
            m.d.sync += [r.eq(v) for r, v in zip(regs, decoded, strict=True)]
            pset.append(regs)
        half, hm1, theta = pset[ngr]
        cur1 = Signal(data.ArrayLayout(signed(self._cb), L), name="cur_c1", reset_less=True)
        m.d.sync += cur1.eq(pay.current)
        # c2: the saturation constants (needed at c5), their last register one copy per group
        # of 8 lanes (``keep``: one register into every lane's membrane write was the engine's
        # slowest path)
        sat_hi = delay(Signal(signed(B), name="sat_hi1"), 3, "sat_hi")
        spk_hi = delay(Signal(name="spk_hi1"), 3, "spk_hi")
        sat_lo = delay(Signal(signed(B), name="sat_lo1"), 3, "sat_lo")
        c_hi, c_spk, c_lo = saturation_constants(theta, half, hm1)
        m.d.comb += [sat_hi[0].eq(c_hi), spk_hi[0].eq(c_spk), sat_lo[0].eq(c_lo)]
        sat_g = []
        for j in range(ngr):
            regs = (Signal(signed(B), name=f"sat_hi_d4_g{j}", reset_less=True, attrs={"keep": 1}),
                    Signal(name=f"spk_hi_d4_g{j}", reset_less=True, attrs={"keep": 1}),
                    Signal(signed(B), name=f"sat_lo_d4_g{j}", reset_less=True, attrs={"keep": 1}))
            m.d.sync += [r.eq(v[3]) for r, v in zip(regs, (sat_hi, spk_hi, sat_lo), strict=True)]
            sat_g.append(regs)
        qw = operand_widths(self._cb, B)
        # c1: operands registered; c2: U registered (the recurrence's ``old``)
        u_q = Signal(lay, name="u_q", reset_less=True)     # the read, straight into a register
        m.d.sync += u_q.eq(rd.data)
        old = Signal(lay, name="old", reset_less=True)
        m.d.sync += old.eq(u_q)
        new = Signal(lay)
        spikes = Signal(L)
        for p in range(L):
            ops = operands(cur1[p], pset[p // 8][2], pset[p // 8][0])
            q2 = {n: Signal(signed(w), name=f"q_{n}_{p}_c2", reset_less=True)
                  for n, w in qw.items()}
            m.d.sync += [q2[n].eq(ops[n]) for n in q2]
            q3 = {n: Signal(signed(w), name=f"q_{n}_{p}_c3", reset_less=True)
                  for n, w in qw.items()}
            m.d.sync += [q3[n].eq(q2[n]) for n in q2]
            new_p, spike_p = lif_recurrence(
                m, old=old[p], k=lane_k[p], first=lane_first[p], q=q3, sat_hi=sat_g[p // 8][0],
                spk_hi=sat_g[p // 8][1], sat_lo=sat_g[p // 8][2], loop_bits=W, membrane_bits=B,
                stages=3,
                name=str(p))
            m.d.comb += [new[p].eq(new_p), spikes[p].eq(spike_p)]
        # c4: write back; spikes registered for c5
        m.d.comb += [wr.addr.eq(addr[5]), wr.data.eq(new), wr.en.eq(valid[5])]
        out_spk = Signal(L, reset_less=True)
        m.d.sync += out_spk.eq(spikes)
        m.d.comb += self.busy.eq(Cat(*valid).any())
        m.d.comb += [self.o.valid.eq(valid[6]), self.o.payload.spikes.eq(out_spk),
                     self.o.payload.tag.eq(tag[6])]
        return m
