"""Dataset clips: frames on the song clock (resampling by the alignment's scale), slerp, cache."""

from __future__ import annotations


import numpy as np
import pytest

from livedance.data.dataset import (
    build_clip,
    load_split,
    resample_motion,
    resample_times,
    smpl24_positions,
)
from livedance.data.tang import load_tang_sequence
from livedance.errors import DataError
from livedance.data.tang import default_data_root  # ../shared/data, or $LIVEDANCE_DATA

DATA = default_data_root()
TANG = DATA / "dance-tang2018"
needs_data = pytest.mark.skipif(not TANG.is_dir(), reason=f"Tang 2018 data not found at {TANG}")


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    R[..., 0, 0] = c
    R[..., 0, 2] = s
    R[..., 1, 1] = 1
    R[..., 2, 0] = -s
    R[..., 2, 2] = c
    return R


@pytest.mark.parametrize("scale,fps", [(1.0, 25.0), (1.02, 25.0), (0.99, 30.0)])
def test_resample_times_put_frames_on_the_song_clock(scale, fps):
    n = 400
    u = resample_times(n, scale, fps)
    # raw frame u is at song time u * scale / 25 after the offset; output frame k must be at k / fps
    np.testing.assert_allclose(u * scale / 25.0, np.arange(len(u)) / fps, atol=1e-9)
    assert u[-1] <= n - 1 and (len(u)) / fps * 25.0 / scale > n - 1  # no frame beyond the data is dropped


def test_resample_motion_slerps_and_lerps():
    T, J = 20, 3
    omega = 0.3  # radians per raw frame, about y
    R = _rot_y(omega * np.arange(T)[:, None] * np.ones(J))
    tr = np.stack([np.arange(T) * 0.1, np.zeros(T), np.arange(T) ** 2 * 0.01], axis=1)
    u = np.array([0.0, 0.5, 3.25, 7.9, 19.0])
    Ru, tu = resample_motion(R, tr, u)
    np.testing.assert_allclose(Ru, _rot_y(omega * u[:, None] * np.ones(J)), atol=1e-5)
    i0 = np.floor(u).astype(int).clip(max=T - 2)
    a = u - i0
    np.testing.assert_allclose(tu, (1 - a)[:, None] * tr[i0] + a[:, None] * tr[i0 + 1], atol=1e-6)
    with pytest.raises(DataError):
        resample_motion(R, tr, np.array([19.5]))


def test_smpl24_hands_extend_the_forearm():
    rest = np.zeros((22, 3))
    rest[20] = [0.25, 0, 0]   # left wrist 25 cm from the elbow along +x
    rest[21] = [-0.25, 0, 0]
    R = np.broadcast_to(np.eye(3), (2, 22, 3, 3)).copy()
    pos = smpl24_positions(R, np.zeros((2, 3)), rest)
    assert pos.shape == (2, 24, 3)
    np.testing.assert_allclose(pos[:, 22] - pos[:, 20], [[0.0875, 0, 0]] * 2, atol=1e-6)
    np.testing.assert_allclose(pos[:, 23] - pos[:, 21], [[-0.0875, 0, 0]] * 2, atol=1e-6)


@needs_data
def test_clip_frames_follow_the_alignment_scale():
    import torch

    torch.set_num_threads(1)
    folder = TANG / "DANCE_W_22"
    scale, offset = 1.03, 1.5
    clip = build_clip(folder, {"scale": scale, "offset_s": offset, "usable_for_beat": False})
    raw = load_tang_sequence(folder).markers
    assert clip.num_frames == int(np.floor((len(raw) - 1) * scale)) + 1
    assert clip.frame_times()[0] == offset and clip.fps == 25.0
    assert clip.positions.shape == (clip.num_frames, 24, 3) and clip.local_rotmats.dtype == np.float32
    # the pelvis' path along z (not mirrored by the IK) must follow the raw pelvis marker read at raw
    # frame k / scale, not at raw frame k (which drifts by 3 % = 30 frames over the take)
    k = np.arange(clip.num_frames)
    z_clip = clip.positions[:, 0, 2]
    z_scaled = np.interp(k / scale, np.arange(len(raw)), raw[:, 2, 2])
    z_nominal = np.interp(np.minimum(k, len(raw) - 1), np.arange(len(raw)), raw[:, 2, 2])
    err_scaled = np.abs((z_clip - z_clip.mean()) - (z_scaled - z_scaled.mean())).mean()
    err_nominal = np.abs((z_clip - z_clip.mean()) - (z_nominal - z_nominal.mean())).mean()
    assert err_scaled < 0.05 and err_nominal > 2 * err_scaled


@needs_data
def test_load_split_builds_then_reads_the_cache(tmp_path, monkeypatch):
    import torch

    from livedance.data.split import split_names
    from livedance.data.tang_align import load_alignment

    torch.set_num_threads(1)
    name = "DANCE_W_22" if "DANCE_W_22" in split_names("train") else split_names("train")[0]
    first = load_split("train", data_root=DATA, cache_dir=tmp_path, progress=False, names=[name])
    files = list((tmp_path / "tang").glob(f"{name}-*.safetensors"))
    assert len(files) == 1
    # a second load must come from the cache: make building impossible
    monkeypatch.setattr("livedance.data.dataset.build_clip", lambda *a, **k: pytest.fail("rebuilt"))
    again = load_split("train", data_root=DATA, cache_dir=tmp_path, progress=False, names=[name])
    a, b = first[0], again[0]
    entry = load_alignment()[name]
    assert b.audio_offset_s == pytest.approx(entry["offset_s"]) and b.beat_aligned == entry["usable_for_beat"]
    for attr in ("local_rotmats", "root_translation", "rest_offsets", "positions"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert (a.name, a.style, a.audio_path) == (b.name, b.style, b.audio_path)
    with pytest.raises(DataError, match="not in split"):
        load_split("test", data_root=DATA, cache_dir=tmp_path, names=[name])


def test_a_sequence_folder_without_its_files_gets_a_clear_error(tmp_path):
    """load_split names the missing files of a Tang sequence folder (it used to fail with a raw FileNotFoundError
    while hashing them for the cache key)."""
    from livedance.data.split import split_names

    name = split_names("train")[0]
    root = tmp_path / "data"
    (root / "dance-tang2018" / name).mkdir(parents=True)
    with pytest.raises(DataError, match=r"lacks audio\.mp3, config\.json, skeletons\.json"):
        load_split("train", data_root=root, cache_dir=tmp_path / "cache", progress=False, names=[name])


@needs_data
@pytest.mark.parametrize("entry", [{"scale": 0.0, "offset_s": 1.0}, {"scale": 1.0, "offset_s": float("nan")}])
def test_bad_alignment_entry_names_the_sequence(entry):
    with pytest.raises(DataError, match="DANCE_W_22.*finite scale > 0"):
        build_clip(TANG / "DANCE_W_22", {**entry, "usable_for_beat": False})
