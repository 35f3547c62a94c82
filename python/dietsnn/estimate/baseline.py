"""The ANN baseline: the SNN's topology as a ReLU network, converted with hls4ml.

The ANN
    Each hidden conv / linear layer becomes ``ReLU(W x)`` (no bias), each OR pool a 2x2
    max-pool, the output layer ``W x``. The weights are the model's integer weights; when the
    manifest provenance records per-layer scales (``provenance["scales"]["weights"]``, written
    by the QAT export) the float ANN ``W_int * scale`` is evaluated too. Both give the same
    predictions: without biases, ReLU and max-pool are positively homogeneous
    (``ReLU(c x) = c ReLU(x)`` for ``c > 0``), so any positive factor per layer scales the
    logits by a positive constant and leaves the argmax unchanged (up to float rounding).
    The report states which weights were used and how often the two agree.

    Better still is the ANN DIET-SNN starts from: ``--ann-checkpoint <run>/ann.pt`` (the
    ``ann`` stage of ``dietsnn train``; or ``provenance["ann_checkpoint"]`` when recorded)
    takes its float weights; the SNN's weights were fine-tuned for LIF dynamics and lose
    accuracy as a plain ReLU network.

Fixed point (hls4ml, Vitis backend, ``io_stream``)
    The same homogeneity lets us renormalise each layer by a power of two without changing
    the function: layer ``l``'s activations are divided by ``S_l = 2^k_l``, chosen on
    calibration images (64 of the training split, stratified by class: never an image the
    accuracy is measured on) so that their maximum is at
    most 8, and its weights become ``W_int * S_{l-1} / S_l`` (exact: a shift of the integer
    weights). The input is ``q / 16`` (``q`` the int8 image, so at most 8 and exact).

    * activations ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``: range +-32 (4x headroom above the
      calibration maximum, saturating beyond), resolution 2^-10 (about 1/8000 of the range
      used); 16 bits is the width one DSP48 port takes;
    * weights: ``B``-bit integers times ``2^d`` (``d = k_{l-1} - k_l``) held exactly in
      ``ap_fixed<I + max(-d, 0), I>``, ``I = max(B + d, 1)`` (``ap_fixed<8,0>``-like
      types avoided);
    * accumulators ``ap_fixed<40,16>``: 2^-24 resolution, no overflow for any sum the
      saturated inputs can produce in these layer sizes.

    The report gives the float ANN's accuracy next to hls4ml's bit-accurate emulation
    (``compile()``, g++) and how often their predictions agree, which is the check of this
    choice. The project written to ``--out`` synthesises with Vitis HLS (``build_prj.tcl``).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dietsnn import golden
from dietsnn.errors import CLIError
from dietsnn.model import Model

ACT = "ap_fixed<16,6,AP_RND_CONV,AP_SAT>"
ACCUM = "ap_fixed<40,16>"
INPUT_SHIFT = 4  # input = q / 2^4
TARGET_MAX = 8.0


class BaselineError(CLIError):
    """hls4ml / torch missing, or the conversion failed."""


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (Python and child processes: hls4ml prints and
    runs g++) to stderr, so that ``--json`` keeps stdout to one JSON object."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _torch():
    try:
        import torch
    except ImportError:
        raise BaselineError("torch not installed: pip install torch==2.13.0") from None
    return torch


def build_ann(model: Model, scales: dict[str, float] | None = None) -> Any:
    """The ANN of ``model`` as a ``torch.nn.Module`` in eval mode, float32.

    Module attribute names are the SNN layer names (``conv1``, ``pool1``, ``out``), so
    hls4ml's layers carry them too; ReLUs are ``relu_<layer>``.
    """
    torch = _torch()
    nn = torch.nn

    class ANN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.order: list[str] = []
            flat = False
            for layer in model.layers:
                w = model.weights[layer.name].astype(np.float64) if layer.has_weights else None
                if w is not None and scales:
                    w = w * scales[layer.name]
                if layer.type == "conv":
                    m = nn.Conv2d(layer.in_shape[0], layer.out_shape[0], 3, padding=1,
                                  bias=False)
                elif layer.type == "pool":
                    m = nn.MaxPool2d(2)
                else:
                    if not flat:
                        self.add_module("flatten", nn.Flatten())
                        self.order.append("flatten")
                    flat = True
                    m = nn.Linear(layer.in_shape[0], layer.out_shape[0], bias=False)
                if w is not None:
                    m.weight.data = torch.tensor(w, dtype=torch.float32)
                self.add_module(layer.name, m)
                self.order.append(layer.name)
                if layer.is_lif:
                    self.add_module(f"relu_{layer.name}", nn.ReLU())
                    self.order.append(f"relu_{layer.name}")

        def forward(self, x):  # noqa: D401 - torch signature
            for name in self.order:
                x = getattr(self, name)(x)
            return x

    return ANN().eval()


def _peak(ann: Any, x: np.ndarray, upto: str) -> float:
    """Max |output| of layer ``upto`` of ``ann`` on inputs ``x`` (later layers not run)."""
    torch = _torch()
    with torch.no_grad():
        h = torch.tensor(x, dtype=torch.float32)
        for name in ann.order:
            h = getattr(ann, name)(h)
            if name == upto:
                return float(h.abs().max())
    raise KeyError(upto)


def load_ann_checkpoint(model: Model, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Float weights of the trained ANN (the ``ann`` stage of ``dietsnn train``) in the units
    of :func:`normalise`: the first layer's weights times ``input.scale`` (the ANN sees
    ``q * input_scale``), so that every layer maps the integer image ``q`` like the model's."""
    torch = _torch()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise BaselineError(f"{path}: cannot read the ANN checkpoint: {e}") from None
    sd = state.get("model", state) if isinstance(state, dict) else {}
    names = [x.name for x in model.layers if x.has_weights]
    out = {}
    for i, name in enumerate(names):
        w = sd.get(f"weights.{i}")
        want = model.layer(name).weight_shape
        if w is None or tuple(w.shape) != want:
            raise BaselineError(f"{path}: entry 'model.weights.{i}' must be a {list(want)} "
                                f"tensor for layer {name} (a dietsnn train ANN checkpoint)")
        out[name] = w.double().numpy() * (model.input.scale if i == 0 else 1.0)
    return out


