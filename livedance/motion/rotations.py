"""Rotation conversions (thin wrappers over ``roma``) and slerp.

All functions take and return ``torch`` tensors with any leading batch shape ``...``; the ``*_np``
variants take/return numpy arrays (computed in float64 internally, returned in the input's float
dtype). Conventions, used everywhere in livedance:

* axis-angle (rotation vector): (..., 3), radians, direction = axis, norm = angle.
* rotation matrix: (..., 3, 3), acting on column vectors (``x' = R @ x``).
* quaternion: (..., 4) in **(x, y, z, w)** order (roma's and the VMC wire format's order), unit norm.
* 6D (Zhou, Barnes, Lu, Yang, Li 2019, "On the Continuity of Rotation Representations in Neural
  Networks", CVPR, Sec. 4.2): the **first two columns** of the rotation matrix, concatenated as
  ``[R[:,0], R[:,1]]`` -> (..., 6). The inverse is Gram-Schmidt (their Eq. 15-16, ``roma.special_gramschmidt``).
  Note: PyTorch3D's ``matrix_to_rotation_6d`` takes the first two *rows*; data in that convention
  is the 6D of the transposed matrix and must be converted.
"""

from __future__ import annotations

import numpy as np
import roma
import torch


def axis_angle_to_rotmat(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) radians -> rotation matrix (..., 3, 3) (Rodrigues' formula, via roma)."""
    return roma.rotvec_to_rotmat(rotvec)


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> axis-angle (..., 3) radians, angle in [0, pi]."""
    return roma.rotmat_to_rotvec(rotmat)


def rotmat_to_quat(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> unit quaternion (..., 4) in (x, y, z, w) order."""
    return roma.rotmat_to_unitquat(rotmat)


def quat_to_rotmat(quat: torch.Tensor) -> torch.Tensor:
    """Quaternion (..., 4) (x, y, z, w), normalised first -> rotation matrix (..., 3, 3)."""
    return roma.unitquat_to_rotmat(quat / quat.norm(dim=-1, keepdim=True))


def axis_angle_to_quat(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) radians -> unit quaternion (..., 4) (x, y, z, w)."""
    return roma.rotvec_to_unitquat(rotvec)


def quat_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """Unit quaternion (..., 4) (x, y, z, w) -> axis-angle (..., 3) radians, angle in [0, pi]."""
    return roma.unitquat_to_rotvec(quat / quat.norm(dim=-1, keepdim=True))


def rotmat_to_6d(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> 6D (..., 6): first column then second column (Zhou et al. 2019)."""
    return rotmat[..., :, :2].transpose(-1, -2).reshape(*rotmat.shape[:-2], 6)


def sixd_to_rotmat(sixd: torch.Tensor) -> torch.Tensor:
    """6D (..., 6) (two 3-vectors, any scale, not parallel) -> rotation matrix (..., 3, 3).

    Gram-Schmidt as in Zhou et al. 2019 (Eq. 15-16): column 0 = normalised first vector, column 1 =
    second vector made orthogonal to it and normalised, column 2 = their cross product.
    """
    cols = sixd.reshape(*sixd.shape[:-1], 2, 3).transpose(-1, -2)
    return roma.special_gramschmidt(cols)


def axis_angle_to_6d(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) -> 6D (..., 6)."""
    return rotmat_to_6d(axis_angle_to_rotmat(rotvec))


def sixd_to_axis_angle(sixd: torch.Tensor) -> torch.Tensor:
    """6D (..., 6) -> axis-angle (..., 3)."""
    return rotmat_to_axis_angle(sixd_to_rotmat(sixd))


def quat_slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical linear interpolation of unit quaternions (Shoemake 1985), element-wise, shortest arc.

    Args:
        q0, q1: (..., 4) unit quaternions (x, y, z, w); broadcastable.
        t: interpolation weight(s), broadcastable to ``...``; 0 gives q0, 1 gives q1 (or -q1).
    Returns:
        (..., 4) unit quaternions ``q0 * exp(t * log(q0^-1 * q1))``.
    """
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)
    rel = roma.quat_product(roma.quat_conjugation(q0), q1)
    rel = torch.where(rel[..., 3:4] < 0, -rel, rel)  # shortest arc
    step = roma.unitquat_to_rotvec(rel) * t[..., None]
    return roma.quat_product(q0, roma.rotvec_to_unitquat(step))


