"""The integer model file: one self-describing, versioned ``.npz`` per trained network.

Layout of the file (a plain zip of ``.npy`` members, never pickled)::

    manifest            uint8 [n]   UTF-8 JSON, described below
    weights/<layer>     int8 or int16; conv [C_out, C_in, 3, 3], linear [F_out, F_in]
    bias/<layer>        int16 or int32 [C_out] / [F_out]; only layers with ``bias_bits``

Manifest (format version 2; version 1 is the same without ``bias_bits`` and ``bias/``)::

    {
      "format": "dietsnn-model", "version": 2,
      "name": "cifar10", "kind": "trained" | "random-test",
      "timesteps": 5,
      "input": {"shape": [3, 32, 32], "mean": [..3], "std": [..3], "scale": 0.017857, "bits": 8},
      "classes": ["airplane", ...],
      "layers": [
        {"name": "conv1", "type": "conv", "in_shape": [3, 32, 32], "out_shape": [32, 32, 32],
         "weight_bits": 8, "membrane_bits": 16, "leak_shift": 0, "threshold": 93},
        {"name": "pool1", "type": "pool", "in_shape": [32, 32, 32], "out_shape": [32, 16, 16]},
        ...
        {"name": "fc", "type": "linear", "in_shape": [2048], "out_shape": [10],
         "weight_bits": 8, "bias_bits": 16, "output": true}
      ],
      "provenance": {...free-form JSON: config, seed, epochs, dataset...},
      "metrics": {...free-form JSON: measured accuracies...}
    }

Every field is checked on load; any problem raises :class:`ModelFileError` naming the file and
the field. Loading is bounded: member sizes, the manifest's size, its JSON nesting and
integers, and every weight member's ``.npy`` header (dtype and shape against the manifest) are
checked before any data is read or inflated, so a decompression bomb is refused in a few
kilobytes of memory (see ``docs/robustness.md``). Writing is atomic: a temporary file in the
same folder, then a rename. A model without biases is written as version 1 (byte for byte
what earlier releases wrote), one with a bias as version 2; both versions load.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, ModelFileError, one_line
from .fileio import atomic_path

FORMAT = "dietsnn-model"
#: The newest format version; a model with a bias is written as 2, one without as 1.
VERSION = 2
#: Versions :func:`load` reads (version 1 has no biases).
VERSIONS = (1, 2)
LAYER_TYPES = ("conv", "pool", "linear")
MODEL_KINDS = ("trained", "random-test")
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
#: Per-channel mean and standard deviation of CIFAR-10 training pixels in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

#: Limits of :func:`load` (a model file is untrusted input).
MAX_MANIFEST_BYTES = 1 << 20  # the manifest JSON (the shipped ones are ~4 kB)
MAX_WEIGHT_BYTES = 256 << 20  # all weight members together (cifar10: 0.3 MB)
MAX_MEMBERS = 4096  # zip members
MAX_JSON_DEPTH = 32  # nesting of JSON arrays and objects in the manifest
MAX_JSON_INT_DIGITS = 19  # integers beyond int64 are refused
MAX_DIM = 1 << 20  # one entry of a shape
MAX_ELEMENTS = 1 << 31  # elements of one shape (neurons of a layer, pixels of the input)

#: What reading a damaged zip member can raise (besides OSError and EOFError).
_ZIP_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error,
                                            NotImplementedError, RuntimeError)
try:
    import lzma  # bz2 fails with OSError

    _ZIP_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover - Python built without them
    pass

#: Names of models and layers: letters, digits and ``_``, starting with a letter. Used in
#: file and folder names, so never a path.
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
#: Names of models and training runs may also hold ``-`` and ``.`` (not first, no ``..``).
MODEL_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}\Z")


def is_identifier(name: object, *, model: bool = False) -> bool:
    """True if ``name`` is a layer name (or, with ``model``, a model or run name).

    Such names are safe as one component of a path: no separator, no ``..``, not absolute,
    not empty, ASCII only.
    """
    if not isinstance(name, str):
        return False
    if model:
        return bool(MODEL_NAME_RE.match(name)) and ".." not in name
    return bool(NAME_RE.match(name))


def _fail(where: str, msg: str) -> None:
    raise ModelFileError(f"{where}: {one_line(msg, 1000)}")


# --------------------------------------------------------------------------------------------
# Input encoding
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputSpec:
    """Direct input encoding: how the host turns uint8 pixels into the int8 image.

    For channel ``c`` and pixel value ``x`` in 0..255::

        n = (x / 255 - mean[c]) / std[c]                (per-channel normalisation)
        q = clip(rint(n / scale), -(2^(bits-1) - 1), 2^(bits-1) - 1)

    ``rint`` rounds half to even and is evaluated in float64. Because ``x`` takes only 256
    values per channel the whole map is a lookup table (:meth:`lut`), which training, the
    golden model and the host all share, so the int8 image is identical everywhere.
    """

    shape: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD
    scale: float = 1.0 / 56.0
    bits: int = 8

    def __post_init__(self) -> None:
        check_input(self, "input")

    def lut(self) -> np.ndarray:
        """Lookup table ``int8/int16 [channels, 256]`` from pixel value to quantised input."""
        x = np.arange(256, dtype=np.float64) / 255.0
        mean = np.asarray(self.mean, dtype=np.float64)[:, None]
        std = np.asarray(self.std, dtype=np.float64)[:, None]
        qmax = 2 ** (self.bits - 1) - 1
        q = np.clip(np.rint((x[None, :] - mean) / std / self.scale), -qmax, qmax)
        return q.astype(np.int8 if self.bits <= 8 else np.int16)

    def quantize(self, images: np.ndarray) -> np.ndarray:
        """Quantise uint8 images ``[N, C, H, W]`` to the network's integer input."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != self.shape:
            raise InputError(
                f"this model takes uint8 images [N, {', '.join(map(str, self.shape))}], "
                f"not {images.dtype} {list(images.shape)} (CIFAR-10 images are [3, 32, 32])"
            )
        lut = self.lut()
        return lut[np.arange(self.shape[0])[None, :, None, None], images]

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "mean": list(self.mean), "std": list(self.std),
                "scale": self.scale, "bits": self.bits}


