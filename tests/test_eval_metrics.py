"""Unit tests of the dance metrics (livedance.eval): hand-computed cases and literal transcriptions
of the public reference algorithms (Bailando's features/metrics, EDGE's PFC)."""

from __future__ import annotations

import numpy as np
import pytest

from livedance.errors import DataError
from livedance.eval import (
    GEOMETRIC_FEATURES,
    SMPL24_JOINT_NAMES,
    average_pairwise_distance,
    beat_align_score,
    clip_beat_align_score,
    fid,
    frechet_distance,
    geometric_features,
    geometric_frame_features,
    kinetic_features,
    motion_beats,
    normalize_with_reference,
    physical_foot_contact,
    protocol_window,
    resample_positions,
)
from livedance.eval.geometric import HUMERUS_LENGTH

J = {n: i for i, n in enumerate(SMPL24_JOINT_NAMES)}

# A plausible SMPL-24 standing T-pose (metres, y up, facing +z, the subject's left on +x).
REST = np.array(
    [
        [0.00, 0.93, 0.00], [0.06, 0.84, 0.00], [-0.06, 0.84, 0.00], [0.00, 1.04, 0.00],
        [0.10, 0.46, 0.00], [-0.10, 0.46, 0.00], [0.00, 1.17, 0.00], [0.09, 0.07, -0.02],
        [-0.09, 0.07, -0.02], [0.00, 1.22, 0.00], [0.11, 0.02, 0.10], [-0.11, 0.02, 0.10],
        [0.00, 1.44, 0.00], [0.07, 1.35, 0.00], [-0.07, 1.35, 0.00], [0.00, 1.60, 0.03],
        [0.17, 1.37, 0.00], [-0.17, 1.37, 0.00], [0.43, 1.37, 0.00], [-0.43, 1.37, 0.00],
        [0.68, 1.37, 0.00], [-0.68, 1.37, 0.00], [0.77, 1.37, 0.00], [-0.77, 1.37, 0.00],
    ]
)  # fmt: skip


def still(n: int) -> np.ndarray:
    return np.repeat(REST[None], n, axis=0)


# ----------------------------------------------------------------------------------------------
# Kinetic features


def kinetic_reference_loop(positions: np.ndarray, frame_time: float, w: int = 2, upstream_ee: bool = False) -> np.ndarray:
    """Transcription of fairmotion/Bailando KineticFeatures (up_vec 'y'). The reference's acceleration has a
    precedence slip, ``v1 = (p[n] - p[n-1] / frame_time)``: ``upstream_ee`` keeps it verbatim, the default corrects it
    (livedance's ``ee="physical"``; livedance.eval.kinetic's docstring)."""
    T, nj, _ = positions.shape
    out = []
    for joint in range(nj):
        ke_h = ke_v = ee = 0.0
        for i in range(1, T):
            vel, cnt = np.zeros(3), 0
            for j in range(-w, w + 1):
                if i + j - 1 < 0 or i + j >= T:
                    continue
                vel += positions[i + j][joint] - positions[i + j - 1][joint]
                cnt += 1
            ke_h += np.linalg.norm(np.array([vel[0], vel[2]]) / (cnt * frame_time)) ** 2
            ke_v += np.linalg.norm(np.array([vel[1]]) / (cnt * frame_time)) ** 2
            acc, cnt = np.zeros(3), 0
            for j in range(-w, w + 1):
                if i + j - 1 < 0 or i + j + 1 >= T:
                    continue
                v2 = (positions[i + j + 1][joint] - positions[i + j][joint]) / frame_time
                if upstream_ee:
                    v1 = (positions[i + j][joint] - positions[i + j - 1][joint] / frame_time)
                else:
                    v1 = (positions[i + j][joint] - positions[i + j - 1][joint]) / frame_time
                acc += (v2 - v1) / frame_time
                cnt += 1
            ee += np.linalg.norm(acc / cnt)
        out.extend([ke_h / (T - 1), ke_v / (T - 1), ee / (T - 1)])
    return np.array(out)


