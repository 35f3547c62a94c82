"""Generate the neuron array's Verilog and its ``params.json`` from a model file.

Widths come from the model: ``current_bits`` is the largest ``model.current_bits(layer)``
over the LIF layers (the first layer, fed by 8-bit pixels, is usually the widest),
``membrane_bits`` the largest ``B``, ``timesteps`` the model's ``T``. The register schedule
(``depth = loop_stages``, 3 by default) keeps a few membranes per lane in registers; the
memory schedule sizes ``depth`` for the largest LIF layer (``ceil(neurons / lanes)``).

``params.json`` (format ``dietsnn-rtl``, version 1) is what testbenches read::

    {"format": "dietsnn-rtl", "version": 1, "top": "neuron_array",
     "verilog": "neuron_array.v", "schedule": "register", "lanes": 16, "current_bits": 18,
     "membrane_bits": 16, "depth": 3, "timesteps": 5, "addr_bits": 2, "step_bits": 3,
     "leak_bits": 4, "loop_stages": 3, "latency": 4,
     "model": {"name": ..., "kind": ..., "timesteps": 5},
     "layers": [{"name": "conv1", "neurons": 8192, "groups": 512, "current_bits": 18,
                 "membrane_bits": 16, "leak_shift": 0, "threshold": 4786}, ...],
     "ports": {... dietsnn.hw.ports.port_map ...}}
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from amaranth.back import rtlil, verilog
from dietsnn.estimate.synth import KEEP_COPIES
from dietsnn.fileio import write_atomic
from dietsnn.model import Model

from . import tools
from .neuron import NeuronArray
from .ports import port_map

TOP = "neuron_array"
SCHEDULES = ("register", "memory")
FORMAT = "dietsnn-rtl"
VERSION = 1


def array_config(model: Model, *, lanes: int, schedule: str = "register",
                 loop_stages: int = 3) -> dict[str, int]:
    """Constructor arguments of the :class:`NeuronArray` that runs every LIF layer of ``model``.

    The register schedule keeps ``depth = loop_stages`` membranes per lane (groups taken
    ``loop_stages`` at a time); the memory schedule holds the largest layer.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    lif = model.lif_layers
    if not lif:
        raise ValueError(f"model {model.name!r} has no hidden LIF layer: nothing to generate")
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= 64:
        raise ValueError(f"lanes must be an integer in 1..64, not {lanes!r}")
    if isinstance(loop_stages, bool) or loop_stages not in (1, 2, 3):
        raise ValueError(f"loop_stages must be 1, 2 or 3, not {loop_stages!r}")
    depth = loop_stages if schedule == "register" else max(-(-x.neurons // lanes) for x in lif)
    return {
        "lanes": lanes,
        "current_bits": max(model.current_bits(x) for x in lif),
        "membrane_bits": max(x.membrane_bits for x in lif),
        "depth": depth,
        "timesteps": model.timesteps,
        "loop_stages": loop_stages,
    }


def describe(array: NeuronArray, model: Model | None = None,
             schedule: str = "register") -> dict[str, Any]:
    """The ``params.json`` object for ``array`` (and the layers of ``model``)."""
    d: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "top": TOP, "verilog": f"{TOP}.v",
        "schedule": schedule, "lanes": array.lanes, "current_bits": array.current_bits,
        "membrane_bits": array.membrane_bits, "depth": array.depth,
        "timesteps": array.timesteps, "addr_bits": array.addr_bits,
        "step_bits": array.step_bits, "leak_bits": array.leak_bits,
        "loop_stages": array.loop_stages, "latency": array.latency,
        "ports": port_map(array),
    }
    if model is not None:
        d["model"] = {"name": model.name, "kind": model.kind, "timesteps": model.timesteps}
        d["layers"] = [{
            "name": x.name, "neurons": x.neurons, "groups": -(-x.neurons // array.lanes),
            "current_bits": model.current_bits(x), "membrane_bits": x.membrane_bits,
            "leak_shift": x.leak_shift, "threshold": x.threshold,
        } for x in model.lif_layers]
    return d


#: Yosys passes from Amaranth's RTLIL to the Verilog we ship. ``proc``, ``memory_collect`` and
#: ``write_verilog`` are what ``amaranth.back.verilog`` runs; ``flatten`` gives one module
#: (the output FIFO is inlined); ``opt``/``wreduce``/``opt_clean -purge`` drop the
#: unused debug aliases and unused high bits Amaranth's width rules leave behind, and the
#: power-on ``init`` values go (``rst`` is synchronous and the testbenches apply it), so
#: ``verilator -Wall`` reports nothing but width warnings (see :mod:`dietsnn.hw.lint`).
#: Flip-flops whose wire carries ``keep`` (per-lane copies that cut a fan-out) stay apart
#: (:data:`~dietsnn.estimate.synth.KEEP_COPIES`): ``opt`` would merge them back into one.
YOSYS_SCRIPT = ("read_rtlil {rtlil}; proc; " + "; ".join(KEEP_COPIES) + "; flatten; "
                "memory_collect; opt -purge; wreduce; opt_clean -purge; setattr -unset init w:*; "
                "write_verilog -norename -noattr {verilog}")


def to_verilog(array: NeuronArray) -> str:
    """Plain Verilog-2001 of ``array`` (top module ``neuron_array``).

    Amaranth's RTLIL (``amaranth.back.rtlil``) through Yosys (:data:`YOSYS_SCRIPT`); falls
    back to ``amaranth.back.verilog`` (same logic, more lint noise) without a full Yosys.
    """
    yosys = tools.yosys()
    text = rtlil.convert(array, name=TOP, emit_src=False)
    if yosys is None:
        return verilog.convert(array, name=TOP, emit_src=False)
    with tempfile.TemporaryDirectory(prefix="dietsnn-rtl-") as tmp:
        (Path(tmp) / "in.il").write_text(text)
        # YoWASP tools see only the working directory: relative paths
        script = YOSYS_SCRIPT.format(rtlil="in.il", verilog="out.v")
        r = subprocess.run([yosys, "-q", "-p", script], cwd=tmp, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"yosys failed on the generated RTLIL:\n{r.stderr[-3000:]}")
        return (Path(tmp) / "out.v").read_text()


def write_rtl(out_dir: str | os.PathLike, *, model: Model | None = None,
              array: NeuronArray | None = None, lanes: int = 16,
              schedule: str = "register", loop_stages: int = 3) -> dict[str, Any]:
    """Write ``neuron_array.v`` and ``params.json`` into ``out_dir``; return the params.

    Give ``model`` (widths derived from it) or a ready ``array`` (or both: the array is then
    used and the model only describes the layers).
    """
    if array is None:
        if model is None:
            raise ValueError("write_rtl needs a model or an array")
        array = NeuronArray(**array_config(model, lanes=lanes, schedule=schedule,
                                           loop_stages=loop_stages))
    else:
        schedule = "register" if array.depth <= array.loop_stages else "memory"
    params = describe(array, model, schedule)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / params["verilog"], to_verilog(array))
    write_atomic(out / "params.json", json.dumps(params, indent=1) + "\n")
    return params


def load_params(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a ``params.json`` (or the folder holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "params.json"
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such file (run 'dietsnn rtl' first)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON: {e}") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("version") != VERSION:
        raise ValueError(f"{p}: expected a {FORMAT} version {VERSION} params file")
    for key in ("top", "verilog", "lanes", "current_bits", "membrane_bits", "depth", "ports"):
        if key not in d:
            raise ValueError(f"{p}: missing field {key!r}")
    return d
