"""scripts/gpu_check.py, the GPU host check (docs/gpu.md), kept working on the CPU: record a few steps of the
shipped model, then run the check with --device cpu (the CUDA sections say why they are skipped)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


@pytest.mark.slow
def test_record_then_check_on_the_cpu(tmp_path):
    steps = tmp_path / "steps.safetensors"
    rec = subprocess.run([sys.executable, str(SCRIPT), "record", "--out", str(steps), "--seconds", "2"],
                         capture_output=True, text=True, timeout=300)
    assert rec.returncode == 0, rec.stderr
    assert steps.is_file() and "recorded" in rec.stdout
    out = tmp_path / "check.json"
    chk = subprocess.run([sys.executable, str(SCRIPT), "check", "--steps", str(steps), "--device", "cpu",
                          "--json", str(out), "--time-steps", "3"], capture_output=True, text=True, timeout=300)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    res = json.loads(out.read_text())
    assert res["golden_kernels"] == {"skipped": "not a CUDA device"}
    g = res["step_graph"]
    # the CPU replays its own recording exactly: same codes, same frames, with and without feedback
    assert g["ok"] and g["steps"] >= 6
    assert g["teacher_forced"]["codes_agree_min"] == 1.0 and g["teacher_forced"]["frames_max_abs"] == 0.0
    assert g["free_run"]["first_step_with_a_different_code"] is None
    assert res["timing"]["cpu_torch_1_thread"]["p99_ms"] > 0


def test_a_mismatched_recording_fails_the_check(tmp_path):
    """A recording whose outputs do not match what the graph computes must fail (exit 1), not pass silently."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    steps = tmp_path / "steps.safetensors"
    rec = subprocess.run([sys.executable, str(SCRIPT), "record", "--out", str(steps), "--seconds", "1"],
                         capture_output=True, text=True, timeout=300)
    assert rec.returncode == 0, rec.stderr
    t = load_file(str(steps))
    key = next(k for k in t if k.endswith(".out.frames"))
    t[key] = t[key] + np.float32(0.5)
    save_file(t, str(steps), metadata={"song": "x", "steps": "?"})
    chk = subprocess.run([sys.executable, str(SCRIPT), "check", "--steps", str(steps), "--device", "cpu",
                          "--time-steps", "2"], capture_output=True, text=True, timeout=300)
    assert chk.returncode == 1 and "FAILED: step_graph" in chk.stdout, chk.stdout + chk.stderr
