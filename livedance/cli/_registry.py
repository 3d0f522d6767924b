"""Imports every ``livedance/cli/*_cmd.py`` module so that its commands register on
:data:`livedance.cli.app`. Each subsystem owns one such module."""

import importlib
import pkgutil

import livedance.cli as _cli

for _mod in sorted(m.name for m in pkgutil.iter_modules(_cli.__path__) if m.name.endswith("_cmd")):
    importlib.import_module(f"livedance.cli.{_mod}")
