"""livedance.audio"""
