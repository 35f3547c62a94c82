"""dietsnn: DIET-SNN spiking networks carried from training into FPGA hardware.

Subpackages
-----------
``dietsnn.model``    the integer model file (``.npz`` with a JSON manifest), loading and checks
``dietsnn.golden``   the bit-exact integer golden model: the specification
``dietsnn.data``     CIFAR-10 in its common forms
``dietsnn.quant``    DIET-SNN training with quantization-aware training and export
``dietsnn.hw``       Amaranth RTL generators
``dietsnn.sim``      cocotb testbenches
"""

__version__ = "0.1.0"