def rotmat_slerp(r0: torch.Tensor, r1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Geodesic interpolation of rotation matrices (..., 3, 3): ``R0 @ exp(t * log(R0^T R1))``."""
    t = torch.as_tensor(t, dtype=r0.dtype, device=r0.device)
    rel = roma.rotmat_to_rotvec(r0.transpose(-1, -2) @ r1)
    return r0 @ roma.rotvec_to_rotmat(rel * t[..., None])


def geodesic_angle(r0: torch.Tensor, r1: torch.Tensor) -> torch.Tensor:
    """Angle (radians, (...)) of the rotation taking r0 to r1, for rotation matrices (..., 3, 3)."""
    return roma.rotmat_geodesic_distance(r0, r1)


# ----- numpy wrappers --------------------------------------------------------------------------


def _np_wrap(fn):
    def wrapped(x, *args):
        arr = np.asarray(x)
        out_dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
        res = fn(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64)), *args)
        return res.numpy().astype(out_dtype, copy=False)

    wrapped.__name__ = fn.__name__ + "_np"
    wrapped.__doc__ = f"numpy version of :func:`{fn.__name__}` (same shapes; float64 inside)."
    return wrapped


axis_angle_to_rotmat_np = _np_wrap(axis_angle_to_rotmat)
rotmat_to_axis_angle_np = _np_wrap(rotmat_to_axis_angle)
rotmat_to_quat_np = _np_wrap(rotmat_to_quat)
quat_to_rotmat_np = _np_wrap(quat_to_rotmat)
rotmat_to_6d_np = _np_wrap(rotmat_to_6d)
sixd_to_rotmat_np = _np_wrap(sixd_to_rotmat)


def quat_slerp_np(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """numpy version of :func:`quat_slerp` ((..., 4) x, y, z, w; float64 inside)."""
    dtype = np.result_type(np.asarray(q0).dtype, np.float32)
    out = quat_slerp(
        torch.as_tensor(np.asarray(q0, dtype=np.float64)),
        torch.as_tensor(np.asarray(q1, dtype=np.float64)),
        torch.as_tensor(np.asarray(t, dtype=np.float64)),
    )
    return out.numpy().astype(dtype, copy=False)


def quat_slerp_fast_np(q0: np.ndarray, q1: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions along the shortest arc (Shoemake 1985).

    Args:
        q0, q1: (..., 4) float quaternions (x, y, z, w), unit norm.
        t: interpolation weight in [0, 1] (0 gives q0, 1 gives q1 or -q1): a float, or an array of shape
            (..., 1) for one weight per quaternion.

    Returns:
        (..., 4) float64 unit quaternions. Nearly parallel pairs (angle < 1e-4 rad) use normalised
        lerp. Agrees with :func:`quat_slerp_np` (roma) up to sign; pure numpy, without torch's per-op
        dispatch (tens of microseconds for 55 joints against about a millisecond), for per-frame calls in
        the live loop.
    """
    a = np.asarray(q0, np.float64)
    b = np.asarray(q1, np.float64)
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0.0, -b, b)
    dot = np.abs(dot)
    np.clip(dot, -1.0, 1.0, out=dot)
    omega = np.arccos(dot)
    sin_o = np.sin(omega)
    small = sin_o < 1e-4
    safe = np.where(small, 1.0, sin_o)
    w0 = np.where(small, 1.0 - t, np.sin((1.0 - t) * omega) / safe)
    w1 = np.where(small, t, np.sin(t * omega) / safe)
    out = w0 * a + w1 * b
    out /= np.linalg.norm(out, axis=-1, keepdims=True)
    return out


def quat_angle_np(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Angle (radians, in [0, pi]) of the rotation taking unit quaternion ``q0`` to ``q1``, elementwise.

    Args:
        q0, q1: (..., 4) unit quaternions (x, y, z, w), broadcastable; q and -q are one rotation.
    Returns:
        (...) float64 radians, 4 arcsin(min(|q0 - q1|, |q0 + q1|) / 2): from the chord, so it stays accurate for
        small angles, where 2 arccos(|<q0, q1>|) loses half its digits (float32 inputs: about 1e-3 rad at 0).
    """
    a, b = np.asarray(q0, np.float64), np.asarray(q1, np.float64)
    chord = np.minimum(np.linalg.norm(a - b, axis=-1), np.linalg.norm(a + b, axis=-1))
    return 4.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
