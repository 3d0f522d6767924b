"""Per-frame motion features for the tokenizer and generator, split into body parts.

One frame of SMPL-X body motion becomes a vector of D = 140 float32 numbers (body-only data), laid
out part by part so that every part is one contiguous slice. The features do not depend on where the
dancer faces (the heading), as in the HumanML3D representation (Guo et al. 2022): the pelvis rotation
is stored without its heading, and the heading enters only as a turning rate.

============  ====  =====================================================================================
part          size  contents (in this order)
============  ====  =====================================================================================
``lower``      62   6D rotations (Zhou et al. 2019, first two columns, :func:`livedance.motion.rotations.
                    rotmat_to_6d`) of pelvis (global orientation without heading), left/right hip, knee,
                    ankle, foot (9 x 6 = 54); heading velocity, radians per frame (1); root velocity in
                    the ground plane (x, z) in the heading frame, metres per frame (2); root height,
                    metres (1); foot contacts of left ankle, right ankle, left foot, right foot (4)
``upper``      78   6D rotations of spine1, spine2, spine3, neck, left/right collar, head, left/right
                    shoulder, elbow, wrist (13 x 6)
``hands``       0   slot for the 2 x 15 SMPL-X hand joints (size 0 for body-only data)
``face``        0   slot for jaw / eyes / expression (size 0 for body-only data)
============  ====  =====================================================================================

Definitions (frames at ``fps``, 25 for the Tang data; positions in metres, y up):

* heading ``psi[t]`` (:func:`pelvis_heading`): the angle about +y of the pelvis' forward axis (its +z,
  the SMPL-X facing direction) projected on the ground, ``atan2(f_x, f_z)``. The pelvis feature is
  ``Ry(-psi) R_pelvis``; the heading velocity is ``psi[t] - psi[t-1]`` wrapped to (-pi, pi], 0 at t = 0.
* root velocity: ``d[t] = p[t] - p[t-1]`` of the root translation's x and z (``d[0] = 0``), rotated into
  the heading frame, ``v[t] = Ry(-psi[t]) d[t]``. :meth:`Representation.decode` integrates both back
  (``psi = psi_0 + cumsum``, ``p = p_0 + cumsum(Ry(psi) v)``), exactly, given the start heading and position.
* local floor: the height of the lowest of the four foot joints (ankles, balls of the feet), with lifts
  shorter than 2W + 1 frames removed by a grey opening (moving minimum, then moving maximum, over
  t - W .. t + W; W = ``floor_window_s`` = 0.5 s: the lowest foot joint leaves the floor only when both
  feet do, i.e. in jumps). Unlike a plain moving minimum it follows a sloping floor without lag. It is
  needed because the Tang data's floor drifts by up to 45 cm over a take (:mod:`livedance.data.tang_ik`).
* root height: the pelvis' world y minus the local floor, metres. The drift is thereby removed:
  :meth:`Representation.decode` puts the floor at y = 0 (``root_translation[:, 1] = height -
  rest_offsets[0, 1]``), so ``decode(encode(clip))`` equals the clip up to the start x, z and the floor drift.
* foot contacts (in {0, 1}): joint j touches the ground at frame t when its height above the local floor
  is below its threshold AND its speed (central difference of its world position) is below
  ``contact_speed_mps`` = 0.6 m/s (ballroom feet glide along the floor while loaded). Thresholds: balls of
  the feet ``contact_foot_height_m`` = 5 cm; ankles their flat-foot height (the rest-pose drop from
  ankle to foot joint, 7 cm for a Tang skeleton) + ``contact_ankle_margin_m`` = 4 cm. Measured on
  DANCE_W_1: a foot joint is in contact 61 / 50 % of frames (left / right), some contact in 84 %.

Features are normalised per dimension with the mean and standard deviation of the train split
(:meth:`Representation.fit`; the standard deviation is floored at ``std_floor`` so that near-constant
dimensions do not blow up); the statistics and the canonical skeleton (mean rest offsets of the train
clips, used by :meth:`Representation.to_positions` when no skeleton is given) are saved with the
weights (:meth:`Representation.to_dict` / :meth:`Representation.from_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from livedance.errors import DataError, WeightsError
from livedance.motion.fk import forward_kinematics
from livedance.motion.rotations import rotmat_to_6d, sixd_to_rotmat
from livedance.motion.skeleton import NUM_BODY_JOINTS, SMPLX_BODY_JOINT_NAMES, SMPLX_BODY_PARENTS

__all__ = [
    "PART_NAMES",
    "LOWER_JOINTS",
    "UPPER_JOINTS",
    "CONTACT_JOINTS",
    "RepresentationConfig",
    "Representation",
    "yaw_rotations",
    "yaw_rotations_np",
    "raw_features",
    "foot_contacts",
    "local_floor",
    "pelvis_heading",
]

#: Part names in quantisation (chaining) order.
PART_NAMES: tuple[str, ...] = ("lower", "upper", "hands", "face")

_J = {n: i for i, n in enumerate(SMPLX_BODY_JOINT_NAMES)}
#: SMPL-X body joint indices whose rotations belong to the ``lower`` part (pelvis first).
LOWER_JOINTS: tuple[int, ...] = tuple(
    _J[n] for n in ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                    "left_foot", "right_foot")
)
#: SMPL-X body joint indices whose rotations belong to the ``upper`` part.
UPPER_JOINTS: tuple[int, ...] = tuple(
    _J[n] for n in ("spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "head",
                    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
)
#: Joints with a contact flag: left ankle, right ankle, left foot, right foot.
CONTACT_JOINTS: tuple[int, ...] = tuple(_J[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot"))

assert sorted(LOWER_JOINTS + UPPER_JOINTS) == list(range(NUM_BODY_JOINTS))


@dataclass(frozen=True)
class RepresentationConfig:
    """What goes into a frame's feature vector and how contacts are labelled.

    Attributes:
        fps: frame rate of the motion, frames per second (25 for the Tang data).
        contact_foot_height_m: contact threshold of the balls of the feet above the local floor, metres.
        contact_ankle_margin_m: contact threshold of the ankles above their flat-foot height, metres.
        contact_speed_mps: speed threshold, metres per second.
        floor_window_s: half width W of the floor estimate's grey opening, seconds.
        std_floor: lower bound on the per-dimension standard deviation used for normalising.
        hands_dim: feature size of the hands slot (0 for body-only data).
        face_dim: feature size of the face slot (0 for body-only data).
    """

    fps: float = 25.0
    contact_foot_height_m: float = 0.05
    contact_ankle_margin_m: float = 0.04
    contact_speed_mps: float = 0.6
    floor_window_s: float = 0.5
    std_floor: float = 1e-2
    hands_dim: int = 0
    face_dim: int = 0

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.std_floor <= 0 or self.floor_window_s <= 0:
            raise DataError(
                f"RepresentationConfig: fps={self.fps}, std_floor={self.std_floor}, floor_window_s="
                f"{self.floor_window_s}; expected all > 0"
            )
        if self.hands_dim != 0 or self.face_dim != 0:
            raise DataError(
                "RepresentationConfig: hands_dim/face_dim must be 0: only body-only data (22 SMPL-X body joints) "
                "is supported; the slots exist so that configs stay compatible when hand/face data arrives"
            )

    @property
    def part_dims(self) -> dict[str, int]:
        """Feature size of each part, in :data:`PART_NAMES` order."""
        return {
            "lower": 6 * len(LOWER_JOINTS) + 1 + 2 + 1 + len(CONTACT_JOINTS),
            "upper": 6 * len(UPPER_JOINTS),
            "hands": self.hands_dim,
            "face": self.face_dim,
        }

    @property
    def dim(self) -> int:
        """Total feature size D per frame."""
        return sum(self.part_dims.values())

    @property
    def part_slices(self) -> dict[str, slice]:
        """Slice of each part in the D-dimensional feature vector (contiguous, :data:`PART_NAMES` order)."""
        out, start = {}, 0
        for name, d in self.part_dims.items():
            out[name] = slice(start, start + d)
            start += d
        return out

    @property
    def active_parts(self) -> tuple[str, ...]:
        """Parts with a non-zero size, in chaining order."""
        return tuple(p for p, d in self.part_dims.items() if d > 0)


# Offsets inside the lower part.
_L_ROT = 6 * len(LOWER_JOINTS)  # 54
_YAW = _L_ROT  # heading velocity, rad / frame
_VEL = _L_ROT + 1  # root velocity x, z in the heading frame (2), m / frame
_HGT = _L_ROT + 3  # root height above the local floor, m
_CON = _L_ROT + 4  # 4 contacts
_LOWER_DIM = _L_ROT + 8


def pelvis_heading(pelvis_rotmats):
    """Heading (yaw about +y) of the pelvis: ``atan2(f_x, f_z)`` with ``f = R[:, 2]`` its forward axis.

    Args:
        pelvis_rotmats: (..., 3, 3) global pelvis rotations (numpy or torch).
    Returns:
        (...,) radians in (-pi, pi], same array type.
    """
    if isinstance(pelvis_rotmats, torch.Tensor):
        return torch.atan2(pelvis_rotmats[..., 0, 2], pelvis_rotmats[..., 2, 2])
    R = np.asarray(pelvis_rotmats)
    return np.arctan2(R[..., 0, 2], R[..., 2, 2])


def yaw_rotations_np(a: np.ndarray) -> np.ndarray:
    """Rotations about +y (up) by ``a`` radians: (...) float -> (..., 3, 3), [[c, 0, s], [0, 1, 0], [-s, 0, c]]."""
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def yaw_rotations(a: torch.Tensor) -> torch.Tensor:
    """:func:`yaw_rotations_np` in torch (differentiable): (...) -> (..., 3, 3)."""
    c, s = torch.cos(a), torch.sin(a)
    z, o = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([torch.stack([c, z, s], -1), torch.stack([z, o, z], -1), torch.stack([-s, z, c], -1)], -2)


def _grey_opening(lowest: np.ndarray, half: int) -> np.ndarray:
    from scipy.ndimage import grey_opening

    return grey_opening(lowest, size=2 * half + 1, mode="nearest")


def _check_positions(positions) -> np.ndarray:
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[1] < NUM_BODY_JOINTS or pos.shape[2] != 3:
        raise DataError(f"foot contacts / floor: positions have shape {pos.shape}, expected (T, >=22, 3)")
    return pos


def local_floor(positions: np.ndarray, config: RepresentationConfig | None = None) -> np.ndarray:
    """Height of the floor under the dancer per frame (see the module docstring).

    Args:
        positions: (T, >=22, 3) world joint positions, metres, y up, SMPL-X body order first.
        config: ``floor_window_s`` and ``fps``.
    Returns:
        (T,) float64 metres.
    Raises:
        DataError: on a bad shape.
    """
    cfg = config or RepresentationConfig()
    pos = _check_positions(positions)
    if pos.shape[0] == 0:
        return np.zeros(0)
    lowest = pos[:, list(CONTACT_JOINTS), 1].min(axis=1)
    return _grey_opening(lowest, max(1, int(round(cfg.floor_window_s * cfg.fps))))


def foot_contacts(
    positions: np.ndarray, config: RepresentationConfig | None = None, rest_offsets: np.ndarray | None = None
) -> np.ndarray:
    """Foot contact labels from joint positions (see the module docstring for the rule).

    Args:
        positions: (T, >=22, 3) world joint positions, metres, y up, SMPL-X body order first.
        config: thresholds (defaults: :class:`RepresentationConfig`).
        rest_offsets: (22, 3) metres, the skeleton; gives the ankles' flat-foot height (default 7 cm).
    Returns:
        (T, 4) float32 in {0, 1} for left ankle, right ankle, left foot, right foot.
    Raises:
        DataError: on a bad shape.
    """
    cfg = config or RepresentationConfig()
    pos = _check_positions(positions)
    T = pos.shape[0]
    if T == 0:
        return np.zeros((0, 4), np.float32)
    feet = pos[:, list(CONTACT_JOINTS)]  # (T, 4, 3)
    height = feet[..., 1] - local_floor(pos, cfg)[:, None]
    vel = np.gradient(feet, axis=0) * cfg.fps if T > 1 else np.zeros_like(feet)
    speed = np.linalg.norm(vel, axis=-1)
    if rest_offsets is not None:
        off = np.asarray(rest_offsets, dtype=np.float64)
        drop = -off[[CONTACT_JOINTS[2], CONTACT_JOINTS[3]], 1]  # ankle -> foot joint, rest pose (flat foot)
    else:
        drop = np.array([0.07, 0.07])
    thr = np.concatenate([np.maximum(drop, 0.0) + cfg.contact_ankle_margin_m, [cfg.contact_foot_height_m] * 2])
    return ((height < thr[None]) & (speed < cfg.contact_speed_mps)).astype(np.float32)


def raw_features(
    local_rotmats: np.ndarray,
    root_translation: np.ndarray,
    rest_offsets: np.ndarray,
    positions: np.ndarray | None = None,
    config: RepresentationConfig | None = None,
) -> np.ndarray:
    """Un-normalised per-frame features of one clip.

    Args:
        local_rotmats: (T, 22, 3, 3) SMPL-X body local rotations.
        root_translation: (T, 3) metres (SMPL-X ``transl``).
        rest_offsets: (22, 3) metres, the clip's skeleton.
        positions: (T, >=22, 3) world joint positions in metres (SMPL-X body order first); computed by FK
            when None.
        config: see :class:`RepresentationConfig`.
    Returns:
        (T, D) float32, layout as in the module docstring.
    Raises:
        DataError: on bad shapes or non-finite input.
    """
    cfg = config or RepresentationConfig()
    R = np.asarray(local_rotmats, dtype=np.float64)
    tr = np.asarray(root_translation, dtype=np.float64)
    off = np.asarray(rest_offsets, dtype=np.float64)
    if R.ndim != 4 or R.shape[1:] != (NUM_BODY_JOINTS, 3, 3):
        raise DataError(f"representation: local_rotmats have shape {R.shape}, expected (T, 22, 3, 3)")
    T = R.shape[0]
    if tr.shape != (T, 3):
        raise DataError(f"representation: root_translation has shape {tr.shape}, expected ({T}, 3)")
    if off.shape != (NUM_BODY_JOINTS, 3):
        raise DataError(f"representation: rest_offsets have shape {off.shape}, expected (22, 3)")
    if not (np.isfinite(R).all() and np.isfinite(tr).all()):
        raise DataError("representation: motion holds NaN/inf")
    if positions is None:
        positions = forward_kinematics(R, tr, off, SMPLX_BODY_PARENTS)
    psi = pelvis_heading(R[:, 0])
    R = R.copy()
    R[:, 0] = np.swapaxes(yaw_rotations_np(psi), -1, -2) @ R[:, 0]  # pelvis without heading
    sixd = rotmat_to_6d(torch.from_numpy(R)).numpy()  # (T, 22, 6)
    dpsi = np.zeros((T, 1))
    dpsi[1:, 0] = np.angle(np.exp(1j * (psi[1:] - psi[:-1])))
    d = np.zeros((T, 2))
    d[1:] = tr[1:, [0, 2]] - tr[:-1, [0, 2]]
    c, s = np.cos(psi), np.sin(psi)
    vel = np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], 1)  # Ry(-psi) d
    positions = np.asarray(positions, dtype=np.float64)
    height = (tr[:, 1] + off[0, 1] - local_floor(positions, cfg))[:, None]
    contacts = foot_contacts(positions, cfg, off)
    lower = np.concatenate([sixd[:, list(LOWER_JOINTS)].reshape(T, -1), dpsi, vel, height, contacts], axis=1)
    upper = sixd[:, list(UPPER_JOINTS)].reshape(T, -1)
    return np.concatenate([lower, upper], axis=1).astype(np.float32)


def _as_tensor(x) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, True
    return torch.as_tensor(np.asarray(x)), False


@dataclass
class Representation:
    """Feature encoder/decoder with normalisation statistics and a canonical skeleton.

    Attributes:
        config: :class:`RepresentationConfig`.
        mean: (D,) float32 per-dimension mean of the train split's raw features.
        std: (D,) float32 per-dimension standard deviation (floored at ``config.std_floor``).
        rest_offsets: (22, 3) float32 metres, the canonical skeleton (mean of the train clips'
            rest offsets) used when a caller gives none.
    """

    config: RepresentationConfig = field(default_factory=RepresentationConfig)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    rest_offsets: np.ndarray | None = None

    def __post_init__(self) -> None:
        D = self.config.dim
        self.mean = np.zeros(D, np.float32) if self.mean is None else np.asarray(self.mean, np.float32)
        self.std = np.ones(D, np.float32) if self.std is None else np.asarray(self.std, np.float32)
        if self.rest_offsets is None:
            self.rest_offsets = np.zeros((NUM_BODY_JOINTS, 3), np.float32)
        self.rest_offsets = np.asarray(self.rest_offsets, np.float32)
        if self.mean.shape != (D,) or self.std.shape != (D,) or self.rest_offsets.shape != (NUM_BODY_JOINTS, 3):
            raise WeightsError(
                f"representation: mean {self.mean.shape}, std {self.std.shape}, rest_offsets "
                f"{self.rest_offsets.shape}; expected ({D},), ({D},), (22, 3)"
            )
        if not (np.all(self.std > 0) and np.isfinite(self.mean).all() and np.isfinite(self.std).all()):
            raise WeightsError("representation: normalisation statistics must be finite with std > 0")

    # ----------------------------------------------------------------------------------- layout
    @property
    def dim(self) -> int:
        """Feature size D per frame."""
        return self.config.dim

    @property
    def part_slices(self) -> dict[str, slice]:
        """Slice of each part (all four, empty ones included) in the feature vector."""
        return self.config.part_slices

    @property
    def root_channels(self) -> dict[str, int | slice]:
        """Indices of the root / contact channels in the feature vector: ``heading_velocity`` (int),
        ``velocity_xz`` (slice of 2), ``height`` (int), ``contacts`` (slice of 4)."""
        o = self.part_slices["lower"].start
        return {"heading_velocity": o + _YAW, "velocity_xz": slice(o + _VEL, o + _VEL + 2), "height": o + _HGT,
                "contacts": slice(o + _CON, o + _CON + 4)}

    # ------------------------------------------------------------------------------- statistics
    @classmethod
    def fit(cls, clips: Sequence[Any], config: RepresentationConfig | None = None) -> "Representation":
        """Statistics from clips (the train split).

        Args:
            clips: objects with ``local_rotmats`` (T,22,3,3), ``root_translation`` (T,3), ``rest_offsets``
                (22,3) and optionally ``positions`` (T,>=22,3) (e.g. :class:`livedance.data.dataset.MotionClip`).
            config: feature settings.
        Returns:
            a :class:`Representation` with mean/std over all frames of all clips and the mean skeleton.
        Raises:
            DataError: when ``clips`` is empty or a clip is malformed.
        """
        cfg = config or RepresentationConfig()
        if len(clips) == 0:
            raise DataError("Representation.fit: no clips given; expected the train split's clips")
        feats = [raw_features(c.local_rotmats, c.root_translation, c.rest_offsets, getattr(c, "positions", None), cfg)
                 for c in clips]
        allf = np.concatenate(feats, axis=0).astype(np.float64)
        mean = allf.mean(axis=0)
        std = np.maximum(allf.std(axis=0), cfg.std_floor)
        rest = np.mean([np.asarray(c.rest_offsets, np.float64) for c in clips], axis=0)
        return cls(cfg, mean.astype(np.float32), std.astype(np.float32), rest.astype(np.float32))

    def normalize(self, raw):
        """(..., D) raw features -> normalised ``(raw - mean) / std`` (numpy or torch, same type back)."""
        if not isinstance(raw, torch.Tensor):  # numpy in, numpy arithmetic (no torch round trip)
            return (np.asarray(raw) - self.mean) / self.std
        x, is_t = _as_tensor(raw)
        out = (x - torch.as_tensor(self.mean, dtype=x.dtype, device=x.device)) / torch.as_tensor(
            self.std, dtype=x.dtype, device=x.device)
        return out if is_t else out.numpy()

    def denormalize(self, x):
        """(..., D) normalised features -> raw ``x * std + mean`` (numpy or torch, same type back)."""
        if not isinstance(x, torch.Tensor):  # numpy in, numpy arithmetic (no torch round trip)
            return np.asarray(x) * self.std + self.mean
        t, is_t = _as_tensor(x)
        out = t * torch.as_tensor(self.std, dtype=t.dtype, device=t.device) + torch.as_tensor(
            self.mean, dtype=t.dtype, device=t.device)
        return out if is_t else out.numpy()

    # ------------------------------------------------------------------------------- encode/decode
    def encode(self, clip: Any) -> np.ndarray:
        """Normalised features of one clip.

        Args:
            clip: a :class:`~livedance.data.dataset.MotionClip` (or any object with ``local_rotmats``,
                ``root_translation``, ``rest_offsets`` and optionally ``positions``).
        Returns:
            (T, D) float32.
        Raises:
            DataError: on malformed motion.
        """
        raw = raw_features(clip.local_rotmats, clip.root_translation, clip.rest_offsets,
                           getattr(clip, "positions", None), self.config)
        return self.normalize(raw).astype(np.float32)

    def _check_dim(self, t: torch.Tensor, what: str) -> None:
        if t.ndim < 2 or t.shape[-1] != self.dim:
            raise DataError(f"representation.{what}: features have shape {tuple(t.shape)}, expected (..., T, {self.dim})")

    def decode(self, x, normalized: bool = True, rest_offsets=None, start_xz=None, start_heading=None):
        """Features back to motion.

        Args:
            x: (..., T, D) features (numpy or torch).
            normalized: whether ``x`` is normalised (the output of :meth:`encode` / the tokenizer).
            rest_offsets: (22, 3) metres, the skeleton whose root rest height is subtracted from the
                root height; default the canonical :attr:`rest_offsets`.
            start_xz: (..., 2) root x, z at frame 0 in metres (default 0): the velocity is integrated from it.
            start_heading: (...,) heading at frame 0, radians (default 0: the dancer starts facing +z);
                :func:`pelvis_heading` of the first pelvis rotation reproduces a clip exactly.
        Returns:
            ``(local_rotmats (..., T, 22, 3, 3), root_translation (..., T, 3))``, float32, numpy or torch as
            the input. Rotations are re-orthonormalised by Gram-Schmidt (Zhou et al. 2019, Eq. 15-16).
        Raises:
            DataError: on a wrong feature size.
        """
        if not isinstance(x, torch.Tensor):
            return self._decode_np(np.asarray(x), normalized, rest_offsets, start_xz, start_heading)
        t, is_t = _as_tensor(x)
        self._check_dim(t, "decode")
        t = t.float()
        raw = self.denormalize(t) if normalized else t
        lo = raw[..., self.part_slices["lower"]]
        up = raw[..., self.part_slices["upper"]]
        lead = raw.shape[:-1]
        sixd = torch.empty(*lead, NUM_BODY_JOINTS, 6, dtype=raw.dtype, device=raw.device)
        sixd[..., list(LOWER_JOINTS), :] = lo[..., :_L_ROT].reshape(*lead, len(LOWER_JOINTS), 6)
        sixd[..., list(UPPER_JOINTS), :] = up.reshape(*lead, len(UPPER_JOINTS), 6)
        rot = sixd_to_rotmat(sixd)
        off = torch.as_tensor(self.rest_offsets if rest_offsets is None else np.asarray(rest_offsets),
                              dtype=raw.dtype, device=raw.device)
        psi = torch.cumsum(lo[..., _YAW], dim=-1)
        if start_heading is not None:
            psi = psi + torch.as_tensor(np.asarray(start_heading) if not isinstance(start_heading, torch.Tensor)
                                        else start_heading, dtype=raw.dtype, device=raw.device).unsqueeze(-1)
        rot = torch.cat([(yaw_rotations(psi) @ rot[..., 0, :, :]).unsqueeze(-3), rot[..., 1:, :, :]], dim=-3)
        c, s = torch.cos(psi), torch.sin(psi)
        vx, vz = lo[..., _VEL], lo[..., _VEL + 1]
        xz = torch.cumsum(torch.stack([c * vx + s * vz, -s * vx + c * vz], -1), dim=-2)  # Ry(psi) v
        if start_xz is not None:
            xz = xz + torch.as_tensor(np.asarray(start_xz) if not isinstance(start_xz, torch.Tensor) else start_xz,
                                      dtype=raw.dtype, device=raw.device).unsqueeze(-2)
        y = lo[..., _HGT:_HGT + 1] - off[0, 1]
        transl = torch.cat([xz[..., :1], y, xz[..., 1:2]], dim=-1)
        if is_t:
            return rot, transl
        return rot.numpy(), transl.numpy()

    def _decode_np(self, x: np.ndarray, normalized: bool, rest_offsets, start_xz, start_heading):
        """:meth:`decode` in numpy (float32): the same operations without torch's per-op overhead.

        The live generator decodes 8 frames per step, where torch's dispatch cost outweighs the arithmetic
        (docs/model.md, "Offline real-time factor"); ``tests/test_representation.py`` holds the two paths
        to each other.
        """
        if x.ndim < 2 or x.shape[-1] != self.dim:
            raise DataError(f"representation.decode: features have shape {tuple(x.shape)}, expected (..., T, {self.dim})")
        f = x.astype(np.float32, copy=False)
        raw = self.denormalize(f) if normalized else f
        lo = raw[..., self.part_slices["lower"]]
        up = raw[..., self.part_slices["upper"]]
        lead = raw.shape[:-1]
        sixd = np.empty((*lead, NUM_BODY_JOINTS, 6), np.float32)
        sixd[..., list(LOWER_JOINTS), :] = lo[..., :_L_ROT].reshape(*lead, len(LOWER_JOINTS), 6)
        sixd[..., list(UPPER_JOINTS), :] = up.reshape(*lead, len(UPPER_JOINTS), 6)
        # Gram-Schmidt (Zhou et al. 2019, Eq. 15-16), as roma.special_gramschmidt: columns a, b, a x b.
        # A degenerate 6D (zero or parallel vectors) gives NaN, as in torch; callers check for it.
        with np.errstate(invalid="ignore", divide="ignore"):
            a = sixd[..., :3] / np.linalg.norm(sixd[..., :3], axis=-1, keepdims=True)
            b = sixd[..., 3:] - (a * sixd[..., 3:]).sum(-1, keepdims=True) * a
            b = b / np.linalg.norm(b, axis=-1, keepdims=True)
        rot = np.stack([a, b, np.cross(a, b)], axis=-1)
        off = np.asarray(self.rest_offsets if rest_offsets is None else rest_offsets, np.float32)
        psi = np.cumsum(lo[..., _YAW], axis=-1)
        if start_heading is not None:
            psi = psi + np.asarray(start_heading, np.float32)[..., None]
        rot[..., 0, :, :] = yaw_rotations_np(psi).astype(np.float32) @ rot[..., 0, :, :]
        c, s = np.cos(psi), np.sin(psi)
        vx, vz = lo[..., _VEL], lo[..., _VEL + 1]
        xz = np.cumsum(np.stack([c * vx + s * vz, -s * vx + c * vz], -1), axis=-2)  # Ry(psi) v
        if start_xz is not None:
            xz = xz + np.asarray(start_xz, np.float32)[..., None, :]
        transl = np.concatenate([xz[..., :1], lo[..., _HGT:_HGT + 1] - off[0, 1], xz[..., 1:2]], axis=-1)
        return rot.astype(np.float32, copy=False), transl.astype(np.float32, copy=False)

    def pose_positions(self, x, normalized: bool = True, rest_offsets=None) -> torch.Tensor:
        """Joint positions relative to the pelvis, in the dancer's heading frame (differentiable).

        FK of the feature rotations (pelvis without heading) with the root at the origin: the pose
        without the root trajectory or heading, for position losses and pose metrics.

        Args:
            x: (..., T, D) torch features.
            normalized: whether ``x`` is normalised.
            rest_offsets: (22, 3) skeleton, metres (default the canonical :attr:`rest_offsets`).
        Returns:
            (..., T, 22, 3) torch, metres, pelvis at the origin; the dancer faces +z.
        """
        self._check_dim(x, "pose_positions")
        raw = self.denormalize(x) if normalized else x
        lo = raw[..., self.part_slices["lower"]]
        up = raw[..., self.part_slices["upper"]]
        lead = raw.shape[:-1]
        sixd = torch.cat([lo[..., :_L_ROT].reshape(*lead, len(LOWER_JOINTS), 6),
                          up.reshape(*lead, len(UPPER_JOINTS), 6)], dim=-2)
        order = torch.as_tensor(np.argsort(np.asarray(LOWER_JOINTS + UPPER_JOINTS)), device=raw.device)
        rot = sixd_to_rotmat(sixd.index_select(-2, order))
        off = torch.as_tensor(self.rest_offsets if rest_offsets is None else np.asarray(rest_offsets, np.float32),
                              dtype=raw.dtype, device=raw.device)
        off = torch.cat([torch.zeros_like(off[:1]), off[1:]], 0)  # pelvis at the origin
        return forward_kinematics(rot, torch.zeros(*lead, 3, dtype=raw.dtype, device=raw.device), off, SMPLX_BODY_PARENTS)

    def contacts(self, x, normalized: bool = True):
        """Foot-contact channel of features: (..., T, D) -> (..., T, 4) in [0, 1]-ish (raw values, not thresholded)."""
        t, is_t = _as_tensor(x)
        self._check_dim(t, "contacts")
        raw = self.denormalize(t.float()) if normalized else t.float()
        c = raw[..., _CON:_CON + 4]
        return c if is_t else c.numpy()

    def to_positions(self, x, normalized: bool = True, rest_offsets=None, start_xz=None, start_heading=None):
        """Features -> world joint positions by forward kinematics (for metrics).

        Args:
            x: (..., T, D) features (numpy or torch).
            normalized, rest_offsets, start_xz, start_heading: as in :meth:`decode`; the same skeleton is used for FK.
        Returns:
            (..., T, 22, 3) SMPL-X body joint positions, metres, float32, numpy or torch as the input.
        """
        rot, transl = self.decode(x, normalized, rest_offsets, start_xz, start_heading)
        off = self.rest_offsets if rest_offsets is None else np.asarray(rest_offsets, np.float32)
        if isinstance(rot, torch.Tensor):
            return forward_kinematics(rot, transl, torch.as_tensor(off, dtype=rot.dtype), SMPLX_BODY_PARENTS)
        return forward_kinematics(rot, transl, off.astype(rot.dtype), SMPLX_BODY_PARENTS)

    # ------------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """JSON-ready dict: config, mean, std, rest offsets."""
        return {
            "config": asdict(self.config),
            "dim": self.dim,
            "part_dims": self.config.part_dims,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "rest_offsets": [[float(v) for v in row] for row in self.rest_offsets],
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "representation") -> "Representation":
        """Inverse of :meth:`to_dict`. Raises WeightsError (naming ``source``) on missing or mismatched fields."""
        try:
            cfgd = dict(d["config"])
            cfg = RepresentationConfig(**cfgd)
            rep = cls(cfg, np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32),
                      np.asarray(d["rest_offsets"], np.float32))
        except WeightsError as e:
            raise WeightsError(f"{source}: {e}") from None
        except (KeyError, TypeError, ValueError, DataError) as e:
            raise WeightsError(f"{source}: bad 'representation' entry ({type(e).__name__}: {e}); expected the "
                               "fields written by Representation.to_dict") from None
        if int(d.get("dim", rep.dim)) != rep.dim:
            raise WeightsError(f"{source}: representation dim {d.get('dim')} but its config gives {rep.dim}")
        return rep
