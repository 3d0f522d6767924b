"""The livedance motion file: one dance as an ``.npz`` (see docs/formats.md, "Motion npz").

Keys:

- ``positions``: (T, 24, 3) float32, SMPL-24 joint positions in metres, y up, right-handed.
- ``fps``: scalar float, frames per second.
- ``audio``: scalar str, path to the music; absolute, or relative to the folder of the npz.
- ``audio_offset_s``: scalar float, song time in seconds of frame 0.
- ``local_rotations`` (optional): (T, 55, 4) float32, SMPL-X local joint rotations, unit
  quaternions (x, y, z, w).
- ``root_translation`` (optional): (T, 3) float32, root (pelvis) position in metres.

Files are written without pickles and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedance.errors import DataError

#: Required keys of a motion npz.
REQUIRED_KEYS = ("positions", "fps", "audio", "audio_offset_s")
#: Largest accepted deviation of a quaternion's norm from 1.
QUATERNION_NORM_TOLERANCE = 1e-2
#: Accepted median pelvis-to-head distance of a dance, metres (a person: about 0.5-0.7 m).
BODY_SIZE_RANGE_M = (0.1, 3.0)
#: Smallest accepted median share of the pelvis-to-head direction along +y (the head is above the pelvis).
MIN_UP_SHARE = 0.3


@dataclass(frozen=True)
class MotionFile:
    """One dance read from a motion npz.

    Attributes:
        path: the npz file.
        positions: (T, 24, 3) float32 SMPL-24 joint positions, metres, y up.
        fps: frames per second.
        audio_path: the music, resolved against the npz's folder when relative.
        audio_offset_s: song time (s) of frame 0.
        local_rotations: (T, 55, 4) float32 quaternions (x, y, z, w), or None.
        root_translation: (T, 3) float32 metres, or None.
    """

    path: Path
    positions: np.ndarray
    fps: float
    audio_path: Path
    audio_offset_s: float
    local_rotations: np.ndarray | None = None
    root_translation: np.ndarray | None = None

    @property
    def name(self) -> str:
        """The file name without ``.npz``."""
        return self.path.stem

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return int(self.positions.shape[0])


def _first_bad_frame(arr: np.ndarray) -> int | None:
    bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def _scalar(data, key: str, path: Path) -> np.ndarray:
    value = data[key]
    if value.shape != ():
        raise DataError(f"{path}: key '{key}' must be a scalar, got an array of shape {value.shape}")
    return value


def _checked_array(data, key: str, path: Path, shape_tail: tuple[int, ...], n_frames: int | None) -> np.ndarray:
    arr = data[key]
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{path}: key '{key}' must hold numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    want = "(T, " + ", ".join(str(s) for s in shape_tail) + ")"
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        raise DataError(f"{path}: key '{key}' must have shape {want}, got {arr.shape}")
    if n_frames is not None and arr.shape[0] != n_frames:
        raise DataError(f"{path}: key '{key}' has {arr.shape[0]} frames, 'positions' has {n_frames}")
    bad = _first_bad_frame(arr)
    if bad is not None:
        raise DataError(f"{path}: key '{key}' holds NaN or inf at frame {bad}")
    return arr


def load_motion(path: str | Path) -> MotionFile:
    """Read and validate a motion npz.

    Args:
        path: the ``.npz`` file.

    Returns:
        The :class:`MotionFile`. The audio file's existence is not checked here (scoring needs it,
        loading does not).

    Raises:
        DataError: the file is missing or not a readable npz, a required key is missing, a shape
            or type is wrong, T < 2, fps is not positive, or an array holds NaN/inf (the message
            names the file, the key and the first bad frame index), or a quaternion is not unit.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"motion file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in REQUIRED_KEYS if k not in data.files]
            if missing:
                raise DataError(
                    f"{path}: missing key(s) {', '.join(missing)}; a motion npz needs {', '.join(REQUIRED_KEYS)}"
                )
            positions = _checked_array(data, "positions", path, (24, 3), None)
            n = positions.shape[0]
            if n < 2:
                raise DataError(f"{path}: 'positions' needs at least 2 frames, got {n}")
            fps_arr = _scalar(data, "fps", path)
            offset_arr = _scalar(data, "audio_offset_s", path)
            audio_arr = _scalar(data, "audio", path)
            rotations = (
                _checked_array(data, "local_rotations", path, (55, 4), n) if "local_rotations" in data.files else None
            )
            root = _checked_array(data, "root_translation", path, (3,), n) if "root_translation" in data.files else None
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as err:
        why = ("not a NumPy .npz archive" if "pickle" in str(err)  # numpy's guess for any unknown bytes
               else f"{type(err).__name__}: {err}")
        raise DataError(f"{path}: not a readable motion npz ({why})") from None
    try:
        fps = float(fps_arr)
        offset = float(offset_arr)
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'fps' and 'audio_offset_s' must be numbers") from None
    if not np.isfinite(fps) or fps <= 0:
        raise DataError(f"{path}: 'fps' must be a positive number of frames per second, got {fps}")
    if not np.isfinite(offset):
        raise DataError(f"{path}: 'audio_offset_s' must be a finite number of seconds, got {offset}")
    if audio_arr.dtype.kind != "U" or not str(audio_arr):
        raise DataError(f"{path}: 'audio' must be a non-empty string (path to the music), got {audio_arr!r}")
    if rotations is not None:
        norms = np.linalg.norm(rotations, axis=-1)
        off = np.abs(norms - 1.0) > QUATERNION_NORM_TOLERANCE
        if off.any():
            frame = int(np.argmax(off.any(axis=1)))
            raise DataError(f"{path}: 'local_rotations' holds a non-unit quaternion at frame {frame}")
    audio = Path(str(audio_arr))
    if not audio.is_absolute():
        audio = path.parent / audio
    return MotionFile(path, positions, fps, audio, offset, rotations, root)


