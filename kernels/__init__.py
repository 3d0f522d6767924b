"""Streaming step kernels (installed as livedance.kernels): readable reference ops beside fast paths."""
