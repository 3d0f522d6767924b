#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian/Ubuntu machine: system packages, a virtual
# environment in .venv, and livedance installed in it (editable) with its test tools.
# Run by `make` before every target; it does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: PortAudio for sounddevice, JACK (jackd, jack_metro, jack_connect) for the
# dummy-backend audio tests, liblo-tools (oscdump) as a third-party OSC peer, chromium for the
# headless web-preview test.
APT_PACKAGES=(libportaudio2 jackd2 liblo-tools chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# The CPU build of torch (this machine kind keeps torch 2.13.0 on disk; elsewhere pip fetches it).
# Elsewhere, install a CPU build of torch first (from PyTorch's CPU wheel index)
# to avoid the multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || \
  .venv/bin/pip install -q torch==2.13.0 || \
  .venv/bin/pip install -q "torch>=2.2"
# aubio 0.4.9 ships only a source distribution; it builds against the installed numpy.
.venv/bin/python -c "import aubio" 2>/dev/null || {
  .venv/bin/pip install -q numpy setuptools wheel
  .venv/bin/pip install -q --no-build-isolation aubio==0.4.9
}
.venv/bin/pip install -q -e ".[dev]"
echo "setup: done ($(.venv/bin/livedance --version))"
