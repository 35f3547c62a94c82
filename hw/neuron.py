"""The pipelined LIF neuron array: ``lanes`` neurons per clock, bit-exact to the golden model.

One :class:`NeuronArray` serves a whole hidden layer over all ``T`` time steps. Each of its
``lanes`` lanes is a pipeline that applies one LIF update per clock (II = 1) to one neuron::

    U   <- sat_b(U - (U >>> k) + I)      (k = 0: no leak; U = 0 before step 0)
    s    = 1 if U > theta else 0         (strict)
    U   <- U - theta * s

exactly :func:`dietsnn.golden.lif_step` (``b``, ``k``, ``theta`` are the layer's
``membrane_bits``, ``leak_shift`` and ``threshold``).

Loop pipeline and schedules
    The recurrence of one neuron is pipelined over ``loop_stages = R`` cycles (1, 2 or 3;
    default 3: shift | carry-save rows + carry chains | saturate/spike/reset select, which
    also picks the next update's starting membrane: 0, the value being written, or the store).
    An update may enter only when no update of the *same address* is in loop stages
    ``1..R-1``; otherwise ``i_stream.ready`` stays low (a hazard stall: always correct,
    never faster than one update of a given address every ``R`` cycles). So II = 1 needs
    ``R`` different addresses in turn. Membranes live in a ``depth``-entry store per lane
    (``amaranth.lib.memory``: registers / LUT RAM when small, block RAM when large; one
    ``lanes * membrane_bits`` word per address) with forwarding of the value being written.

    *Register schedule* (``depth = R``, recommended): the neurons of a layer are taken
    ``R`` groups of ``lanes`` at a time; for ``t = 0..T-1``, for ``a = 0..R-1``: the update
    ``(addr=a, step=t)`` of group ``a``. A group's membranes never leave the lane's ``R``
    registers, and upstream one weight fetch feeds the ``T`` accumulators of a group (``R *
    T`` per lane for the ``R`` groups in flight). With ``R = 1`` (``depth = 1``) this is
    the plain neuron-major order (a neuron's ``T`` steps back to back).

    *Memory schedule* (``depth`` = neurons per lane of the largest layer): any order, for
    example time-major over the whole layer (every address at step 0, then at step 1...).

    In every schedule the update with ``step == 0`` starts from ``U = 0`` (no memory clear
    between images or layers is needed).

Ports (``wiring.Component``; Verilog names in brackets)
    ``i_stream`` : ``In(stream.Signature(update_layout))`` [``i_stream__valid/ready/payload``]
        one update per beat: ``addr`` (neuron address within each lane, ``addr_bits`` wide),
        ``step`` (time step, ``step_bits`` wide; 0 = first step of this neuron),
        ``current`` (``lanes`` x ``signed(current_bits)``, lane ``p`` at bits
        ``[p*current_bits, (p+1)*current_bits)`` of the ``current`` field).
    ``params`` : ``In(params_layout)`` [``params``] per-layer run-time parameters
        ``leak_shift`` (``k``, 0..membrane_bits-1), ``threshold`` (``theta``) and
        ``membrane_bits`` (``b``, 2..membrane_bits), with the model-file rules
        ``0 <= k < b`` and ``1 <= theta <= 2^(b-1) - 1``. They are sampled together with each
        update when it is accepted, so they may change at any time (for example right after
        the last update of a layer is accepted); updates in flight keep the values they took.
    ``o_stream`` : ``Out(stream.Signature(spike_layout))`` [``o_stream__*``]
        one beat per update, in order: ``addr`` and ``step`` echoed, ``spikes`` (``lanes`` bits,
        bit ``p`` = lane ``p``).
    ``membrane`` : ``Out(ArrayLayout(signed(membrane_bits), lanes))`` [``membrane``] debug
        port: the membranes after the update now on ``o_stream`` (valid while
        ``o_stream.valid``).
    ``busy`` : ``Out(1)`` some accepted update has not been read from ``o_stream`` yet.

Timing
    Latency ``R + 1`` cycles (accepted at cycle ``c`` -> ``o_stream.valid`` at
    ``c + R + 1``), one update per clock. The datapath never stalls (its registers have no
    enable and no reset): results enter an 8-entry output FIFO in LUT RAM
    (``o_stream.valid`` is a register; ``o_stream.payload`` and ``membrane`` are the RAM's
    asynchronous read at a registered pointer), and an update is accepted only while fewer
    than 8 are accepted and not yet read (a credit counter), so back-pressure stops the
    input, never the pipeline, and never loses or duplicates an update.
    ``i_stream.ready = (credit left) & ~hazard`` depends combinationally only on
    ``i_stream.payload.addr`` (the hazard compare), never on ``i_stream.valid`` or
    ``o_stream.ready``. The stream rules hold (valid never waits for ready, payload held
    while valid and not ready). ``rst`` empties the pipeline and the FIFO (membranes are
    not cleared; ``step == 0`` does that).

Implementation
    The recurrence ``U -> U'`` is the only loop. Everything else is precomputed when an
    update is accepted: per lane ``I``, ``I - theta``, ``I - 2^(b-1)`` and
    ``I + 2^(b-1)``. With ``sh = U >>> k`` (0 when ``k = 0``) every quantity the update needs
    is ``U + ~sh + Q + c`` (``-sh = ~sh + 1``): a 3:2 carry-save row (one LUT level) and one
    carry chain, all in parallel. Step 0 takes ``k = 0`` with the leak enabled, so ``sh = U``
    and ``U + ~sh + 1 = 0``: whatever the store holds, the update starts from ``U = 0``
    (nothing is cleared or masked, and the step-0 flag drives only each lane's shift amount
    and leak enable)::

        x = U + ~sh + I + 1                = L + I        (the value, when it fits in b bits)
        y = U + ~sh + (I - theta) + 1      = x - theta    (the value after a spike)
        s = U + ~sh + (I - theta) >= 0       i.e. x > theta         (same row as y)
        hi = U + ~sh + (I - 2^(b-1)) + 1 >= 0  i.e. x > 2^(b-1) - 1
        lo = U + ~sh + (I + 2^(b-1)) + 1 < 0   i.e. x < -2^(b-1)

    then ``U' = hi ? sat_hi : lo ? -2^(b-1) : s ? y : x`` and ``spike = hi ? (theta <
    2^(b-1) - 1) : s`` where ``sat_hi = 2^(b-1) - 1 - theta * (theta < 2^(b-1) - 1)``
    (saturation is monotone, so ``sat_b(x) > theta`` equals ``x > theta`` except when
    ``theta = 2^(b-1) - 1``). ``x`` and ``y`` are only needed modulo ``2^B``.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["NeuronArray", "MAX_LANES", "check_config", "lif_recurrence", "operands",
           "operand_widths", "saturation_constants"]

#: Largest supported number of lanes.
MAX_LANES = 64
#: Largest supported membrane width ``B`` (the model file allows 2..32).
MAX_MEMBRANE_BITS = 32
#: Largest supported current width.
MAX_CURRENT_BITS = 48
#: Largest supported neurons per lane in the memory schedule.
MAX_DEPTH = 1 << 20
#: Largest depth kept in registers / LUT RAM (asynchronous read); deeper uses block RAM.
SMALL_STORE = 64
#: Largest supported number of time steps (the model file allows 1..1024).
MAX_TIMESTEPS = 1024


def _bits_for(n: int) -> int:
    """Unsigned width holding ``0..n`` (at least 1)."""
    return max(1, int(n).bit_length())


def _check_int(name: str, value: Any, lo: int, hi: int, what: str = "an integer") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {what} in {lo}..{hi}, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be {what} in {lo}..{hi}, not {value}")
    return value


def check_config(*, lanes: Any, current_bits: Any, membrane_bits: Any, depth: Any,
                 timesteps: Any, loop_stages: Any = 3) -> None:
    """Check the generation parameters of a :class:`NeuronArray`; raise with a clear message."""
    _check_int("lanes", lanes, 1, MAX_LANES)
    _check_int("current_bits", current_bits, 2, MAX_CURRENT_BITS)
    _check_int("membrane_bits", membrane_bits, 2, MAX_MEMBRANE_BITS)
    _check_int("depth", depth, 1, MAX_DEPTH, "an integer (neurons per lane)")
    _check_int("timesteps", timesteps, 1, MAX_TIMESTEPS, "an integer (largest T)")
    _check_int("loop_stages", loop_stages, 1, 3)


class NeuronArray(wiring.Component):
    """``lanes`` pipelined LIF neurons, II = 1, bit-exact to :func:`dietsnn.golden.lif_step`.

    See the module docstring for ports, timing and equations.

    Parameters (keyword-only)
    -------------------------
    lanes : number of parallel lanes, 1..64.
    current_bits : signed width of each lane's input current (``max model.current_bits``).
    membrane_bits : ``B``, the widest membrane (each layer saturates to its own ``b <= B``).
    depth : membranes per lane (addresses): ``loop_stages`` for the register schedule, the
        largest layer's neurons per lane for the memory schedule.
    timesteps : largest number of time steps ``T`` (sets the width of ``step``).
    loop_stages : ``R``, cycles of the membrane recurrence (1..3): 3 for Fmax, 1 for the
        smallest array (and back-to-back updates of one neuron at II = 1).

    Members
    -------
    lanes, current_bits, membrane_bits, depth, timesteps, loop_stages, addr_bits, step_bits,
    leak_bits, update_layout, spike_layout, params_layout, latency, loop_bits : read-only.
    """

    def __init__(self, *, lanes: int, current_bits: int, membrane_bits: int, depth: int = 3,
                 timesteps: int = 8, loop_stages: int = 3) -> None:
        check_config(lanes=lanes, current_bits=current_bits, membrane_bits=membrane_bits,
                     depth=depth, timesteps=timesteps, loop_stages=loop_stages)
        self._loop_stages = loop_stages
        self._lanes = lanes
        self._current_bits = current_bits
        self._membrane_bits = membrane_bits
        self._depth = depth
        self._timesteps = timesteps
        self._addr_bits = _bits_for(depth - 1)
        self._step_bits = _bits_for(timesteps - 1)
        self._leak_bits = _bits_for(membrane_bits - 1)
        self._update_layout = data.StructLayout({
            "addr": unsigned(self._addr_bits),
            "step": unsigned(self._step_bits),
            "current": data.ArrayLayout(signed(current_bits), lanes),
        })
        self._spike_layout = data.StructLayout({
            "addr": unsigned(self._addr_bits),
            "step": unsigned(self._step_bits),
            "spikes": unsigned(lanes),
        })
        self._params_layout = data.StructLayout({
            "leak_shift": unsigned(self._leak_bits),
            "threshold": unsigned(membrane_bits - 1),
            "membrane_bits": unsigned(_bits_for(membrane_bits)),
        })
        super().__init__({
            "i_stream": In(stream.Signature(self._update_layout)),
            "params": In(self._params_layout),
            "o_stream": Out(stream.Signature(self._spike_layout)),
            "membrane": Out(data.ArrayLayout(signed(membrane_bits), lanes)),
            "busy": Out(1),
        })

    # -- read-only parameters ----------------------------------------------------------------
    lanes = property(lambda self: self._lanes)
    current_bits = property(lambda self: self._current_bits)
    membrane_bits = property(lambda self: self._membrane_bits)
    depth = property(lambda self: self._depth)
    timesteps = property(lambda self: self._timesteps)
    addr_bits = property(lambda self: self._addr_bits)
    step_bits = property(lambda self: self._step_bits)
    leak_bits = property(lambda self: self._leak_bits)
    update_layout = property(lambda self: self._update_layout)
    spike_layout = property(lambda self: self._spike_layout)
    params_layout = property(lambda self: self._params_layout)

    loop_stages = property(lambda self: self._loop_stages)

    @property
    def small_store(self) -> bool:
        """Membranes in registers / LUT RAM read asynchronously (depth <= 64), else block
        RAM read synchronously with forwarding in the first loop stage."""
        return self._depth <= SMALL_STORE

    @property
    def latency(self) -> int:
        """Cycles from acceptance to ``o_stream.valid`` with no back-pressure."""
        return self._loop_stages + 1

    @property
    def fifo_depth(self) -> int:
        """Entries of the output FIFO (and input credit): covers the round trip at II = 1."""
        return 8

    @property
    def loop_bits(self) -> int:
        """Width of the loop arithmetic: holds ``L + I + c`` with ``|L|, |c| <= 2^(B-1) + 1``."""
        bound = 2 ** self._membrane_bits + 2 ** (self._current_bits - 1) + 2
        return bound.bit_length() + 1

    # -- hardware ----------------------------------------------------------------------------
    def elaborate(self, platform: Any) -> Module:
        m = Module()
        P, B, W, R = self._lanes, self._membrane_bits, self.loop_bits, self._loop_stages
        inp, out, prm = self.i_stream, self.o_stream, self.params

        # ---- pipeline control ------------------------------------------------------------
        # The datapath never stalls: every register loads every clock (no enable) and
        # bubbles travel as ``valid = 0``. Results go into an output FIFO; an update is
        # accepted only while the FIFO has room for everything in flight (``count``:
        # accepted and not yet read), so back-pressure stops the input, never the pipeline.
        # S1..S(R) are the loop stages; the last one writes the membrane store.
        valid = [Signal(name=f"s{i + 1}_valid") for i in range(R)]
        addr = [_data(self._addr_bits, f"s{i + 1}_addr") for i in range(R)]
        step = [_data(self._step_bits, f"s{i + 1}_step") for i in range(R)]
        last_valid, last_addr = valid[-1], addr[-1]
        write = last_valid
        count = Signal(range(self.fifo_depth + 1))
        load = Signal()
        pop = Signal()
        # An update may not enter while an older update of the same neuron is in a loop
        # stage that writes after the new one reads (R >= 2: stages 1..R-1).
        hazard = Signal()
        m.d.comb += hazard.eq(Cat(*(valid[i] & (addr[i] == inp.payload.addr)
                                    for i in range(R - 1))).any())
        m.d.comb += [
            inp.ready.eq((count < self.fifo_depth) & ~hazard),
            load.eq(inp.valid & inp.ready),
            pop.eq(out.valid & out.ready),
            self.busy.eq(count != 0),
        ]
        m.d.sync += [
            valid[0].eq(load),
            *(valid[i].eq(valid[i - 1]) for i in range(1, R)),
            count.eq(count + load - pop),
        ]
        # ---- S0 -> S1: precompute everything that does not depend on U -------------------
        # Datapath registers have no reset (only the valid bits do). Controls that fan out
        # to a whole lane (shift amount and step 0, leak enable, forwarding select) are copied
        # per lane to cut their fan-out; the copies carry ``keep`` (the library's synthesis
        # keeps such flip-flops apart, as vendor tools do) and different reset values (bits
        # with equal reset values would otherwise be merged: one flip-flop then drives every
        # lane).
        b = prm.membrane_bits
        half = Signal(signed(W))             # 2^(b-1)
        theta = Signal(signed(W))
        theta_lt_max = Signal()
        m.d.comb += [
            half.eq(Cat(*(b == i + 1 for i in range(B)))),  # one-hot decode
            theta.eq(prm.threshold),
            theta_lt_max.eq(theta < half - 1),
        ]
        # shared per update: constants of the saturation, carried along the loop stages
        sat_hi = [_data(signed(B), f"s{i + 1}_sat_hi") for i in range(R)]
        spk_hi = [_data(1, f"s{i + 1}_spk_hi") for i in range(R)]
        sat_lo = [_data(signed(B), f"s{i + 1}_sat_lo") for i in range(R)]
        lane_k = [Signal(self._leak_bits, name=f"s1_k_{p}", init=p % (1 << self._leak_bits),
                         attrs={"keep": 1}) for p in range(P)]
        # per lane: I, I - theta, I - 2^(b-1), I + 2^(b-1) (see the module docstring);
        # only x uses I directly, modulo 2^B
        qw = operand_widths(self._current_bits, B)
        q = [{n: _data(signed(w), f"q_{n}_{p}") for n, w in qw.items()} for p in range(P)]
        first = inp.payload.step == 0
        # forward what is written now: per-lane compare (a copy of the last stage's address
        # per lane keeps the select of each lane's forwarding mux local)
        lane_last_addr = [Signal(self._addr_bits, name=f"s{R}_addr_{p}",
                                 init=p % (1 << self._addr_bits), attrs={"keep": 1})
                          for p in range(P)]
        m.d.sync += [a.eq(addr[-2] if R >= 2 else inp.payload.addr) for a in lane_last_addr]
        hit_now = [last_valid & (a == inp.payload.addr) for a in lane_last_addr]
        m.d.sync += [
            addr[0].eq(inp.payload.addr),
            step[0].eq(inp.payload.step),
            sat_hi[0].eq(Mux(theta_lt_max, half - 1 - theta, half - 1)),
            spk_hi[0].eq(theta_lt_max),
            sat_lo[0].eq(-half),
        ]
        # step 0: shift 0 with the leak enabled (``lif_recurrence``: U - U), per lane
        lane_first = [Signal(name=f"s1_first_{p}", init=p % 2, attrs={"keep": 1})
                      for p in range(P)]
        m.d.sync += [k.eq(Mux(first, 0, prm.leak_shift)) for k in lane_k]
        m.d.sync += [f.eq(first) for f in lane_first]
        for p in range(P):
            ops = operands(inp.payload.current[p], theta, half)
            m.d.sync += [q[p][n].eq(ops[n]) for n in q[p]]
        for i in range(1, R):
            m.d.sync += [addr[i].eq(addr[i - 1]), step[i].eq(step[i - 1]),
                         sat_hi[i].eq(sat_hi[i - 1]), spk_hi[i].eq(spk_hi[i - 1]),
                         sat_lo[i].eq(sat_lo[i - 1])]

        # ---- membrane store ---------------------------------------------------------------
        # ``old``: the membranes the update in S1 starts from (ignored at step 0); ``new``:
        # the membranes the last loop stage writes.
        lay = data.ArrayLayout(signed(B), P)
        new = Signal(lay)
        spikes = Signal(P)
        m.submodules.mem = mem = memory.Memory(shape=lay, depth=self._depth, init=[])
        wr = mem.write_port()
        m.d.comb += [wr.addr.eq(last_addr), wr.data.eq(new), wr.en.eq(write)]
        if self.small_store:
            # registers / LUT RAM read as the update is accepted: ``old`` is a register
            rd = mem.read_port(domain="comb")
            old = _data(lay, "old")
            m.d.comb += rd.addr.eq(inp.payload.addr)
            m.d.sync += [old[p].eq(Mux(hit_now[p], new[p], rd.data[p])) for p in range(P)]
        else:
            # block RAM: synchronous read as the update is accepted, forwarding in S1 from
            # ``state``, the membranes last written
            state = _data(lay, "state")
            with m.If(write):
                m.d.sync += state.eq(new)
            rd = mem.read_port(domain="sync")
            m.d.comb += [rd.addr.eq(inp.payload.addr), rd.en.eq(1)]
            lane_hit = [Signal(name=f"s1_hit_{p}", init=p % 2, attrs={"keep": 1})
                        for p in range(P)]
            m.d.sync += [h.eq(hn) for h, hn in zip(lane_hit, hit_now, strict=True)]
            old = Signal(lay)
            for p in range(P):
                m.d.comb += old[p].eq(Mux(lane_hit[p], state[p], rd.data[p]))

        # ---- the recurrence, per lane (:func:`lif_recurrence`) --------------------------------
        for p in range(P):
            new_p, spike_p = lif_recurrence(
                m, old=old[p], k=lane_k[p], first=lane_first[p], q=q[p], sat_hi=sat_hi[-1],
                spk_hi=spk_hi[-1], sat_lo=sat_lo[-1], loop_bits=W, membrane_bits=B, stages=R,
                name=str(p))
            m.d.comb += [new[p].eq(new_p), spikes[p].eq(spike_p)]

        # ---- output FIFO: spikes, echoes and the membranes (debug port) -------------------
        # LUT RAM; ``o_stream.payload`` and ``membrane`` are its asynchronous read at the
        # registered read pointer, ``o_stream.valid`` a register. It never overflows: the
        # input credit ``count`` covers the loop stages and the RAM.
        res = data.StructLayout({"out": self._spike_layout, "membrane": lay})
        m.submodules.fifo = fifo = memory.Memory(shape=res, depth=self.fifo_depth, init=[])
        fw, fr = fifo.write_port(), fifo.read_port(domain="comb")
        wp = Signal(range(self.fifo_depth))
        rp = Signal(range(self.fifo_depth))
        fill = Signal(range(self.fifo_depth + 1))
        fill_next = Signal.like(fill)
        m.d.comb += [
            fw.addr.eq(wp),
            fw.en.eq(write),
            fw.data.out.addr.eq(last_addr),
            fw.data.out.step.eq(step[-1]),
            fw.data.out.spikes.eq(spikes),
            fw.data.membrane.eq(new),
            fr.addr.eq(rp),
            out.payload.eq(fr.data.out),
            self.membrane.eq(fr.data.membrane),
            fill_next.eq(fill + write - pop),
        ]
        m.d.sync += [wp.eq(wp + write), rp.eq(rp + pop), fill.eq(fill_next),
                     out.valid.eq(fill_next != 0)]
        return m


def _signed_width(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``lo..hi``."""
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