def check_input(spec: InputSpec, where: str) -> None:
    if len(spec.shape) != 3 or not all(_is_int(v) and v > 0 for v in spec.shape):
        _fail(where, f"field 'input.shape' must be 3 positive integers [C, H, W], not {spec.shape}")
    _check_size(spec.shape, where, "input.shape")
    c = spec.shape[0]
    for key in ("mean", "std"):
        v = getattr(spec, key)
        if len(v) != c or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v):
            _fail(where, f"field 'input.{key}' must be {c} finite numbers, not {v}")
    if not all(x > 0 for x in spec.std):
        _fail(where, f"field 'input.std' must be positive, not {spec.std}")
    if not (isinstance(spec.scale, (int, float)) and math.isfinite(spec.scale) and spec.scale > 0):
        _fail(where, f"field 'input.scale' must be a positive number, not {spec.scale!r}")
    if not (isinstance(spec.bits, int) and 2 <= spec.bits <= 16):
        _fail(where, f"field 'input.bits' must be an integer in 2..16, not {spec.bits!r}")


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    """One layer of the integer network.

    Parameters
    ----------
    name : unique identifier (letters, digits, ``_``), used as ``weights/<name>``.
    type : ``"conv"`` (3x3, stride 1, zero padding 1, no bias), ``"pool"`` (2x2 stride 2 OR
        pooling of spikes) or ``"linear"`` (no bias; its input is flattened in C, H, W order).
    in_shape, out_shape : ``[C, H, W]`` for conv and pool, ``[F]`` for linear.
    weight_bits : signed bit width of the weights (conv, linear).
    bias_bits : signed bit width of the optional per-output-channel integer bias (conv,
        linear; ``None``: no bias). At most ``membrane_bits`` on a hidden layer, 2..32.
    membrane_bits : ``B``, the signed width the membrane saturates to (hidden conv / linear).
    leak_shift : ``k``; the leak is ``U >>> k``; ``0`` means no leak (IF neuron).
    threshold : ``theta``, a positive integer in membrane units.
    output : True for the last layer, the non-spiking output accumulator.
    """

    name: str
    type: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight_bits: int | None = None
    membrane_bits: int | None = None
    leak_shift: int | None = None
    threshold: int | None = None
    output: bool = False
    bias_bits: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(self.in_shape))
        object.__setattr__(self, "out_shape", tuple(self.out_shape))
        check_layer(self, f"layer {self.name!r}")

    @property
    def has_weights(self) -> bool:
        return self.type in ("conv", "linear")

    @property
    def has_bias(self) -> bool:
        return self.bias_bits is not None

    @property
    def is_lif(self) -> bool:
        """True for a spiking hidden layer (conv or linear that is not the output)."""
        return self.has_weights and not self.output

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.type == "conv":
            return (self.out_shape[0], self.in_shape[0], 3, 3)
        if self.type == "linear":
            return (self.out_shape[0], self.in_shape[0])
        return ()

    @property
    def fan_in(self) -> int:
        """Number of synapses per neuron."""
        return math.prod(self.weight_shape[1:]) if self.has_weights else 0

    @property
    def neurons(self) -> int:
        return math.prod(self.out_shape)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type,
                             "in_shape": list(self.in_shape), "out_shape": list(self.out_shape)}
        if self.has_weights:
            d["weight_bits"] = self.weight_bits
        if self.has_bias:
            d["bias_bits"] = self.bias_bits
        if self.is_lif:
            d.update(membrane_bits=self.membrane_bits, leak_shift=self.leak_shift,
                     threshold=self.threshold)
        if self.output:
            d["output"] = True
        return d


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_size(shape: tuple[Any, ...], where: str, key: str) -> None:
    """Refuse shapes too large to allocate (before numpy overflows computing their size)."""
    if any(v > MAX_DIM for v in shape) or math.prod(shape) > MAX_ELEMENTS:
        _fail(where, f"field '{key}' {list(shape)} is too large (at most {MAX_DIM} per "
                     f"dimension and {MAX_ELEMENTS} elements)")


