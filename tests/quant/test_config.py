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