def test_kinetic_static_pose_has_zero_energy():
    assert np.all(kinetic_features(still(40), fps=60) == 0.0)


def test_kinetic_constant_velocity_gives_squared_speed_and_no_expenditure():
    fps = 25.0
    v = np.array([0.3, -0.4, 1.2])  # m/s
    t = np.arange(50) / fps
    pos = still(50) + t[:, None, None] * v
    feats = kinetic_features(pos, fps).reshape(24, 3)
    np.testing.assert_allclose(feats[:, 0], 0.3**2 + 1.2**2, rtol=1e-5)  # horizontal: x and z
    np.testing.assert_allclose(feats[:, 1], 0.4**2, rtol=1e-5)  # vertical: y
    np.testing.assert_allclose(feats[:, 2], 0.0, atol=1e-4)


def test_kinetic_constant_acceleration_gives_its_magnitude():
    fps, g = 60.0, 9.81
    t = np.arange(80) / fps
    pos = still(80).copy()
    pos[:, :, 1] -= 0.5 * g * t[:, None] ** 2
    feats = kinetic_features(pos, fps).reshape(24, 3)
    np.testing.assert_allclose(feats[:, 2], g, rtol=1e-5)


def test_kinetic_is_in_physical_units_across_frame_rates():
    v = np.array([0.5, 0.2, 0.0])
    feats = []
    for fps in (25.0, 60.0):
        t = np.arange(int(4 * fps)) / fps
        feats.append(kinetic_features(still(t.size) + t[:, None, None] * v, fps))
    np.testing.assert_allclose(feats[0], feats[1], rtol=1e-5, atol=1e-6)


def test_kinetic_window_keeps_the_references_duration_at_25_fps():
    """A 1-3 Hz sway sampled at 25 fps gives the 60 fps features (the reference's window is 83 ms; applied in
    frames at 25 fps it spans 200 ms and kept about a third of a 3 Hz sway's kinetic energy)."""
    def sway(fps: float) -> np.ndarray:
        t = np.arange(int(8 * fps)) / fps
        x = 0.05 * (np.sin(2 * np.pi * 1 * t) + np.sin(2 * np.pi * 2 * t + 1) + np.sin(2 * np.pi * 3 * t + 2))
        pos = still(t.size).copy()
        pos[:, :, 0] += x[:, None]
        pos[:, :, 1] += 0.5 * x[:, None]
        return pos

    at60 = kinetic_features(sway(60.0), 60.0).reshape(24, 3)
    at25 = kinetic_features(sway(25.0), 25.0).reshape(24, 3)
    np.testing.assert_allclose(at25, at60, rtol=0.12)
    legacy = kinetic_features(sway(25.0), 25.0, reference_fps=None).reshape(24, 3)
    assert np.all(legacy[:, 0] < 0.7 * at60[:, 0])  # the frame-count window: the damping it had


def test_kinetic_matches_reference_loop_on_random_motion():
    rng = np.random.default_rng(3)
    pos = still(23) + np.cumsum(rng.normal(scale=0.01, size=(23, 24, 3)), axis=0)
    ours = kinetic_features(pos, fps=60)
    ref = kinetic_reference_loop(pos, 1 / 60)
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    assert ours.shape == (72,) and ours.dtype == np.float32
    # ee="upstream" is the reference code verbatim, precedence slip included: EE then follows the joint's position
    up = kinetic_features(pos, fps=60, ee="upstream")
    np.testing.assert_allclose(up, kinetic_reference_loop(pos, 1 / 60, upstream_ee=True), rtol=1e-5)
    np.testing.assert_array_equal(up.reshape(24, 3)[:, :2], ours.reshape(24, 3)[:, :2])  # KE_h, KE_v unchanged
    assert np.all(up.reshape(24, 3)[:, 2] > 10 * ours.reshape(24, 3)[:, 2])
    with pytest.raises(DataError, match="ee='fixed'"):
        kinetic_features(pos, fps=60, ee="fixed")


