#!/usr/bin/env bash
# Build mamba-ssm and causal-conv1d from their sdists for ONE GPU architecture, install livedance next to
# them, and run scripts/gpu_check.py (docs/gpu.md). Works offline: everything comes from a folder.
#
#   scripts/gpu_host.sh PKG_DIR [OUT_DIR]
#
# PKG_DIR holds mamba_ssm-*.tar.gz, optionally causal_conv1d-*.tar.gz and aubio-*.tar.gz, any wheels livedance needs that
# the host lacks (einx, frozendict, loguru, roma, torch-einops-utils, vector-quantize-pytorch; setuptools >= 77 if the host's is older), and
# steps.safetensors from `scripts/gpu_check.py record`. The host needs torch with CUDA, nvcc matching
# torch's CUDA major version, ninja and triton. CUDA_ARCH (default 90, Hopper) picks the one architecture
# compiled: upstream's setup.py compiles 6 to 9 of them, which takes many times longer.
# SITE (default /tmp/livedance-gpu-site) is where everything is installed; add it to PYTHONPATH to reuse.
set -euo pipefail
PKG=$(cd "$1" && pwd)
OUT=${2:-$PWD/gpu-check}
ARCH=${CUDA_ARCH:-90}
SITE=${SITE:-/tmp/livedance-gpu-site}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$SITE"
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi -L || true
nvcc --version | tail -2
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

if ls "$PKG"/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$PKG"/*.whl
fi

build() {  # $1: sdist; builds and installs it into $SITE for sm_$ARCH only
  local src
  src=$(mktemp -d)
  tar xzf "$1" -C "$src"
  src=$(echo "$src"/*)
  $PY - "$src/setup.py" "$ARCH" <<'EOF'
import re, sys
path, arch = sys.argv[1], sys.argv[2]
text = open(path).read()
hook = "    # HACK: The compiler flag -D_GLIBCXX_USE_CXX11_ABI"
assert hook in text, f"{path}: patch point not found; edit its cc_flag list by hand"
line = (f'    cc_flag = [f for f in cc_flag if f != "-gencode" and not f.startswith("arch=")]'
        f' + ["-gencode", "arch=compute_{arch},code=sm_{arch}"]\n')
open(path, "w").write(text.replace(hook, line + hook, 1))
EOF
  local t0=$SECONDS
  MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE MAX_JOBS=${MAX_JOBS:-16} \
    $PY -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" "$src"
  echo "built $(basename "$1") for sm_$ARCH in $((SECONDS - t0)) s"
}
# (the extensions link against torch's libraries: import torch first, or the check always fails)
# causal-conv1d is optional (5-7 min to build): without it the Mamba step's convolution runs the PyTorch op
# on the GPU and livedance.model.mamba.cuda_kernels() still returns mamba-ssm's scan and Triton kernels.
if ls "$PKG"/causal_conv1d-*.tar.gz >/dev/null 2>&1; then
  $PY -c "import torch, causal_conv1d_cuda" 2>/dev/null || build "$(ls "$PKG"/causal_conv1d-*.tar.gz)"
else
  echo "no causal_conv1d sdist in $PKG: skipped (the PyTorch convolution runs instead)"
fi
$PY -c "import torch, selective_scan_cuda" 2>/dev/null || build "$(ls "$PKG"/mamba_ssm-*.tar.gz)"
# aubio (the beat tracker, for `livedance perform` on this host) ships only an sdist; a plain C build.
if ls "$PKG"/aubio-*.tar.gz >/dev/null 2>&1; then
  $PY -c "import aubio" 2>/dev/null || $PY -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" "$(ls "$PKG"/aubio-*.tar.gz)"
fi
$PY -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" || {
  echo "livedance's pyproject needs setuptools >= 77 to build (the host has an older one): put a setuptools wheel in $PKG"
  exit 1
}
$PY -m pip install -q --no-index --no-deps --no-build-isolation --upgrade --target "$SITE" "$REPO"

cd "$OUT"  # not the repo root: `import livedance` must find the installed package (kernels/ -> livedance.kernels)
PYTHONUNBUFFERED=1 $PY "$REPO/scripts/gpu_check.py" check --steps "$PKG/steps.safetensors" --json "$OUT/gpu_check.json"
