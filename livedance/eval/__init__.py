"""livedance.eval"""
