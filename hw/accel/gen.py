"""Generate the accelerator's Verilog and ``params.json`` for one model.

``params.json`` is what testbenches and drivers read instead of re-deriving anything: the
plan (:meth:`~.plan.AccelPlan.to_json`), the top module's name, and the bit position of every
field of the packed side-band ports (``debug``, ``mon``, ``status``; Verilog names
``<port>``, flattened ``lib.data`` layouts).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data

from ...fileio import write_atomic
from ...model import Model
from .axis import status_layout
from .core import Accelerator, debug_layout, monitor_layout
from .cycles import BACK_OVERHEAD, STAGE_OVERHEAD, front_cycles

TOP = "dietsnn_accel"
FORMAT = "dietsnn-accel"
VERSION = 2


def layout_map(layout: data.StructLayout) -> dict[str, Any]:
    """``{"width", "fields": {name: {offset, bits, count, signed}}}`` of a struct layout."""
    fields = {}
    for name, f in layout:
        if isinstance(f.shape, data.ArrayLayout):
            elem = Shape.cast(f.shape.elem_shape)
            fields[name] = {"offset": f.offset, "bits": elem.width, "count": f.shape.length,
                            "signed": elem.signed}
        else:
            s = Shape.cast(f.shape)
            fields[name] = {"offset": f.offset, "bits": s.width, "count": 1,
                            "signed": s.signed}
    return {"width": layout.size, "fields": fields}


def params_json(acc: Accelerator) -> dict[str, Any]:
    """The content of ``params.json`` for a built :class:`Accelerator`."""
    p = acc.plan
    return {
        "format": FORMAT, "version": VERSION, "top": TOP,
        "pixel_order": "channel-major (c, y, x)",
        "ports": {"debug": layout_map(debug_layout(p)), "mon": layout_map(monitor_layout(p)),
                  "status": layout_map(status_layout())},
        "cycle_model": {"front_cycles": front_cycles(p), "stage_overhead": STAGE_OVERHEAD,
                        "back_overhead": BACK_OVERHEAD},
        **p.to_json(),
    }


def generate(model: Model, *, lanes: int, out_dir: str | os.PathLike,
             data_bits: int = 32) -> dict[str, Path]:
    """Write ``<out_dir>/dietsnn_accel.v`` and ``<out_dir>/params.json``.

    Returns ``{"verilog": path, "params": path}``.
    """
    acc = Accelerator(model, lanes=lanes, data_bits=data_bits)
    params = params_json(acc)
    text = verilog.convert(acc, name=TOP, emit_src=False)
    out = Path(out_dir)
    paths = {"verilog": out / f"{TOP}.v", "params": out / "params.json"}
    write_atomic(paths["verilog"], text)
    write_atomic(paths["params"], json.dumps(params, indent=1) + "\n")
    return paths
