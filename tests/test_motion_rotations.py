"""Rotation conversions and slerp (livedance.motion.rotations)."""

from __future__ import annotations

import math

import numpy as np
import roma
import torch

from livedance.motion import rotations as rot


def _random_rotvecs(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.rand(n, 1, generator=g, dtype=torch.float64) * (math.pi - 1e-3)
    return axis * angle


def test_round_trips():
    rv = _random_rotvecs(64).reshape(4, 16, 3)
    R = rot.axis_angle_to_rotmat(rv)
    torch.testing.assert_close(rot.rotmat_to_axis_angle(R), rv)
    torch.testing.assert_close(rot.quat_to_rotmat(rot.rotmat_to_quat(R)), R)
    torch.testing.assert_close(rot.quat_to_axis_angle(rot.axis_angle_to_quat(rv)), rv)
    torch.testing.assert_close(rot.sixd_to_rotmat(rot.rotmat_to_6d(R)), R)
    torch.testing.assert_close(rot.sixd_to_axis_angle(rot.axis_angle_to_6d(rv)), rv)


def test_conventions_quat_xyzw_and_6d_columns():
    # 90 degrees about z: x -> y
    R = rot.axis_angle_to_rotmat(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    x, y = torch.eye(3, dtype=torch.float64)[:2]
    torch.testing.assert_close(R @ x, y)
    s = math.sqrt(0.5)
    torch.testing.assert_close(rot.rotmat_to_quat(R), torch.tensor([0, 0, s, s], dtype=torch.float64))
    six = rot.rotmat_to_6d(R)
    torch.testing.assert_close(six[:3], R[:, 0])
    torch.testing.assert_close(six[3:], R[:, 1])


def test_sixd_of_arbitrary_vectors_is_a_rotation():
    g = torch.Generator().manual_seed(1)
    R = rot.sixd_to_rotmat(torch.randn(100, 6, generator=g, dtype=torch.float64) * 3)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, torch.eye(3, dtype=torch.float64).expand(100, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100, dtype=torch.float64))


def test_slerp_endpoints_midpoint_and_shortest_arc():
    q0 = rot.axis_angle_to_quat(_random_rotvecs(32, 2))
    q1 = rot.axis_angle_to_quat(_random_rotvecs(32, 3))
    R0, R1 = rot.quat_to_rotmat(q0), rot.quat_to_rotmat(q1)
    torch.testing.assert_close(rot.quat_to_rotmat(rot.quat_slerp(q0, q1, 0.0)), R0)
    torch.testing.assert_close(rot.quat_to_rotmat(rot.quat_slerp(q0, -q1, 1.0)), R1)
    mid = rot.quat_to_rotmat(rot.quat_slerp(q0, q1, 0.5))
    d0, d1, d = rot.geodesic_angle(R0, mid), rot.geodesic_angle(mid, R1), rot.geodesic_angle(R0, R1)
    torch.testing.assert_close(d0, d1)
    torch.testing.assert_close(d0 + d1, d)  # on the geodesic, the short way round (d <= pi)
    # per-element weights agree with roma's slerp at that weight
    t = torch.linspace(0, 1, 32, dtype=torch.float64)
    ours = rot.quat_to_rotmat(rot.quat_slerp(q0, q1, t))
    for i in (0, 7, 31):
        ref = roma.unitquat_slerp(q0[i], q1[i], t[i : i + 1])[0]
        torch.testing.assert_close(ours[i], rot.quat_to_rotmat(ref))
    torch.testing.assert_close(rot.rotmat_slerp(R0, R1, t), ours)


def test_numpy_wrappers_match_torch():
    rv = _random_rotvecs(10)
    R = rot.axis_angle_to_rotmat(rv)
    np.testing.assert_allclose(rot.axis_angle_to_rotmat_np(rv.numpy()), R.numpy(), atol=1e-12)
    r32 = rot.rotmat_to_6d_np(R.numpy().astype(np.float32))
    assert r32.dtype == np.float32 and r32.shape == (10, 6)
    np.testing.assert_allclose(rot.sixd_to_rotmat_np(r32), R.numpy(), atol=1e-6)
    q = rot.rotmat_to_quat_np(R.numpy())
    np.testing.assert_allclose(rot.quat_slerp_np(q, q, 0.3), q, atol=1e-12)


def test_quat_angle_matches_the_geodesic_distance_and_stays_accurate_near_zero():
    q = roma.random_unitquat(64, generator=torch.Generator().manual_seed(3)).double()
    p = roma.random_unitquat(64, generator=torch.Generator().manual_seed(4)).double()
    # the reference: scipy's rotation magnitude of q^-1 p (an atan2 of the relative quaternion, accurate near pi;
    # roma's trace-based distance loses 1e-6 to 1e-5 there, depending on the CPU's vector units)
    from scipy.spatial.transform import Rotation

    want = (Rotation.from_quat(q.numpy()).inv() * Rotation.from_quat(p.numpy())).magnitude()
    np.testing.assert_allclose(rot.quat_angle_np(q.numpy(), p.numpy()), want, atol=1e-6)
    np.testing.assert_allclose(rot.quat_angle_np(q.numpy(), -p.numpy()), want, atol=1e-6)  # q and -q: one rotation
    far = want < 3.0  # and roma's geodesic distance agrees (same convention) within its own accuracy
    np.testing.assert_allclose(want[far], roma.rotmat_geodesic_distance(roma.unitquat_to_rotmat(q),
                                                                         roma.unitquat_to_rotmat(p)).numpy()[far], atol=2e-5)
    small = roma.quat_product(q, roma.rotvec_to_unitquat(torch.tensor([1e-4, 0.0, 0.0], dtype=torch.float64)))
    np.testing.assert_allclose(rot.quat_angle_np(q.numpy().astype(np.float32), small.numpy().astype(np.float32)),
                               1e-4, atol=2e-6)  # float32 in, where 2 arccos(|<q, p>|) would give ~1e-3
