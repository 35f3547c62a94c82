"""The DIET-SNN LIF neuron for training: one fused autograd function over all time steps.

Forward (integer units, exactly :func:`dietsnn.golden.lif_layer` when quantised)::

    A_t = U_{t-1} - (U_{t-1} >>> k)        (k = 0: A_t = U_{t-1})   -- quantised leak
    A_t = lam * U_{t-1}                                              -- float leak
    P_t = sat_B(A_t + I_t)                  (no saturation in float mode)
    s_t = [P_t > theta]
    U_t = P_t - theta * s_t

Backward (BPTT through the whole layer in one call, no per-step autograd graph)::

    z_t = P_t / theta - 1,   ds_t/dz_t = 0.3 * max(0, 1 - |z_t|)      (DIET-SNN surrogate)

The spike in the reset term is detached (gradients flow through ``P_t``, not ``s_t``);
saturation and the shift leak pass gradients straight through (``dA/dU = lam_q``,
``dA/dlam = U``), the straight-through estimator of quantisation-aware training.

Evaluating a layer for all ``T`` steps at once (layer-major) lets the synaptic convolutions
run once on a ``T * N`` batch and keeps Python out of the per-step autograd graph. On the CPU
(contiguous float32 tensors) both passes run in the C kernel of :mod:`dietsnn.quant.kernel`;
the loops below are the reference it is tested against and the path for CUDA and float64.
:func:`lif_pool` also folds in the 2x2 max pooling that follows a layer
(see ``bench/train_speed.py`` and docs/training.md).
"""

from __future__ import annotations

import torch

from . import kernel

SURROGATE_ALPHA = 0.3


