"""livedance.live"""