def normalise(model: Model, calib_q: np.ndarray,
              weights: dict[str, np.ndarray] | None = None) -> tuple[Any, dict[str, int]]:
    """The power-of-two normalised ANN (module docstring) and its ``k_l`` per weight layer.

    Layer ``l`` gets weights ``W_l * 2^(k_{l-1} - k_l)`` with ``k_{-1} = INPUT_SHIFT``, so its
    outputs are the integer network's divided by ``2^k_l`` and peak at most ``TARGET_MAX``
    on ``calib_q`` (quantised images). ``weights`` replaces the model's integer weights
    (:func:`load_ann_checkpoint`).
    """
    weights = weights or {k: v.astype(np.float64) for k, v in model.weights.items()}
    ann = build_ann(model)
    torch = _torch()
    x = calib_q.astype(np.float32) / 2 ** INPUT_SHIFT
    ks: dict[str, int] = {}
    prev = INPUT_SHIFT
    # layer by layer: scale, then measure the next layer on the already-scaled network
    for layer in model.layers:
        if not layer.has_weights:
            continue
        with torch.no_grad():
            m = getattr(ann, layer.name)
            m.weight.data = torch.tensor(weights[layer.name] * 2.0 ** prev,
                                         dtype=torch.float32)
        peak = _peak(ann, x, layer.name)  # the integer network's activations (S_l = 1)
        k = math.ceil(math.log2(peak / TARGET_MAX)) if peak > 0 else 0
        with torch.no_grad():
            m.weight.data = m.weight.data * 2.0 ** -k
        ks[layer.name] = k
        prev = k
    return ann, ks