def surrogate(p: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``ds/dz = 0.3 * max(0, 1 - |p / theta - 1|)``."""
    return SURROGATE_ALPHA * torch.clamp(1.0 - torch.abs(p / theta - 1.0), min=0.0)


def leak_value(u: torch.Tensor, shift: int | None, lam: float) -> torch.Tensor:
    """The leaked membrane ``A``: integer shift leak (``shift`` >= 0) or float ``lam * u``."""
    if shift is None:
        return u * lam
    if shift == 0:
        return u
    return u - torch.floor(u * (2.0 ** -shift))


class LIFFunction(torch.autograd.Function):
    """Fused LIF over time. See the module docstring.

    Arguments of ``apply``: ``current`` ``[T, ...]`` (or ``[...]`` with ``steps`` given: the
    same current at every step, as for the direct-encoded first layer), ``theta`` and
    ``lam`` (0-d tensors), ``shift`` (int, or None for the float leak), ``bounds``
    (``(lo, hi)`` saturation, or None), ``steps`` (int or None), ``pool`` (bool: return the
    2x2 max-pooled spikes of a channels-last ``[T, N, H, W, C]`` current; kernel only).
    """

    @staticmethod
    def forward(ctx, current, theta, lam, shift, bounds, steps, pool=False):  # noqa: D102
        static = steps is not None
        t_steps = steps if static else current.shape[0]
        shape = current.shape if static else current.shape[1:]
        th = float(theta)
        lam_f = float(lam)
        ctx.theta = th
        ctx.lam = lam_f if shift is None else (1.0 if shift == 0 else 1.0 - 2.0 ** -shift)
        ctx.static = static
        ctx.pool = pool
        ctx.kernel = kernel.usable(current)
        if ctx.kernel:  # one fused C pass (CPU, float32)
            leak = lam_f if shift is None else (0.0 if shift == 0 else 2.0 ** -shift)
            spikes, pre = kernel.forward(current, t_steps, static, th, leak, shift is not None,
                                         bounds, pool)
            ctx.save_for_backward(pre)
            return spikes
        if pool:
            raise ValueError("pool=True needs the LIF kernel (a contiguous float32 CPU tensor)")
        pre = torch.empty((t_steps, *shape), dtype=current.dtype, device=current.device)
        spikes = torch.empty_like(pre)
        u = None
        for t in range(t_steps):
            a = pre[t]
            cur = current if static else current[t]
            if u is None:  # U_0 = 0
                a.copy_(cur)
            elif shift is None:
                torch.add(cur, u, alpha=lam_f, out=a)
            elif shift == 0:
                torch.add(cur, u, out=a)
            else:  # u - floor(u * 2^-k) + I
                torch.mul(u, 2.0 ** -shift, out=a).floor_()
                torch.sub(u, a, out=a).add_(cur)
            if bounds is not None:
                a.clamp_(bounds[0], bounds[1])
            torch.gt(a, th, out=spikes[t])
            u = torch.sub(a, spikes[t], alpha=th)
        ctx.save_for_backward(pre, spikes)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):  # noqa: D102
        th, lam = ctx.theta, ctx.lam
        if ctx.kernel:
            (pre,) = ctx.saved_tensors
            g_cur, g_th, g_lam = kernel.backward(pre, grad_spikes.contiguous(), ctx.static, th,
                                                 lam, ctx.pool)
            return (g_cur, torch.tensor(g_th, dtype=pre.dtype),
                    torch.tensor(g_lam, dtype=pre.dtype), None, None, None, None)
        pre, spikes = ctx.saved_tensors
        inv = 1.0 / th
        t_steps = pre.shape[0]
        g_cur = torch.empty_like(pre)
        g_theta = torch.zeros((), dtype=pre.dtype, device=pre.device)
        g_lam = torch.zeros((), dtype=pre.dtype, device=pre.device)
        g_u = None
        sur = torch.empty_like(pre[0])
        for t in range(t_steps - 1, -1, -1):
            p = pre[t].reshape(-1)
            # ds/dP = 0.3 max(0, 1 - |P/theta - 1|) / theta, times dL/ds
            torch.mul(p, inv, out=sur.view(-1)).sub_(1.0).abs_().mul_(-SURROGATE_ALPHA)
            sur.add_(SURROGATE_ALPHA).clamp_(min=0.0).mul_(grad_spikes[t])
            gs = sur.view(-1)
            g_p = g_cur[t].view(-1)
            if g_u is None:
                torch.mul(gs, inv, out=g_p)
            else:
                torch.add(g_u, gs, alpha=inv, out=g_p)
                g_theta -= torch.dot(g_u, spikes[t].reshape(-1))
            g_theta -= torch.dot(gs, p) * (inv * inv)
            if t > 0:  # U_{t-1} = P_{t-1} - theta s_{t-1}
                g_lam += torch.dot(g_p, pre[t - 1].reshape(-1))
                g_lam -= th * torch.dot(g_p, spikes[t - 1].reshape(-1))
            g_u = g_p * lam
        if ctx.static:
            g_cur = g_cur.sum(0)
        return g_cur, g_theta, g_lam, None, None, None, None


def lif(
    current: torch.Tensor,
    theta: torch.Tensor,
    lam: torch.Tensor,
    *,
    shift: int | None,
    bounds: tuple[float, float] | None,
    steps: int | None = None,
) -> torch.Tensor:
    """Spikes ``[T, ...]`` of a LIF layer; see :class:`LIFFunction`.

    The update is elementwise, so it runs on the tensor's memory order (channels-last
    currents stay channels-last, with no copies); the spikes come back in the same layout.
    """
    perm = sorted(range(current.dim()), key=lambda d: (-current.stride(d), d))
    cur = current.permute(perm)
    if not cur.is_contiguous():
        cur = cur.contiguous()
        perm = list(range(current.dim()))
        cur = current.contiguous()
    s = LIFFunction.apply(cur, theta, lam, shift, bounds, steps)
    if steps is not None:
        perm = [0] + [p + 1 for p in perm]
    inv = sorted(range(len(perm)), key=lambda d: perm[d])
    return s.permute(inv)


def lif_pool(
    current: torch.Tensor,
    theta: torch.Tensor,
    lam: torch.Tensor,
    *,
    shift: int | None,
    bounds: tuple[float, float] | None,
    steps: int | None = None,
) -> torch.Tensor:
    """``max_pool2d(lif(...), 2)``: the 2x2 max-pooled spikes ``[T, N, C, H/2, W/2]`` of a
    convolutional LIF layer with current ``[T, N, C, H, W]`` (or ``[N, C, H, W]`` with
    ``steps``).

    With the CPU kernel and a channels-last current with even ``H`` and ``W``, the LIF and the
    pooling run as one pass and the full-resolution spikes are never stored (the backward pass
    recomputes them from the saved membranes); otherwise this is :func:`lif` followed by
    ``F.max_pool2d``. Both give the same values and gradients.
    """
    static = steps is not None
    t_steps = steps if static else current.shape[0]
    n, c, h, w = current.shape if static else current.shape[1:]
    lead = 0 if static else 1
    cl = current.permute(*range(lead + 1), lead + 2, lead + 3, lead + 1)  # [.., N, H, W, C]
    if h % 2 == 0 and w % 2 == 0 and cl.is_contiguous() and kernel.usable(cl):
        y = LIFFunction.apply(cl, theta, lam, shift, bounds, steps, True)
        return y.permute(0, 1, 4, 2, 3)
    s = lif(current, theta, lam, shift=shift, bounds=bounds, steps=steps)
    y = torch.nn.functional.max_pool2d(s.flatten(0, 1), 2)
    return y.view(t_steps, n, *y.shape[1:])
