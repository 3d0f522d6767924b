"""Tang 2018 DANCE marker IK (livedance.data.tang_ik) and ``livedance data ik-report``.

The tests on real data use short slices of a few sequences and skip when ../shared/data is absent.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from livedance.data.tang_ik import (
    NUM_TANG_MARKERS,
    TangIKConfig,
    facing_evidence,
    ik_error_mm,
    markers_to_output_frame,
    markers_to_smplx,
    read_tang_markers,
    target_bone_deviation_mm,
)
from livedance.errors import DataError
from livedance.motion.fk import fk_np
from livedance.motion.skeleton import SMPLX_BODY_JOINT_NAMES, SMPLX_BODY_PARENTS
from livedance.data.tang import default_data_root  # ../shared/data, or $LIVEDANCE_DATA

DATA = default_data_root() / "dance-tang2018"
J = {n: i for i, n in enumerate(SMPLX_BODY_JOINT_NAMES)}
UP = np.array([0.0, 1.0, 0.0])


@functools.lru_cache(maxsize=None)
def _read(seq: str) -> np.ndarray:
    return read_tang_markers(DATA / seq)


def _markers(seq: str, frames: slice = slice(None)) -> np.ndarray:
    if not (DATA / seq / "skeletons.json").is_file():
        pytest.skip(f"Tang 2018 DANCE data not found at {DATA} (see /work/shared/data)")
    return _read(seq)[frames].copy()


def _horizontal_unit(v: np.ndarray) -> np.ndarray:
    v = v * np.array([1.0, 0.0, 1.0])
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ----- the data's units and the side decision ------------------------------------------------


def test_units_are_metres_after_reading_and_y_is_up():
    m = _markers("DANCE_C_2")
    thigh = np.median(np.linalg.norm(m[:, 7] - m[:, 8], axis=-1))
    assert 0.35 < thigh < 0.65  # centimetres / 100
    head_above_feet = np.median(0.5 * (m[:, 0, 1] + m[:, 1, 1]) - m[:, [11, 20], 1].min(axis=1))
    assert 1.3 < head_above_feet < 1.9


@pytest.mark.parametrize("seq", ["DANCE_W_10", "DANCE_T_5", "DANCE_C_2", "DANCE_R_2"])
def test_facing_cues_agree_in_every_style(seq):
    ev = facing_evidence(_markers(seq))
    # forward F = (hip_B - hip_A) x up: toes point along it, knees bulge along it, elbows against it
    assert ev.toes_forward > 0.5
    assert ev.knees_forward > 0.55
    assert ev.elbows_backward > 0.6


def test_ballroom_head_turn_puts_side_a_on_the_left():
    # closed hold: heads turn to the dancer's own left, well beyond the Latin takes' marker offset
    ballroom = [facing_evidence(_markers(s, slice(0, 600))).head_yaw_to_a_deg for s in ("DANCE_W_10", "DANCE_T_5")]
    latin = [facing_evidence(_markers(s, slice(0, 600))).head_yaw_to_a_deg for s in ("DANCE_C_2", "DANCE_R_2")]
    assert min(ballroom) > 20.0
    assert max(abs(x) for x in latin) < 12.0


@pytest.fixture(scope="module")
def waltz():
    m = _markers("DANCE_W_10", slice(0, 300))
    return m, markers_to_smplx(m)


def test_output_frame_follows_smplx_conventions(waltz):
    markers, res = waltz
    tgt = res.joint_targets.astype(np.float64)
    # left = +x side of the body: (left_hip - right_hip) x up points where the toes point
    fwd = _horizontal_unit(np.cross(tgt[:, J["left_hip"]] - tgt[:, J["right_hip"]], UP))
    for side in ("left", "right"):
        toes = _horizontal_unit(tgt[:, J[f"{side}_foot"]] - tgt[:, J[f"{side}_ankle"]])
        assert np.mean(np.sum(toes * fwd, -1)) > 0.5
    # the fitted pelvis faces that way too (its local +z), and its left hip sits at +x
    pos, glob = fk_np(res.local_rotmats.astype(np.float64), res.root_translation.astype(np.float64),
                      res.rest_offsets.astype(np.float64), SMPLX_BODY_PARENTS, return_global_rotmats=True)
    pelvis_fwd = _horizontal_unit(glob[:, 0] @ np.array([0.0, 0.0, 1.0]))
    assert np.median(np.sum(pelvis_fwd * fwd, -1)) > 0.9
    assert res.rest_offsets[J["left_hip"], 0] > 0 > res.rest_offsets[J["right_hip"], 0]
    # the mirror is what makes it so: the file's side A (markers 3-11) became the left side
    out = markers_to_output_frame(markers)
    np.testing.assert_allclose(tgt[:, J["left_hip"]], out[:, 7], atol=1e-6)
    np.testing.assert_allclose(out[:, :, 0], -markers[:, :, 0], atol=1e-6)


def test_waltz_head_turns_to_the_dancers_left(waltz):
    _, res = waltz
    _, glob = fk_np(res.local_rotmats.astype(np.float64), res.root_translation.astype(np.float64),
                    res.rest_offsets.astype(np.float64), SMPLX_BODY_PARENTS, return_global_rotmats=True)
    chest_fwd = _horizontal_unit(glob[:, J["spine3"]] @ np.array([0.0, 0.0, 1.0]))
    head_fwd = _horizontal_unit(glob[:, J["head"]] @ np.array([0.0, 0.0, 1.0]))
    # positive yaw about +y = turning towards +x = the dancer's left
    yaw = np.degrees(np.arctan2(np.cross(chest_fwd, head_fwd) @ UP, np.sum(chest_fwd * head_fwd, -1)))
    assert np.median(yaw) > 15.0


def test_rest_pose_is_an_smplx_t_pose(waltz):
    _, res = waltz
    rest = res.skeleton.rest_positions()
    assert abs(rest[:, 1].min()) < 1e-6  # lowest joint on the floor
    for side, sgn in (("left", 1), ("right", -1)):
        for joint in ("shoulder", "elbow", "wrist"):
            assert sgn * rest[J[f"{side}_{joint}"], 0] > sgn * rest[J[f"{side}_collar"], 0]
        assert rest[J[f"{side}_foot"], 2] > rest[J[f"{side}_ankle"], 2]  # toes forward
        assert rest[J[f"{side}_ankle"], 1] < rest[J[f"{side}_knee"], 1] < rest[J[f"{side}_hip"], 1]
    assert rest[J["head"], 1] > rest[J["neck"], 1] > rest[J["spine3"], 1] > rest[J["pelvis"], 1]


def test_result_shapes_and_rotations(waltz):
    _, res = waltz
    T = 300
    assert res.local_rotmats.shape == (T, 22, 3, 3) and res.local_rotmats.dtype == np.float32
    assert res.root_translation.shape == (T, 3) and res.joint_targets.shape == (T, 22, 3)
    assert res.rest_offsets.shape == (22, 3)
    R = res.local_rotmats.astype(np.float64)
    np.testing.assert_allclose(np.swapaxes(R, -1, -2) @ R, np.broadcast_to(np.eye(3), R.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-5)
    # root translation moves the pelvis from its rest position
    np.testing.assert_allclose(res.joint_positions()[:, 0], res.root_translation + res.rest_offsets[0], atol=1e-5)


def test_reconstruction_error_and_refinement(waltz):
    markers, res = waltz
    err = ik_error_mm(res)
    analytic = ik_error_mm(markers_to_smplx(markers, TangIKConfig(refine_iters=0)))
    assert err.mean_mm.shape == err.max_mm.shape == (22,)
    assert np.all(err.max_mm >= err.mean_mm)
    assert err.overall_mean_mm < analytic.overall_mean_mm
    assert err.overall_mean_mm < 10.0  # a clean waltz take (measured: about 5 mm)
    # frames whose own bone lengths agree with the skeleton fit better than the rest
    ok = target_bone_deviation_mm(res) <= 30.0
    assert ok.mean() > 0.5
    assert err.per_frame_mm[ok].mean() <= err.per_frame_mm.mean()


def test_unmirrored_config_swaps_the_sides(waltz):
    markers, res = waltz
    other = markers_to_smplx(markers[:50], TangIKConfig(mirror_x=False, refine_iters=0))
    # file frame kept: the file's side B (16) is the left hip now
    np.testing.assert_allclose(other.joint_targets[:, J["left_hip"]], markers[:50, 16], atol=1e-6)
    np.testing.assert_allclose(other.rest_offsets[J["left_hip"], 0], res.rest_offsets[J["left_hip"], 0], rtol=0.2)


# ----- input validation (no data needed) ----------------------------------------------------------


def _synthetic_markers(T: int = 20) -> np.ndarray:
    """A T-pose facing +z, metres, in the file's (left-handed) frame: side A (the left) at file -x."""
    base = np.zeros((NUM_TANG_MARKERS, 3))
    sides = {"A": -1.0, "B": 1.0}
    for side, idx in (("A", (3, 4, 5, 6, 7, 8, 9, 10, 11)), ("B", (12, 13, 14, 15, 16, 17, 18, 19, 20))):
        s = sides[side]
        sh, el, wr, ha, hip, kn, an, he, to = idx
        base[sh] = [0.15 * s, 1.45, 0]
        base[el] = [0.42 * s, 1.45, 0]
        base[wr] = [0.55 * s, 1.45, 0.02]
        base[ha] = [0.65 * s, 1.45, 0.02]
        base[hip] = [0.1 * s, 0.95, 0]
        base[kn] = [0.1 * s, 0.5, 0.02]
        base[an] = [0.1 * s, 0.1, 0]
        base[he] = [0.1 * s, 0.03, -0.06]
        base[to] = [0.1 * s, 0.02, 0.15]
    base[0], base[1] = [-0.05, 1.65, 0], [0.05, 1.65, 0]
    base[2] = [0, 1.1, 0.04]
    base[21] = base[14] + [0, 0.03, 0.0]
    base[22] = base[6] + [0, 0.03, 0.0]
    rng = np.random.default_rng(0)
    return (base[None] + rng.normal(scale=0.001, size=(T, NUM_TANG_MARKERS, 3))).astype(np.float32)


