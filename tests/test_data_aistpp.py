"""AIST++ loader on a fixture generated here in the published format (pickled dicts of numpy arrays)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from livedance.data.aistpp import (
    AISTPP_FPS,
    aistpp_split_names,
    load_aistpp_motion,
    load_aistpp_split,
    music_id,
    safe_load_pickle,
)
from livedance.errors import ConfigError, DataError

SEQS = {
    "train": ["gBR_sBM_cAll_d04_mBR0_ch01", "gPO_sFM_cAll_d10_mPO1_ch02", "gWA_sBM_cAll_d25_mWA2_ch03"],
    "val": ["gHO_sFM_cAll_d18_mHO5_ch13"],
    "test": ["gLO_sBM_cAll_d13_mLO2_ch02"],
}
IGNORED = "gPO_sFM_cAll_d10_mPO1_ch02"


def make_aistpp_fixture(root: Path, frames: int = 30) -> dict[str, dict]:
    """Write an AIST++-layout fixture: motions/*.pkl, splits/crossmodal_*.txt, ignore_list.txt."""
    rng = np.random.default_rng(1)
    (root / "motions").mkdir(parents=True)
    (root / "splits").mkdir()
    raw = {}
    for split, names in SEQS.items():
        (root / "splits" / f"crossmodal_{split}.txt").write_text("\n".join(names) + "\n")
        for n in names:
            d = {
                "smpl_loss": np.float32(1.59),
                "smpl_poses": rng.normal(0, 0.3, (frames, 72)).astype(np.float32),
                "smpl_scaling": np.array([93.77886], dtype=np.float32),
                "smpl_trans": (rng.normal(0, 30, (frames, 3)) + [0, 90, 0]).astype(np.float32),
            }
            with open(root / "motions" / f"{n}.pkl", "wb") as f:
                pickle.dump(d, f)
            raw[n] = d
    (root / "ignore_list.txt").write_text(IGNORED + "\n")
    return raw


def test_round_trip(tmp_path):
    raw = make_aistpp_fixture(tmp_path)
    train = load_aistpp_split(tmp_path, "train", music_dir=tmp_path / "wav")
    assert [m.name for m in train] == [n for n in SEQS["train"] if n != IGNORED]
    m = train[0]
    d = raw[m.name]
    assert m.fps == AISTPP_FPS and m.num_frames == 30 and m.music_id == "mBR0"
    assert m.audio_path == tmp_path / "wav" / "mBR0.wav"
    np.testing.assert_array_equal(m.poses.reshape(30, 72), d["smpl_poses"])
    np.testing.assert_allclose(m.trans_m, d["smpl_trans"] / d["smpl_scaling"][0], rtol=1e-6)
    assert m.scaling == pytest.approx(93.77886)
    # rotation matrices: orthonormal and they rotate by |axis-angle|
    R = m.local_rotmats()
    assert R.shape == (30, 24, 3, 3)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-5)
    angle = np.arccos(np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1, 1))
    np.testing.assert_allclose(angle, np.linalg.norm(m.poses, axis=-1), atol=1e-4)
    assert aistpp_split_names(tmp_path, "all") == [n for v in SEQS.values() for n in v if n != IGNORED]


def test_24x3_poses_accepted(tmp_path):
    p = tmp_path / "gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    with open(p, "wb") as f:
        pickle.dump({"smpl_poses": np.zeros((5, 24, 3)), "smpl_trans": np.zeros((5, 3)), "smpl_scaling": np.array([90.0])}, f)
    assert load_aistpp_motion(p).poses.shape == (5, 24, 3)


class _Evil:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    with open(p, "wb") as f:
        pickle.dump({"smpl_poses": _Evil(marker)}, f)
    with pytest.raises(DataError, match="not allowed"):
        load_aistpp_motion(p)
    assert not marker.exists()


def test_truncated_and_malformed(tmp_path):
    make_aistpp_fixture(tmp_path)
    p = tmp_path / "motions" / f"{SEQS['val'][0]}.pkl"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError) as err:
        load_aistpp_split(tmp_path, "val")
    assert str(p) in str(err.value)
    q = tmp_path / "motions" / f"{SEQS['test'][0]}.pkl"
    with open(q, "wb") as f:
        pickle.dump({"smpl_poses": np.zeros((5, 72))}, f)
    with pytest.raises(DataError, match="smpl_trans"):
        load_aistpp_motion(q)


def test_nan_frame_named(tmp_path):
    p = tmp_path / "gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    poses = np.zeros((9, 72))
    poses[7, 4] = np.inf
    with open(p, "wb") as f:
        pickle.dump({"smpl_poses": poses, "smpl_trans": np.zeros((9, 3)), "smpl_scaling": np.array([90.0])}, f)
    with pytest.raises(DataError, match="frame 7"):
        load_aistpp_motion(p)


def test_names_and_splits_errors(tmp_path):
    assert music_id("gWA_sFM_c01_d27_mWA2_ch21") == "mWA2"
    with pytest.raises(DataError):
        music_id("not_a_sequence")
    with pytest.raises(ConfigError):
        aistpp_split_names(tmp_path, "dev")
    with pytest.raises(DataError, match="crossmodal_train.txt"):
        aistpp_split_names(tmp_path, "train")
    assert safe_load_pickle.__doc__
