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
run once on a ``T * N`` batch and keeps Python out of the per-step autograd graph: this is
what makes training faster than a per-time-step loop (see ``bench/train_speed.py``).
"""

from __future__ import annotations

import torch

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
    (``(lo, hi)`` saturation, or None), ``steps`` (int or None).
    """

    @staticmethod
    def forward(ctx, current, theta, lam, shift, bounds, steps):  # noqa: D102
        static = steps is not None
        t_steps = steps if static else current.shape[0]
        shape = current.shape if static else current.shape[1:]
        th = theta.detach()
        lam_f = float(lam)
        u = torch.zeros(shape, dtype=current.dtype, device=current.device)
        pre = torch.empty((t_steps, *shape), dtype=current.dtype, device=current.device)
        spikes = torch.empty_like(pre)
        for t in range(t_steps):
            a = leak_value(u, shift, lam_f) + (current if static else current[t])
            if bounds is not None:
                a = torch.clamp(a, bounds[0], bounds[1])
            pre[t] = a
            s = (a > th).to(a.dtype)
            spikes[t] = s
            u = a - th * s
        ctx.save_for_backward(pre, spikes, theta)
        ctx.lam = lam_f if shift is None else (1.0 if shift == 0 else 1.0 - 2.0 ** -shift)
        ctx.static = static
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):  # noqa: D102
        pre, spikes, theta = ctx.saved_tensors
        th = theta.detach()
        lam = ctx.lam
        t_steps = pre.shape[0]
        g_u = torch.zeros_like(pre[0])
        g_cur = torch.empty_like(pre) if not ctx.static else torch.zeros_like(pre[0])
        g_theta = torch.zeros((), dtype=pre.dtype, device=pre.device)
        g_lam = torch.zeros((), dtype=pre.dtype, device=pre.device)
        for t in range(t_steps - 1, -1, -1):
            p = pre[t]
            gs = grad_spikes[t] * surrogate(p, th)
            g_p = g_u + gs / th
            g_theta = g_theta - (g_u * spikes[t]).sum() - (gs * p).sum() / (th * th)
            if ctx.static:
                g_cur += g_p
            else:
                g_cur[t] = g_p
            if t > 0:
                u_prev = pre[t - 1] - th * spikes[t - 1]
                g_lam = g_lam + (g_p * u_prev).sum()
            g_u = g_p * lam
        return g_cur, g_theta, g_lam, None, None, None


def lif(
    current: torch.Tensor,
    theta: torch.Tensor,
    lam: torch.Tensor,
    *,
    shift: int | None,
    bounds: tuple[float, float] | None,
    steps: int | None = None,
) -> torch.Tensor:
    """Spikes ``[T, ...]`` of a LIF layer; see :class:`LIFFunction`."""
    return LIFFunction.apply(current, theta, lam, shift, bounds, steps)
