"""Bridges to other programs (installed as livedance.bridges): VMC and raw OSC senders, BVH and npz
recorders, avatar retargeting. See bridges/README.md."""
