"""Latency calibration and avatar profiles (installed as livedance.calibration)."""
