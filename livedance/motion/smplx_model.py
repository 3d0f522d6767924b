"""Optional: rest offsets from the user's own SMPL-X body model files.

The SMPL-X model files (Pavlakos et al. 2019) are licensed by the MPI and are not redistributable, so
nothing in livedance depends on them. Users who have them (and ``pip install smplx``) can get the
template skeleton: the joint locations ``J = J_regressor @ v_template`` at zero shape (SMPL-X paper,
Sec. 3, the same regression as SMPL, Loper et al. 2015, Eq. 10), turned into per-joint offsets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livedance.errors import WeightsError
from livedance.motion.skeleton import SMPLX_JOINT_NAMES, SMPLX_PARENTS, Skeleton

_GENDERS = ("neutral", "male", "female")


def resolve_smplx_model_file(model_path: str | Path, gender: str = "neutral") -> Path:
    """Find the SMPL-X model file: ``model_path`` itself, or ``SMPLX_<GENDER>.npz``/``.pkl`` in it
    (or in its ``smplx/`` sub-folder).

    Raises:
        WeightsError: when the gender is unknown or no such file exists (the message says where it looked).
    """
    if gender not in _GENDERS:
        raise WeightsError(f"SMPL-X gender {gender!r}: expected one of {', '.join(_GENDERS)}")
    path = Path(model_path).expanduser()
    if path.is_file():
        return path
    candidates = [
        base / f"SMPLX_{gender.upper()}.{ext}" for base in (path, path / "smplx") for ext in ("npz", "pkl")
    ]
    for cand in candidates:
        if cand.is_file():
            return cand
    raise WeightsError(
        f"SMPL-X model file not found at {path} (looked for {', '.join(str(c) for c in candidates)}). "
        "The SMPL-X body models are licensed: download them yourself from https://smpl-x.is.tue.mpg.de "
        "and pass the file or its folder."
    )


def load_smplx_skeleton(model_path: str | Path, gender: str = "neutral") -> Skeleton:
    """The 55-joint SMPL-X skeleton with rest offsets from the model's J_regressor at zero shape.

    Args:
        model_path: an ``SMPLX_<GENDER>.npz``/``.pkl`` file or a folder holding one.
        gender: "neutral", "male" or "female".
    Returns:
        :class:`Skeleton` with :data:`SMPLX_JOINT_NAMES`, :data:`SMPLX_PARENTS` and (55, 3) float64
        offsets in metres (row 0 = the template's pelvis position).
    Raises:
        WeightsError: when the file is absent, the ``smplx`` package is missing, or the file cannot be
            read as an SMPL-X model.
    """
    model_file = resolve_smplx_model_file(model_path, gender)
    try:
        import smplx  # noqa: PLC0415 (optional, heavy)
    except ImportError as err:
        raise WeightsError(
            "reading SMPL-X model files needs the smplx package: pip install 'livedance[smplx]'"
        ) from err
    try:
        model = smplx.SMPLX(str(model_file), gender=gender, ext=model_file.suffix.lstrip("."), use_pca=False)
        joints = (model.J_regressor @ model.v_template).detach().cpu().numpy().astype(np.float64)
    except Exception as err:  # corrupt / wrong file: report it as a weights problem
        raise WeightsError(f"SMPL-X model file {model_file}: cannot be read as an SMPL-X model ({err})") from err
    if joints.shape[0] < len(SMPLX_JOINT_NAMES):
        raise WeightsError(
            f"SMPL-X model file {model_file}: J_regressor gives {joints.shape[0]} joints, expected 55"
        )
    joints = joints[: len(SMPLX_JOINT_NAMES)]
    offsets = joints.copy()
    for j, p in enumerate(SMPLX_PARENTS):
        if p >= 0:
            offsets[j] = joints[j] - joints[p]
    return Skeleton(SMPLX_JOINT_NAMES, SMPLX_PARENTS, offsets)