def _data(shape: Any, name: str) -> Signal:
    """A datapath register: no reset."""
    return Signal(shape, name=name, reset_less=True)


def _reg(m: Module, name: str, v: Any, *, keep: bool = False) -> Signal:
    """``v`` registered (same shape, no reset); ``keep``: never merged with an identical
    register (a deliberate copy that cuts a fan-out)."""
    r = Signal(v.shape(), name=name, reset_less=True, attrs={"keep": 1} if keep else {})
    m.d.sync += r.eq(v)
    return r


def _wire(m: Module, name: str, v: Any) -> Signal:
    """A named combinational copy of ``v`` (readable Verilog and waveforms)."""
    w = Signal(v.shape(), name=name)
    m.d.comb += w.eq(v)
    return w


def _csa(a: Any, b: Any, c: Any, width: int) -> tuple[Any, Any]:
    """3:2 carry-save row: ``(sum, carry)`` bit vectors of ``width`` with ``a + b + c =
    sum + 2 * carry`` modulo ``2^width`` (``a``, ``b``, ``c`` signed, sign-extended)."""
    a, b, c = (_sext(v, width) for v in (a, b, c))
    return (a ^ b ^ c)[:width], ((a & b) | (a & c) | (b & c))[:width - 1]


def _cpa(row: tuple[Any, Any], carry_in: int, width: int) -> Any:
    """The carry chain after :func:`_csa`: ``sum + 2 * carry + carry_in`` modulo ``2^width``,
    signed. The carry-in sits in the free low bit of the shifted carry vector."""
    total, carry = row
    return (total[:width] + Cat(Const(carry_in, 1), carry[:width - 1]))[:width].as_signed()


