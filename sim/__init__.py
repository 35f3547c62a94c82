"""dietsnn.sim"""
