"""Small combinational building blocks of the accelerator: popcount and lowest set bit.
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


def lowest_set(m: Module, word: Value, name: str) -> Signal:
    """Index of the lowest set bit of ``word`` (0 when ``word`` is 0)."""
    n = len(word)
    onehot = Signal(n, name=f"{name}_oh")
    m.d.comb += onehot.eq(word & (~word + 1))
    out = Signal(range(max(n, 2)), name=name)
    for k in range(len(out)):
        bit = 0
        for i in range(n):
            if (i >> k) & 1:
                bit = bit | onehot[i]
        m.d.comb += out[k].eq(bit)
    return out
