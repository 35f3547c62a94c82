"""The ``dietsnn`` command line.

Each part of the package contributes its subcommands through a ``register(subparsers)``
function in its own ``commands`` module (listed in :data:`COMMAND_MODULES`); a module that is
not installed (for example without the hardware extras) simply contributes nothing.

A handler returns an exit code (or None for 0). Expected failures (bad files, missing data,
missing tools) raise :class:`CLIError`, :class:`~dietsnn.model.ModelFileError` or
:class:`~dietsnn.data.DataError` and are printed as one line on stderr with exit code 1,
never a traceback (set ``DIETSNN_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "dietsnn.commands",
    "dietsnn.quant.commands",
    "dietsnn.hw.commands",
    "dietsnn.sim.commands",
    "dietsnn.estimate.commands",
    "dietsnn.nirio",
)


class CLIError(Exception):
    """An expected, user-facing failure: printed as one line, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dietsnn",
        description="DIET-SNN integer spiking networks: train, evaluate, generate RTL, simulate.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and (name == e.name or name.startswith(e.name + ".")):
                continue  # that part is absent
            raise
        register = getattr(mod, "register", None)
        if register is not None:
            register(sub)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [CLIError, FileNotFoundError, PermissionError]
    from .model import ModelFileError
    errs.append(ModelFileError)
    try:
        from .data import DataError
        errs.append(DataError)
    except ImportError:
        pass
    return tuple(errs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("dietsnn: interrupted", file=sys.stderr)
        return 130
    except _expected_errors() as e:
        if os.environ.get("DIETSNN_DEBUG"):
            raise
        print(f"dietsnn {args.command}: error: {e}", file=sys.stderr)
        return 1
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
