"""Export a trained :class:`~dietsnn.quant.network.DietSNN` to the integer model file.

The export takes the integer weights, thresholds and leak shifts exactly as the QAT forward
uses them, so the golden model on the exported file reproduces the QAT network in eval mode
bit for bit (:func:`compare_with_golden` checks logits and every spike train).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from dietsnn import golden
from dietsnn.model import Model, bias_dtype, weight_dtype

from .network import DietSNN


def to_model(
    net: DietSNN,
    *,
    name: str,
    kind: str = "trained",
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Model:
    """Build the integer :class:`~dietsnn.model.Model` of ``net`` (in QAT semantics)."""
    p = net.integer_parameters()
    layers, weights, biases = [], {}, {}
    iw = j = 0
    for layer in net.layers:
        kw: dict[str, Any] = {}
        if layer.has_weights:
            weights[layer.name] = np.rint(p["weights"][iw]).astype(weight_dtype(net.weight_bits))
            kw["weight_bits"] = net.weight_bits
            if p["biases"][iw] is not None:
                kw["bias_bits"] = bb = net.bias_bits[iw]
                biases[layer.name] = np.rint(p["biases"][iw]).astype(bias_dtype(bb))
            iw += 1
        if layer.is_lif:
            kw.update(membrane_bits=net.membrane_bits[j], leak_shift=p["leak_shifts"][j],
                      threshold=p["thresholds"][j])
            j += 1
        layers.append(dataclasses.replace(layer, **kw) if kw else layer)
    prov = dict(provenance or {})
    prov.setdefault("scales", {
        "input": net.input_spec.scale,
        "weights": {x.name: float(s) for x, s in zip(
            [x for x in net.layers if x.has_weights], net.w_scale.tolist(), strict=True)},
    })
    return Model(name=name, timesteps=net.timesteps, input=net.input_spec, layers=tuple(layers),
                 weights=weights, kind=kind, provenance=prov, metrics=dict(metrics or {}),
                 biases=biases)


def net_from_model(model: Model) -> DietSNN:
    """A :class:`DietSNN` whose QAT forward uses exactly the integer parameters of ``model``.

    Needs the per-layer weight scales recorded at export (``provenance.scales``); without
    them every scale is 1, which changes nothing in integer units.
    """
    from dietsnn.topology import arch_of

    lif_bits = [x.membrane_bits for x in model.lif_layers]
    wb = {x.weight_bits for x in model.layers if x.has_weights}
    if len(wb) != 1:
        raise ValueError(f"{model.name}: mixed weight widths {sorted(wb)} are not trainable here")
    has_bias = any(x.has_bias for x in model.layers)
    net = DietSNN(arch_of(model.layers), input_spec=model.input, timesteps=model.timesteps,
                  weight_bits=wb.pop(), membrane_bits=lif_bits, bias=has_bias)
    if has_bias:
        net.bias_bits = [x.bias_bits for x in model.layers if x.has_weights]
    scales = model.provenance.get("scales", {}).get("weights", {})
    iw = j = 0
    with torch.no_grad():
        for layer in model.layers:
            if not layer.has_weights:
                continue
            net.w_scale[iw] = float(scales.get(layer.name, 1.0))
            w = torch.from_numpy(model.weights[layer.name].astype(np.float32))
            net.weights[iw].copy_(w * net.w_scale[iw])
            if layer.has_bias:
                b = torch.from_numpy(model.biases[layer.name].astype(np.float32))
                net.biases[iw].copy_(b * net.layer_scale(iw))
            if layer.is_lif:
                net.v_th[j] = layer.threshold * net.layer_scale(iw)
                k = layer.leak_shift
                net.leak[j] = 1.0 if k == 0 else 1.0 - 2.0 ** -k
                j += 1
            iw += 1
    return net


@torch.no_grad()
def qat_eval(
    net: DietSNN, images_u8: np.ndarray, *, batch: int = 256, timesteps: int | None = None,
    record: bool = False, device: str | torch.device = "cpu",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Integer logits ``V`` of the QAT forward in eval mode, and (``record``) spikes per layer
    as uint8 ``[N, T, ...]``."""
    net.eval()
    logits, spikes = [], {}
    for i in range(0, len(images_u8), batch):
        x = torch.from_numpy(np.ascontiguousarray(images_u8[i:i + batch])).to(device)
        if not record:
            v = net.integer_logits(net.quantize_input(x), timesteps=timesteps)
            logits.append(v.cpu().double().numpy())
            continue
        rec: dict = {}
        net(net.quantize_input(x), "qat", timesteps=timesteps, record=rec)
        logits.append(rec.pop("_logits_int").cpu().double().numpy())
        for k, v in rec.items():
            spikes.setdefault(k, []).append(v.transpose(0, 1).cpu().numpy().astype(np.uint8))
    out = np.rint(np.concatenate(logits)).astype(np.int64)
    return out, {k: np.concatenate(v) for k, v in spikes.items()}


def compare_with_golden(
    net: DietSNN, model: Model, images_u8: np.ndarray, *, device: str = "cpu"
) -> dict[str, Any]:
    """Run both on ``images_u8`` and count mismatching logits and spikes (should be 0)."""
    net = net.to(device)
    q_logits, q_spikes = qat_eval(net, images_u8, record=True, device=device)
    g = golden.run(model, model.input.quantize(images_u8), record={"spikes"})
    report: dict[str, Any] = {
        "images": int(len(images_u8)),
        "logit_mismatches": int(np.count_nonzero(q_logits != g.logits)),
        "spike_mismatches": {k: int(np.count_nonzero(q_spikes[k] != g.spikes[k]))
                             for k in g.spikes},
    }
    report["exact"] = report["logit_mismatches"] == 0 and not any(
        report["spike_mismatches"].values())
    return report
