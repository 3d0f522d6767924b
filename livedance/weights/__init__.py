"""livedance.weights"""
