"""livedance.features"""
