"""The output unit: the linear output layer (no LIF) and the argmax.

Every input spike of every time step (a tick with ``ev`` from the scanner's output-stage
walk) adds one weight row, ``W[k, i]`` for all ``K`` classes, to the ``K`` logit
accumulators: ``V[k] = sum_t sum_i W[k, i] * S_t[i]``, exactly the golden output layer (a
layer with a bias starts each accumulator from the constant ``T * b[k]``: the sum of ``b[k]``
over the ``T`` steps, as the output neither saturates nor leaks). After
the last tick the argmax takes ``K`` clocks, comparing one logit per clock (ties go to the
lowest index: a later logit replaces the best only when strictly greater).

Pipeline: tick (row address) -> row read -> accumulate; ``done`` pulses
``K + 5`` clocks after the stage's last tick.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .plan import AccelPlan


def result_layout(plan: AccelPlan) -> data.StructLayout:
    """One image's result: ``cls`` (the argmax) and ``logits`` (``K`` x ``signed(out_bits)``)."""
    return data.StructLayout({
        "cls": unsigned(max(1, (plan.classes - 1).bit_length())),
        "logits": data.ArrayLayout(signed(plan.out_bits), plan.classes),
    })


class OutUnit(wiring.Component):
    """Output layer accumulators and argmax (module docstring).

    Members
    -------
    start : ``In(1)`` clears the accumulators. tick : ``In`` the scanner's ticks.
    done : ``Out(1)`` a pulse: ``result`` is final (and held until the next ``start``).
    result : ``Out(result_layout(plan))``.
    """

    def __init__(self, *, plan: AccelPlan, tick_shape: data.StructLayout) -> None:
        self._plan = plan
        super().__init__({
            "start": In(1),
            "tick": In(stream.Signature(tick_shape, always_ready=True)),
            "done": Out(1),
            "result": Out(result_layout(plan)),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        p = self._plan
        K, WB, OB = p.classes, p.weight_bits, p.out_bits
        row = data.ArrayLayout(signed(WB), K)
        m.submodules.wout = wout = memory.Memory(
            shape=row, depth=max(2, p.out.wrows),
            init=[[int(v) for v in r] for r in p.out_rows])
        rd = wout.read_port()
        t = self.tick.payload
        m.d.comb += [rd.addr.eq(Cat(t.b, t.cg)), rd.en.eq(1)]
        ev1, ev2, last1, last2, last3 = (Signal(name=n) for n in
                                         ("ev1", "ev2", "last1", "last2", "last3"))
        w2 = Signal(row, reset_less=True)
        m.d.sync += [ev1.eq(self.tick.valid & t.ev), ev2.eq(ev1), w2.eq(rd.data),
                     last1.eq(self.tick.valid & t.last), last2.eq(last1), last3.eq(last2)]
        acc = [Signal(signed(OB), name=f"logit{k}") for k in range(K)]
        clear = Signal()    # ``start`` registered (the first event is clocks behind it)
        m.d.sync += clear.eq(self.start)
        with m.If(clear):
            m.d.sync += [a.eq(p.timesteps * int(p.out_bias[k]) if p.out.bias else 0)
                         for k, a in enumerate(acc)]
        with m.Elif(ev2):
            m.d.sync += [a.eq(a + w2[k]) for k, a in enumerate(acc)]
        # argmax, one logit per clock: select (registered), then compare
        on = Signal()
        j = Signal(range(max(2, K + 1)))
        sel_on, sel_last = Signal(), Signal()
        sel_j = Signal.like(j)
        sel = Signal(signed(OB))
        best = Signal(signed(OB))
        cls = Signal.like(self.result.cls)
        with m.If(last3):
            m.d.sync += [on.eq(1), j.eq(0)]
        with m.Elif(on):
            m.d.sync += j.eq(j + 1)
            with m.If(j == K - 1):
                m.d.sync += on.eq(0)
        m.d.sync += [sel_on.eq(on), sel_last.eq(on & (j == K - 1)), sel_j.eq(j),
                     sel.eq(Array(acc)[j])]
        m.d.sync += self.done.eq(sel_on & sel_last)
        with m.If(sel_on & ((sel_j == 0) | (sel > best))):
            m.d.sync += [best.eq(sel), cls.eq(sel_j)]
        m.d.comb += self.result.cls.eq(cls)
        for k in range(K):
            m.d.comb += self.result.logits[k].eq(acc[k])
        return m
