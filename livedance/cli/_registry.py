"""Imports every command module so that its commands register on :data:`livedance.cli.app`.

A command module that is not there yet (work in progress) is skipped.
"""

import importlib

for _name in ("eval_cmd", "data_cmd", "audio_cmd", "beats_cmd", "model_cmd", "perform_cmd", "calibrate_cmd"):
    try:
        importlib.import_module(f"livedance.cli.{_name}")
    except ModuleNotFoundError as _err:  # only a missing command module itself is skipped
        if _err.name != f"livedance.cli.{_name}":
            raise
