"""Bit positions of the neuron array's packed Verilog ports, for testbenches and drivers.

Amaranth flattens each ``lib.data`` payload into one Verilog vector (``i_stream__payload``,
``o_stream__payload``, ``params``, ``membrane``). :func:`port_map` describes where every
field lies, as plain JSON (written into ``params.json``)::

    {"i_stream__payload": {"width": 61, "fields": {
        "addr": {"offset": 0, "bits": 1, "count": 1, "signed": false},
        "step": {...}, "current": {"offset": 4, "bits": 18, "count": 3, "signed": true}}},
     ...}

``count > 1`` is an array: element ``i`` sits at ``offset + i * bits``.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Shape
from amaranth.lib import data

from .neuron import NeuronArray


def _field(shape: Any, offset: int) -> dict[str, Any]:
    if isinstance(shape, data.ArrayLayout):
        elem = Shape.cast(shape.elem_shape)
        return {"offset": offset, "bits": elem.width, "count": shape.length,
                "signed": elem.signed}
    s = Shape.cast(shape)
    return {"offset": offset, "bits": s.width, "count": 1, "signed": s.signed}


def layout_map(layout: Any) -> dict[str, Any]:
    """``{"width": w, "fields": {name: {offset, bits, count, signed}}}`` of a layout."""
    if isinstance(layout, data.StructLayout):
        fields = {name: _field(f.shape, f.offset) for name, f in layout}
        return {"width": layout.size, "fields": fields}
    return {"width": Shape.cast(layout).width, "fields": {"value": _field(layout, 0)}}


def port_map(array: NeuronArray) -> dict[str, Any]:
    """Packed layout of every data port of ``array`` (see the module docstring)."""
    return {
        "i_stream__payload": layout_map(array.update_layout),
        "o_stream__payload": layout_map(array.spike_layout),
        "params": layout_map(array.params_layout),
        "membrane": layout_map(array.signature.members["membrane"].shape),
    }
