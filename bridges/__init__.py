"""Bridges to other programs (installed as livedance.bridges): VMC, raw OSC, BVH, web preview."""