def _sext(v: Any, width: int) -> Any:
    """Sign-extend signed ``v`` to ``width`` bits, as an unsigned bit vector."""
    n = len(v)
    return v.as_unsigned() if n >= width else Cat(v, v[n - 1].replicate(width - n))


def operand_widths(current_bits: int, membrane_bits: int) -> dict[str, int]:
    """Signed widths of the per-update operands ``I``, ``I - theta``, ``I - 2^(b-1)`` and
    ``I + 2^(b-1)`` (see the module docstring; ``I`` itself only modulo ``2^B``)."""
    cmin, cmax = -(1 << (current_bits - 1)), (1 << (current_bits - 1)) - 1
    hmax = 1 << (membrane_bits - 1)      # largest 2^(b-1); theta < hmax
    return {"i": min(current_bits, membrane_bits),
            "t": _signed_width(cmin - (hmax - 1), cmax - 1),
            "hi": _signed_width(cmin - hmax, cmax - 2),
            "lo": _signed_width(cmin + 2, cmax + hmax)}


def operands(cur: Any, theta: Any, half: Any) -> dict[str, Any]:
    """The operands that do not depend on ``U`` (registered by the caller before the loop):
    ``I``, ``I - theta``, ``I - 2^(b-1)``, ``I + 2^(b-1)``."""
    return {"i": cur, "t": cur - theta, "hi": cur - half, "lo": cur + half}