def test_kinetic_rejects_too_short_or_nan():
    with pytest.raises(DataError, match="3 frames"):
        kinetic_features(still(2), 60)
    bad = still(10)
    bad[4, 3, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        kinetic_features(bad, 60)


# ----------------------------------------------------------------------------------------------
# Geometric features


def test_geometric_static_rest_pose_by_hand():
    feats = geometric_features(still(10), fps=60)
    assert feats.shape == (32,)
    kinds = [k for k, _, _ in GEOMETRIC_FEATURES]
    # nothing moves: every velocity feature is False
    for i, kind in enumerate(kinds):
        if kind in ("move", "nmove", "fast"):
            assert feats[i] == 0.0, i
    # straight arms and legs (180 deg elbow/knee): not within (0, 110) deg
    for i in (6, 7, 19, 20):
        assert feats[i] == 0.0
    # upright trunk: angle(root->neck, y) = 0, not within (70, 110)
    assert feats[28] == 0.0
    # T-pose: upper arms at 90 deg to the trunk -> within (25, 180)
    assert feats[23] == 1.0 and feats[24] == 1.0
    # wrists (1.37 m) are higher than 1.2 * humerus above the lowest joint -> "wrist low" False
    assert feats[29] == 0.0 and feats[30] == 0.0
    # ankles are the feet, not raised: "ankle high" False
    assert feats[16] == 0.0 and feats[17] == 0.0


def test_geometric_bent_elbow_and_raised_foot():
    pose = REST.copy()
    pose[J["rwrist"]] = pose[J["relbow"]] + [0.0, 0.25, 0.0]  # forearm up: 90 deg at the elbow
    pose[J["rankle"]] += [0.0, 0.5, 0.0]  # right foot lifted 0.5 m > 1.2 * humerus
    feats = geometric_features(np.repeat(pose[None], 5, axis=0), 60)
    assert feats[6] == 1.0  # right elbow bent
    assert feats[7] == 0.0  # left elbow straight
    assert feats[16] == 1.0  # right ankle high
    assert feats[17] == 0.0


@pytest.mark.parametrize("fps", [25.0, 60.0])
def test_geometric_fast_wrist_threshold_scales_with_fps(fps):
    # The reference divides per-frame displacement by 1/120 s at 60 fps (twice the physical
    # speed), so "fast wrist" (2.5 * humerus) fires above a physical speed of 1.25 * humerus m/s.
    threshold = 2.5 * HUMERUS_LENGTH / 2.0
    for factor, expected in ((0.9, 0.0), (1.1, 1.0)):
        t = np.arange(int(fps)) / fps
        pos = still(t.size)
        pos[:, J["rwrist"], 2] += factor * threshold * t
        feats = geometric_features(pos, fps)
        assert feats[12] == expected
        assert feats[13] == 0.0  # left wrist still


def geometric_reference_loop(positions: np.ndarray) -> np.ndarray:
    """Literal per-frame transcription of Bailando's manual_new.py (60 fps, time_per_frame 1/120)."""
    names = list(SMPL24_JOINT_NAMES)
    tpf = 1 / 120.0
    rows = []
    for t in range(1, positions.shape[0]):
        cur, prev = positions[t], positions[t - 1]

        def at(j):
            if j == "y_unit":
                return np.array([0, 1, 0])
            if j == "minus_y_unit":
                return np.array([0, -1, 0])
            if j == "zero":
                return np.array([0, 0, 0])
            if j == "y_min":
                return np.array([0, min(y for (_, y, _) in cur), 0])
            return cur[names.index(j)]

        def bf(j):
            return prev[names.index(j)]

        row = []
        for kind, js, arg in GEOMETRIC_FEATURES:
            if kind == "move":
                j1, j2, j3 = js[:3]
                vel = at(j3) - at(j1) - (bf(j3) - bf(j1))
                d = at(j2) - at(j1)
                row.append(np.dot(vel, d) / np.linalg.norm(d) / tpf > arg)
            elif kind == "nmove":
                j1, j2, j3, j4 = js
                vel = at(j4) - at(j1) - (bf(j4) - bf(j1))
                d = np.cross(at(j3) - at(j1), at(j2) - at(j1))
                row.append(np.dot(vel, d) / np.linalg.norm(d) / tpf > arg)
            elif kind == "plane":
                a, b, c, p = (at(j) for j in js)
                cross = np.cross(c - a, b - a)
                row.append(np.dot(cross, p - a) / np.linalg.norm(cross) > arg)
            elif kind == "nplane":
                n1, n2, a, p = (at(j) for j in js)
                row.append(np.dot(n2 - n1, p - a) / np.linalg.norm(n2 - n1) > arg)
            elif kind == "angle":
                a, b, c, d = (at(j) for j in js)
                u, v = b - a, d - c
                ang = np.degrees(np.arccos(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))))
                row.append(arg[0] < ang < arg[1])
            else:
                (j,) = js
                row.append(np.linalg.norm(at(j) - bf(j)) / tpf > arg)
        rows.append(row)
    return np.array(rows, dtype=np.float32).mean(axis=0)


