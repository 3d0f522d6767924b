"""The motion npz format (livedance.eval.motion_io): round trip and validation errors."""

from __future__ import annotations

import numpy as np
import pytest

from livedance.errors import DataError
from livedance.eval import find_motions, load_motion, save_motion


def positions(n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 24, 3)).astype(np.float32)


def unit_quats(n: int) -> np.ndarray:
    q = np.zeros((n, 55, 4), np.float32)
    q[..., 3] = 1.0
    return q


def test_round_trip_with_optional_keys_and_relative_audio(tmp_path):
    (tmp_path / "music").mkdir()
    pos = positions()
    root = np.cumsum(np.ones((12, 3), np.float32), axis=0)
    path = save_motion(tmp_path / "out" / "a.npz", pos, 25.0, "../music/song.wav", 3.5, unit_quats(12), root)
    m = load_motion(path)
    assert m.name == "a" and m.num_frames == 12 and m.fps == 25.0 and m.audio_offset_s == 3.5
    np.testing.assert_array_equal(m.positions, pos)
    np.testing.assert_array_equal(m.root_translation, root)
    assert m.local_rotations.shape == (12, 55, 4)
    # relative audio resolves against the npz's folder
    assert m.audio_path.resolve() == (tmp_path / "music" / "song.wav").resolve()
    # absolute paths stay as they are
    m2 = load_motion(save_motion(tmp_path / "b.npz", pos, 60, tmp_path / "x.wav", 0.0))
    assert m2.audio_path == tmp_path / "x.wav" and m2.local_rotations is None


def test_nan_is_rejected_naming_file_and_frame(tmp_path):
    pos = positions()
    pos[7, 3, 1] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, positions=pos, fps=np.float64(25), audio=np.str_("s.wav"), audio_offset_s=np.float64(0))
    with pytest.raises(DataError, match=r"nan\.npz.*frame 7"):
        load_motion(path)
    # save_motion refuses the same and leaves no file behind
    with pytest.raises(DataError, match="frame 7"):
        save_motion(tmp_path / "nan2.npz", pos, 25, "s.wav", 0)
    assert not list(tmp_path.glob("nan2*"))


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(positions=np.zeros((10, 22, 3), np.float32)), r"shape \(T, 24, 3\)"),
        (dict(fps=np.float64(-1)), "'fps' must be a positive"),
        (dict(fps=np.zeros(3)), "'fps' must be a scalar"),
        (dict(audio=np.str_("")), "'audio' must be a non-empty string"),
        (dict(audio_offset_s=np.float64(np.inf)), "audio_offset_s"),
        (dict(local_rotations=np.zeros((10, 55, 4), np.float32)), "non-unit quaternion at frame 0"),
        (dict(local_rotations=np.ones((9, 55, 4), np.float32) * 0.5), "9 frames"),
        (dict(root_translation=np.full((10, 3), np.inf, np.float32)), "'root_translation' holds NaN or inf at frame 0"),
        (dict(positions=np.zeros((1, 24, 3), np.float32)), "at least 2 frames"),
    ],
)
def test_bad_contents_raise_data_error(tmp_path, change, message):
    arrays = dict(positions=np.zeros((10, 24, 3), np.float32), fps=np.float64(25), audio=np.str_("s.wav"),
                  audio_offset_s=np.float64(0))  # fmt: skip
    arrays.update(change)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_motion(path)
    assert "bad.npz" in str(info.value)


def test_missing_key_garbage_and_pickles(tmp_path):
    p = tmp_path / "nokey.npz"
    np.savez(p, positions=np.zeros((4, 24, 3)), fps=np.float64(25))
    with pytest.raises(DataError, match="nokey.npz: missing key.*audio, audio_offset_s"):
        load_motion(p)
    g = tmp_path / "garbage.npz"
    g.write_bytes(b"this is not a zip file")
    with pytest.raises(DataError, match="garbage.npz: not a readable motion npz"):
        load_motion(g)
    o = tmp_path / "pickled.npz"
    np.savez(o, positions=np.zeros((4, 24, 3)), fps=np.float64(25), audio=np.array([{"a": 1}], dtype=object),
             audio_offset_s=np.float64(0))  # fmt: skip
    with pytest.raises(DataError, match="pickled.npz"):
        load_motion(o)
    with pytest.raises(DataError, match="not found"):
        load_motion(tmp_path / "absent.npz")


def test_find_motions(tmp_path):
    with pytest.raises(DataError, match="holds no .npz"):
        find_motions(tmp_path)
    for name in ("b", "a"):
        save_motion(tmp_path / f"{name}.npz", positions(), 25, "s.wav", 0)
    assert [m.name for m in find_motions(tmp_path)] == ["a", "b"]
    with pytest.raises(DataError, match="not found"):
        find_motions(tmp_path / "nope")


def standing(n: int = 12, scale: float = 1.0) -> np.ndarray:
    """A person standing, swaying: pelvis at 0.9 m, head 0.6 m above it (y up), other joints around them."""
    rng = np.random.default_rng(3)
    p = rng.normal(scale=0.1, size=(n, 24, 3)) + [0.0, 0.9, 0.0]
    p[:, 15] = p[:, 0] + [0.05, 0.6, 0.0]
    p += np.linspace(0, 0.5, n)[:, None, None] * [1.0, 0.0, 0.0]  # walking along x
    return (scale * p).astype(np.float32)


def test_body_frame_check_accepts_metres_y_up_and_names_centimetres_and_z_up(tmp_path):
    from livedance.eval.motion_io import check_body_frame

    check_body_frame(load_motion(save_motion(tmp_path / "ok.npz", standing(), 25, "s.wav", 0)))
    cm = load_motion(save_motion(tmp_path / "cm.npz", standing(scale=100.0), 25, "s.wav", 0))
    with pytest.raises(DataError, match=r"cm\.npz: 'positions' has a median pelvis-to-head distance of 60.*centimetres"):
        check_body_frame(cm)
    z_up = standing()[..., [0, 2, 1]]  # y and z swapped: the head lies along +z
    m = load_motion(save_motion(tmp_path / "zup.npz", z_up, 25, "s.wav", 0))
    with pytest.raises(DataError, match=r"zup\.npz: 'positions' is not y up: the head lies above the pelvis along \+z"):
        check_body_frame(m)
    down = load_motion(save_motion(tmp_path / "down.npz", standing() * [1, -1, 1], 25, "s.wav", 0))
    with pytest.raises(DataError, match="along -y"):
        check_body_frame(down)
