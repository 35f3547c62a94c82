"""The fused LIF autograd function against an unrolled per-step autograd reference."""

import numpy as np
import pytest
import torch
from dietsnn import golden
from dietsnn.quant.lif import lif, surrogate


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p, th):
        ctx.save_for_backward(p, th)
        return (p > th).to(p.dtype)

    @staticmethod
    def backward(ctx, g):
        p, th = ctx.saved_tensors
        sg = surrogate(p, th) * g
        return sg / th, -(sg * p).sum() / (th * th)


def _reference(cur, th, lam, static_steps=None):
    t_steps = static_steps or cur.shape[0]
    u = torch.zeros(cur.shape[-1], dtype=cur.dtype)
    out = []
    for t in range(t_steps):
        p = lam * u + (cur if static_steps else cur[t])
        s = _Spike.apply(p, th)
        out.append(s)
        u = p - th * s.detach()
    return torch.stack(out)


@pytest.mark.parametrize("static", [False, True])
def test_fused_backward_matches_unrolled_autograd(static):
    torch.manual_seed(0)
    shape = (40,) if static else (4, 40)
    grads = []
    for fn in ("fused", "ref"):
        cur = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        torch.manual_seed(1)
        with torch.no_grad():
            cur.copy_(torch.randn(*shape, dtype=torch.float64))
        th = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        lam = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
        if fn == "fused":
            s = lif(cur, th, lam, shift=None, bounds=None, steps=4 if static else None)
        else:
            s = _reference(cur, th, lam, 4 if static else None)
        w = torch.linspace(-1, 1, s.numel(), dtype=torch.float64).view_as(s)
        (s * w).sum().backward()
        grads.append((s.detach(), cur.grad, th.grad, lam.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lif_kernel", ["1", "0"])
def test_quantised_forward_equals_golden_lif(lif_kernel, monkeypatch):
    """The C kernel and the eager loop (2,500 neurons: several kernel blocks) against golden."""
    monkeypatch.setenv("DIETSNN_LIF_KERNEL", lif_kernel)
    rng = np.random.default_rng(3)
    cur = rng.integers(-3000, 3000, size=(6, 2500))
    for k in range(0, 5):
        for bits in (12, 16):
            spikes, _ = golden.lif_layer(cur, leak_shift=k, threshold=900, membrane_bits=bits)
            got = lif(torch.tensor(cur, dtype=torch.float32), torch.tensor(900.0),
                      torch.tensor(1.0), shift=k,
                      bounds=(-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1))
            np.testing.assert_array_equal(got.numpy().astype(np.uint8), spikes)
