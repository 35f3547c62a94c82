"""AXI4-Stream edges of the accelerator: the image input framer and the result streamer.

**Input** (:class:`PixelFramer`, port ``s_axis``): ``tdata`` carries ``data_bits // pix_bits``
pixels per beat (pixel ``i`` of the beat in bits ``[i*pix_bits, (i+1)*pix_bits)``, signed,
channel-major image order ``c, y, x``; the last beat is zero-padded), ``tlast`` marks the
last beat of an image. A frame of exactly ``beats`` beats ending in ``tlast`` is an image.
A **short frame** (``tlast`` early) is dropped and counted in ``frames_short``; a **long
frame** (no ``tlast`` on beat ``beats``) is dropped, counted in ``frames_long``, and the beats
up to its ``tlast`` are discarded. Either way the next frame starts clean: a bad frame never
shifts a later image. Two image buffers: a frame is received while the previous image is
computed; ``tready`` is low only while both buffers hold images not yet taken.

**Output** (:class:`ResultStreamer`, port ``m_axis``): ``classes + 1`` beats per image of
``OUT_DATA_BITS`` bits: the class, then each logit sign-extended; ``tlast`` on the last.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .plan import OUT_DATA_BITS, AccelPlan


def axis_signature(data_bits: int) -> wiring.Signature:
    """An AXI4-Stream source: ``tdata``, ``tlast``, ``tvalid`` out; ``tready`` in."""
    return wiring.Signature({"tdata": Out(data_bits), "tlast": Out(1), "tvalid": Out(1),
                             "tready": In(1)})


def status_layout() -> data.StructLayout:
    """Frame counters (16 bits, wrapping): images taken, short and long frames dropped."""
    return data.StructLayout({"frames_ok": 16, "frames_short": 16, "frames_long": 16})


class PixelFramer(wiring.Component):
    """Receives images into two buffers (module docstring).

    Members
    -------
    s_axis : ``In(axis_signature(data_bits))``.
    wr_buf, wr_addr, wr_data, wr_en : ``Out`` image buffer write (buffer, beat, word).
    avail : ``Out(1)`` buffer ``rd_buf`` holds an image; release : ``In(1)`` a pulse: the
        consumer is done with it. status : ``Out(status_layout())``.
    """

    def __init__(self, *, plan: AccelPlan) -> None:
        self._plan = plan
        super().__init__({
            "s_axis": In(axis_signature(plan.data_bits)),
            "wr_buf": Out(1),
            "wr_addr": Out(max(1, (plan.beats - 1).bit_length())),
            "wr_data": Out(plan.data_bits),
            "wr_en": Out(1),
            "avail": Out(1),
            "rd_buf": Out(1),
            "release": In(1),
            "status": Out(status_layout()),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        n = self._plan.beats
        ax = self.s_axis
        full = Signal(2)
        wb = Signal()
        rb = Signal()
        beat = Signal(range(n + 1))
        drop = Signal()
        st = self.status
        take = ax.tvalid & ax.tready
        commit = Signal()
        m.d.comb += [
            ax.tready.eq(drop | ~full.bit_select(wb, 1)),
            self.wr_buf.eq(wb), self.wr_addr.eq(beat), self.wr_data.eq(ax.tdata),
            self.wr_en.eq(take & ~drop),
            self.avail.eq(full.bit_select(rb, 1)), self.rd_buf.eq(rb),
            commit.eq(take & ~drop & ax.tlast & (beat == n - 1)),
        ]
        with m.If(take):
            with m.If(drop):
                with m.If(ax.tlast):
                    m.d.sync += drop.eq(0)
            with m.Elif(ax.tlast):
                m.d.sync += beat.eq(0)
                with m.If(beat == n - 1):
                    m.d.sync += [wb.eq(~wb), st.frames_ok.eq(st.frames_ok + 1)]
                with m.Else():
                    m.d.sync += st.frames_short.eq(st.frames_short + 1)
            with m.Elif(beat == n - 1):
                m.d.sync += [beat.eq(0), drop.eq(1), st.frames_long.eq(st.frames_long + 1)]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
        set_ = Mux(commit, Mux(wb, 0b10, 0b01), 0)
        clr = Mux(self.release, Mux(rb, 0b10, 0b01), 0)
        m.d.sync += full.eq((full | set_) & ~clr)
        with m.If(self.release):
            m.d.sync += rb.eq(~rb)
        return m


class ResultStreamer(wiring.Component):
    """Sends one result as ``classes + 1`` beats (module docstring).

    Members
    -------
    m_axis : ``Out(axis_signature(OUT_DATA_BITS))``.
    load : ``In(1)`` a pulse (only while ``free``): take ``result`` and ``info``, which must
        hold one more clock (the load is registered).
    result : ``In(result_shape)``; info : ``In(info_shape)`` side data held with it.
    free : ``Out(1)``; held_info : ``Out(info_shape)`` the side data of the result being sent
        (valid while ``m_axis.tvalid``).
    """

    def __init__(self, *, plan: AccelPlan, result_shape: Any, info_shape: Any) -> None:
        self._plan = plan
        super().__init__({
            "m_axis": Out(axis_signature(OUT_DATA_BITS)),
            "load": In(1),
            "result": In(result_shape),
            "info": In(info_shape),
            "free": Out(1),
            "held_info": Out(info_shape),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        K = self._plan.classes
        ax = self.m_axis
        info = Signal.like(self.info)
        on = Signal()
        # the beats as a shift register: ``tdata`` and ``tlast`` come straight from registers
        beats = [Signal(OUT_DATA_BITS, name=f"beat{j}", reset_less=True) for j in range(K + 1)]
        left = Signal(range(K + 2))
        last = Signal()
        words = [self.result.cls.as_unsigned()] + [self.result.logits[j].as_signed()
                                                   for j in range(K)]
        take = Signal()     # ``load`` registered (it fans out to every held bit)
        take_c = Signal(name="take_c", attrs={"keep": 1})  # its copy for ``free``
        m.d.comb += [
            self.free.eq(~on & ~take_c),
            ax.tvalid.eq(on),
            ax.tdata.eq(beats[0]),
            ax.tlast.eq(last),
            self.held_info.eq(info),
        ]
        # ``result`` and ``info`` are still the same one clock after ``load``
        m.d.sync += [take.eq(self.load & ~on), take_c.eq(self.load & ~on)]
        with m.If(take):
            m.d.sync += [info.eq(self.info), on.eq(1), left.eq(K + 1), last.eq(K == 0)]
            m.d.sync += [bt.eq(w) for bt, w in zip(beats, words, strict=True)]
        with m.Elif(on & ax.tready):
            m.d.sync += [beats[j].eq(beats[j + 1]) for j in range(K)]
            m.d.sync += [left.eq(left - 1), last.eq(left == 2)]
            with m.If(last):
                m.d.sync += on.eq(0)
        return m
