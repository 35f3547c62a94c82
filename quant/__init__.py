"""dietsnn.quant"""
