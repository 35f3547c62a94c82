"""The DIET-SNN network for training: the ANN, the float SNN and the quantised (QAT) SNN.

One module holds the weights of every mode so the stages hand over without conversion:

``ann``
    ReLU network with max pooling and dropout (DIET-SNN's pre-training), on the dequantised
    int8 input image ``q * input_scale``; with ``batchnorm`` a BatchNorm after each hidden
    conv / linear layer, which :meth:`DietSNN.fold_batchnorm` folds into the weights and the
    bias (``W' = W g``, ``b' = (b - mean) g + beta``, ``g = gamma / sqrt(var + eps)``, the
    running statistics) before the SNN stages, which never see it.
``float``
    The SNN in float units: ``u <- lam * u + I``, ``s = u > v_th``, ``u <- u - v_th * s``.
``qat``
    The SNN in integer units, identical to the golden model in eval mode::

        W_int = clip(rint(W / s_w), -(2^(b-1) - 1), 2^(b-1) - 1)   (STE), s_w per layer
        theta = clip(rint(v_th / S), 1, 2^(B-1) - 1)                (STE), S = layer scale
        k     = rint(-log2(1 - lam)) in 1..B-1, or 0 (no leak)      (STE, lam_q = 1 - 2^-k)
        S     = input_scale * s_w  (first layer),   s_w  (hidden layers: spikes are 0/1)
        b_int = clip(rint(b / S), -(2^(bb-1) - 1), 2^(bb-1) - 1)   (STE; layers with a bias)

    The first layer sees the int8 image ``q`` (the same current every step); membranes
    saturate to ``B`` bits; the output layer accumulates ``V = sum_t (W_int s_t + b_int)``
    and the loss sees ``V * s_w(out)``. With ``bias`` every conv and linear layer has a bias
    ``b`` (float units), added to its current at every step (``bb``: the layer's membrane
    width, :data:`OUTPUT_BIAS_BITS` on the output).

Integer values are carried in float32 tensors: every current and membrane is an integer far
below 2^24, so float32 arithmetic on them is exact (and TF32 is exact too, since int8
operands fit its 10-bit mantissa).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from dietsnn.model import InputSpec, Layer
from dietsnn.topology import build_layers
from torch import nn

from .lif import lif, lif_pool

MODES = ("ann", "float", "qat")
#: Width of the output layer's integer bias (the hidden layers' is their membrane width).
OUTPUT_BIAS_BITS = 16


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``rint(x)`` forward, identity backward (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def leak_shift(lam: float, max_shift: int) -> int:
    """Shift ``k`` of ``lam_q = 1 - 2^-k`` nearest to ``lam`` in log space; 0 = no leak."""
    if lam >= 1.0:
        return 0
    k = round(-math.log2(max(1.0 - lam, 1e-30)))
    if k > max_shift:
        return 0
    return max(k, 1)


class DietSNN(nn.Module):
    """Weights, thresholds and leaks of one topology; ``forward(q, mode=...)``.

    Parameters
    ----------
    arch : architecture string (``dietsnn.topology``).
    input_spec : the input encoding (its ``scale`` maps int8 pixels to float units).
    timesteps : ``T``.
    weight_bits, membrane_bits : quantisation widths (``membrane_bits`` may be a list, one per
        LIF layer).
    dropout : (ann, snn) dropout probabilities.
    bias : every conv and linear layer gets a bias (``bias_bits``: its integer width, per
        weighted layer; ``None`` for a layer without bias, as :func:`~.export.net_from_model`
        sets for a model whose layers differ).
    batchnorm : the ANN has a BatchNorm after each hidden layer (needs ``bias``, which
        receives its shift when it is folded).
    """

    def __init__(
        self,
        arch: str,
        *,
        input_spec: InputSpec,
        timesteps: int = 5,
        weight_bits: int = 8,
        membrane_bits: int | list[int] = 16,
        dropout: tuple[float, float] = (0.2, 0.1),
        bias: bool = False,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.input_spec = input_spec
        self.timesteps = timesteps
        self.weight_bits = weight_bits
        self.dropout = dropout
        self.layers: tuple[Layer, ...] = build_layers(arch, input_spec.shape)
        n_lif = sum(x.is_lif for x in self.layers)
        mb = [membrane_bits] * n_lif if isinstance(membrane_bits, int) else list(membrane_bits)
        if len(mb) != n_lif:
            raise ValueError(f"membrane_bits: give {n_lif} values (one per LIF layer), not {mb}")
        self.membrane_bits = mb
        self.weights = nn.ParameterList()
        for layer in self.layers:
            if layer.has_weights:
                w = torch.empty(layer.weight_shape)
                nn.init.kaiming_normal_(w, nonlinearity="relu")
                if layer.output:  # small logits at the start: no batch norm to tame them
                    w.mul_(0.1)
                self.weights.append(nn.Parameter(w))
        n_w = len(self.weights)
        self.bias_bits: list[int | None] = []
        if bias:
            self.biases = nn.ParameterList(
                nn.Parameter(torch.zeros(x.weight_shape[0])) for x in self.layers
                if x.has_weights)
            lif_bits = iter(mb)
            self.bias_bits = [next(lif_bits) if x.is_lif else OUTPUT_BIAS_BITS
                              for x in self.layers if x.has_weights]
        if batchnorm and not bias:
            raise ValueError("batchnorm needs bias: folding it moves its shift into the bias")
        self.batchnorm = batchnorm
        if batchnorm:
            self.bn = nn.ModuleList(
                nn.BatchNorm2d(x.out_shape[0]) if x.type == "conv"
                else nn.BatchNorm1d(x.out_shape[0]) for x in self.layers if x.is_lif)
            # True once folded (kept in checkpoints): the ANN forward then skips the BatchNorm
            self.register_buffer("bn_folded", torch.zeros((), dtype=torch.bool))
        self.v_th = nn.Parameter(torch.ones(n_lif))
        self.leak = nn.Parameter(torch.ones(n_lif))
        self.register_buffer("w_scale", torch.ones(n_w))
        self.register_buffer("lut", torch.from_numpy(input_spec.lut().astype("float32")))

    # -- helpers -----------------------------------------------------------------------------
    def quantize_input(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, C, H, W]`` -> the integer image as float32 (the shared LUT)."""
        c = torch.arange(images_u8.shape[1], device=images_u8.device)[None, :, None, None]
        return self.lut[c, images_u8.long()]

    @property
    def qmax(self) -> int:
        return 2 ** (self.weight_bits - 1) - 1

    def set_weight_scales(self) -> None:
        """Per-layer weight scale ``s_w = max|W| / (2^(b-1) - 1)`` (fixed during QAT)."""
        with torch.no_grad():
            for i, w in enumerate(self.weights):
                self.w_scale[i] = w.abs().max().clamp_min(1e-8) / self.qmax

    def int_weight(self, i: int) -> torch.Tensor:
        w = self.weights[i] / self.w_scale[i]
        return torch.clamp(round_ste(w), -self.qmax, self.qmax)

    def int_bias(self, i: int) -> torch.Tensor | None:
        """The integer bias of weighted layer ``i`` (``None``: the layer has none)."""
        if not self.bias_bits or self.bias_bits[i] is None:
            return None
        lim = 2 ** (self.bias_bits[i] - 1) - 1
        return torch.clamp(round_ste(self.biases[i] / self.layer_scale(i)), -lim, lim)

    def float_bias(self, i: int) -> torch.Tensor | None:
        """The float bias of weighted layer ``i`` (``None``: the layer has none)."""
        if not self.bias_bits or self.bias_bits[i] is None:
            return None
        return self.biases[i]

    def layer_scale(self, i_weight: int) -> torch.Tensor:
        """Float value of one integer unit of the membrane of weighted layer ``i_weight``."""
        s = self.w_scale[i_weight]
        return s * self.input_spec.scale if i_weight == 0 else s

    def int_threshold(self, j: int, i_weight: int) -> torch.Tensor:
        b = self.membrane_bits[j]
        th = round_ste(self.v_th[j] / self.layer_scale(i_weight))
        return torch.clamp(th, 1, 2 ** (b - 1) - 1)

    def shift(self, j: int) -> int:
        return leak_shift(float(self.leak[j].detach()), self.membrane_bits[j] - 1)

    def quant_leak(self, j: int) -> torch.Tensor:
        k = self.shift(j)
        lam_q = 1.0 if k == 0 else 1.0 - 2.0 ** -k
        return self.leak[j] + (lam_q - self.leak[j]).detach()

    def clamp_parameters(self) -> None:
        """Keep leaks in [0.5, 1] (shift >= 1 or no leak) and thresholds positive."""
        with torch.no_grad():
            self.leak.clamp_(0.5, 1.0)
            self.v_th.clamp_(min=1e-4)

    # -- forward -----------------------------------------------------------------------------
    def _synapse(self, layer: Layer, x: torch.Tensor, w: torch.Tensor,
                 b: torch.Tensor | None = None) -> torch.Tensor:
        if layer.type == "conv":  # channels-last: about 2x faster convolutions on CPU
            cl = torch.channels_last
            return F.conv2d(x.contiguous(memory_format=cl), w.contiguous(memory_format=cl),
                            b, padding=1)
        return F.linear(x.flatten(1), w, b)

    def forward(
        self,
        q: torch.Tensor,
        mode: str = "qat",
        *,
        timesteps: int | None = None,
        record: dict | None = None,
    ) -> torch.Tensor:
        """Logits (float units) for integer images ``q`` ``[N, C, H, W]`` (float32 tensor).

        ``record`` (a dict) receives, per layer name, the spikes ``[T, N, ...]``; in ``qat``
        mode also ``"_logits_int"``, the integer output membrane ``V``.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode == "ann":
            return self._forward_ann(q)
        return self._forward_snn(q, mode, timesteps or self.timesteps, record,
                                 keep_spikes=record is not None)

    def integer_logits(self, q: torch.Tensor, *, timesteps: int | None = None) -> torch.Tensor:
        """The integer output membrane ``V`` (float32 tensor) of the QAT forward."""
        rec: dict = {}
        self._forward_snn(q, "qat", timesteps or self.timesteps, rec, keep_spikes=False)
        return rec["_logits_int"]

    def _forward_snn(self, q: torch.Tensor, mode: str, t_steps: int, record: dict | None,
                     *, keep_spikes: bool) -> torch.Tensor:
        n = q.shape[0]
        x: torch.Tensor | None = None  # spikes [T*N, ...]
        iw = j = 0
        drop = self.dropout[1] if self.training else 0.0
        layers = self.layers
        i = 0
        while i < len(layers):
            layer = layers[i]
            i += 1
            if layer.type == "pool":
                x = F.max_pool2d(x, 2)
                if keep_spikes:
                    record[layer.name] = x.view(t_steps, n, *x.shape[1:])
                continue
            w = self.int_weight(iw) if mode == "qat" else self.weights[iw]
            b = self.int_bias(iw) if mode == "qat" else self.float_bias(iw)
            if x is None:
                inp = q if mode == "qat" else q * self.input_spec.scale
                cur = self._synapse(layer, inp, w, b)
            else:
                if drop > 0:  # one mask per image, the same at every step (DIET-SNN)
                    xs = x.view(t_steps, n, *x.shape[1:])
                    keep = 1.0 - drop  # the mask has the spikes' memory layout
                    mask = (torch.empty_like(xs[:1]).uniform_() < keep).to(x.dtype) / keep
                    x = (xs * mask).flatten(0, 1)
                cur = self._synapse(layer, x, w, b).view(t_steps, n, *layer.out_shape)
            if layer.output:
                v = cur.sum(0) if x is not None else cur * t_steps
                if record is not None and mode == "qat":
                    record["_logits_int"] = v
                scale = self.w_scale[iw] if mode == "qat" else 1.0
                return v * scale
            if mode == "qat":
                b = self.membrane_bits[j]
                args = (self.int_threshold(j, iw), self.quant_leak(j))
                kw = {"shift": self.shift(j), "bounds": (-(2.0 ** (b - 1)), 2.0 ** (b - 1) - 1)}
            else:
                args = (self.v_th[j], self.leak[j])
                kw = {"shift": None, "bounds": None}
            kw["steps"] = t_steps if x is None else None
            # LIF + 2x2 max pooling in one pass (the full-size spikes are never stored),
            # unless every layer's spikes are wanted
            if not keep_spikes and i < len(layers) and layers[i].type == "pool":
                x = lif_pool(cur, *args, **kw).flatten(0, 1)
                i += 1
            else:
                s = lif(cur, *args, **kw)
                if keep_spikes:
                    record[layer.name] = s
                x = s.flatten(0, 1)
            iw += 1
            j += 1
        raise AssertionError("the last layer is the output layer")

    def _forward_ann(self, q: torch.Tensor) -> torch.Tensor:
        x = q * self.input_spec.scale
        iw = j = 0
        bn = self.batchnorm and not bool(self.bn_folded)
        for layer in self.layers:
            if layer.type == "pool":
                x = F.max_pool2d(x, 2)
                continue
            if iw > 0 and self.training and self.dropout[0] > 0:
                x = F.dropout(x, self.dropout[0], training=True)
            x = self._synapse(layer, x, self.weights[iw], self.float_bias(iw))
            iw += 1
            if not layer.output:
                if bn:
                    x = self.bn[j](x)
                x = F.relu(x)
                j += 1
        return x

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold each hidden layer's BatchNorm (its running statistics, eval semantics) into
        the layer's weights and bias (module docstring); the ANN forward is unchanged in eval
        mode and no longer uses the BatchNorm. Folding twice is an error."""
        if not self.batchnorm or bool(self.bn_folded):
            raise ValueError("no unfolded BatchNorm to fold")
        iw = j = 0
        for layer in self.layers:
            if not layer.has_weights:
                continue
            if layer.is_lif:
                bn = self.bn[j]
                g = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                self.weights[iw].mul_(g.view(-1, *[1] * (self.weights[iw].dim() - 1)))
                self.biases[iw].copy_((self.biases[iw] - bn.running_mean) * g + bn.bias)
                j += 1
            iw += 1
        self.bn_folded.fill_(True)

    def ann_parameters(self) -> list[nn.Parameter]:
        """What the ANN stage trains: the weights, and the biases and BatchNorms if any."""
        out = list(self.weights.parameters())
        if self.bias_bits:
            out += list(self.biases.parameters())
        if self.batchnorm:
            out += list(self.bn.parameters())
        return out

    # -- export ------------------------------------------------------------------------------
    def integer_parameters(self) -> dict:
        """Integer weights, biases (``None`` for a layer without), thresholds and shifts
        exactly as the QAT forward uses them."""
        with torch.no_grad():
            weights, biases, thresholds, shifts = [], [], [], []
            iw = j = 0
            for layer in self.layers:
                if not layer.has_weights:
                    continue
                weights.append(self.int_weight(iw).cpu().numpy())
                b = self.int_bias(iw)
                biases.append(None if b is None else b.cpu().numpy())
                if layer.is_lif:
                    thresholds.append(int(self.int_threshold(j, iw)))
                    shifts.append(self.shift(j))
                    j += 1
                iw += 1
        return {"weights": weights, "biases": biases, "thresholds": thresholds,
                "leak_shifts": shifts}