def check_body_frame(motion: MotionFile) -> None:
    """Refuse a dance whose positions cannot be metres with y up (the scores would be quietly meaningless).

    Reads the pelvis-to-head vector (SMPL-24 joints 0 and 15) of every frame: its median length must lie in
    :data:`BODY_SIZE_RANGE_M` (centimetres give about 60, millimetres about 600), and the median share of it
    along +y must be at least :data:`MIN_UP_SHARE` (a z-up or upside-down file has the head beside or below
    the pelvis). Medians over frames, so floor work and jumps in a dance do not trip it.

    Args:
        motion: a loaded :class:`MotionFile` (positions (T, 24, 3) float32).
    Raises:
        DataError: naming the file, what was measured, and how to convert it.
    """
    d = np.asarray(motion.positions[:, 15] - motion.positions[:, 0], dtype=np.float64)
    length = np.linalg.norm(d, axis=1)
    size = float(np.median(length))
    lo, hi = BODY_SIZE_RANGE_M
    if not lo <= size <= hi:
        guess = ("centimetres? divide by 100" if 10 <= size <= 300 else
                 "millimetres? divide by 1000" if size > 300 else "is it an SMPL-24 body?")
        raise DataError(f"{motion.path}: 'positions' has a median pelvis-to-head distance of {size:.3g}, expected "
                        f"metres ({lo:g}-{hi:g}; a person: about 0.5-0.7) ({guess})")
    share = np.median(d / np.maximum(length, 1e-12)[:, None], axis=0)
    if share[1] < MIN_UP_SHARE:
        axis = "xyz"[int(np.argmax(np.abs(share)))]
        sign = "-" if share[int(np.argmax(np.abs(share)))] < 0 else "+"
        raise DataError(f"{motion.path}: 'positions' is not y up: the head lies above the pelvis along {sign}{axis} "
                        f"(median direction {np.round(share, 2).tolist()}), expected +y (docs/formats.md; a z-up "
                        "file converts with (x, y, z) -> (x, z, -y))")


def save_motion(
    path: str | Path,
    positions: np.ndarray,
    fps: float,
    audio: str | Path,
    audio_offset_s: float,
    local_rotations: np.ndarray | None = None,
    root_translation: np.ndarray | None = None,
) -> Path:
    """Write a motion npz (uncompressed, no pickles) and return its path.

    ``audio`` is stored as given (keep it relative to the npz's folder to move both together).
    The result is read back through :func:`load_motion`'s checks, so an invalid motion raises
    DataError and leaves no file behind.

    Args:
        path: target ``.npz`` file (its folder is created).
        positions: (T, 24, 3) SMPL-24 joint positions, metres, y up.
        fps: frames per second.
        audio: path to the music.
        audio_offset_s: song time (s) of frame 0.
        local_rotations: optional (T, 55, 4) quaternions (x, y, z, w).
        root_translation: optional (T, 3) metres.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "positions": np.asarray(positions, dtype=np.float32),
        "fps": np.asarray(float(fps)),
        "audio": np.asarray(str(audio)),
        "audio_offset_s": np.asarray(float(audio_offset_s)),
    }
    if local_rotations is not None:
        arrays["local_rotations"] = np.asarray(local_rotations, dtype=np.float32)
    if root_translation is not None:
        arrays["root_translation"] = np.asarray(root_translation, dtype=np.float32)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    try:
        load_motion(tmp)
    except DataError as err:
        tmp.unlink(missing_ok=True)
        raise DataError(str(err).replace(str(tmp), str(path))) from None
    tmp.replace(path)
    return path


def find_motions(folder: str | Path) -> list[MotionFile]:
    """Load every ``*.npz`` in ``folder`` (not recursive), sorted by file name.

    Raises:
        DataError: the folder is missing or holds no npz, or a file is invalid.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"motion folder {folder} is a file; expected a folder of motion .npz files")
    if not folder.is_dir():
        raise DataError(f"motion folder not found: {folder}")
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise DataError(f"motion folder {folder} holds no .npz files")
    return [load_motion(f) for f in files]
