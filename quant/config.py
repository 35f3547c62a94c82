"""Training configuration: one TOML file drives every stage.

Example (``configs/cifar10.toml``)::

    name = "cifar10"
    arch = "32C-32C-P-64C-64C-P-128C-128C-P-10"
    timesteps = 5
    seed = 0

    [data]            # source = "" uses the default search (see dietsnn.data)
    [quant]           # weight_bits, membrane_bits, first_membrane_bits, input_scale
    [ann]             # epochs, batch_size, lr, momentum, weight_decay, dropout,
                      # warmup_epochs, start_from (warm start from another run's ann.pt),
                      # batchnorm (BatchNorm in the ANN, folded into a bias for the SNN)
    [init]            # percentile, scale, images
    [snn]             # epochs, batch_size, lr, weight_decay, dropout

Unknown keys and wrong types are errors that name the file and the key. The whole config is
checked before any training, including everything the export will check (name, time steps,
layer shapes and sizes), so a run never trains for hours and then fails at export.
:func:`resume_conflicts` lists the keys whose change would make a resumed run differ from an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dietsnn.errors import ConfigError

__all__ = ["ConfigError", "TrainConfig", "check_config", "config_from_json", "flat_config",
           "load_config", "resume_conflicts"]


@dataclass(frozen=True)
class DataConfig:
    source: str = ""
    train_images: int = 0  # 0: all
    test_images: int = 0  # 0: all
    augment: bool = True


@dataclass(frozen=True)
class QuantConfig:
    weight_bits: int = 8
    membrane_bits: int = 16
    first_membrane_bits: int = 20
    input_scale: float = 1.0 / 56.0


@dataclass(frozen=True)
class AnnConfig:
    epochs: int = 40
    batch_size: int = 128
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    dropout: float = 0.2
    warmup_epochs: int = 1
    start_from: str = ""  # warm start: the weights of an ANN checkpoint (another run's ann.pt)
    batchnorm: bool = False  # BatchNorm after each hidden layer, folded into W and a bias


@dataclass(frozen=True)
class InitConfig:
    percentile: float = 99.7
    scale: float = 0.3
    images: int = 512


@dataclass(frozen=True)
class SnnConfig:
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.0
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    name: str
    arch: str
    timesteps: int = 5
    seed: int = 0
    out_dir: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    ann: AnnConfig = field(default_factory=AnnConfig)
    init: InitConfig = field(default_factory=InitConfig)
    snn: SnnConfig = field(default_factory=SnnConfig)

    @property
    def run_dir(self) -> Path:
        """``out_dir``, or ``runs/<name>`` (the name checked to stay inside ``runs``)."""
        if self.out_dir:
            return Path(self.out_dir)
        from dietsnn.fileio import child

        return child("runs", self.name)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {"data": DataConfig, "quant": QuantConfig, "ann": AnnConfig, "init": InitConfig,
             "snn": SnnConfig}


def _typed(value: Any, typ: Any, where: str) -> Any:
    typ = {"int": int, "float": float, "str": str, "bool": bool}.get(typ, typ)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, not {value!r}")
    if not isinstance(value, typ):
        raise ConfigError(f"{where}: expected {typ.__name__}, not {type(value).__name__} "
                          f"{value!r}")
    return value


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kwargs = {}
    for key, value in raw.items():
        f = fields[key]
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table")
            kwargs[key] = _build(_SECTIONS[key], value, f"{where} [{key}]")
        else:
            kwargs[key] = _typed(value, f.type, f"{where}: key {key!r}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


#: Largest config file read (a config is a few hundred bytes).
MAX_CONFIG_BYTES = 1 << 20
#: Keys that may change between a run and its ``--resume`` (where things are, not what).
RESUME_MAY_CHANGE = ("out_dir", "data.source")
#: Keys added after runs were stored, with the value such a run used (read where missing).
ADDED_KEYS = {"ann.batchnorm": False}


def _check(cfg: TrainConfig, where: str) -> None:
    from dietsnn.model import (
        CIFAR10_CLASSES,
        MAX_WEIGHT_BYTES,
        InputSpec,
        ModelFileError,
        is_identifier,
        weight_dtype,
    )
    from dietsnn.topology import build_layers

    if not is_identifier(cfg.name, model=True):
        raise ConfigError(f"{where}: key 'name' must be letters, digits, '_', '-' and '.' "
                          f"starting with a letter (it names the run folder and the model), "
                          f"not {cfg.name!r}")
    if not 0 <= cfg.seed < 2 ** 63:
        raise ConfigError(f"{where}: key 'seed' must be in 0..2^63-1, not {cfg.seed}")
    if not 1 <= cfg.timesteps <= 1024:
        raise ConfigError(f"{where}: key 'timesteps' must be in 1..1024 (the model file's "
                          f"range), not {cfg.timesteps}")
    for sec_name in _SECTIONS:
        sec = getattr(cfg, sec_name)
        for f in dataclasses.fields(sec):
            v = getattr(sec, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{where}: key '{sec_name}.{f.name}' must be a finite "
                                  f"number, not {v}")
    positive = {"timesteps": cfg.timesteps, "ann.batch_size": cfg.ann.batch_size,
                "snn.batch_size": cfg.snn.batch_size, "init.images": cfg.init.images,
                "quant.weight_bits": cfg.quant.weight_bits}
    for key, v in positive.items():
        if v < 1:
            raise ConfigError(f"{where}: key {key!r} must be positive, not {v}")
    for key in ("ann.epochs", "snn.epochs", "data.train_images", "data.test_images"):
        sec, k = key.split(".")
        if getattr(getattr(cfg, sec), k) < 0:
            raise ConfigError(f"{where}: key {key!r} must be >= 0")
    if not 0 < cfg.init.percentile <= 100:
        raise ConfigError(f"{where}: key 'init.percentile' must be in (0, 100]")
    for key in ("ann.dropout", "snn.dropout"):
        sec, k = key.split(".")
        if not 0 <= getattr(getattr(cfg, sec), k) < 1:
            raise ConfigError(f"{where}: key {key!r} must be in [0, 1)")
    if not 2 <= cfg.quant.weight_bits <= 16:
        raise ConfigError(f"{where}: key 'quant.weight_bits' must be in 2..16")
    for key in ("membrane_bits", "first_membrane_bits"):
        if not 4 <= getattr(cfg.quant, key) <= 32:
            raise ConfigError(f"{where}: key 'quant.{key}' must be in 4..32")
    for key in ("ann.lr", "snn.lr", "init.scale", "quant.input_scale"):
        sec, k = key.split(".")
        if not getattr(getattr(cfg, sec), k) > 0:
            raise ConfigError(f"{where}: key {key!r} must be positive")
    for key in ("ann.weight_decay", "snn.weight_decay", "ann.warmup_epochs"):
        sec, k = key.split(".")
        if getattr(getattr(cfg, sec), k) < 0:
            raise ConfigError(f"{where}: key {key!r} must be >= 0")
    if not 0 <= cfg.ann.momentum < 1:
        raise ConfigError(f"{where}: key 'ann.momentum' must be in [0, 1)")
    try:
        InputSpec(scale=cfg.quant.input_scale)
    except ModelFileError as e:
        raise ConfigError(f"{where}: key 'quant.input_scale': {e}") from None
    # what export will check: the layers of the model file
    try:
        layers = build_layers(cfg.arch, weight_bits=cfg.quant.weight_bits,
                              membrane_bits=cfg.quant.membrane_bits)
    except ValueError as e:
        raise ConfigError(f"{where}: key 'arch': {str(e).removeprefix('layer ')}") from None
    if layers[-1].out_shape[0] != len(CIFAR10_CLASSES):
        raise ConfigError(f"{where}: key 'arch' must end in {len(CIFAR10_CLASSES)} outputs "
                          f"(the CIFAR-10 classes), not {layers[-1].out_shape[0]}")
    nbytes = sum(math.prod(x.weight_shape) for x in layers if x.has_weights)
    nbytes *= weight_dtype(cfg.quant.weight_bits).itemsize
    if nbytes > MAX_WEIGHT_BYTES:
        raise ConfigError(f"{where}: key 'arch': {nbytes} bytes of weights exceed the model "
                          f"file's limit of {MAX_WEIGHT_BYTES}")
    if cfg.ann.start_from:
        src = Path(cfg.ann.start_from)
        if not src.is_file():
            raise ConfigError(f"{where}: key 'ann.start_from': no checkpoint file at {src}")


def check_config(cfg: TrainConfig, where: str = "config") -> TrainConfig:
    """Every check of :func:`load_config` on a config built in code; returns ``cfg``."""
    _check(cfg, where)
    return cfg


def flat_config(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'ann': {'lr': 0.1}}`` as ``{'ann.lr': 0.1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resume_conflicts(stored: dict[str, Any], given: TrainConfig) -> list[str]:
    """Keys whose values differ between a run's stored config and ``given`` (dotted names,
    sorted), ignoring :data:`RESUME_MAY_CHANGE`. Any such change makes ``--resume`` differ
    from an uninterrupted run."""
    a, b = {**ADDED_KEYS, **flat_config(stored)}, flat_config(given.to_json())
    keys = sorted((set(a) | set(b)) - set(RESUME_MAY_CHANGE))
    return [k for k in keys if a.get(k, "<missing>") != b.get(k, "<missing>")]


def config_from_json(raw: dict[str, Any], where: str) -> TrainConfig:
    """The :class:`TrainConfig` of a stored ``to_json()`` dictionary (checked)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    cfg = _build(TrainConfig, raw, where)
    _check(cfg, where)
    return cfg


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config TOML file."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, not a config file")
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a config file")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    for req in ("name", "arch"):
        if req not in raw:
            raise ConfigError(f"{path}: missing key {req!r}")
    cfg = _build(TrainConfig, raw, str(path))
    _check(cfg, str(path))
    return cfg
