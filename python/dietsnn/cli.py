"""The ``dietsnn`` command line.

Each part of the package contributes its subcommands through a ``register(subparsers)``
function in its own ``commands`` module (listed in :data:`COMMAND_MODULES`); a module that is
not installed (for example without the hardware extras) simply contributes nothing.

A handler returns an exit code (or None for 0). Expected failures (bad files, missing data,
missing tools, bad arguments) raise a :class:`~dietsnn.errors.DietsnnError` and are printed
as one line on stderr (``dietsnn CMD: error: ...``) with the error's exit code (1 for most),
never a traceback. Operating-system errors (a path that exists, is a folder, a read-only file
system, a full disk) are printed the same way with exit code 1. Any other exception is a bug
in dietsnn: one line saying so and asking for a report, exit code 70. ``--debug`` (before
the command) or ``DIETSNN_DEBUG=1`` adds the full traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from .errors import EXIT_BUG, EXIT_INTERRUPTED, CLIError, DietsnnError, one_line

COMMAND_MODULES = (
    "dietsnn.commands",
    "dietsnn.quant.commands",
    "dietsnn.hw.commands",
    "dietsnn.sim.commands",
    "dietsnn.estimate.commands",
    "dietsnn.nirio",
)

__all__ = ["CLIError", "build_parser", "main"]

#: Expected failures of parts that do not (yet) derive from DietsnnError: (module, class).
#: Looked up only in modules already imported, so the command line imports nothing for them.
FOREIGN_EXPECTED = (
    ("dietsnn.nirio.importer", "NIRImportError"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dietsnn",
        description="DIET-SNN integer spiking networks: train, evaluate, generate RTL, simulate.")
    parser.add_argument("--debug", action="store_true",
                        help="print the full traceback of any error (also DIETSNN_DEBUG=1)")
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


def _foreign_expected() -> tuple[type[BaseException], ...]:
    found = []
    for mod_name, cls_name in FOREIGN_EXPECTED:
        cls = getattr(sys.modules.get(mod_name), cls_name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def _debug_env() -> bool:
    return os.environ.get("DIETSNN_DEBUG", "") not in ("", "0")


def _os_message(e: OSError) -> str:
    """One line for an operating-system error: what failed, and on which path."""
    what = e.strerror or str(e) or type(e).__name__
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{what}: {' -> '.join(paths)}" if paths else what


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 success, 1 error, 70 a bug)."""
    debug = _debug_env()
    command = "dietsnn"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        debug = debug or args.debug
        command = f"dietsnn {args.command}"
        rc = args.func(args)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except DietsnnError as e:
        return _report(command, str(e), e.exit_code, debug)
    except OSError as e:
        return _report(command, _os_message(e), 1, debug)
    except Exception as e:  # noqa: BLE001 - the last line of defence
        if isinstance(e, _foreign_expected()):
            return _report(command, str(e), 1, debug)
        first = one_line((str(e).strip().splitlines() or [""])[0], 300)
        msg = (f"internal error {type(e).__name__}: {first} -- this is a bug in dietsnn, "
               "please report it" + ("" if debug else " (with the trace from --debug)"))
        return _report(command, msg, EXIT_BUG, debug)
    return int(rc or 0)


def _report(command: str, message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc(file=sys.stderr)
    line = " ".join(message.split()) or "(no message)"
    print(f"{command}: error: {line}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