def _predict_torch(ann: Any, x: np.ndarray, batch: int = 256) -> np.ndarray:
    torch = _torch()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(ann(torch.tensor(x[i:i + batch], dtype=torch.float32)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def weight_precision(bits: int, shift: int) -> str:
    """The exact type of ``bits``-bit integer weights times ``2^shift``."""
    integer = max(bits + shift, 1)
    return f"ap_fixed<{integer + max(-shift, 0)},{integer}>"


def hls_config(ann: Any, model: Model, ks: dict[str, int], reuse_factor: int,
               exact: bool = True) -> dict:
    """hls4ml configuration (name granularity) with the precisions of the module docstring."""
    import hls4ml

    cfg = hls4ml.utils.config_from_pytorch_model(
        ann, model.input.shape, granularity="name", default_precision=ACT, backend="Vitis",
        default_reuse_factor=reuse_factor)
    cfg["Model"]["Strategy"] = "Resource"
    shifts, prev = {}, INPUT_SHIFT
    for name, k in ks.items():
        shifts[name], prev = prev - k, k
    for name, lc in cfg["LayerName"].items():
        prec = lc.setdefault("Precision", {})
        if name in model.weights:
            if exact:
                wp = weight_precision(model.layer(name).weight_bits, shifts[name])
            else:  # float weights: 16 bits, the integer part from the largest weight
                peak = float(getattr(ann, name).weight.detach().abs().max())
                wp = f"ap_fixed<16,{max(math.floor(math.log2(peak)) + 2, -8) if peak else 1}>"
            prec.update(weight=wp, bias=ACT, accum=ACCUM, result=ACT)
        else:
            for key in list(prec):
                if prec[key] == "auto":
                    prec[key] = ACCUM if key == "accum" else ACT
    return cfg


def baseline(model: Model, images_u8: np.ndarray, labels: np.ndarray,
             calib_u8: np.ndarray, *, out_dir: str | os.PathLike,
             reuse_factor: int = 16, part: str = "xc7z020clg400-1",
             ann_checkpoint: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Build, convert, compile and measure the ANN baseline (module docstring).

    ``ann_checkpoint`` (else ``provenance["ann_checkpoint"]`` when that file exists) takes the
    trained ANN's float weights instead of the SNN's integer weights.
    """
    biased = [x.name for x in model.layers if x.has_bias]
    if biased:
        raise BaselineError(f"{model.name}: layers {', '.join(biased)} have a bias; the ANN "
                            f"baseline is built without biases (its power-of-two "
                            f"normalisation relies on that), so it cannot represent this model")
    try:
        import hls4ml
    except ImportError:
        raise BaselineError("hls4ml not installed: pip install hls4ml==1.3.0") from None
    t0 = time.time()
    q = model.input.quantize(np.asarray(images_u8))
    x = q.astype(np.float32) / 2 ** INPUT_SHIFT
    recorded = model.provenance.get("ann_checkpoint")
    if ann_checkpoint is None and isinstance(recorded, str) and Path(recorded).is_file():
        ann_checkpoint = recorded
    float_w = load_ann_checkpoint(model, ann_checkpoint) if ann_checkpoint else None
    ann, ks = normalise(model, model.input.quantize(np.asarray(calib_u8)), float_w)
    float_pred = _predict_torch(ann, x).argmax(axis=1)
    scales = model.provenance.get("scales", {}).get("weights") if isinstance(
        model.provenance.get("scales"), dict) else None
    have_scales = isinstance(scales, dict) and all(n in scales for n in model.weights)
    if float_w is not None:
        scaled_pred = None
        weights_note = (f"trained ANN checkpoint {ann_checkpoint} (float weights, 16-bit "
                        f"fixed point in hls4ml)")
    elif have_scales:
        xs = q.astype(np.float32) * float(model.provenance["scales"].get("input",
                                                                         model.input.scale))
        scaled_pred = _predict_torch(build_ann(model, scales), xs).argmax(axis=1)
        weights_note = ("integer weights x provenance scales (float ANN); the hls4ml model "
                        "uses the same integer weights with power-of-two layer factors, "
                        "equivalent by positive homogeneity")
    else:
        scaled_pred = None
        weights_note = ("integer weights as is (the manifest provenance records no scales); "
                        "power-of-two layer factors for fixed point, equivalent by positive "
                        "homogeneity")
    t_build = time.time()
    out = Path(out_dir)
    with stdout_to_stderr():
        cfg = hls_config(ann, model, ks, reuse_factor, exact=float_w is None)
        try:
            hm = hls4ml.converters.convert_from_pytorch_model(
                ann, hls_config=cfg, output_dir=str(out / "hls4ml_prj"),
                project_name="dietsnn_ann", backend="Vitis", io_type="io_stream", part=part)
            t_conv = time.time()
            hm.compile()
        except Exception as e:  # hls4ml raises plain exceptions for many causes
            raise BaselineError(f"hls4ml conversion or compile failed: {type(e).__name__}: "
                                f"{e}") from None
        t_comp = time.time()
        preds = []
        bar = range(0, len(x), 50)
        if progress:
            from tqdm import tqdm
            bar = tqdm(bar, desc="hls4ml predict", unit="batch", file=sys.stderr)
        for i in bar:
            y = hm.predict(np.ascontiguousarray(x[i:i + 50]))
            preds.append(np.asarray(y).reshape(len(x[i:i + 50]), -1))
    hls_pred = np.concatenate(preds).argmax(axis=1) if preds else np.zeros(0, np.int64)
    t_pred = time.time()
    snn_pred = golden.run(model, q).prediction
    labels = np.asarray(labels)

    def acc(p: np.ndarray) -> float:
        return float(np.mean(p == labels)) if len(labels) else 0.0

    return {
        "model": model.name, "kind": model.kind, "images": int(len(labels)),
        "weights": weights_note, "layer_shifts": ks, "input": f"q / 2^{INPUT_SHIFT}",
        "precision": {"activations": ACT, "accumulators": ACCUM,
                      "weights": {n: c["Precision"]["weight"] for n, c in
                                  cfg["LayerName"].items() if n in model.weights}},
        "hls4ml": {"version": hls4ml.__version__, "backend": "Vitis", "io_type": "io_stream",
                   "strategy": "Resource", "reuse_factor": reuse_factor, "part": part,
                   "project": str(out / "hls4ml_prj")},
        "accuracy": {"hls4ml": acc(hls_pred), "float_ann": acc(float_pred),
                     "float_ann_scaled": acc(scaled_pred) if scaled_pred is not None else None,
                     "snn_golden": acc(snn_pred),
                     "snn_manifest": model.metrics.get("test_accuracy")},
        "agreement": {"hls4ml_vs_float_ann": float(np.mean(hls_pred == float_pred)),
                      "float_ann_vs_scaled": (float(np.mean(float_pred == scaled_pred))
                                              if scaled_pred is not None else None),
                      "hls4ml_vs_snn": float(np.mean(hls_pred == snn_pred))},
        "seconds": {"build": round(t_build - t0, 2), "convert": round(t_conv - t_build, 2),
                    "compile": round(t_comp - t_conv, 2), "predict": round(t_pred - t_comp, 2)},
    }
