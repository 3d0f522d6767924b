"""livedance.motion"""
