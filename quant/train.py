"""The DIET-SNN training pipeline: ANN pre-training, threshold initialisation, SNN BPTT with
quantization-aware training, and export to the integer model file.

Stages (each runnable alone; each reads the previous stage's checkpoint in the run folder)::

    ann     ReLU network, SGD + momentum, cosine schedule, crop + flip augmentation
    init    thresholds layer by layer: run the SNN (earlier thresholds fixed) on training
            images, theta_l = scale * percentile_p(I_l)  (DIET-SNN: p = 99.7, scale 0.2..0.3);
            leaks start at 1 (no leak)
    snn     BPTT at T steps with trainable leak and threshold per layer, QAT forward, Adam,
            cross-entropy on the accumulated output membrane
    export  integer model file, golden-model accuracy, bit-exact check against the QAT net

Checkpoints (``<run>/<stage>.pt``) are written atomically after every epoch and hold the
weights, optimiser, epoch and every RNG state, so ``--resume`` after a kill continues exactly
as if uninterrupted. They are loaded with ``weights_only=True``; an unreadable or unfitting
checkpoint raises :class:`~dietsnn.errors.CheckpointError`.

The run folder holds ``config.json`` (the config as given and as run, after any budget plan)
and is locked while a pipeline runs (``.lock``): a second run into the same folder stops at
once with :class:`~dietsnn.errors.BusyError`. A resumed run, or a later stage run alone,
checks the given config against ``config.json`` and refuses a change that would make it
differ from an uninterrupted run, naming the key.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from dietsnn.errors import CheckpointError
from dietsnn.fileio import atomic_path, folder_lock, write_atomic
from dietsnn.model import InputSpec, parse_json
from dietsnn.topology import build_layers
from tqdm import tqdm

from .config import (
    RESUME_MAY_CHANGE,
    ConfigError,
    TrainConfig,
    config_from_json,
    flat_config,
    resume_conflicts,
)
from .network import DietSNN

STAGES = ("ann", "init", "snn", "export")


# --------------------------------------------------------------------------------------------
# Data on the device
# --------------------------------------------------------------------------------------------
class DeviceData:
    """CIFAR-10 as uint8 tensors on the training device, with on-device augmentation."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        from dietsnn.data import load_cifar10

        src = cfg.data.source or None
        train = load_cifar10("train", data=src)
        test = load_cifar10("test", data=src)
        self.source = train.source
        # subsets are fixed-seed random draws (the sources are sorted by class)
        tr = _subset(len(train.labels), cfg.data.train_images, cfg.seed)
        te = _subset(len(test.labels), cfg.data.test_images, cfg.seed)
        self.train_x = torch.from_numpy(train.images[tr]).to(device)
        self.train_y = torch.from_numpy(train.labels[tr]).to(device)
        self.test_images = test.images[te]
        self.test_labels = test.labels[te]
        self.test_x = torch.from_numpy(self.test_images).to(device)
        self.test_y = torch.from_numpy(self.test_labels).to(device)
        self.augment = cfg.data.augment
        self.device = device

    def batches(self, batch_size: int, gen: torch.Generator):
        """Shuffled, augmented training batches (uint8 images, labels)."""
        n = len(self.train_y)
        perm = torch.randperm(n, generator=gen).to(self.device)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            idx = perm[i:i + batch_size]
            x, y = self.train_x[idx], self.train_y[idx]
            if self.augment:
                x = augment(x, gen)
            yield x, y


