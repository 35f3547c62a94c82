"""Small combinational building blocks of the accelerator: a popcount.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value


def popcount(m: Module, bits: Value, name: str) -> Signal:
    """Number of set bits of ``bits`` (a balanced adder tree)."""
    terms: list[Value] = [bits[i] for i in range(len(bits))]
    while len(terms) > 1:
        nxt = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    out = Signal(range(len(bits) + 1), name=name)
    m.d.comb += out.eq(terms[0])
    return out