def test_geometric_matches_reference_loop_on_random_motion():
    rng = np.random.default_rng(7)
    # jittery dance around the rest pose, big enough that most features toggle
    pos = still(40) + np.cumsum(rng.normal(scale=0.03, size=(40, 24, 3)), axis=0)
    np.testing.assert_allclose(geometric_features(pos, 60), geometric_reference_loop(pos), atol=1e-6)
    frames = geometric_frame_features(pos, 60)
    assert frames.shape == (39, 32) and frames.dtype == bool
    assert 0.0 < frames.mean() < 1.0


# ----------------------------------------------------------------------------------------------
# FID, normalisation, diversity


def test_frechet_distance_of_two_known_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    # |mu1 - mu2|^2 = 5; sum (sqrt(s1) - sqrt(s2))^2 = 1 + 1 + 4 = 6
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(11.0, abs=1e-9)
    # a rotated pair of commuting covariances: tr((S1 S2)^1/2) still sums sqrt(eigenvalue products)
    rot = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    a, b = rot @ np.diag([1.0, 9.0]) @ rot.T, rot @ np.diag([4.0, 1.0]) @ rot.T
    assert frechet_distance(np.zeros(2), a, np.zeros(2), b) == pytest.approx((1 - 2) ** 2 + (3 - 1) ** 2)


def test_fid_from_samples_approaches_closed_form():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 3))
    y = 2.0 * rng.normal(size=(20000, 3)) + [1.0, 0.0, 0.0]
    # |mu|^2 = 1, per dimension (1 - 2)^2 = 1 -> 1 + 3 = 4
    assert fid(x, y) == pytest.approx(4.0, rel=0.03)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_terms_split_the_distance_into_centres_and_spreads():
    from livedance.eval.fid import fid_terms

    rng = np.random.default_rng(2)
    x = rng.normal(size=(20000, 3))
    x -= x.mean(axis=0)  # centred, so that scaling it keeps its centre
    shifted = x + [1.0, 0.0, 2.0]  # same spread, centres 5 apart: all of the distance is the mean term
    t = fid_terms(shifted, x)
    assert t["mean_term"] == pytest.approx(5.0, rel=1e-9) and t["cov_term"] == pytest.approx(0.0, abs=1e-6)
    wider = 2.0 * x  # same centre, S_1 = 4 S_2: tr(4S + S - 2 * 2S) = tr(S), all of it the covariance term
    t = fid_terms(wider, x)
    spread = np.trace(np.cov(x, rowvar=False))
    assert t["mean_term"] == pytest.approx(0.0, abs=1e-12) and t["cov_term"] == pytest.approx(spread, rel=1e-6)
    assert t["fid"] == pytest.approx(fid(wider, x)) and t["fid"] == pytest.approx(t["mean_term"] + t["cov_term"])
    with pytest.raises(DataError, match="at least 2"):
        fid_terms(x[:1], x)


