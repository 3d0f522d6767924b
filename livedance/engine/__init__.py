"""livedance.engine"""
