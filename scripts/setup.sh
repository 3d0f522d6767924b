#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian/Ubuntu machine: system packages, a virtual
# environment in .venv, and livedance installed in it (editable) with its test tools.
# Run by `make` before every target; it does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {  # apt_install PKG...: update the index once, then install
  if [ -z "${APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

# System packages: PortAudio for sounddevice, JACK (jackd, jack_metro, jack_connect) for the
# dummy-backend audio tests, liblo-tools (oscdump) as a third-party OSC peer.
APT_PACKAGES=(libportaudio2 jackd2 liblo-tools)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# A distro Python needs python3-venv for .venv, and a C compiler and its headers for aubio (source only):
# checked only while .venv or aubio is still to be built.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import aubio" 2>/dev/null; then
  "$PYTHON" -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  "$PYTHON" -c "import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
    || missing+=(python3-dev)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  apt_install "${missing[@]}"
fi
# Chromium for the headless web-preview test, best effort: Debian calls it chromium, Ubuntu's
# chromium-browser is a snap stub that does not run in containers; without one that test skips.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  apt_install chromium 2>/dev/null || echo "setup: no Chromium package here (the web-preview browser test will skip)"
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
# torch from PyPI (this machine kind keeps torch 2.13.0 in pip's cache). On Linux x86-64 PyPI's wheel
# is the multi-GB CUDA build: to get the CPU build, install it into .venv first with
#   .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
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