def test_fid_handles_singular_covariances():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 10))  # 4 samples in 10-D: rank-3 covariances
    b = rng.normal(size=(5, 10))
    value = fid(a, b)
    assert np.isfinite(value) and value > 0
    assert fid(a, a) == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(DataError, match="at least 2"):
        fid(a[:1], b)


def test_normalize_uses_reference_statistics():
    ref = np.array([[0.0, 10.0], [2.0, 10.0]])  # mean (1, 10), std (1, 0)
    other = np.array([[3.0, 10.0]])
    ref_n, other_n = normalize_with_reference(ref, other)
    np.testing.assert_allclose(ref_n, [[-1.0, 0.0], [1.0, 0.0]], atol=1e-9)
    np.testing.assert_allclose(other_n, [[2.0, 0.0]], atol=1e-9)
    with pytest.raises(DataError, match="dimensions"):
        normalize_with_reference(ref, np.zeros((1, 3)))


def test_diversity_of_three_known_vectors():
    # pairwise distances 3, 4, 5
    assert average_pairwise_distance(np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])) == pytest.approx(4.0)
    assert average_pairwise_distance(np.ones((5, 7))) == 0.0
    with pytest.raises(DataError):
        average_pairwise_distance(np.zeros((1, 3)))


# ----------------------------------------------------------------------------------------------
# BAS


def dance_with_speed(speed_per_frame: np.ndarray) -> np.ndarray:
    """Every joint moves along x; frame-to-frame displacement k is speed_per_frame[k] (metres)."""
    x = np.concatenate([[0.0], np.cumsum(speed_per_frame)])
    pos = still(x.size).copy()
    pos[:, :, 0] += x[:, None]
    return pos


def periodic_speed(n: int, period: int) -> np.ndarray:
    k = np.arange(n)
    return 0.01 * (1.2 + np.cos(2 * np.pi * k / period))  # minima at k = period/2 + m*period


def test_motion_beats_are_the_speed_minima():
    pos = dance_with_speed(periodic_speed(300, 30))
    beats = motion_beats(pos, fps=60)
    np.testing.assert_array_equal(beats, np.arange(15, 300, 30))


@pytest.mark.parametrize("fps,period", [(60.0, 30), (25.0, 20)])
def test_bas_on_beat_is_one_and_50ms_off_is_exp_minus_half(fps, period):
    pos = dance_with_speed(periodic_speed(10 * period, period))
    minima = np.arange(period // 2, 10 * period, period)
    on_beat = minima / fps
    assert clip_beat_align_score(pos, fps, on_beat) == pytest.approx(1.0)
    # 0.05 s late is sigma (3 frames at 60 fps, 1.25 at 25 fps) off: exp(-1/2)
    assert clip_beat_align_score(pos, fps, on_beat[:-1] + 0.05) == pytest.approx(np.exp(-0.5), rel=1e-6)


def test_bas_by_hand_and_edge_cases():
    # music beats at 10 and 20, motion beats at 10 and 26: d = 0 and 6 frames at 60 fps (sigma 3)
    assert beat_align_score([10, 20], [10, 26], fps=60) == pytest.approx((1 + np.exp(-36 / 18)) / 2)
    assert beat_align_score([10, 20], [], fps=60) == 0.0
    assert np.isnan(beat_align_score([], [3, 4], fps=60))
    # a dancer who stands still has no motion beats at all
    assert clip_beat_align_score(still(100), 60, [0.5, 1.0]) == 0.0
    # music beats beyond the dance are not scored (reference reads beats up to the dance length)
    pos = dance_with_speed(periodic_speed(120, 30))
    assert clip_beat_align_score(pos, 60, [15 / 60, 45 / 60, 500.0]) == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------
# PFC


def edge_pfc_literal(joint3d: np.ndarray) -> float:
    """EDGE eval_pfc.py for one clip at 30 fps, its z-up axes swapped for our y-up ones."""
    up_dir, flat_dirs, DT = 1, [0, 2], 1 / 30
    root_v = (joint3d[1:, 0, :] - joint3d[:-1, 0, :]) / DT
    root_a = (root_v[1:] - root_v[:-1]) / DT
    root_a[:, up_dir] = np.maximum(root_a[:, up_dir], 0)
    root_a = np.linalg.norm(root_a, axis=-1)
    root_a /= root_a.max()
    feet = joint3d[:, [7, 10, 8, 11]]
    foot_v = np.linalg.norm(feet[2:, :, flat_dirs] - feet[1:-1, :, flat_dirs], axis=-1)
    foot_mins = np.stack([np.minimum(foot_v[:, 0], foot_v[:, 1]), np.minimum(foot_v[:, 2], foot_v[:, 3])], 1)
    return float((foot_mins[:, 0] * foot_mins[:, 1] * root_a).mean() * 10000)


def sliding_clip(fps: float, seconds: float = 2.0, foot_speed: float = 0.6, accel: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * fps)) / fps
    pos = still(t.size).copy()
    pos[:, 0, 0] += 0.5 * accel * t**2  # root accelerates along x
    for j in (7, 10, 8, 11):
        pos[:, j, 2] += foot_speed * t  # every foot joint slides along z
    return pos


