"""Network topologies written compactly, and fixed-seed random integer models for tests.

An architecture string lists layers left to right, separated by ``-``:

- ``<C>C``  a 3x3 conv with ``C`` output channels (``32C``)
- ``P``     2x2 OR pooling
- ``<F>L``  a hidden linear LIF layer with ``F`` neurons (``256L``)
- ``<K>``   the output layer: linear with ``K`` classes (must come last, e.g. ``10``)

``"32C-32C-P-64C-64C-P-128C-128C-P-10"`` is the shipped CIFAR-10 topology (VGG-6, width 32).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .model import CIFAR10_CLASSES, InputSpec, Layer, Model, bias_dtype, weight_dtype


@dataclass(frozen=True)
class LayerSpec:
    """One parsed token of an architecture string."""

    type: str  # conv | pool | linear | output
    width: int = 0


def parse_arch(arch: str) -> list[LayerSpec]:
    """Parse an architecture string (see the module docstring)."""
    if not isinstance(arch, str) or not arch.strip():
        raise ValueError(f"arch must be a string like '32C-P-10', not {arch!r}")
    out: list[LayerSpec] = []
    tokens = [t.strip() for t in arch.split("-")]
    for i, tok in enumerate(tokens):
        last = i == len(tokens) - 1
        if tok.upper() == "P":
            out.append(LayerSpec("pool"))
        elif tok[:-1].isdigit() and tok[-1] in "Cc" and int(tok[:-1]) > 0:
            out.append(LayerSpec("conv", int(tok[:-1])))
        elif tok[:-1].isdigit() and tok[-1] in "Ll" and int(tok[:-1]) > 0:
            out.append(LayerSpec("linear", int(tok[:-1])))
        elif tok.isdigit() and int(tok) > 0 and last:
            out.append(LayerSpec("output", int(tok)))
        else:
            raise ValueError(f"arch {arch!r}: token {i} {tok!r} is not '<n>C', 'P', '<n>L' "
                             f"or (last) '<classes>'")
    if out[-1].type != "output":
        raise ValueError(f"arch {arch!r} must end with the number of classes, e.g. '-10'")
    return out


def build_layers(
    arch: str,
    input_shape: tuple[int, int, int] = (3, 32, 32),
    *,
    weight_bits: int = 8,
    membrane_bits: int = 16,
    leak_shifts: list[int] | None = None,
    thresholds: list[int] | None = None,
) -> tuple[Layer, ...]:
    """Layers of ``arch`` with shapes worked out; per-LIF-layer ``k`` and ``theta`` lists."""
    specs = parse_arch(arch)
    n_lif = sum(s.type in ("conv", "linear") for s in specs)
    leak_shifts = [0] * n_lif if leak_shifts is None else list(leak_shifts)
    thresholds = [1] * n_lif if thresholds is None else list(thresholds)
    if len(leak_shifts) != n_lif or len(thresholds) != n_lif:
        raise ValueError(f"arch {arch!r} has {n_lif} LIF layers: give that many leak shifts "
                         f"and thresholds, not {len(leak_shifts)} and {len(thresholds)}")
    layers: list[Layer] = []
    shape: tuple[int, ...] = tuple(input_shape)
    counts = {"conv": 0, "pool": 0, "linear": 0}
    j = 0
    for s in specs:
        if s.type == "pool":
            counts["pool"] += 1
            out = (shape[0], shape[1] // 2, shape[2] // 2)
            layers.append(Layer(f"pool{counts['pool']}", "pool", shape, out))
        elif s.type == "conv":
            counts["conv"] += 1
            out = (s.width, shape[1], shape[2])
            layers.append(Layer(f"conv{counts['conv']}", "conv", shape, out,
                                weight_bits=weight_bits, membrane_bits=membrane_bits,
                                leak_shift=int(leak_shifts[j]), threshold=int(thresholds[j])))
            j += 1
        else:
            fin = (int(np.prod(shape)),)
            out = (s.width,)
            if s.type == "linear":
                counts["linear"] += 1
                layers.append(Layer(f"fc{counts['linear']}", "linear", fin, out,
                                    weight_bits=weight_bits, membrane_bits=membrane_bits,
                                    leak_shift=int(leak_shifts[j]),
                                    threshold=int(thresholds[j])))
                j += 1
            else:
                layers.append(Layer("out", "linear", fin, out, weight_bits=weight_bits,
                                    output=True))
        shape = out
    return tuple(layers)


def random_model(
    arch: str = "8C-P-16C-P-10",
    *,
    seed: int = 0,
    timesteps: int = 5,
    weight_bits: int = 8,
    membrane_bits: int = 16,
    input_spec: InputSpec | None = None,
    name: str | None = None,
    bias: bool = False,
) -> Model:
    """A model with fixed-seed random integer weights, ``kind="random-test"``.

    Not trained: it exists so that tests and RTL checks have a network with realistic
    activity (thresholds are set so roughly 10-30% of neurons spike) before a trained one
    exists. Its name always starts with ``random-``. With ``bias`` every conv and linear
    layer also gets a random ``membrane_bits``-wide integer bias (drawn after everything
    else, so the weights and thresholds are those of the model without bias).
    """
    rng = np.random.default_rng(seed)
    spec = input_spec or InputSpec()
    base = build_layers(arch, spec.shape, weight_bits=weight_bits, membrane_bits=membrane_bits)
    weights: dict[str, np.ndarray] = {}
    lim = 2 ** (weight_bits - 1)
    for layer in base:
        if layer.has_weights:
            w = np.clip(np.rint(rng.normal(0, lim / 4, layer.weight_shape)), -lim, lim - 1)
            weights[layer.name] = w.astype(weight_dtype(weight_bits))
    # thresholds: a fraction of the typical current magnitude, leak shifts cycling 0..3
    n_lif = sum(x.is_lif for x in base)
    thresholds, shifts = [], []
    for i, layer in enumerate(x for x in base if x.is_lif):
        w = weights[layer.name].astype(np.float64)
        typical = np.sqrt((w.reshape(w.shape[0], -1) ** 2).sum(axis=1)).mean()
        scale = 30.0 if i == 0 else 0.7
        thresholds.append(int(min(max(1, typical * scale), 2 ** (membrane_bits - 1) - 1)))
        shifts.append(i % 4)
    layers = build_layers(arch, spec.shape, weight_bits=weight_bits, membrane_bits=membrane_bits,
                          leak_shifts=shifts[:n_lif], thresholds=thresholds)
    biases: dict[str, np.ndarray] = {}
    if bias:    # about a third of a threshold (hidden), a few weights (output)
        lif_th = iter(thresholds)
        layers = tuple(dataclasses.replace(x, bias_bits=membrane_bits) if x.has_weights else x
                       for x in layers)
        for layer in layers:
            if layer.has_weights:
                sd = next(lif_th) / 3 if layer.is_lif else lim
                lo, hi = -(2 ** (membrane_bits - 1)), 2 ** (membrane_bits - 1) - 1
                b = np.clip(np.rint(rng.normal(0, sd, layer.weight_shape[0])), lo, hi)
                biases[layer.name] = b.astype(bias_dtype(membrane_bits))
    classes = CIFAR10_CLASSES if layers[-1].out_shape[0] == 10 else tuple(
        f"class{i}" for i in range(layers[-1].out_shape[0]))
    return Model(name=name or f"random-{arch}-seed{seed}{'-bias' if bias else ''}",
                 timesteps=timesteps, input=spec, layers=layers, weights=weights,
                 classes=classes, kind="random-test",
                 provenance={"generator": "dietsnn.topology.random_model", "arch": arch,
                             "seed": seed, **({"bias": True} if bias else {})},
                 metrics={}, biases=biases)


def arch_of(layers: tuple[Layer, ...]) -> str:
    """The architecture string of a layer list (inverse of :func:`build_layers`)."""
    out = []
    for layer in layers:
        if layer.type == "pool":
            out.append("P")
        elif layer.type == "conv":
            out.append(f"{layer.out_shape[0]}C")
        elif layer.output:
            out.append(f"{layer.out_shape[0]}")
        else:
            out.append(f"{layer.out_shape[0]}L")
    return "-".join(out)