def check_layer(layer: Layer, where: str) -> None:
    if not is_identifier(layer.name):
        _fail(where, f"field 'name' must be letters, digits and '_' starting with a letter, "
                     f"not {layer.name!r}")
    if layer.type not in LAYER_TYPES:
        _fail(where, f"field 'type' must be one of {', '.join(LAYER_TYPES)}, not {layer.type!r}")
    for key in ("in_shape", "out_shape"):
        shape = getattr(layer, key)
        want = 1 if layer.type == "linear" else 3
        if len(shape) != want or not all(_is_int(v) and v > 0 for v in shape):
            _fail(where, f"field '{key}' must be {want} positive integers, not {list(shape)}")
        _check_size(shape, where, key)
    c, o = layer.in_shape, layer.out_shape
    if layer.type == "conv" and c[1:] != o[1:]:
        _fail(where, f"field 'out_shape' of a conv keeps H and W: expected [C, {c[1]}, {c[2]}], "
                     f"not {list(o)}")
    if layer.type == "pool":
        if c[1] % 2 or c[2] % 2:
            _fail(where, f"field 'in_shape' of a pool needs even H and W, not {list(c)}")
        if o != (c[0], c[1] // 2, c[2] // 2):
            _fail(where, f"field 'out_shape' must be {[c[0], c[1] // 2, c[2] // 2]}, not {list(o)}")
    if layer.has_weights:
        if not (_is_int(layer.weight_bits) and 2 <= layer.weight_bits <= 16):
            _fail(where, f"field 'weight_bits' must be an integer in 2..16, "
                         f"not {layer.weight_bits!r}")
    elif layer.weight_bits is not None:
        _fail(where, "field 'weight_bits' is not allowed on a pool layer")
    if layer.bias_bits is not None:
        bb, top = layer.bias_bits, (layer.membrane_bits if layer.is_lif else 32)
        if not layer.has_weights:
            _fail(where, "field 'bias_bits' is not allowed on a pool layer")
        if not (_is_int(bb) and 2 <= bb <= (top if _is_int(top) else 32)):
            _fail(where, f"field 'bias_bits' must be an integer in 2..{top} (at most the "
                         f"membrane width of a hidden layer, 32 on the output), not {bb!r}")
    if layer.output and layer.type != "linear":
        _fail(where, "field 'output' is only allowed on a linear layer")
    if layer.is_lif:
        b = layer.membrane_bits
        if not (_is_int(b) and 2 <= b <= 32):
            _fail(where, f"field 'membrane_bits' must be an integer in 2..32, not {b!r}")
        k = layer.leak_shift
        if not (_is_int(k) and 0 <= k < b):
            _fail(where, f"field 'leak_shift' must be an integer in 0..{b - 1} "
                         f"(0 = no leak), not {k!r}")
        t = layer.threshold
        if not (_is_int(t) and 0 < t < 2 ** (b - 1)):
            _fail(where, f"field 'threshold' must be an integer in 1..{2 ** (b - 1) - 1} "
                         f"(positive and below the membrane's maximum), not {t!r}")
    else:
        for key in ("membrane_bits", "leak_shift", "threshold"):
            if getattr(layer, key) is not None:
                _fail(where, f"field '{key}' is only allowed on a hidden conv or linear layer")


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
@dataclass
class Model:
    """An integer LIF network: layers, integer weights, and what it was trained on.

    Use :func:`load` / :meth:`save`; the golden model is :func:`dietsnn.golden.run`.
    """

    name: str
    timesteps: int
    input: InputSpec
    layers: tuple[Layer, ...]
    weights: dict[str, np.ndarray]
    classes: tuple[str, ...] = CIFAR10_CLASSES
    kind: str = "trained"
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    biases: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = tuple(self.layers)
        self.classes = tuple(self.classes)
        self.validate("model")

    # -- structure ---------------------------------------------------------------------------
    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}; layers are {[x.name for x in self.layers]}")

    @property
    def lif_layers(self) -> tuple[Layer, ...]:
        return tuple(x for x in self.layers if x.is_lif)

    @property
    def output_layer(self) -> Layer:
        return self.layers[-1]

    def input_bound(self, layer: Layer) -> int:
        """Largest magnitude of one input of ``layer``: the pixel range or 1 for spikes."""
        if layer is self.layers[0]:
            return 2 ** (self.input.bits - 1)
        return 1

    def bias(self, layer: Layer) -> np.ndarray:
        """The layer's integer bias as int64 ``[out channels]`` (zeros when it has none)."""
        b = self.biases.get(layer.name)
        return (np.zeros(layer.weight_shape[0], np.int64) if b is None
                else b.astype(np.int64))

    def current_bound(self, layer: Layer) -> int:
        """Exact bound on ``|I_t|`` of ``layer`` for any input and on every partial sum of it:
        ``max_j (sum_i |W_ji| * x_max + |b_j|)``."""
        w = self.weights[layer.name].astype(np.int64)
        per_neuron = np.abs(w.reshape(w.shape[0], -1)).sum(axis=1) * self.input_bound(layer)
        return int((per_neuron + np.abs(self.bias(layer))).max(initial=0))

    def current_bits(self, layer: Layer) -> int:
        """Signed width that holds every current of ``layer`` (from the actual weights)."""
        return signed_bits(self.current_bound(layer))

    def output_bits(self) -> int:
        """Signed width of the output accumulator ``V``: ``|V| <= T * current_bound(output)``."""
        return signed_bits(self.timesteps * self.current_bound(self.output_layer))

    # -- checks ------------------------------------------------------------------------------
    def validate(self, where: str) -> None:
        check_structure(self.name, self.kind, self.timesteps, self.input, self.layers,
                        self.classes, where)
        expected = {x.name for x in self.layers if x.has_weights}
        if set(self.weights) != expected:
            missing, extra = expected - set(self.weights), set(self.weights) - expected
            _fail(where, f"weights: missing {sorted(missing)}, unknown {sorted(extra)}")
        for layer in self.layers:
            if layer.has_weights:
                check_weights(layer, self.weights[layer.name], f"{where}: weights/{layer.name}")
        expected = {x.name for x in self.layers if x.has_bias}
        if set(self.biases) != expected:
            missing, extra = expected - set(self.biases), set(self.biases) - expected
            _fail(where, f"bias: missing {sorted(missing)}, unknown {sorted(extra)} (a bias "
                         f"belongs to exactly the layers with 'bias_bits')")
        for layer in self.layers:
            if layer.has_bias:
                check_bias(layer, self.biases[layer.name], f"{where}: bias/{layer.name}")
        # The golden model accumulates exactly; keep every sum far from int64 limits.
        for layer in self.layers:
            if layer.has_weights and self.current_bound(layer) >= 2 ** 40:
                _fail(where, f"weights/{layer.name}: current bound {self.current_bound(layer)} "
                             f"exceeds 2^40")

    # -- file --------------------------------------------------------------------------------
    @property
    def file_version(self) -> int:
        """The format version :meth:`save` writes: 2 with a bias, else 1."""
        return 2 if any(x.has_bias for x in self.layers) else 1

    def manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": self.file_version, "name": self.name,
            "kind": self.kind,
            "timesteps": self.timesteps, "input": self.input.to_json(),
            "classes": list(self.classes), "layers": [x.to_json() for x in self.layers],
            "provenance": self.provenance, "metrics": self.metrics,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model atomically (temporary file in the same folder, then rename)."""
        self.validate("model")
        path = Path(path)
        manifest = json.dumps(self.manifest(), indent=1, sort_keys=False).encode()
        arrays = {"manifest": np.frombuffer(manifest, dtype=np.uint8)}
        arrays.update({f"weights/{k}": np.ascontiguousarray(v) for k, v in self.weights.items()})
        arrays.update({f"bias/{k}": np.ascontiguousarray(v) for k, v in self.biases.items()})
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        return path


def check_structure(name: Any, kind: Any, timesteps: Any, spec: InputSpec,
                    layers: tuple[Layer, ...], classes: Any, where: str) -> None:
    """Whole-model checks that do not need the weights (names, chaining, output layer)."""
    if not is_identifier(name, model=True):
        _fail(where, f"field 'name' must be letters, digits, '_', '-' and '.' starting "
                     f"with a letter (at most 128, no '..'), not {name!r}")
    if kind not in MODEL_KINDS:
        _fail(where, f"field 'kind' must be one of {', '.join(MODEL_KINDS)}, not {kind!r}")
    if not (_is_int(timesteps) and 1 <= timesteps <= 1024):
        _fail(where, f"field 'timesteps' must be an integer in 1..1024, "
                     f"not {timesteps!r}")
    if not layers:
        _fail(where, "field 'layers' must list at least one layer")
    names = [x.name for x in layers]
    if len(set(names)) != len(names):
        _fail(where, f"field 'layers' has duplicate names: {names}")
    first = layers[0]
    if first.type == "pool":
        _fail(where, "field 'layers[0]' must be conv or linear: it takes the input image")
    last = layers[-1]
    if not (last.type == "linear" and last.output):
        _fail(where, f"field 'layers[{len(layers) - 1}]' must be the output layer "
                     f"(type linear, output true)")
    for i, layer in enumerate(layers[:-1]):
        if layer.output:
            _fail(where, f"field 'layers[{i}].output': only the last layer is the output")
    if not (isinstance(classes, tuple) and all(isinstance(c, str) for c in classes)
            and len(classes) == last.out_shape[0]):
        _fail(where, f"field 'classes' must be {last.out_shape[0]} strings (one per output), "
                     f"not {list(classes)}")
    prev: tuple[int, ...] = spec.shape
    for i, layer in enumerate(layers):
        want = (math.prod(prev),) if layer.type == "linear" else prev
        if layer.in_shape != want:
            _fail(where, f"field 'layers[{i}].in_shape' ({layer.name}) must be {list(want)} "
                         f"to follow the previous layer, not {list(layer.in_shape)}")
        prev = layer.out_shape


def signed_bits(bound: int) -> int:
    """Smallest signed two's-complement width holding every integer in ``[-bound, bound]``."""
    return max(int(bound).bit_length() + 1, 2)


