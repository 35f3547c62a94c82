"""Small combinational building blocks of the accelerator: the LIF lane and a popcount.

The LIF lane works on the accelerator's merged membrane/current value ``V`` (see
:mod:`.plan`): ``V = U' + I_t`` where ``U' = U - (U >>> k)`` is the leaked membrane of the
previous step (``U' = 0`` before the first step). One call of :func:`lif_lane` finishes a
time step of one neuron exactly as :func:`dietsnn.golden.lif_step`::

    U     = sat_B(V)
    s     = U > theta
    U2    = U - theta * s
    V'    = U2 - (U2 >>> k)    (k = 0: V' = U2; after the last step V' = 0)

``V'`` is the starting value of the next step, to which that step's currents are added.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value, signed


def lif_lane(
    m: Module, v: Value, *, theta: Value, leak: Value, lo: Value, hi: Value, last: Value,
    width: int, name: str,
) -> tuple[Signal, Signal]:
    """Add one LIF lane to ``m``; returns ``(spike, v_next)`` (1 bit, ``signed(width)``).

    Parameters
    ----------
    v : the lane's ``V`` (signed). theta, leak : ``theta`` and ``k``. lo, hi : the saturation
    limits ``-2^(B-1)`` and ``2^(B-1) - 1``. last : the step is the layer's last (``V' = 0``,
    which also leaves the buffer cleared for the next layer).
    """
    u = Signal(signed(width), name=f"{name}_u")
    s = Signal(name=f"{name}_s")
    u2 = Signal(signed(width), name=f"{name}_u2")
    vn = Signal(signed(width), name=f"{name}_vn")
    m.d.comb += [
        u.eq(Mux(v > hi, hi, Mux(v < lo, lo, v))),
        s.eq(u > theta),
        u2.eq(u - Mux(s, theta, 0)),
        vn.eq(Mux(last, 0, Mux(leak == 0, u2, u2 - (u2 >> leak)))),
    ]
    return s, vn


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
