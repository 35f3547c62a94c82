"""Training throughput (images/s, forward + backward, T = 5) on the shipped topology.

Side by side, in one process, on the same weights and batch:

- ``dietsnn-qat``         : dietsnn.quant (layer-major, fused C LIF kernel with the max
                            pooling folded in), QAT forward, as ``dietsnn train`` runs on a CPU
- ``dietsnn-float``       : the same in float units
- ``dietsnn-float-eager`` : the same with ``DIETSNN_LIF_KERNEL=0`` (fused autograd function,
                            PyTorch ops per step inside it)
- ``per-step``            : a straightforward per-time-step loop as in DIET-SNN's code
                            (every layer at every step, autograd through each step)
- ``snntorch``            : snnTorch ``Leaky`` neurons (subtract reset, learnable beta and
                            threshold) building the same network, per-time-step loop

The implementations take turns: each round times ``--iters`` steps of each, and the figure
is the median over ``--rounds`` rounds, so a slow spell of the machine hits all of them.
``dietsnn train`` keeps freed memory in the process (``keep_freed_memory``); the benchmark does
the same for every implementation (``--no-keep-memory`` to measure without).

Usage: ``python bench/train_speed.py [--batch 32] [--iters 3] [--rounds 5] [--threads N]
[--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from dietsnn.model import InputSpec
from dietsnn.quant import kernel
from dietsnn.quant.lif import surrogate
from dietsnn.quant.network import DietSNN
from torch import nn

ARCH = "32C-32C-P-64C-64C-P-128C-128C-P-10"


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, th):
        ctx.save_for_backward(u, th)
        return (u > th).float()

    @staticmethod
    def backward(ctx, g):
        u, th = ctx.saved_tensors
        sg = surrogate(u, th) * g
        return sg / th, -(sg * u).sum() / (th * th)


def per_step_forward(net: DietSNN, x: torch.Tensor, t_steps: int) -> torch.Tensor:
    """DIET-SNN style: for t, for layer: conv -> leak -> spike -> soft reset."""
    mems: dict[int, torch.Tensor] = {}
    out = 0
    inp = x * net.input_spec.scale
    for _ in range(t_steps):
        h = inp
        iw = 0
        for layer in net.layers:
            if layer.type == "pool":
                h = F.max_pool2d(h, 2)
                continue
            w = net.weights[iw]
            cur = F.conv2d(h, w, padding=1) if layer.type == "conv" else F.linear(h.flatten(1), w)
            if layer.output:
                out = out + cur
                break
            u = net.leak[iw] * mems.get(iw, torch.zeros_like(cur)) + cur
            s = _Spike.apply(u, net.v_th[iw])
            mems[iw] = u - net.v_th[iw] * s.detach()
            h = s
            iw += 1
    return out


class SnnTorchNet(nn.Module):
    def __init__(self, net: DietSNN) -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate as sg

        self.layers = net.layers
        self.syn = nn.ModuleList()
        self.lif = nn.ModuleList()
        for layer in net.layers:
            if layer.type == "conv":
                self.syn.append(nn.Conv2d(layer.in_shape[0], layer.out_shape[0], 3, padding=1,
                                          bias=False))
            elif layer.type == "linear":
                self.syn.append(nn.Linear(layer.in_shape[0], layer.out_shape[0], bias=False))
            if layer.is_lif:
                self.lif.append(snn.Leaky(beta=0.95, threshold=1.0, learn_beta=True,
                                          learn_threshold=True, reset_mechanism="subtract",
                                          spike_grad=sg.triangular()))
        self.scale = net.input_spec.scale

    def forward(self, x: torch.Tensor, t_steps: int) -> torch.Tensor:
        mems = [lif.init_leaky() for lif in self.lif]
        out = 0
        for _ in range(t_steps):
            h = x * self.scale
            i = 0
            for layer in self.layers:
                if layer.type == "pool":
                    h = F.max_pool2d(h, 2)
                    continue
                cur = self.syn[i](h if layer.type == "conv" else h.flatten(1))
                if layer.output:
                    out = out + cur
                    break
                h, mems[i] = self.lif[i](cur, mems[i])
                i += 1
        return out


def _time(step, iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return (time.perf_counter() - t0) / iters


def _with_kernel(on: bool, fn):
    def run() -> None:
        old = os.environ.get("DIETSNN_LIF_KERNEL")
        os.environ["DIETSNN_LIF_KERNEL"] = "1" if on else "0"
        try:
            fn()
        finally:
            if old is None:
                del os.environ["DIETSNN_LIF_KERNEL"]
            else:
                os.environ["DIETSNN_LIF_KERNEL"] = old
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=3, help="steps per implementation per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--timesteps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-keep-memory", action="store_true",
                    help="leave glibc's malloc at its defaults")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    kept = False if a.no_keep_memory else kernel.keep_freed_memory()
    torch.manual_seed(0)
    net = DietSNN(ARCH, input_spec=InputSpec(), timesteps=a.timesteps, dropout=(0.0, 0.0))
    net.set_weight_scales()
    with torch.no_grad():
        net.v_th.fill_(1.0)
        net.v_th[0] = 3.0
        net.leak.fill_(0.9)
    net.train()
    x = net.quantize_input(torch.randint(0, 256, (a.batch, 3, 32, 32), dtype=torch.uint8))
    y = torch.randint(0, 10, (a.batch,))
    snt = SnnTorchNet(net)
    runs = {
        "dietsnn-qat": _with_kernel(True, lambda: F.cross_entropy(net(x, "qat"), y).backward()),
        "dietsnn-float": _with_kernel(
            True, lambda: F.cross_entropy(net(x, "float"), y).backward()),
        "dietsnn-float-eager": _with_kernel(
            False, lambda: F.cross_entropy(net(x, "float"), y).backward()),
        "per-step": lambda: F.cross_entropy(per_step_forward(net, x, a.timesteps), y).backward(),
        "snntorch": lambda: F.cross_entropy(snt(x, a.timesteps), y).backward(),
    }
    for fn in runs.values():  # warm-up (and the kernel's first build)
        fn()
    rounds: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(a.rounds):
        for k, fn in runs.items():
            rounds[k].append(a.batch / _time(fn, a.iters))
    ips = {k: statistics.median(v) for k, v in rounds.items()}
    res = {
        "benchmark": "train_speed", "arch": ARCH, "timesteps": a.timesteps, "batch": a.batch,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "lif_kernel": kernel.load() is not None, "keep_freed_memory": kept,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
        "rounds": a.rounds, "iters_per_round": a.iters,
        "images_per_second": ips,
        "images_per_second_rounds": rounds,
        "speedup_vs_per_step": ips["dietsnn-float"] / ips["per-step"],
        "speedup_vs_snntorch": ips["dietsnn-float"] / ips["snntorch"],
        "qat_speedup_vs_per_step": ips["dietsnn-qat"] / ips["per-step"],
        "qat_speedup_vs_snntorch": ips["dietsnn-qat"] / ips["snntorch"],
        "kernel_speedup_vs_eager": ips["dietsnn-float"] / ips["dietsnn-float-eager"],
    }
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        from dietsnn.fileio import write_atomic
        write_atomic(a.out, text + "\n")


if __name__ == "__main__":
    main()
