"""livedance.data"""
