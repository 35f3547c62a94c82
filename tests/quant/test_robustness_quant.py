"""Training configs, checkpoints and run folders as untrusted input (issue 15): everything is
checked before training, ``--resume`` refuses a changed config, a run folder has one writer.
No test here trains: each case stops before the first epoch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from dietsnn import errors
from dietsnn.cli import main
from dietsnn.fileio import folder_lock
from dietsnn.quant.config import (
    ConfigError,
    check_config,
    load_config,
    resume_conflicts,
)
from dietsnn.quant.train import Pipeline, load_checkpoint

CI = Path("configs/ci.toml")


def _cfg(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


BASE = 'name = "x"\narch = "8C-10"\n'


@pytest.mark.parametrize("text, msg", [
    ('name = ""\narch = "8C-10"', "key 'name' must be letters"),
    ('name = "../../../tmp/x"\narch = "8C-10"', "key 'name' must be letters"),
    ('name = "/abs"\narch = "8C-10"', "key 'name' must be letters"),
    (BASE + "seed = -1", "key 'seed' must be in 0..2^63-1, not -1"),
    (BASE + "timesteps = 1500", "key 'timesteps' must be in 1..1024"),
    (BASE + "[snn]\nlr = nan", "key 'snn.lr' must be a finite number"),
    (BASE + "[ann]\nlr = inf", "key 'ann.lr' must be a finite number"),
    (BASE + "[ann]\nlr = 0.0", "key 'ann.lr' must be positive"),
    (BASE + "[ann]\nmomentum = 1.0", "key 'ann.momentum' must be in [0, 1)"),
    (BASE + "[ann]\nweight_decay = -1.0", "key 'ann.weight_decay' must be >= 0"),
    (BASE + "[quant]\ninput_scale = 0.0", "key 'quant.input_scale' must be positive"),
    ('name = "x"\narch = "8C-11"', "key 'arch' must end in 10 outputs"),
    ('name = "x"\narch = "8C-P-P-P-P-P-P-10"', "key 'arch'"),
    (BASE + '[ann]\nstart_from = "/nonexistent/ann.pt"', "key 'ann.start_from': no checkpoint"),
    ('name = "x"\narch = "8C-10"\n' + "a = " + "[" * 2000 + "]" * 2000, "TOML"),
])
def test_config_checked_up_front(tmp_path, text, msg):
    p = _cfg(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert msg in str(e.value) and str(p) in str(e.value)
    assert "\n" not in str(e.value)


def test_config_not_utf8_or_a_folder(tmp_path):
    p = tmp_path / "c.toml"
    p.write_bytes(b'name = "\xff"\narch = "8C-10"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(p)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_weights_beyond_the_model_file_limit(tmp_path, monkeypatch):
    from dietsnn import model

    monkeypatch.setattr(model, "MAX_WEIGHT_BYTES", 1000)
    with pytest.raises(ConfigError, match="bytes of weights exceed"):
        load_config(_cfg(tmp_path, 'name = "x"\narch = "64C-10"\n'))


def test_check_config_on_a_built_config():
    cfg = load_config(CI)
    assert check_config(cfg) is cfg
    with pytest.raises(ConfigError, match="key 'seed'"):
        check_config(dataclasses.replace(cfg, seed=-5))


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------
def test_checkpoints_that_are_not(tmp_path):
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.zeros(3)}, "epoch": 0}, good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:-100])
    listed = tmp_path / "list.pt"
    torch.save([1, 2], listed)
    for p in (text, empty, cut, listed, tmp_path / "missing.pt", tmp_path):
        with pytest.raises(errors.CheckpointError) as e:
            load_checkpoint(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    assert load_checkpoint(good)["epoch"] == 0


def test_start_from_a_non_checkpoint(tmp_path, capsys):
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("hello")
    text = CI.read_text().replace("[ann]\n", f'[ann]\nstart_from = "{bogus}"\n')
    rc = main(["train", "--config", str(_cfg(tmp_path, text)), "--out", str(tmp_path / "r"),
               "--device", "cpu", "--stage", "ann"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "ann.start_from" in err and "not an ANN checkpoint" in err


# --------------------------------------------------------------------------------------------
# --resume and the run folder
# --------------------------------------------------------------------------------------------
def _stored_run(tmp_path: Path, **change) -> tuple[Path, object]:
    """A run folder whose config.json holds the CI config; the config given with ``change``."""
    cfg = dataclasses.replace(load_config(CI), out_dir=str(tmp_path / "run"))
    run = Path(cfg.out_dir)
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"requested": cfg.to_json(),
                                                 "config": cfg.to_json()}))
    return run, dataclasses.replace(cfg, **change)


def test_resume_refuses_a_changed_seed(tmp_path):
    run, cfg = _stored_run(tmp_path, seed=1)
    with pytest.raises(ConfigError, match="key 'seed' was 0, now 1") as e:
        Pipeline(cfg, device="cpu", resume=True, progress=False).run(("ann",))
    assert "config.json" in str(e.value)
    assert not (run / "ann.pt").exists()


def test_resume_refuses_a_changed_topology(tmp_path):
    _, cfg = _stored_run(tmp_path, arch="8C-P-16C-P-10")
    with pytest.raises(ConfigError, match="key 'arch' was '4C-P-8C-P-10'"):
        Pipeline(cfg, device="cpu", resume=True, progress=False).run(("ann",))


def test_later_stage_alone_checks_the_config_too(tmp_path):
    cfg = load_config(CI)
    _, changed = _stored_run(tmp_path, snn=dataclasses.replace(cfg.snn, lr=0.5))
    with pytest.raises(ConfigError, match="key 'snn.lr'"):
        Pipeline(changed, device="cpu", progress=False).run(("snn",))


def test_resume_conflicts_ignore_where_things_are(tmp_path):
    cfg = load_config(CI)
    stored = cfg.to_json()
    moved = dataclasses.replace(cfg, out_dir="elsewhere",
                                data=dataclasses.replace(cfg.data, source="/data/copy"))
    assert resume_conflicts(stored, moved) == []
    assert resume_conflicts(stored, dataclasses.replace(cfg, timesteps=4)) == ["timesteps"]


def test_resume_uses_the_planned_epochs(tmp_path):
    """A budget plan lowers the epochs; a resumed run continues with the planned ones."""
    cfg = dataclasses.replace(load_config(CI), out_dir=str(tmp_path / "run"))
    planned = dataclasses.replace(cfg, ann=dataclasses.replace(cfg.ann, epochs=0),
                                  snn=dataclasses.replace(cfg.snn, epochs=0))
    run = Path(cfg.out_dir)
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"requested": cfg.to_json(),
                                                 "config": planned.to_json()}))
    pipe = Pipeline(cfg, device="cpu", resume=True, progress=False)
    pipe._adopt(pipe._stored_config())
    assert pipe.cfg.ann.epochs == 0 and pipe.cfg.out_dir == cfg.out_dir


def test_two_runs_cannot_share_a_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    with folder_lock(run, "run folder"):
        rc = main(["train", "--config", str(CI), "--out", str(run), "--device", "cpu"])
        err = capsys.readouterr().err
    assert rc == 75 and "Traceback" not in err
    assert f"run folder {run} is in use by another process" in err
    assert not (run / "log.jsonl").exists()


def test_ship_onto_a_folder_fails_before_training(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    rc = main(["train", "--config", str(CI), "--out", str(tmp_path / "run"), "--device", "cpu",
               "--ship", str(tmp_path / "models")])
    err = capsys.readouterr().err
    assert rc == 1 and "--ship" in err and "is a folder" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_budget_minutes_must_be_finite(tmp_path, capsys, value):
    rc = main(["train", "--config", str(CI), "--out", str(tmp_path / "run"), "--device", "cpu",
               "--budget-minutes", value])
    err = capsys.readouterr().err
    assert rc == 1 and "--budget-minutes must be a finite number" in err


def test_run_folder_from_a_name_stays_in_runs():
    cfg = load_config(CI)
    assert cfg.run_dir == Path("runs") / "ci"
    with pytest.raises(errors.OutputError, match="leaves its folder"):
        _ = dataclasses.replace(cfg, name="../../tmp/x").run_dir
