"""livedance.model"""
