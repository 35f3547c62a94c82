"""Property-based robustness of training configs (issue 15): any TOML text, any value for any
key, and any stored run config either loads (and then passes every check export makes) or
fails with a :class:`~dietsnn.errors.ConfigError`; never anything else."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib

import pytest
from dietsnn.errors import ConfigError
from dietsnn.model import is_identifier
from dietsnn.quant.config import (
    _SECTIONS,
    TrainConfig,
    config_from_json,
    load_config,
    resume_conflicts,
)

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("DIETSNN_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

TOP = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _SECTIONS]
KEYS = [(None, k) for k in TOP] + [(s, f.name) for s, cls in _SECTIONS.items()
                                   for f in dataclasses.fields(cls)] + [(None, "bogus"),
                                                                        ("ann", "bogus")]
_values = st.one_of(
    st.integers(-2 ** 70, 2 ** 70), st.integers(-3, 2000),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 1), st.booleans(),
    st.text(max_size=16), st.sampled_from(["8C-10", "4C-P-8C-P-10", "../../x", "", "a/b",
                                           "8C-P-P-P-P-P-P-10", "3C-11"]),
    st.lists(st.integers(0, 3), max_size=3))


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) \
            else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    return "[" + ", ".join(_toml_value(x) for x in v) + "]"


def _toml(changes: dict[tuple[str | None, str], object]) -> str:
    top = {"name": "x", "arch": "8C-10"}
    sections: dict[str, dict[str, object]] = {}
    for (sec, key), v in changes.items():
        (top if sec is None else sections.setdefault(sec, {}))[key] = v
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for sec, kv in sections.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in kv.items()]
    return "\n".join(lines) + "\n"


def _check_loaded(cfg: TrainConfig) -> None:
    """What a config that loads promises: export will accept its name and time steps."""
    assert is_identifier(cfg.name, model=True)
    assert 1 <= cfg.timesteps <= 1024 and cfg.seed >= 0
    for sec in _SECTIONS:
        for f in dataclasses.fields(getattr(cfg, sec)):
            v = getattr(getattr(cfg, sec), f.name)
            assert not isinstance(v, float) or math.isfinite(v)


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(KEYS), _values, max_size=4))
def test_any_value_for_any_key(tmp_path, changes):
    p = tmp_path / "c.toml"
    text = _toml(changes)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return  # a value this little writer cannot express
    p.write_text(text)
    try:
        cfg = load_config(p)
    except ConfigError as e:
        assert str(p) in str(e) and "\n" not in str(e)
        return
    _check_loaded(cfg)


@SETTINGS
@given(blob=st.binary(max_size=200))
def test_any_bytes(tmp_path, blob):
    p = tmp_path / "c.toml"
    p.write_bytes(blob)
    try:
        _check_loaded(load_config(p))
    except ConfigError as e:
        assert "\n" not in str(e)


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(KEYS), _values, max_size=3))
def test_stored_run_configs(changes):
    base = load_config("configs/ci.toml").to_json()
    stored = json.loads(json.dumps(base))
    for (sec, key), v in changes.items():
        (stored if sec is None else stored.setdefault(sec, {}))[key] = v
    try:
        cfg = config_from_json(stored, "run/config.json")
    except ConfigError as e:
        assert "run/config.json" in str(e)
        return
    _check_loaded(cfg)
    changed = {k for k in resume_conflicts(base, cfg)}
    assert changed <= {f"{s}.{k}" if s else k for s, k in changes}
