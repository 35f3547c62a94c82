"""The dietsnn exception hierarchy: every expected failure is a :class:`DietsnnError`.

Library code raises these; the command line (:func:`dietsnn.cli.main`) prints one line on
stderr and exits with :attr:`DietsnnError.exit_code`. Anything else that reaches the command
line is a bug in dietsnn. Library modules import from here, never from :mod:`dietsnn.cli`.

::

    DietsnnError                    exit 1 unless noted
    ├── CLIError                    a bad command-line argument or combination
    │   └── (estimate) PartError, EnergyTableError, ToolMissingError, ... (dietsnn.estimate)
    ├── InputError                  any bad user-supplied file (ValueError too)
    │   ├── ModelFileError          a malformed model file or manifest (dietsnn.model)
    │   ├── DataError               missing or malformed CIFAR-10 data (dietsnn.data)
    │   ├── ConfigError             an invalid training config (dietsnn.quant.config)
    │   ├── CheckpointError         an unreadable or unfitting training checkpoint
    │   └── ResourceLimitError      declared sizes beyond the limits (a decompression bomb)
    ├── OutputError                 an output cannot be written (exists, is a folder, ...)
    └── BusyError                   a run folder is locked by another process (exit 75)

The classes keep their old homes importable: ``dietsnn.model.ModelFileError``,
``dietsnn.data.DataError``, ``dietsnn.quant.config.ConfigError`` and ``dietsnn.cli.CLIError``
are these very classes.
"""

from __future__ import annotations

__all__ = [
    "BusyError",
    "CLIError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DietsnnError",
    "InputError",
    "ModelFileError",
    "OutputError",
    "ResourceLimitError",
    "one_line",
    "EXIT_BUG",
    "EXIT_INTERRUPTED",
]

#: Exit code of an unexpected exception (a bug): ``EX_SOFTWARE`` of ``sysexits.h``.
EXIT_BUG = 70
#: Exit code after Ctrl-C.
EXIT_INTERRUPTED = 130


class DietsnnError(Exception):
    """An expected, user-facing failure: printed as one line by the command line."""

    #: The command line's exit status for this error.
    exit_code: int = 1


class CLIError(DietsnnError):
    """A bad command-line argument, or a failure best described in command-line terms."""


class InputError(DietsnnError, ValueError):
    """A user-supplied file or value is malformed; the message names the file and the field."""


class ModelFileError(InputError):
    """A model file or manifest is malformed. The message names the file and the field."""


class DataError(InputError):
    """The CIFAR-10 data is missing or malformed; the message names the path and the form."""


class ConfigError(InputError):
    """A training configuration is invalid; the message names the file and the key."""


class OutputError(DietsnnError):
    """An output path cannot be written (it exists, is a folder, the file system refuses)."""


class BusyError(DietsnnError):
    """Another process holds the lock of a folder that this one would write."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class ResourceLimitError(InputError):
    """An input declares sizes beyond what dietsnn accepts (a decompression bomb, say)."""


class CheckpointError(InputError):
    """A training checkpoint is unreadable, truncated, or does not fit the config."""


def one_line(text: object, limit: int = 500) -> str:
    """``text`` on one line (runs of whitespace, newlines included, become one space), cut to
    ``limit`` characters: for messages that quote another library's exception."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."
