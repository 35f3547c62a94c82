"""dietsnn.hw"""
