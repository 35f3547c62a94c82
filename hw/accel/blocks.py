"""Small building blocks of the accelerator: a pipelined popcount, a delay line, register
copies of control flags.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value

#: Clocks from ``bits`` (with its valid) to the registered count of :func:`popcount`.
POP_LATENCY = 2
#: Clocks from the values to the leaf registers of :func:`copies`.
COPY_LATENCY = 2


def _tree(terms: list[Value]) -> Value:
    while len(terms) > 1:
        nxt = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


def popcount(m: Module, bits: Value, valid: Value, name: str) -> tuple[Signal, Signal, Signal]:
    """The number of set bits of ``bits``, :data:`POP_LATENCY` clocks later, in two registered
    steps (counts of 8-bit chunks, then their sum): ``(count, count_valid, busy)`` where
    ``busy`` is high while a valid word is in the pipeline."""
    chunks = [bits[i:i + 8] for i in range(0, len(bits), 8)]
    part = [Signal(range(len(c) + 1), name=f"{name}_c{k}", reset_less=True)
            for k, c in enumerate(chunks)]
    v1, v2 = Signal(name=f"{name}_v1"), Signal(name=f"{name}_v2")
    out = Signal(range(len(bits) + 1), name=name, reset_less=True)
    m.d.sync += [p.eq(_tree([c[i] for i in range(len(c))]))
                 for p, c in zip(part, chunks, strict=True)]
    m.d.sync += [v1.eq(valid), v2.eq(v1), out.eq(_tree(list(part)))]
    busy = Signal(name=f"{name}_busy")
    m.d.comb += busy.eq(v1 | v2)
    return out, v2, busy


def delay(m: Module, sig: Value, clocks: int, name: str) -> Value:
    """``sig`` delayed by ``clocks`` registers (``sig`` itself for 0)."""
    for k in range(clocks):
        nxt = Signal.like(sig, name=f"{name}_d{k + 1}")
        m.d.sync += nxt.eq(sig)
        sig = nxt
    return sig


def copies(m: Module, values: tuple[Value, ...], names: tuple[str, ...], *, count: int,
           tag: str, fan: int = 6) -> list[tuple[Signal, ...]]:
    """``count`` copies of the 1-bit ``values``, each to drive a share of the lanes instead
    of all of them, through a two-level register tree: ``ceil(count / fan)`` copies
    registered from ``values``, each feeding ``fan`` leaf copies registered from it, so a leaf
    is :data:`COPY_LATENCY` clocks after ``values`` (one register driving the whole die is a
    cross-die route; ``keep``: synthesis must not merge the copies back). Returns the leaves,
    one tuple (in the order of ``names``) per copy."""
    roots = []
    for r in range(-(-count // fan)):
        sigs = tuple(Signal(name=f"{tag}_{n}_r{r}", attrs={"keep": 1}) for n in names)
        m.d.sync += [s.eq(v) for s, v in zip(sigs, values, strict=True)]
        roots.append(sigs)
    out = []
    for k in range(count):
        sigs = tuple(Signal(name=f"{tag}_{n}{k}", attrs={"keep": 1}) for n in names)
        m.d.sync += [s.eq(r) for s, r in zip(sigs, roots[k // fan], strict=True)]
        out.append(sigs)
    return out
