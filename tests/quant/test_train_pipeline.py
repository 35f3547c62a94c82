"""`dietsnn train` end to end on a few hundred real images: every stage, resume, determinism."""

import json

import numpy as np
import pytest
import torch
from dietsnn.cli import main
from dietsnn.model import load
from dietsnn.quant.train import load_checkpoint


def _train(tmp_path, out, *extra):
    return main(["train", "--config", "configs/ci.toml", "--out", str(tmp_path / out),
                 "--device", "cpu", *extra])


def test_ci_config_trains_exports_and_is_deterministic(tmp_path, cifar_test, capsys):
    assert _train(tmp_path, "a", "--json", "--ship", str(tmp_path / "shipped.npz")) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["export"]["bit_exact"] is True
    model = load(tmp_path / "shipped.npz")
    assert model.kind == "trained" and model.provenance["config"]["name"] == "ci"
    assert 0.0 <= model.metrics["test_accuracy"] <= 1.0
    log = (tmp_path / "a" / "log.csv").read_text()
    assert "snn" in log and "spike_rates" in log.splitlines()[0]
    # the same seed gives the same weights
    assert _train(tmp_path, "b", "--json") == 0
    capsys.readouterr()
    other = load(tmp_path / "b" / "model.npz")
    for k, w in model.weights.items():
        np.testing.assert_array_equal(w, other.weights[k])


def test_resume_after_interruption_is_exact(tmp_path, cifar_test, monkeypatch, capsys):
    # reference: two ANN epochs in one go
    import dataclasses

    from dietsnn.quant import config as cfgmod
    from dietsnn.quant.train import Pipeline

    cfg = cfgmod.load_config("configs/ci.toml")
    cfg = dataclasses.replace(cfg, ann=dataclasses.replace(cfg.ann, epochs=2))
    ref = Pipeline(dataclasses.replace(cfg, out_dir=str(tmp_path / "ref")), device="cpu",
                   progress=False)
    ref.stage_ann()
    # interrupted: kill after the first epoch's checkpoint, then resume
    run = dataclasses.replace(cfg, out_dir=str(tmp_path / "cut"))
    p = Pipeline(run, device="cpu", progress=False)
    orig = p.log.write
    calls = {"n": 0}

    def write_then_die(rec):
        orig(rec)
        calls["n"] += 1
        if calls["n"] == 2:  # during epoch 2, after epoch 1's checkpoint exists
            raise KeyboardInterrupt

    monkeypatch.setattr(p.log, "write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        p.stage_ann()
    assert load_checkpoint(tmp_path / "cut" / "ann.pt")["epoch"] == 0
    Pipeline(run, device="cpu", resume=True, progress=False).stage_ann()
    a = load_checkpoint(tmp_path / "ref" / "ann.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "ann.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_bad_config_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\narch = "8C-10"\nepochs = 3\n')
    assert main(["train", "--config", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown key(s) ['epochs']" in err


def test_ann_warm_start_from_another_run(tmp_path, cifar_test, capsys):
    """[ann] start_from: the ANN stage begins at another run's weights (fresh optimiser)."""
    import dataclasses

    from dietsnn.quant import config as cfgmod
    from dietsnn.quant.train import Pipeline

    cfg = cfgmod.load_config("configs/ci.toml")
    first = Pipeline(dataclasses.replace(cfg, out_dir=str(tmp_path / "first")), device="cpu",
                     progress=False)
    first.stage_ann()
    src = tmp_path / "first" / "ann.pt"
    warm = dataclasses.replace(cfg, out_dir=str(tmp_path / "warm"),
                               ann=dataclasses.replace(cfg.ann, epochs=0, start_from=str(src)))
    Pipeline(warm, device="cpu", progress=False).stage_ann()  # 0 epochs: the weights as loaded
    a = load_checkpoint(src)["model"]
    b = load_checkpoint(tmp_path / "warm" / "ann.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # a missing or foreign checkpoint is a one-line error naming the key
    bad = tmp_path / "bad.toml"
    text = open("configs/ci.toml").read().replace(
        "[ann]\n", f'[ann]\nstart_from = "{tmp_path / "nope.pt"}"\n')
    bad.write_text(text)
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "x"), "--device", "cpu",
                 "--stage", "ann"]) == 1
    err = capsys.readouterr().err.strip()
    assert "ann.start_from" in err and "nope.pt" in err
    torch.save({"model": {"weights.0": torch.zeros(3)}}, tmp_path / "other.pt")
    bad.write_text(text.replace("nope.pt", "other.pt"))
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "y"), "--device", "cpu",
                 "--stage", "ann"]) == 1
    assert "not an ANN checkpoint" in capsys.readouterr().err


def test_batchnorm_config_trains_folds_and_exports_a_biased_model(tmp_path, cifar_test,
                                                                   capsys):
    """``[ann] batchnorm = true``: the ANN trains with BatchNorm, the SNN gets it folded into
    its weights and biases, and the exported model (version 2, a bias on every layer) gives
    the QAT eval forward's predictions and logits in the golden model."""
    import dataclasses

    from dietsnn import golden
    from dietsnn.quant import config as cfgmod
    from dietsnn.quant.export import qat_eval
    from dietsnn.quant.train import Pipeline

    cfg = cfgmod.load_config("configs/ci.toml")
    cfg = dataclasses.replace(cfg, out_dir=str(tmp_path / "bn"),
                              ann=dataclasses.replace(cfg.ann, batchnorm=True))
    p = Pipeline(cfg, device="cpu", progress=False)
    res = p.run()
    assert res["export"]["bit_exact"] is True
    model = load(tmp_path / "bn" / "model.npz")
    assert all(x.has_bias for x in model.layers if x.has_weights)
    assert model.manifest()["version"] == 2 and model.provenance["config"]["ann"]["batchnorm"]
    assert any(np.any(b != 0) for b in model.biases.values())
    net = p._load_stage("snn").cpu()
    images = cifar_test.images[:48]
    logits, _ = qat_eval(net, images)
    g = golden.run(model, model.input.quantize(images))
    np.testing.assert_array_equal(logits, g.logits)
    np.testing.assert_array_equal(np.argmax(logits, axis=1), g.prediction)


def test_folding_batchnorm_keeps_the_ann_output():
    """In eval mode the ANN gives the same output before and after the fold."""
    from dietsnn.model import InputSpec
    from dietsnn.quant.network import DietSNN

    torch.manual_seed(0)
    net = DietSNN("4C-P-6C-12L-10", input_spec=InputSpec(shape=(3, 8, 8)), timesteps=2,
                  bias=True, batchnorm=True)
    with torch.no_grad():   # non-trivial statistics and affine parameters
        for bn in net.bn:
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
        for b in net.biases:
            b.uniform_(-0.2, 0.2)
    net.eval()
    q = torch.randint(-100, 100, (5, 3, 8, 8)).float()
    before = net(q, "ann")
    net.fold_batchnorm()
    torch.testing.assert_close(net(q, "ann"), before, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no unfolded BatchNorm"):
        net.fold_batchnorm()