def saturation_constants(theta: Any, half: Any, half_minus_one: Any = None
                         ) -> tuple[Any, Any, Any]:
    """``(sat_hi, spk_hi, sat_lo)`` of one update: the membrane after a saturated-high update,
    whether it spikes, and the low saturation value (module docstring). ``half_minus_one``
    (``2^(b-1) - 1``, if the caller has it registered) keeps the decrement off the path."""
    hm1 = half - 1 if half_minus_one is None else half_minus_one
    theta_lt_max = theta < hm1
    return Mux(theta_lt_max, hm1 - theta, hm1), theta_lt_max, -half


def lif_recurrence(m: Module, *, old: Any, k: Any, first: Any, q: dict[str, Any],
                   sat_hi: Any, spk_hi: Any, sat_lo: Any, loop_bits: int, membrane_bits: int,
                   stages: int, name: str) -> tuple[Signal, Signal]:
    """One lane's LIF update ``U -> U'`` (the only LIF circuit of the repository).

    ``old`` is the stored ``U``, ``first`` whether this is step 0 (``U = 0``, whatever ``old``
    holds), ``k`` the leak shift, which the caller must make 0 when ``first``; ``q`` the
    registered operands of :func:`operands`; ``sat_hi``, ``spk_hi``, ``sat_lo``
    (:func:`saturation_constants`) must be valid ``stages - 1`` cycles after ``old``.
    ``stages`` (1..3) places registers after the shift (>= 2) and after the carry chains (3);
    returns ``(U', spike)`` that many cycles minus one after ``old``.

    Step 0 needs no zeroing of ``old``: with ``k = 0`` and the leak enabled, ``sh = U`` and
    every quantity ``U + ~sh + Q + 1 = Q`` sees ``U = 0`` (so ``first`` drives only the
    lane's shift amount and leak enable, not every membrane bit)::

        A: shift                                        | cut 1 (stages >= 2)
        B: carry-save rows, carry chains                | cut 2 (stages == 3)
        C: saturate / spike / reset select
    """
    W, B = loop_bits, membrane_bits
    u = Signal(signed(B), name=f"u_{name}")
    sh = Signal(signed(B), name=f"sh_{name}")
    m.d.comb += [u.eq(old), sh.eq(old >> k)]
    qp, len_ = q, (k != 0) | first       # leak enable (k = 0: no leak; step 0: U - U)
    if stages >= 2:
        u, sh = (_reg(m, f"{n}_{name}_r", v) for n, v in (("u", u), ("sh", sh)))
        qp = {n: _reg(m, f"q_{n}_{name}_r", v) for n, v in qp.items()}
        len_ = _reg(m, f"leak_en_{name}_r", len_, keep=True)   # one per lane: its fan-out
    nsh = Mux(len_, ~sh, -1)             # -sh = ~sh + 1: the +1 is a carry-in
    row_t = _csa(u, nsh, qp["t"], W)     # shared by s (carry-in 0) and y (carry-in 1)
    hi = _cpa(_csa(u, nsh, qp["hi"], W), 1, W) >= 0   # x > 2^(b-1) - 1
    lo = _cpa(_csa(u, nsh, qp["lo"], W), 1, W) < 0    # x < -2^(b-1)
    s = _cpa(row_t, 0, W) >= 0                         # x > theta
    x = _cpa(_csa(u, nsh, qp["i"], B), 1, B)          # x = L + I, when it fits
    y = _cpa(row_t, 1, B)                              # x - theta, when x > theta
    vals = {"hi": hi, "lo": lo, "s": s, "x": x, "y": y}
    if stages == 3:
        vals = {n: _reg(m, f"{n}_{name}_r", v) for n, v in vals.items()}
    else:
        vals = {n: _wire(m, f"{n}_{name}", v) for n, v in vals.items()}
    new = Signal(signed(B), name=f"new_{name}")
    spike = Signal(name=f"spike_{name}")
    m.d.comb += [
        new.eq(Mux(vals["hi"], sat_hi, Mux(vals["lo"], sat_lo,
                                           Mux(vals["s"], vals["y"], vals["x"])))),
        spike.eq(Mux(vals["hi"], spk_hi, vals["s"])),
    ]
    return new, spike
