"""The whole-network SNN accelerator: image in, class and logits out.

:class:`Accelerator` (the Amaranth component), :func:`generate` (Verilog + ``params.json``),
:func:`make_plan` (how a model maps onto the datapath) and :func:`cycles_per_image` (the
cycle model). See ``docs/accelerator.md``.
"""

from .core import Accelerator
from .cycles import cycles_per_image
from .gen import generate
from .plan import AccelPlan, PlanError, make_plan

__all__ = ["AccelPlan", "Accelerator", "PlanError", "cycles_per_image", "generate", "make_plan"]