def weight_dtype(bits: int) -> np.dtype:
    return np.dtype(np.int8 if bits <= 8 else np.int16)


def bias_dtype(bits: int) -> np.dtype:
    return np.dtype(np.int16 if bits <= 16 else np.int32)


def _check_int_array(a: Any, where: str, dtype: np.dtype, shape: tuple[int, ...], bits: int,
                     what: str) -> None:
    """``a`` is a numpy array of ``dtype`` and ``shape`` holding signed ``bits``-bit values."""
    if not isinstance(a, np.ndarray):
        _fail(where, f"must be a numpy array, not {type(a).__name__}")
    if a.dtype != dtype:
        _fail(where, f"dtype must be {dtype} for {what}, not {a.dtype}")
    if a.shape != shape:
        _fail(where, f"shape must be {list(shape)}, not {list(a.shape)}")
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if a.size and (a.min() < lo or a.max() > hi):
        _fail(where, f"values must lie in {lo}..{hi} ({bits}-bit), found {a.min()}..{a.max()}")


def check_bias(layer: Layer, b: Any, where: str) -> None:
    _check_int_array(b, where, bias_dtype(layer.bias_bits), layer.weight_shape[:1],
                     layer.bias_bits, f"a {layer.bias_bits}-bit bias")


def check_weights(layer: Layer, w: Any, where: str) -> None:
    _check_int_array(w, where, weight_dtype(layer.weight_bits), layer.weight_shape,
                     layer.weight_bits, f"{layer.weight_bits}-bit weights")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
