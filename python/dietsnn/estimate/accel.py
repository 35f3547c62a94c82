"""The accelerator as a pluggable input: RTL source and cycle model.

An *RTL source* is any function ``source(model, lanes) -> Design`` (Verilog text and its top
module); a *cycle model* is any function ``cycles(model, result, lanes) -> int array [N]``
giving clock cycles per image from a golden result run with ``record={"spikes"}``. The
defaults are the whole-network accelerator in :mod:`dietsnn.hw.accel`
(``generate(model, lanes=..., out_dir=...)`` writing Verilog and ``params.json``, and
``cycles.cycles_per_image(model, golden_result, lanes=...)``); tests and other designs pass
their own.
"""

from __future__ import annotations

import importlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dietsnn.errors import CLIError
from dietsnn.golden import Result
from dietsnn.model import Model

from .synth import Design

RTLSource = Callable[[Model, int], Design]
CycleModel = Callable[[Model, Result, int], np.ndarray]


class AcceleratorUnavailable(CLIError):
    """The accelerator generator or its cycle model is not importable or failed."""


def _import(module: str, attr: str) -> Callable:
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise AcceleratorUnavailable(f"{module} is not available ({e}); the whole-network "
                                     f"accelerator is needed for this estimate") from None
    fn = getattr(mod, attr, None)
    if fn is None:
        raise AcceleratorUnavailable(f"{module} has no {attr}()")
    return fn


def _top_from(params: dict) -> str | None:
    for key in ("top", "top_module", "toplevel"):
        if isinstance(params.get(key), str):
            return params[key]
    return None


def accelerator_source(model: Model, lanes: int) -> Design:
    """RTL of the :mod:`dietsnn.hw.accel` accelerator for ``model`` with ``lanes`` lanes."""
    generate = _import("dietsnn.hw.accel", "generate")
    with tempfile.TemporaryDirectory(prefix="dietsnn-accel-") as tmp:
        try:
            generate(model, lanes=lanes, out_dir=tmp)
        except (ValueError, TypeError) as e:
            raise AcceleratorUnavailable(f"accelerator generation failed for {model.name} "
                                         f"with {lanes} lanes: {e}") from None
        out = Path(tmp)
        files = sorted([*out.rglob("*.v"), *out.rglob("*.sv")])
        if not files:
            raise AcceleratorUnavailable(f"dietsnn.hw.accel.generate wrote no Verilog in {tmp}")
        params = {}
        if (out / "params.json").is_file():
            params = json.loads((out / "params.json").read_text())
        text = "\n".join(f.read_text() for f in files)
    # no recorded top: yosys picks the module nobody instantiates (hierarchy -auto-top)
    return Design(text, _top_from(params), f"{model.name}-L{lanes}")


def accelerator_cycles(model: Model, result: Result, lanes: int) -> np.ndarray:
    """Cycles per image from the :mod:`dietsnn.hw.accel.cycles` model."""
    fn = _import("dietsnn.hw.accel.cycles", "cycles_per_image")
    c = fn(model, result, lanes=lanes)
    if isinstance(c, dict):  # tolerate a {"total": [...]} style answer
        c = c.get("total", c.get("cycles"))
    arr = np.asarray(c, dtype=np.int64).reshape(-1)
    n = result.logits.shape[0]
    if arr.size == 1 and n != 1:
        arr = np.full(n, int(arr[0]))
    if arr.size != n:
        raise AcceleratorUnavailable(f"cycle model returned {arr.size} values for {n} images")
    return arr
