import pytest
from dietsnn.quant.config import ConfigError, load_config


def _write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_shipped_configs_are_valid():
    for name in ("cifar10", "tiny", "ci"):
        cfg = load_config(f"configs/{name}.toml")
        assert cfg.name == name


@pytest.mark.parametrize("text, msg", [
    ('arch = "8C-10"', "missing key 'name'"),
    ('name = "x"\narch = "8C-10"\nbogus = 1', "unknown key(s) ['bogus']"),
    ('name = "x"\narch = "8C-10"\n[ann]\nepochs = "ten"', "key 'epochs': expected int"),
    ('name = "x"\narch = "8C-10"\n[snn]\nlr = true', "key 'lr': expected float"),
    ('name = "x"\narch = "8X-10"', "key 'arch'"),
    ('name = "x"\narch = "8C-10"\n[nope]\na = 1', "unknown key(s) ['nope']"),
    ('name = "x"\narch = "8C-10"\n[ann]\ndropout = 1.5', "'ann.dropout' must be in [0, 1)"),
    ('name = "x" arch', "not valid TOML"),
])
def test_bad_configs_name_the_key(tmp_path, text, msg):
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert msg in str(e.value) and str(p) in str(e.value)


def test_batchnorm_key_and_runs_stored_before_it():
    """``[ann] batchnorm`` is a bool (default off); a run stored before the key existed
    resumes without a conflict, one that changes it does not."""
    from dietsnn.quant.config import flat_config, resume_conflicts

    cfg = load_config("configs/ci.toml")
    assert cfg.ann.batchnorm is False
    stored = cfg.to_json()
    del stored["ann"]["batchnorm"]
    assert resume_conflicts(stored, cfg) == []
    on = load_config_text('name = "x"\narch = "4C-10"\n[ann]\nbatchnorm = true\n')
    assert on.ann.batchnorm is True
    assert "ann.batchnorm" in resume_conflicts(stored, on)
    assert flat_config(on.to_json())["ann.batchnorm"] is True
    with pytest.raises(ConfigError, match=r"key 'batchnorm': expected bool"):
        load_config_text('name = "x"\narch = "4C-10"\n[ann]\nbatchnorm = 1\n')


def load_config_text(text: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.toml"
        p.write_text(text)
        return load_config(p)
