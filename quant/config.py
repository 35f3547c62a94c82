"""Training configuration: one TOML file drives every stage.

Example (``configs/cifar10.toml``)::

    name = "cifar10"
    arch = "32C-32C-P-64C-64C-P-128C-128C-P-10"
    timesteps = 5
    seed = 0

    [data]            # source = "" uses the default search (see dietsnn.data)
    [quant]           # weight_bits, membrane_bits, first_membrane_bits, input_scale
    [ann]             # epochs, batch_size, lr, momentum, weight_decay, dropout,
                      # warmup_epochs, start_from (warm start from another run's ann.pt)
    [init]            # percentile, scale, images
    [snn]             # epochs, batch_size, lr, weight_decay, dropout

Unknown keys and wrong types are errors that name the file and the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dietsnn.errors import ConfigError

__all__ = ["ConfigError", "TrainConfig", "load_config"]


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
        return Path(self.out_dir or f"runs/{self.name}")

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


def _check(cfg: TrainConfig, where: str) -> None:
    from dietsnn.topology import parse_arch

    try:
        parse_arch(cfg.arch)
    except ValueError as e:
        raise ConfigError(f"{where}: key 'arch': {e}") from None
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


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config TOML file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    for req in ("name", "arch"):
        if req not in raw:
            raise ConfigError(f"{path}: missing key {req!r}")
    cfg = _build(TrainConfig, raw, str(path))
    _check(cfg, str(path))
    return cfg
