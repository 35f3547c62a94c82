"""Interchange with the neuromorphic ecosystem through NIR (the Neuromorphic Intermediate
Representation, https://neuroir.org).

- :mod:`.export`   integer model -> NIR graph (``dietsnn export-nir``)
- :mod:`.importer` NIR graph -> integer model, exact or with listed approximations
  (``dietsnn import-nir``)
- :mod:`.snn`      run a NIR graph in snnTorch through snnTorch's NIR importer

The mapping and its limits are documented in ``docs/nir.md``. ``nir`` (and, for :mod:`.snn`,
``torch``, ``nirtorch``, ``snntorch``) are imported only when used: ``pip install
dietsnn[interop]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["register", "export_nir", "import_nir", "to_nir", "from_nir", "ImportOptions",
           "ImportReport", "NIRImportError", "DEFAULT_DT"]

#: Time step in seconds written by default: snnTorch's importer and exporter hard-code 1e-4.
DEFAULT_DT = 1e-4
#: Value of the graph metadata key ``dietsnn_format`` (name/version of this mapping).
GRAPH_FORMAT = "dietsnn-nir/1"
#: Node metadata ``reset`` of the integer model's reset by subtraction.
RESET_SUBTRACT = "subtract"


def __getattr__(name: str) -> Any:
    """Lazy access to the public functions (``nir`` is imported on first use)."""
    if name in ("export_nir", "to_nir"):
        from . import export
        return getattr(export, name)
    if name in ("import_nir", "from_nir", "ImportOptions", "ImportReport", "NIRImportError"):
        from . import importer
        return getattr(importer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _require_nir() -> None:
    from ..cli import CLIError
    try:
        import nir  # noqa: F401
    except ModuleNotFoundError as e:
        raise CLIError(f"the NIR interchange needs the package {e.name!r}: "
                       f"pip install 'dietsnn[interop]'") from None


def _floats(text: str, what: str) -> tuple[float, ...]:
    from ..cli import CLIError
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise CLIError(f"{what} must be comma-separated numbers, not {text!r}") from None


# --------------------------------------------------------------------------------------------
# export-nir
# --------------------------------------------------------------------------------------------
def _cmd_export(args: argparse.Namespace) -> int:
    _require_nir()
    from ..cli import CLIError
    from ..model import load_model
    from .export import to_nir, write_graph

    model = load_model(args.model)
    if not args.dt > 0:
        raise CLIError(f"--dt must be a positive number of seconds, not {args.dt}")
    try:
        graph = to_nir(model, dt=args.dt, snntorch=args.snntorch)
    except ValueError as e:
        raise CLIError(str(e)) from None
    path = write_graph(graph, args.out)
    types = Counter(type(n).__name__ for n in graph.nodes.values())
    info = {"model": model.name, "out": str(path), "dt": args.dt,
            "timesteps": model.timesteps, "nodes": len(graph.nodes),
            "node_types": dict(sorted(types.items())), "bytes": path.stat().st_size,
            "flavour": "snntorch" if args.snntorch else "dietsnn"}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"wrote {path} ({info['bytes']} bytes): {model.name}, {len(graph.nodes)} NIR "
              f"nodes, dt = {args.dt:g} s, T = {model.timesteps}"
              + (" (snnTorch flavour: sum the output over T)" if args.snntorch else ""))
        for name, count in info["node_types"].items():
            print(f"  {name:<10} {count}")
    return 0


# --------------------------------------------------------------------------------------------
# import-nir
# --------------------------------------------------------------------------------------------
def _input_spec(args: argparse.Namespace) -> Any:
    """The ``--input-*`` quantisation for graphs from other tools, or None."""
    from ..cli import CLIError
    from ..model import InputSpec, ModelFileError
    from .importer import _chain, _input_shape, read_graph

    given = [args.input_mean, args.input_std, args.input_scale]
    if not any(given):
        return None
    if not all(given):
        raise CLIError("give --input-mean, --input-std and --input-scale together")
    mean = _floats(args.input_mean, "--input-mean")
    std = _floats(args.input_std, "--input-std")
    (scale,) = _floats(args.input_scale, "--input-scale")
    shape = _input_shape(*_chain(read_graph(args.inp))[0])
    try:
        return InputSpec(shape=shape, mean=mean, std=std, scale=scale, bits=args.input_bits)
    except ModelFileError as e:
        raise CLIError(f"input quantisation: {e}") from None


def _options(args: argparse.Namespace) -> Any:
    from ..model import CIFAR10_CLASSES
    from .importer import ImportOptions

    classes = None
    if args.classes:
        classes = CIFAR10_CLASSES if args.classes == "cifar10" else tuple(
            c.strip() for c in args.classes.split(","))
    return ImportOptions(approximate=args.approximate, weight_bits=args.weight_bits,
                         membrane_bits=args.membrane_bits, timesteps=args.timesteps,
                         dt=args.dt, name=args.name, classes=classes, input=_input_spec(args))


def _cmd_import(args: argparse.Namespace) -> int:
    _require_nir()
    from ..cli import CLIError
    from .importer import NIRImportError, import_nir

    try:
        model, report = import_nir(args.inp, _options(args))
    except NIRImportError as e:
        raise CLIError(str(e)) from None
    path = model.save(args.out)
    info = {"in": str(args.inp), "out": str(path), "name": model.name,
            "source": report.source, "exact": report.exact,
            "approximations": report.approximations, "notes": report.notes,
            "timesteps": model.timesteps,
            "layers": [x.to_json() for x in model.layers]}
    if args.json:
        print(json.dumps(info))
        return 0
    kind = "exact" if report.exact else f"{len(report.approximations)} approximation(s)"
    print(f"wrote {path}: {model.name}, T = {model.timesteps}, {report.source} graph, {kind}")
    print(f"  {'layer':<8} {'type':<7} {'out_shape':<14} {'bits':>4} {'k':>3} {'theta':>7}")
    for x in model.layers:
        print(f"  {x.name:<8} {x.type:<7} {str(list(x.out_shape)):<14} "
              f"{x.weight_bits or '':>4} {'' if x.leak_shift is None else x.leak_shift:>3} "
              f"{x.threshold or '':>7}")
    for line in report.approximations:
        print(f"  approximated: {line}", file=sys.stderr)
    for line in report.notes:
        print(f"  note: {line}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------
# nir-snntorch
# --------------------------------------------------------------------------------------------
def _cmd_snntorch(args: argparse.Namespace) -> int:
    _require_nir()
    from ..cli import CLIError
    try:
        from . import snn
    except ModuleNotFoundError as e:
        raise CLIError(f"running in snnTorch needs the package {e.name!r}: "
                       f"pip install 'dietsnn[interop]'") from None
    import numpy as np
    from tqdm import tqdm

    from ..data import load_cifar10
    from ..model import load_model
    from ..selection import select_subset
    from .export import to_nir
    from .importer import NIRImportError, read_graph

    model = load_model(args.model)
    try:
        graph = read_graph(args.nir) if args.nir else to_nir(model, snntorch=args.stock)
    except NIRImportError as e:
        raise CLIError(str(e)) from None
    if args.images < 1:
        raise CLIError(f"--images must be a positive integer, not {args.images}")
    ds = load_cifar10(args.split, data=args.data, progress=False)
    images, labels, selection = select_subset(ds, min(args.images, len(ds.labels)),
                                              split=args.split)
    q = model.input.quantize(images)
    pred, gold, equal, diff = [], [], 0.0, 0.0
    spikes: dict[str, float] = {}
    chunk = 64
    for i in tqdm(range(0, len(q), chunk), desc="snnTorch vs golden", unit="batch",
                  file=sys.stderr, disable=args.json and not sys.stderr.isatty()):
        r = snn.compare_with_golden(model, q[i:i + chunk], graph=graph, stock=args.stock,
                                    reset=args.reset, reset_delay=args.reset_delay)
        pred += r["prediction"]
        gold += r["golden_prediction"]
        equal += r["logits_equal"] * r["images"]
        diff = max(diff, r["max_abs_logit_diff"])
        for k, v in r["spike_agreement"].items():
            spikes[k] = spikes.get(k, 0.0) + v * r["images"]
    n = len(q)
    p, g = np.asarray(pred), np.asarray(gold)
    info = {"model": model.name, "nir": str(args.nir) if args.nir else None,
            "data": ds.source, "split": args.split, "images": n, "selection": selection,
            "importer": "snntorch.import_nir.import_from_nir" if args.stock
            else "dietsnn.nirio.snn.snntorch_module",
            "reset": args.reset or ("zero (snnTorch's importer)" if args.stock
                                    else "subtract (from node metadata)"),
            "reset_delay": args.reset_delay if args.reset else None,
            "agreement": float(np.mean(p == g)), "logits_equal": equal / n,
            "max_abs_logit_diff": diff,
            "spike_agreement": {k: v / n for k, v in spikes.items()},
            "accuracy_golden": float(np.mean(g == labels)),
            "accuracy_snntorch": float(np.mean(p == labels))}
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{model.name} on {n} {args.split} images ({ds.source}), {info['importer']}, "
          f"reset {info['reset']}"
          + (f", reset_delay={args.reset_delay}" if args.reset else ""))
    print(f"  predictions agreeing  {info['agreement']:.4f}")
    print(f"  logits identical      {info['logits_equal']:.4f} (max |diff| {diff:g})")
    print(f"  accuracy golden       {info['accuracy_golden']:.4f}")
    print(f"  accuracy snnTorch     {info['accuracy_snntorch']:.4f}")
    for k, v in info["spike_agreement"].items():
        print(f"  spikes agreeing {k:<7}{v:.5f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export-nir`` and ``import-nir`` to the ``dietsnn`` command line."""
    p = sub.add_parser("export-nir", help="write an integer model as a NIR graph",
                       description="Write the integer model as a NIR graph (HDF5). The "
                       "discrete-time integer semantics NIR cannot express are recorded in "
                       "node and graph metadata; see docs/nir.md.")
    p.add_argument("--model", required=True, help="model file or shipped name (tiny, cifar10)")
    p.add_argument("--out", required=True, type=Path, help="NIR file to write (.nir)")
    p.add_argument("--dt", type=float, default=DEFAULT_DT,
                   help="time step in seconds for NIR's time constants (default %(default)g, "
                        "the value snnTorch assumes)")
    p.add_argument("--snntorch", action="store_true",
                   help="write only nodes snnTorch's own import_from_nir converts (exact "
                        "equivalents; the output is the output current per step, to be summed "
                        "over T); see docs/nir.md")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("import-nir", help="read a NIR graph into an integer model file",
                       description="Read a NIR graph (from dietsnn or another tool, e.g. "
                       "snnTorch) into the integer model file. A node whose semantics the "
                       "integer model cannot represent is an error naming it, unless "
                       "--approximate allows the listed lossy mappings.")
    p.add_argument("--in", dest="inp", metavar="FILE", required=True, type=Path,
                   help="NIR file to read")
    p.add_argument("--out", required=True, type=Path, help="model file to write (.npz)")
    p.add_argument("--approximate", action="store_true",
                   help="allow lossy mappings (float weights rounded with a per-layer scale, "
                        "leak rounded to a shift, reset to 0 read as subtract, spiking readout "
                        "read as accumulator); each is reported")
    p.add_argument("--timesteps", type=int, help="T (default: from the graph, else 5)")
    p.add_argument("--dt", type=float, default=DEFAULT_DT,
                   help="time step in seconds when the graph records none (default %(default)g)")
    p.add_argument("--weight-bits", type=int, default=8, help="for graphs from other tools")
    p.add_argument("--membrane-bits", type=int, default=16, help="for graphs from other tools")
    p.add_argument("--name", help="model name (default: from the graph or the file name)")
    p.add_argument("--classes", help="'cifar10' or comma-separated class names")
    p.add_argument("--input-mean", help="per-channel means, comma-separated (other tools' "
                                        "graphs; default 0)")
    p.add_argument("--input-std", help="per-channel standard deviations (default 1)")
    p.add_argument("--input-scale", help="input quantisation step (default 1/127)")
    p.add_argument("--input-bits", type=int, default=8, help="input width (default 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("nir-snntorch", help="run a model's NIR graph in snnTorch and compare "
                                            "with the golden model",
                       description="Export the model to NIR (or read --nir), run it in snnTorch "
                       "through its NIR importer, and compare predictions, logits and spikes "
                       "with the golden model on CIFAR-10 images spread evenly over the split "
                       "(dietsnn.selection).")
    p.add_argument("--model", required=True, help="model file or shipped name")
    p.add_argument("--nir", type=Path, help="NIR file to run (default: export --model)")
    p.add_argument("--images", type=int, default=1000, help="number of images (default "
                                                            "%(default)s)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--data", help="CIFAR-10 location (default: see dietsnn.data)")
    p.add_argument("--stock", action="store_true",
                   help="export with --snntorch and import with snnTorch's own import_from_nir "
                        "(default: dietsnn's extended node map)")
    p.add_argument("--reset", choices=("zero", "subtract"), default=None,
                   help="rebuild the hidden snn.Leaky neurons with this reset_mechanism "
                        "(default: what the importer builds)")
    p.add_argument("--reset-delay", action="store_true",
                   help="with --reset: snnTorch's reset_delay=True (default False)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_snntorch)
