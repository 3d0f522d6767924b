"""Raw Tang 2018 DANCE loader: errors on bad input, units and axes on the real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from livedance.data.tang import (
    TANG_STYLES,
    default_data_root,
    list_tang_sequences,
    load_tang_sequence,
    style_of,
)
from livedance.errors import DataError

DATA = default_data_root()
TANG = DATA / "dance-tang2018"
needs_data = pytest.mark.skipif(not TANG.is_dir(), reason=f"Tang 2018 data not found at {TANG}")


def _write_seq(folder: Path, T: int = 6, start: int = 10, nan_frame: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    center = rng.normal(0, 50, (T, 3)) + [0, 95, 0]
    rel = rng.normal(0, 40, (T, 23, 3))
    if nan_frame is not None:
        rel[nan_frame, 5, 1] = np.nan
    folder.mkdir(parents=True)
    (folder / "audio.mp3").write_bytes(b"")
    (folder / "config.json").write_text(json.dumps({"start_position": start, "end_position": start + T + 3}))
    (folder / "skeletons.json").write_text(
        json.dumps({"length": T, "center": center.tolist(), "skeletons": rel.tolist()})
    )
    return center, rel


def test_synthetic_sequence_loads_in_metres(tmp_path):
    center, rel = _write_seq(tmp_path / "DANCE_R_9")
    seq = load_tang_sequence(tmp_path / "DANCE_R_9")
    assert seq.style == "rumba" and seq.name == "DANCE_R_9" and seq.length == 6
    assert seq.markers.shape == (6, 23, 3) and seq.markers.dtype == np.float32
    np.testing.assert_allclose(seq.markers, (center[:, None] + rel) / 100.0, rtol=1e-5, atol=1e-6)
    assert seq.start_position == 10 and seq.start_s == pytest.approx(0.4)
    assert seq.audio_path == tmp_path / "DANCE_R_9" / "audio.mp3"
    assert list_tang_sequences(tmp_path) == [tmp_path / "DANCE_R_9"]


def test_missing_folder_names_folder_and_files(tmp_path):
    with pytest.raises(DataError) as err:
        load_tang_sequence(tmp_path / "DANCE_W_99")
    msg = str(err.value)
    assert "DANCE_W_99" in msg and "audio.mp3" in msg and "config.json" in msg and "skeletons.json" in msg


def test_missing_file_is_named(tmp_path):
    _write_seq(tmp_path / "DANCE_W_1")
    (tmp_path / "DANCE_W_1" / "config.json").unlink()
    with pytest.raises(DataError, match="lacks config.json"):
        load_tang_sequence(tmp_path / "DANCE_W_1")


def test_truncated_json_names_file(tmp_path):
    _write_seq(tmp_path / "DANCE_W_1")
    sk = tmp_path / "DANCE_W_1" / "skeletons.json"
    sk.write_text(sk.read_text()[: len(sk.read_text()) // 2])
    with pytest.raises(DataError) as err:
        load_tang_sequence(tmp_path / "DANCE_W_1")
    assert str(sk) in str(err.value) and "truncated" in str(err.value)


def test_nan_names_file_and_frame(tmp_path):
    _write_seq(tmp_path / "DANCE_C_3", T=8, nan_frame=5)
    with pytest.raises(DataError) as err:
        load_tang_sequence(tmp_path / "DANCE_C_3")
    assert "skeletons.json" in str(err.value) and "frame 5" in str(err.value)


def test_length_mismatch_and_bad_name(tmp_path):
    _write_seq(tmp_path / "DANCE_T_1")
    sk = tmp_path / "DANCE_T_1" / "skeletons.json"
    d = json.loads(sk.read_text())
    d["length"] = 99
    sk.write_text(json.dumps(d))
    with pytest.raises(DataError, match="must agree"):
        load_tang_sequence(tmp_path / "DANCE_T_1")
    with pytest.raises(DataError, match="DANCE_<C|R|T|W>"):
        style_of("DANCE_X_1")


def test_data_root_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVEDANCE_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    with pytest.raises(DataError, match="does not exist"):
        list_tang_sequences()
    monkeypatch.delenv("LIVEDANCE_DATA")
    assert default_data_root().parts[-2:] == ("shared", "data")


@needs_data
def test_real_data_units_and_up_axis():
    folders = list_tang_sequences(DATA)
    assert len(folders) == 38
    assert {style_of(f.name) for f in folders} == set(TANG_STYLES.values())
    seq = load_tang_sequence(TANG / "DANCE_W_22")
    m = seq.markers
    # thigh (hip 7 -> knee 8) and shin (knee 8 -> ankle 9) marker distances of an adult, in metres
    thigh = np.median(np.linalg.norm(m[:, 7] - m[:, 8], axis=-1))
    shin = np.median(np.linalg.norm(m[:, 8] - m[:, 9], axis=-1))
    assert 0.35 < thigh < 0.6 and 0.25 < shin < 0.5
    # y is up: head markers well above the pelvis marker in every frame, the pelvis above the feet
    # in nearly every frame (a few frames have a stray foot marker)
    head_y = m[:, :2, 1].mean(1)
    assert np.all(head_y > m[:, 2, 1] + 0.3)
    assert np.mean(m[:, 2, 1] > m[:, [10, 11, 19, 20], 1].max(1)) > 0.95
    assert seq.length == len(m) < seq.end_position - seq.start_position + 1
