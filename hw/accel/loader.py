"""Host side of the ``wload`` stream: run another trained model of the same shape.

An accelerator generated with ``weights="loadable"`` keeps its weights in RAMs (initialised
from the generating model) and its thresholds and leak shifts in registers; :func:`load_beats`
turns a second model into the ``(addr, data)`` beats that replace them, after checking that it
fits the generated hardware.
"""

from __future__ import annotations

from ...model import Model
from .plan import AccelPlan, PlanError, make_plan, pack_rows


def load_beats(plan: AccelPlan, model: Model) -> list[tuple[int, int]]:
    """``(addr, data)`` beats that load ``model`` into an accelerator built for ``plan``.

    Raises :class:`~.plan.PlanError` when ``model`` differs in shape, widths or timesteps, or
    when its currents or logits would not fit the generated datapath.
    """
    new = make_plan(model, plan.lanes)
    old_stages = [(s.kind, s.c_in, s.h_in, s.w_in, s.c_out, s.h, s.w, s.pool != "",
                   s.membrane_bits) for s in plan.stages]
    new_stages = [(s.kind, s.c_in, s.h_in, s.w_in, s.c_out, s.h, s.w, s.pool != "",
                   s.membrane_bits) for s in new.stages]
    if old_stages != new_stages or new.timesteps != plan.timesteps:
        raise PlanError(f"{model.name}: not the shape this accelerator was generated for "
                        f"({plan.model_name}); layers, membrane bits and timesteps must match")
    checks = [("weight_bits", new.weight_bits, plan.weight_bits),
              ("vbits (current bound)", new.vbits, plan.vbits),
              ("acc_bits (first-layer current bound)", new.acc_bits, plan.acc_bits),
              ("out_bits (logit bound)", new.out_bits, plan.out_bits)]
    for what, need, have in checks:
        if need > have:
            raise PlanError(f"{model.name}: needs {what} {need} but the accelerator has {have}")
    beats = list(enumerate(pack_rows(new.weight_rows, plan.weight_bits)))
    for k, s in enumerate(new.stages):
        beats.append((plan.wrows + k, s.threshold | (s.leak_shift << 32)))
    return beats
