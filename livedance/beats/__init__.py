"""livedance.beats"""