@pytest.mark.parametrize("fps", [30.0, 60.0, 25.0])
def test_pfc_sliding_feet_under_accelerating_root(fps):
    # constant root acceleration -> normalised to 1 every frame; both feet slide at 0.6 m/s,
    # i.e. 0.02 m per EDGE frame (1/30 s): PFC = 1e4 * 0.02 * 0.02 * 1 = 4
    assert physical_foot_contact(sliding_clip(fps), fps) == pytest.approx(4.0, rel=1e-6)


def test_pfc_equals_edge_code_at_30fps():
    rng = np.random.default_rng(5)
    pos = still(90) + np.cumsum(rng.normal(scale=0.01, size=(90, 24, 3)), axis=0)
    assert physical_foot_contact(pos, 30.0) == pytest.approx(edge_pfc_literal(pos), rel=1e-9)


def test_pfc_one_planted_foot_or_falling_root_is_zero():
    pos = sliding_clip(30.0)
    planted = pos.copy()
    planted[:, 10] = planted[0, 10]  # left toe stays put: the left foot is in contact
    assert physical_foot_contact(planted, 30.0) == 0.0
    falling = still(60).copy()
    t = np.arange(60) / 30.0
    falling[:, 0, 1] -= 0.5 * 9.81 * t**2  # only downward root acceleration: clamped to 0
    for j in (7, 10, 8, 11):
        falling[:, j, 0] += 0.5 * t
    assert physical_foot_contact(falling, 30.0) == 0.0


# ----------------------------------------------------------------------------------------------
# Protocol window and resampling


def test_protocol_window_keeps_20_seconds_and_anchors_the_root():
    for fps, n in ((60.0, 1200), (25.0, 500)):
        pos = still(2000) + [1.0, 0.0, -2.0]
        win = protocol_window(pos, fps)
        assert win.shape == (n, 24, 3)
        np.testing.assert_allclose(win[0, 0], 0.0, atol=1e-12)
        np.testing.assert_allclose(win[0, 1], REST[1] - REST[0])
    bad = still(30)
    bad[12, 5, 1] = np.inf
    with pytest.raises(DataError, match="frame 12"):
        protocol_window(bad, 25)


def test_resample_linear_motion_is_exact():
    t60 = np.arange(121) / 60.0
    pos = still(121) + t60[:, None, None] * np.array([0.5, -0.1, 0.3])
    out = resample_positions(pos, 60.0, 25.0)
    assert out.shape == (51, 24, 3)
    t25 = np.arange(51) / 25.0
    np.testing.assert_allclose(out, still(51) + t25[:, None, None] * np.array([0.5, -0.1, 0.3]), atol=1e-12)