def _subset(n: int, k: int, seed: int) -> np.ndarray:
    """All indices (k = 0 or k >= n), else a sorted fixed-seed random subset of k."""
    if k <= 0 or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, on uint8 ``[N, C, H, W]``."""
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = ox[:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    return xp[torch.arange(n, device=x.device)[:, None, None, None],
              torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint (``weights_only``); any failure is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - torch.load fails in many ways on a bad file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: not a readable training checkpoint (truncated or of "
                              f"another kind): {first[:200]}") from None
    if not isinstance(st, dict) or not isinstance(st.get("model"), dict):
        raise CheckpointError(f"{path}: not a dietsnn training checkpoint (no 'model' state)")
    return st


def restore(net: DietSNN, st: dict[str, Any], path: Path, arch: str) -> None:
    """``net.load_state_dict`` of a checkpoint, as a :class:`CheckpointError` on mismatch."""
    try:
        net.load_state_dict(st["model"])
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: does not fit the network {arch}: {first[:200]}") from None


def rng_state(gen: torch.Generator) -> dict[str, Any]:
    st = {"gen": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(gen: torch.Generator, st: dict[str, Any]) -> None:
    gen.set_state(st["gen"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------
class Log:
    """Epoch records appended to ``<run>/log.jsonl`` and ``<run>/log.csv``."""

    def __init__(self, run_dir: Path) -> None:
        self.jsonl = run_dir / "log.jsonl"
        self.csv = run_dir / "log.csv"

    def write(self, rec: dict[str, Any]) -> None:
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with self.jsonl.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        flat = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in rec.items()}
        keys = ["stage", "epoch", "loss", "train_acc", "test_acc", "lr", "seconds",
                "thresholds", "leak_shifts", "spike_rates"]
        new = not self.csv.exists()
        with self.csv.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(flat)


# --------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------
def build_net(cfg: TrainConfig) -> DietSNN:
    spec = InputSpec(scale=cfg.quant.input_scale)
    n_lif = sum(x.is_lif for x in build_layers(cfg.arch, spec.shape))
    return DietSNN(cfg.arch, input_spec=spec, timesteps=cfg.timesteps,
                   weight_bits=cfg.quant.weight_bits,
                   membrane_bits=[cfg.quant.first_membrane_bits]
                   + [cfg.quant.membrane_bits] * (n_lif - 1),
                   dropout=(cfg.ann.dropout, cfg.snn.dropout), bias=cfg.ann.batchnorm,
                   batchnorm=cfg.ann.batchnorm)


def cosine_lr(base: float, step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * p))


@torch.no_grad()
def evaluate(net: DietSNN, data: DeviceData, mode: str, batch: int = 500) -> dict[str, Any]:
    """Test accuracy in ``mode``; for SNN modes also the spike rate per layer."""
    net.eval()
    correct, rates, n = 0, {}, len(data.test_y)
    for i in range(0, n, batch):
        x = net.quantize_input(data.test_x[i:i + batch])
        rec: dict = {} if mode != "ann" else None
        out = net(x, mode, record=rec)
        correct += int((out.argmax(1) == data.test_y[i:i + batch]).sum())
        for k, v in (rec or {}).items():
            if not k.startswith("_"):
                rates[k] = rates.get(k, 0.0) + float(v.float().mean()) * len(x)
    return {"test_acc": correct / max(1, n), "spike_rates": {k: v / n for k, v in rates.items()}}


class Pipeline:
    """Runs the stages of one config in its run folder."""

    def __init__(self, cfg: TrainConfig, *, device: str | None = None, resume: bool = False,
                 progress: bool = True, budget_minutes: float = 0.0) -> None:
        self.cfg = cfg
        self.requested = cfg
        self.budget_s = budget_minutes * 60.0
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.resume = resume
        self.progress = progress
        self.run_dir = cfg.run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = Log(self.run_dir)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self._data: DeviceData | None = None

    @property
    def data(self) -> DeviceData:
        if self._data is None:
            self._data = DeviceData(self.cfg, self.device)
        return self._data

    def ckpt(self, stage: str) -> Path:
        return self.run_dir / f"{stage}.pt"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.json"

    def run(self, stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
        """Run ``stages`` in order, holding the run folder's lock."""
        out: dict[str, Any] = {}
        with folder_lock(self.run_dir, "run folder"):
            continuing = self.resume or stages[:1] != ("ann",)
            stored = self._stored_config() if continuing else None
            if stored is not None:
                self._adopt(stored)
            elif self.budget_s and not self.resume and {"ann", "snn"} <= set(stages):
                out["plan"] = self.plan_epochs(self.budget_s)
            if stored is None:
                write_atomic(self.config_path, json.dumps(
                    {"requested": self.requested.to_json(), "config": self.cfg.to_json()},
                    indent=1) + "\n")
            for st in stages:
                out[st] = getattr(self, f"stage_{st}")()
        return out

    def _stored_config(self) -> dict[str, Any] | None:
        """``config.json`` of the run folder (None if there is none)."""
        path = self.config_path
        if not path.is_file():
            return None
        try:
            with path.open("rb") as f:
                text = f.read(1 << 20).decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the run's stored config: {e}") from None
        stored = parse_json(text, str(path), error=ConfigError)
        if not (isinstance(stored, dict) and isinstance(stored.get("requested"), dict)
                and isinstance(stored.get("config"), dict)):
            raise ConfigError(f"{path}: not a dietsnn run config (keys 'requested', 'config')")
        return stored

    def _adopt(self, stored: dict[str, Any]) -> None:
        """Continue the run of ``stored``: refuse a changed config, then run as it ran."""
        bad = resume_conflicts(stored["requested"], self.requested)
        if bad:
            flat_old = flat_config(stored["requested"])
            flat_new = flat_config(self.requested.to_json())
            what = "; ".join(f"key {k!r} was {flat_old.get(k, '<missing>')!r}, now "
                             f"{flat_new.get(k, '<missing>')!r}" for k in bad[:3])
            more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
            raise ConfigError(f"{self.config_path}: the config changed since this run started: "
                              f"{what}{more}; continuing would not reproduce an uninterrupted "
                              f"run: restore the config, or start a new run folder (--out)")
        cfg = config_from_json(stored["config"], str(self.config_path))
        keep = {k: getattr(self.requested, k) for k in RESUME_MAY_CHANGE if "." not in k}
        data = dataclasses.replace(cfg.data, source=self.requested.data.source)
        self.cfg = dataclasses.replace(cfg, data=data, **keep)

    def plan_epochs(self, budget_s: float) -> dict[str, Any]:
        """Fit the ANN and SNN epochs into ``budget_s`` seconds of training on this device.

        Times a few real iterations of each stage, then lowers (never raises) the configured
        epochs so that ANN takes at most 30% and SNN at most 70% of the budget. The epochs
        chosen are recorded in the config (and so in the model's provenance).
        """
        import dataclasses

        cfg = self.cfg
        net = build_net(cfg).to(self.device)
        net.set_weight_scales()
        gen = torch.Generator().manual_seed(0)
        times = {}
        for mode, c in (("ann", cfg.ann), ("qat", cfg.snn)):
            opt = torch.optim.SGD(net.parameters(), lr=1e-9)
            it = (b for _ in range(13) for b in self.data.batches(c.batch_size, gen))
            for i in range(13):
                if i == 3:
                    self._sync()
                    t0 = time.time()
                x, y = next(it)
                loss = F.cross_entropy(net(net.quantize_input(x), mode), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            self._sync()
            per_epoch = (time.time() - t0) / 10 * (len(self.data.train_y) // c.batch_size)
            times[mode] = per_epoch * 1.12  # evaluation and checkpoint overhead
        ann = max(1, min(cfg.ann.epochs, int(0.3 * budget_s / times["ann"])))
        snn = max(1, min(cfg.snn.epochs, int(0.7 * budget_s / times["qat"])))
        self.cfg = dataclasses.replace(cfg, ann=dataclasses.replace(cfg.ann, epochs=ann),
                                       snn=dataclasses.replace(cfg.snn, epochs=snn))
        plan = {"budget_s": budget_s, "epoch_seconds": times, "ann_epochs": ann,
                "snn_epochs": snn}
        tqdm.write(f"plan: {plan}")
        return plan

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    # -- shared epoch loop -------------------------------------------------------------------
    def _train(self, stage: str, net: DietSNN, epochs: int, batch: int, opt, base_lr: float,
               warmup_epochs: int, mode: str) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(self.cfg.seed + (1 if stage == "snn" else 0))
        start = 0
        path = self.ckpt(stage)
        if self.resume and path.exists():
            st = load_checkpoint(path)
            restore(net, st, path, self.cfg.arch)
            if st.get("done"):
                return st["result"]
            try:
                opt.load_state_dict(st["optim"])
                set_rng_state(gen, st["rng"])
                start = int(st["epoch"]) + 1
            except (KeyError, TypeError, ValueError, RuntimeError) as e:
                raise CheckpointError(f"{path}: incomplete checkpoint (optimiser, RNG or "
                                      f"epoch): {str(e)[:200]}") from None
        steps_per_epoch = max(1, len(self.data.train_y) // batch)
        total = epochs * steps_per_epoch
        result: dict[str, Any] = {}
        for epoch in range(start, epochs):
            net.train()
            t0 = time.time()
            loss_sum = correct = seen = 0
            bar = tqdm(self.data.batches(batch, gen), total=steps_per_epoch, leave=False,
                       disable=not self.progress, desc=f"{stage} {epoch + 1}/{epochs}")
            for it, (x, y) in enumerate(bar):
                lr = cosine_lr(base_lr, epoch * steps_per_epoch + it, total,
                               warmup_epochs * steps_per_epoch)
                for g in opt.param_groups:
                    g["lr"] = lr
                out = net(net.quantize_input(x), mode)
                loss = F.cross_entropy(out, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if mode != "ann":
                    net.clamp_parameters()
                loss_sum += float(loss.detach()) * len(y)
                correct += int((out.argmax(1) == y).sum())
                seen += len(y)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
            ev = evaluate(net, self.data, mode)
            p = net.integer_parameters() if mode != "ann" else {}
            result = {"stage": stage, "epoch": epoch, "loss": loss_sum / max(1, seen),
                      "train_acc": correct / max(1, seen), "test_acc": ev["test_acc"],
                      "lr": lr, "seconds": time.time() - t0,
                      "thresholds": p.get("thresholds"), "leak_shifts": p.get("leak_shifts"),
                      "spike_rates": ev["spike_rates"] or None}
            self.log.write(result)
            tqdm.write(f"{stage} epoch {epoch + 1}/{epochs}: loss {result['loss']:.4f} "
                       f"train {result['train_acc']:.4f} test {result['test_acc']:.4f} "
                       f"({result['seconds']:.0f} s)")
            save_checkpoint(path, {"model": net.state_dict(), "optim": opt.state_dict(),
                                   "epoch": epoch, "rng": rng_state(gen), "done": False,
                                   "result": result})
        save_checkpoint(path, {"model": net.state_dict(), "epoch": epochs - 1, "done": True,
                               "result": result})
        return result

    # -- stages ------------------------------------------------------------------------------
    def stage_ann(self) -> dict[str, Any]:
        c = self.cfg.ann
        torch.manual_seed(self.cfg.seed)
        net = build_net(self.cfg).to(self.device)
        if c.start_from:  # warm start: another ANN's weights, a fresh optimiser and schedule
            src = Path(c.start_from)
            if not src.is_file():
                raise ConfigError(f"config {self.cfg.name!r}: key 'ann.start_from': no "
                                  f"checkpoint at {src}")
            try:
                restore(net, load_checkpoint(src), src, self.cfg.arch)
            except CheckpointError as e:
                raise ConfigError(f"config {self.cfg.name!r}: key 'ann.start_from': {src} is "
                                  f"not an ANN checkpoint of {self.cfg.arch}: "
                                  f"{str(e).removeprefix(f'{src}: ')}") from None
            net.to(self.device)
        opt = torch.optim.SGD(net.ann_parameters(), lr=c.lr, momentum=c.momentum,
                              weight_decay=c.weight_decay, nesterov=True)
        return self._train("ann", net, c.epochs, c.batch_size, opt, c.lr, c.warmup_epochs,
                           "ann")

    def _load_stage(self, stage: str) -> DietSNN:
        path = self.ckpt(stage)
        if not path.exists():
            raise CheckpointError(f"{path}: no checkpoint; run stage '{stage}' first")
        net = build_net(self.cfg).to(self.device)
        restore(net, load_checkpoint(path), path, self.cfg.arch)
        return net

    @torch.no_grad()
    def stage_init(self) -> dict[str, Any]:
        """DIET-SNN threshold initialisation, layer by layer, in QAT (integer) units."""
        c = self.cfg.init
        if self.resume and self.ckpt("init").exists():
            st = load_checkpoint(self.ckpt("init"))
            if isinstance(st.get("result"), dict):
                return st["result"]
        net = self._load_stage("ann")
        net.eval()
        if net.batchnorm:   # the SNN has no BatchNorm: its scale and shift go into W and b
            net.fold_batchnorm()
        net.set_weight_scales()
        net.leak.fill_(1.0)
        n_lif = len(net.membrane_bits)
        x = net.quantize_input(self.data.train_x[:c.images])
        thresholds = []
        for j in range(n_lif):
            net.v_th[j + 1:] = 1e9  # later layers silent while layer j is measured
            cur = self._layer_current(net, x, j)
            flat = cur.flatten().float()
            flat = flat[:: max(1, math.ceil(flat.numel() / 8_000_000))]  # quantile size limit
            pct = torch.quantile(flat.cpu(), c.percentile / 100)
            iw = j  # LIF layer j is weighted layer j (the output is last)
            theta = max(1.0, c.scale * float(pct))
            net.v_th[j] = theta * float(net.layer_scale(iw))
            thresholds.append(int(net.int_threshold(j, iw)))
        ev = evaluate(net, self.data, "qat")
        result = {"stage": "init", "epoch": 0, "thresholds": thresholds,
                  "test_acc": ev["test_acc"], "spike_rates": ev["spike_rates"]}
        self.log.write(result)
        tqdm.write(f"init: thresholds {thresholds}, QAT test accuracy {ev['test_acc']:.4f}")
        save_checkpoint(self.ckpt("init"), {"model": net.state_dict(), "done": True,
                                            "result": result})
        return result

    def _layer_current(self, net: DietSNN, x: torch.Tensor, j: int) -> torch.Tensor:
        """Integer input current of LIF layer ``j`` over all steps, earlier layers spiking."""
        cap: dict[str, torch.Tensor] = {}
        target = [x_ for x_ in net.layers if x_.is_lif][j]
        orig = net._synapse

        def hook(layer, inp, w, b=None):
            out = orig(layer, inp, w, b)
            if layer.name == target.name:
                cap["cur"] = out
            return out

        net._synapse = hook  # type: ignore[method-assign]
        try:
            for i in range(0, len(x), 128):
                net(x[i:i + 128], "qat")
                cap.setdefault("all", []).append(cap.pop("cur"))
        finally:
            del net._synapse
        return torch.cat(cap["all"])

    def stage_snn(self) -> dict[str, Any]:
        c = self.cfg.snn
        torch.manual_seed(self.cfg.seed + 1)
        net = self._load_stage("init")
        biases = list(net.biases.parameters()) if net.bias_bits else []
        params = [{"params": list(net.weights.parameters()), "weight_decay": c.weight_decay},
                  {"params": [net.v_th, net.leak, *biases], "weight_decay": 0.0}]
        opt = torch.optim.Adam(params, lr=c.lr)
        return self._train("snn", net, c.epochs, c.batch_size, opt, c.lr, 0, "qat")

    def stage_export(self) -> dict[str, Any]:
        from dietsnn import golden

        from .export import compare_with_golden, to_model

        stage = "snn" if self.ckpt("snn").exists() else "init"
        net = self._load_stage(stage).cpu().eval()
        data = self.data
        labels = data.test_labels
        t0 = time.time()
        fl = evaluate_cpu(net, data.test_images, labels, "float")
        prov = {"config": self.cfg.to_json(), "seed": self.cfg.seed,
                "epochs": {"ann": self.cfg.ann.epochs, "snn": self.cfg.snn.epochs},
                "dataset": data.source, "torch": torch.__version__, "stage": stage,
                "trained_on": str(self.device),
                "ann_checkpoint": str(self.ckpt("ann"))}
        model = to_model(net, name=self.cfg.name, provenance=prov)
        res = golden.run(model, model.input.quantize(data.test_images), progress=self.progress)
        acc = float(np.mean(res.prediction == labels))
        check = compare_with_golden(net, model, data.test_images[:64])
        model.metrics = {"test_accuracy": acc, "test_images": int(len(labels)),
                         "float_snn_accuracy": fl, "dataset": data.source,
                         "qat_golden_bit_exact_images": check["images"],
                         "qat_golden_bit_exact": check["exact"]}
        out = self.run_dir / "model.npz"
        model.save(out)
        result = {"stage": "export", "path": str(out), "test_acc": acc,
                  "float_snn_accuracy": fl, "bit_exact": check["exact"],
                  "seconds": time.time() - t0}
        self.log.write(result)
        tqdm.write(f"export: {out}: golden accuracy {acc:.4f} on {len(labels)} images, "
                   f"float SNN {fl:.4f}, bit-exact vs QAT: {check['exact']}")
        return result


@torch.no_grad()
def evaluate_cpu(net: DietSNN, images: np.ndarray, labels: np.ndarray, mode: str,
                 batch: int = 250, timesteps: int | None = None) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(images), batch):
        x = net.quantize_input(torch.from_numpy(images[i:i + batch]))
        out = net(x, mode, timesteps=timesteps)
        correct += int((out.argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / max(1, len(images))
