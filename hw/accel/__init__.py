"""The whole-network SNN accelerator: AXI4-Stream image in, class and logits out.

:class:`Accelerator` (the Amaranth component), :func:`generate` (Verilog + ``params.json``),
:func:`make_plan` (how a model maps onto the datapath) and :func:`image_cycles` (the exact
cycle model). See ``docs/accelerator.md``.
"""

from .core import Accelerator
from .cycles import image_cycles
from .gen import generate
from .plan import AccelPlan, PlanError, make_plan

__all__ = ["AccelPlan", "Accelerator", "PlanError", "generate", "image_cycles", "make_plan"]
