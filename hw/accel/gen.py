"""Generate the accelerator's Verilog and ``params.json`` for one model.

``params.json`` is what testbenches and drivers read instead of re-deriving anything: the
plan (:meth:`~.plan.AccelPlan.to_json`), the top module's name, the weight style and the bit
positions of every field of the packed ports (``o__payload``, ``debug``, ``wload__payload``).
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
from .core import Accelerator, debug_layout, load_layout, result_layout

TOP = "dietsnn_accel"


def _layout_map(layout: data.StructLayout) -> dict[str, Any]:
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
    plan = acc.plan
    ports = {"o__payload": _layout_map(result_layout(plan)),
             "debug": _layout_map(debug_layout(plan))}
    if acc.weights == "loadable":
        ports["wload__payload"] = _layout_map(load_layout(plan))
    return {"top": TOP, "weights": acc.weights, "pixel_order": "channel-major (c, y, x)",
            "ports": ports, **plan.to_json()}


def generate(
    model: Model, *, lanes: int, out_dir: str | os.PathLike, weights: str = "rom",
) -> dict[str, Path]:
    """Write ``<out_dir>/dietsnn_accel.v`` and ``<out_dir>/params.json``.

    Parameters
    ----------
    model : the integer model. lanes : a power of two. weights : ``"rom"`` or ``"loadable"``.

    Returns ``{"verilog": path, "params": path}``.
    """
    acc = Accelerator(model, lanes=lanes, weights=weights)
    text = verilog.convert(acc, name=TOP, emit_src=False)
    out = Path(out_dir)
    paths = {"verilog": out / f"{TOP}.v", "params": out / "params.json"}
    write_atomic(paths["verilog"], text)
    write_atomic(paths["params"], json.dumps(params_json(acc), indent=1) + "\n")
    return paths