def test_synthetic_t_pose_gives_near_identity_rotations():
    res = markers_to_smplx(_synthetic_markers())
    assert ik_error_mm(res).overall_mean_mm < 10.0
    # a T-pose facing +z is the SMPL-X rest pose: every local rotation is small
    R = res.local_rotmats.astype(np.float64)
    angle = np.degrees(np.arccos(np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    assert np.median(angle) < 3.0 and angle.max() < 15.0
    assert res.rest_offsets[J["left_shoulder"], 0] > 0


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_markers_name_the_frame(bad):
    m = _synthetic_markers()
    m[7, 4, 1] = bad
    with pytest.raises(DataError, match="frame 7"):
        markers_to_smplx(m)


def test_wrong_shape_and_centimetres_are_rejected():
    with pytest.raises(DataError, match=r"\(T, 23, 3\)"):
        markers_to_smplx(np.zeros((5, 21, 3)))
    with pytest.raises(DataError, match="centimetres"):
        markers_to_smplx(_synthetic_markers() * 100)


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_tang_markers(tmp_path)
    (tmp_path / "skeletons.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        read_tang_markers(tmp_path)
    (tmp_path / "skeletons.json").write_text(json.dumps({"center": [[0, 0, 0]], "skeletons": [[[0, 0, 0]] * 5]}))
    with pytest.raises(DataError, match="expected"):
        read_tang_markers(tmp_path)
    T = 3
    sk = np.zeros((T, 23, 3)).tolist()
    sk[2][3][0] = float("nan")
    (tmp_path / "skeletons.json").write_text(json.dumps({"center": np.zeros((T, 3)).tolist(), "skeletons": sk}))
    with pytest.raises(DataError, match="frame 2"):
        read_tang_markers(tmp_path)


# ----- the report command ----------------------------------------------------------------------------


def test_ik_report_command_writes_markdown_and_png(tmp_path):
    _markers("DANCE_C_2", slice(0, 1))  # skip without data
    from livedance.cli import main

    md, png = tmp_path / "ik.md", tmp_path / "ik.png"
    rc = main(["data", "ik-report", "--data-dir", str(DATA), "--limit", "1", "--max-frames", "60",
               "--out-md", str(md), "--out-png", str(png)])
    assert rc == 0
    text = md.read_text()
    assert "| joint | target | mean |" in text and "DANCE_C_2" in text and "livedance data ik-report" in text
    assert png.stat().st_size > 10_000


def test_ik_report_missing_folder_is_a_clear_error(tmp_path):
    from livedance.cli import main

    assert main(["data", "ik-report", "--data-dir", str(tmp_path / "nope")]) == 2


def test_ik_report_finds_the_data_through_livedance_data(monkeypatch, capsys):
    """Without --data-dir the report reads $LIVEDANCE_DATA/dance-tang2018, like every other data command."""
    from livedance.cli import main

    monkeypatch.setenv("LIVEDANCE_DATA", "/no-such-ld-data")  # short: the error line is not wrapped
    assert main(["data", "ik-report", "--limit", "1"]) == 2
    assert "/no-such-ld-data/dance-tang2018: not a folder" in " ".join(capsys.readouterr().err.split())