_TOP_KEYS = {"format", "version", "name", "kind", "timesteps", "input", "classes", "layers",
             "provenance", "metrics"}
_INPUT_KEYS = {"shape", "mean", "std", "scale", "bits"}
_LAYER_KEYS = {"name", "type", "in_shape", "out_shape", "weight_bits", "membrane_bits",
               "leak_shift", "threshold", "output", "bias_bits"}


def _check_keys(d: Any, allowed: set[str], required: set[str], where: str) -> None:
    if not isinstance(d, dict):
        _fail(where, f"must be a JSON object, not {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        _fail(where, f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(d))
    if missing:
        _fail(where, f"missing field(s) {missing}")


def _parse_layers(man: Any, where: str) -> tuple[InputSpec, list[Layer]]:
    """Check the manifest's top level, input and layers (not the weights); return them."""
    _check_keys(man, _TOP_KEYS, _TOP_KEYS, f"{where}: manifest")
    if man["format"] != FORMAT:
        _fail(where, f"field 'format' must be {FORMAT!r}, not {man['format']!r}")
    if not (_is_int(man["version"]) and man["version"] in VERSIONS):
        _fail(where, f"field 'version': unsupported version {man['version']!r}; "
                     f"this dietsnn reads versions {', '.join(map(str, VERSIONS))}")
    inp = man["input"]
    _check_keys(inp, _INPUT_KEYS, _INPUT_KEYS, f"{where}: field 'input'")
    for key in ("shape", "mean", "std"):
        if not isinstance(inp[key], list):
            _fail(where, f"field 'input.{key}' must be a list, not {inp[key]!r}")
    try:
        spec = InputSpec(shape=tuple(inp["shape"]), mean=tuple(inp["mean"]),
                         std=tuple(inp["std"]), scale=inp["scale"], bits=inp["bits"])
    except (TypeError, ModelFileError) as e:
        _fail(where, str(e))
    if not isinstance(man["layers"], list):
        _fail(where, "field 'layers' must be a list")
    layers = []
    for i, d in enumerate(man["layers"]):
        _check_keys(d, _LAYER_KEYS, {"name", "type", "in_shape", "out_shape"},
                    f"{where}: field 'layers[{i}]'")
        for key in ("in_shape", "out_shape"):
            if not isinstance(d[key], list):
                _fail(where, f"field 'layers[{i}]': field '{key}' must be a list, "
                             f"not {d[key]!r}")
        if "bias_bits" in d and man["version"] < 2:
            _fail(where, f"field 'layers[{i}].bias_bits' needs format version 2, the file "
                         f"says version {man['version']}")
        try:
            layers.append(Layer(**d))
        except (TypeError, ModelFileError) as e:
            _fail(where, f"field 'layers[{i}]': {e}")
    return spec, layers


def _check_manifest(man: Any, where: str) -> tuple[InputSpec, list[Layer]]:
    """Every check of the manifest that does not need the weight arrays."""
    spec, layers = _parse_layers(man, where)
    for key in ("provenance", "metrics"):
        if not isinstance(man[key], dict):
            _fail(where, f"field '{key}' must be a JSON object")
    if not isinstance(man["classes"], list):
        _fail(where, "field 'classes' must be a list of strings")
    check_structure(man["name"], man["kind"], man["timesteps"], spec, tuple(layers),
                    tuple(man["classes"]), where)
    return spec, layers


def model_from_manifest(man: Any, weights: dict[str, np.ndarray], where: str,
                        biases: dict[str, np.ndarray] | None = None) -> Model:
    """Build and validate a :class:`Model` from a parsed manifest, its weight arrays and its
    bias arrays."""
    spec, layers = _check_manifest(man, where)
    try:
        return Model(name=man["name"], timesteps=man["timesteps"], input=spec,
                     layers=tuple(layers), weights=weights, classes=tuple(man["classes"]),
                     kind=man["kind"], provenance=man["provenance"], metrics=man["metrics"],
                     biases=dict(biases or {}))
    except ModelFileError as e:
        raise ModelFileError(f"{where}: {str(e).removeprefix('model: ')}") from None


# -- bounded reading -------------------------------------------------------------------------
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(text: str) -> int:
    """Deepest nesting of arrays and objects in JSON ``text`` (strings ignored)."""
    bare = _STRING_RE.sub("", text).encode("ascii", "replace")
    b = np.frombuffer(bare, dtype=np.uint8)
    step = (np.isin(b, (ord("["), ord("{"))).astype(np.int32)
            - np.isin(b, (ord("]"), ord("}"))).astype(np.int32))
    return int(np.cumsum(step).max(initial=0))


def parse_json(text: str, where: str, *, error: type[Exception] = ModelFileError,
               max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` of untrusted text: nesting at most ``max_depth``, integers within int64.

    Raises ``error`` (one line, prefixed with ``where``) on invalid JSON or a limit.
    """
    if json_depth(text) > max_depth:
        raise error(f"{where}: JSON nested deeper than {max_depth} levels")

    def parse_int(s: str) -> int:
        if len(s.lstrip("-")) > MAX_JSON_INT_DIGITS:
            raise error(f"{where}: JSON integer with more than {MAX_JSON_INT_DIGITS} digits")
        return int(s)

    try:
        return json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError as e:
        raise error(f"{where}: not valid JSON: {e}") from None
    except RecursionError:  # not reached after the depth check; kept as a guard
        raise error(f"{where}: JSON nested too deeply") from None


def _npy_header(f: Any, where: str, member: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    """Read the header of the ``.npy`` stream ``f``: ``(dtype, shape, fortran_order)``."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            _fail(where, f"member {member!r}: unsupported .npy version {version}")
    except ModelFileError:
        raise
    except _ZIP_ERRORS as e:
        _fail(where, f"cannot read the archive (truncated or corrupt?): {e}")
    except Exception as e:  # noqa: BLE001 - numpy parses the untrusted header text with
        # ast and tokenize; ValueError, SyntaxError, tokenize.TokenError... all mean the same
        _fail(where, f"member {member!r} is not a .npy array: {type(e).__name__}: {e}")
    if dtype.hasobject:
        _fail(where, f"member {member!r} is a pickled object array; model files hold plain "
                     "integer arrays only")
    return dtype, tuple(shape), fortran


def _read_npy_data(f: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool, where: str,
                   member: str) -> np.ndarray:
    """Read exactly the array data after the header (its size already checked), then EOF."""
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    try:
        raw = f.read(nbytes)
        trailing = f.read(1)  # also makes zipfile check the member's CRC
    except (*_ZIP_ERRORS, OSError, EOFError, ValueError) as e:
        _fail(where, f"cannot read the archive (truncated or corrupt?): member {member!r}: {e}")
    if len(raw) != nbytes:
        _fail(where, f"member {member!r} is truncated: {len(raw)} of {nbytes} data bytes")
    if trailing:
        _fail(where, f"member {member!r} has data after its array")
    arr = np.frombuffer(raw, dtype=dtype, count=count)
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def _member_names(zf: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        _fail(where, f"{len(infos)} archive members; a model file has at most {MAX_MEMBERS}")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        key = info.filename.removesuffix(".npy")
        if key in members:
            _fail(where, f"member {key!r} appears twice")
        members[key] = info
    return members


def load(path: str | os.PathLike) -> Model:
    """Load and validate a model file. Raises :class:`ModelFileError` naming file and field.

    Bounded: nothing larger than the limits of this module (``MAX_*``) is read or inflated;
    each weight member's dtype and shape are checked against the manifest from its header.
    """
    path = Path(path)
    where = str(path)
    try:
        if not path.is_file():
            _fail(where, "no such file" if not path.exists() else "not a file")
        with path.open("rb") as fh:
            if not zipfile.is_zipfile(fh):
                _fail(where, "not a model file: expected a .npz (zip) archive; the file is "
                             "truncated or of another kind")
            fh.seek(0)
            try:
                zf = zipfile.ZipFile(fh)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
                _fail(where, f"not a model file: expected a .npz (zip) archive; the file is "
                             f"truncated or of another kind ({e})")
            with zf:
                return _load_zip(zf, where)
    except OSError as e:
        _fail(where, f"cannot read: {e.strerror or e}")
    raise AssertionError("unreachable")


def _open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> Any:
    try:
        return zf.open(info)
    except (*_ZIP_ERRORS, ValueError, OSError, EOFError) as e:
        _fail(where, f"cannot read the archive (truncated or corrupt?): {e}")


def _load_zip(zf: zipfile.ZipFile, where: str) -> Model:
    members = _member_names(zf, where)
    if "manifest" not in members:
        _fail(where, "missing member 'manifest'")
    for key in members:
        if key != "manifest" and not key.startswith(("weights/", "bias/")):
            _fail(where, f"unknown member {key!r}; expected 'manifest', 'weights/<layer>' "
                         f"and 'bias/<layer>'")
    info = members.pop("manifest")
    if info.file_size > MAX_MANIFEST_BYTES + 4096:
        _fail(where, f"member 'manifest' is {info.file_size} bytes; at most "
                     f"{MAX_MANIFEST_BYTES} are allowed")
    with _open_member(zf, info, where) as f:
        dtype, shape, fortran = _npy_header(f, where, "manifest")
        if dtype != np.uint8 or len(shape) != 1:
            _fail(where, f"member 'manifest' must be uint8 [n] UTF-8 JSON, not {dtype} "
                         f"{list(shape)}")
        if shape[0] > MAX_MANIFEST_BYTES:
            _fail(where, f"member 'manifest' is {shape[0]} bytes; at most "
                         f"{MAX_MANIFEST_BYTES} are allowed")
        raw = _read_npy_data(f, dtype, shape, fortran, where, "manifest")
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError as e:
        _fail(where, f"member 'manifest' is not valid UTF-8 JSON: {e}")
    man = parse_json(text, f"{where}: member 'manifest' is not valid UTF-8 JSON")
    _, layers = _check_manifest(man, where)

    # weights and biases: every header against the manifest before any data is read
    want: dict[str, tuple[np.dtype, tuple[int, ...], str]] = {}
    for x in layers:
        if x.has_weights:
            want[f"weights/{x.name}"] = (weight_dtype(x.weight_bits), x.weight_shape,
                                         f"{x.weight_bits}-bit weights")
        if x.has_bias:
            want[f"bias/{x.name}"] = (bias_dtype(x.bias_bits), x.weight_shape[:1],
                                      f"a {x.bias_bits}-bit bias")
    for kind in ("weights", "bias"):
        names = {k.removeprefix(f"{kind}/") for k in members if k.startswith(f"{kind}/")}
        expected = {k.removeprefix(f"{kind}/") for k in want if k.startswith(f"{kind}/")}
        if names != expected:
            _fail(where, f"{kind}: missing {sorted(expected - names)}, "
                         f"unknown {sorted(names - expected)}")
    total = 0
    for key, info in members.items():  # pass 1: headers only
        want_dtype, want_shape, what = want[key]
        total += math.prod(want_shape) * want_dtype.itemsize
        if total > MAX_WEIGHT_BYTES:
            _fail(where, f"weights take more than {MAX_WEIGHT_BYTES} bytes (at {key}); "
                         f"larger models are refused")
        with _open_member(zf, info, where) as f:
            dtype, shape, _ = _npy_header(f, where, key)
        if dtype != want_dtype:
            _fail(where, f"{key}: dtype must be {want_dtype} for {what}, not {dtype}")
        if shape != want_shape:
            _fail(where, f"{key}: shape must be {list(want_shape)}, not {list(shape)}")
    arrays: dict[str, dict[str, np.ndarray]] = {"weights": {}, "bias": {}}
    for key, info in members.items():  # pass 2: data, exactly the size the headers declare
        kind, name = key.split("/", 1)
        with _open_member(zf, info, where) as f:
            dtype, shape, fortran = _npy_header(f, where, key)
            arrays[kind][name] = _read_npy_data(f, dtype, shape, fortran, where, key)
    return model_from_manifest(man, arrays["weights"], where, arrays["bias"])


def models_dir() -> Path:
    """The folder of shipped models (``models/`` at the repository root)."""
    env = os.environ.get("DIETSNN_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


def shipped_models() -> dict[str, Path]:
    d = models_dir()
    return {p.stem: p for p in sorted(d.glob("*.npz"))} if d.is_dir() else {}


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A path, or the name of a shipped model (``cifar10``, ``tiny``...)."""
    p = Path(name_or_path)
    if p.suffix == ".npz" or p.exists() or os.sep in str(name_or_path):
        return p
    shipped = shipped_models()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise ModelFileError(f"{name_or_path}: no such file and no shipped model of that name; "
                         f"shipped: {', '.join(shipped) or 'none'} (in {models_dir()})")


def load_model(name_or_path: str | os.PathLike) -> Model:
    """Load a model file by path or shipped name."""
    return load(resolve(name_or_path))
