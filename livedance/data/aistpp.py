"""Loader for AIST++ (Li et al. 2021, "AI Choreographer", ICCV) in its published layout.

Layout (the annotation archive of google/aistplusplus_api plus the AIST Dance DB music)::

    <root>/motions/<seq>.pkl          dict: smpl_poses (T, 72) axis-angle, smpl_trans (T, 3),
                                      smpl_scaling (1,), smpl_loss (scalar); 60 fps
    <root>/splits/crossmodal_train.txt, crossmodal_val.txt, crossmodal_test.txt
                                      one sequence name per line
    <root>/ignore_list.txt            sequences with bad fits, one name per line (skipped)
    <music_dir>/<music id>.wav        the song, named by the sequence's music field

Sequence names look like ``gBR_sBM_cAll_d04_mBR0_ch01``: genre, situation, camera (``cAll`` for
the multi-view fits), dancer, music id, choreography. The music id is the ``m...`` field
(``mBR0`` -> ``mBR0.wav``).

Units. ``smpl_poses`` are 24 SMPL joint rotations (Loper et al. 2015) as axis-angle vectors in
radians, joint 0 the global pelvis orientation. The SMPL fits were made in the capture's calibrated
world, whose unit is about a centimetre; the fit scales a standard-size SMPL body by
``smpl_scaling`` (about 90 to 100) and ``smpl_trans`` is in those world units. Dividing by the
scaling, ``smpl_trans / smpl_scaling``, puts the translation in the body's own metres (the
convention of the official tools and of Bailando/FACT, which then run a scale-1 SMPL model): this
module returns that as :attr:`AISTMotion.trans_m`.

Pickles are read with :class:`SafeUnpickler`, which resolves only numpy's array/dtype/scalar
reconstruction helpers and a few harmless builtins; anything else (the way a malicious pickle runs
code) raises :class:`DataError`.
"""

from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedance.errors import ConfigError, DataError

#: Frame rate of AIST++ motions, frames per second.
AISTPP_FPS: float = 60.0
#: Number of SMPL joints in ``smpl_poses``.
AISTPP_NUM_JOINTS: int = 24
#: Split name -> file under ``<root>/splits``.
AISTPP_SPLIT_FILES: dict[str, str] = {
    "train": "crossmodal_train.txt",
    "val": "crossmodal_val.txt",
    "test": "crossmodal_test.txt",
}
_NAME_RE = re.compile(r"^g[A-Z]{2}_s[A-Z]{2}_c(?:All|\d{2})_d\d{2}_(m[A-Z]{2}\d)_ch\d{2}$")

# (module, name) pairs a numpy-array pickle needs; numpy 1.x writes numpy.core.*, numpy 2.x numpy._core.*
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
       ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),
       ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "float"),
       ("builtins", "int"), ("builtins", "complex"), ("builtins", "bytearray"), ("builtins", "slice"),
       ("collections", "OrderedDict")]
)


class SafeUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that only resolves numpy array/dtype/scalar helpers and plain
    builtin containers (see ``_ALLOWED_GLOBALS``); any other global raises :class:`DataError`."""

    def __init__(self, file: io.BufferedIOBase, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):  # noqa: D102 (pickle API)
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DataError(
            f"{self._source}: pickle refers to {module}.{name}, which is not allowed "
            f"(only numpy arrays and plain containers are read)"
        )

    def persistent_load(self, pid):  # noqa: D102 (pickle API)
        raise DataError(f"{self._source}: pickle uses persistent ids, which are not allowed")


def safe_load_pickle(path: str | Path) -> object:
    """Read a pickle that may only hold numpy arrays, numbers, strings and plain containers.

    Raises:
        DataError: the file is missing, truncated or malformed, or refers to anything else (the
            message names the file).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {p}: {err}") from err
    try:
        return SafeUnpickler(io.BytesIO(data), str(p)).load()
    except DataError:
        raise
    except Exception as err:  # EOFError, UnpicklingError, ValueError, ... from a broken file
        raise DataError(f"{p} is not a readable pickle (truncated or malformed: {type(err).__name__}: {err})") from err


def _parse_name(sequence_name: str) -> re.Match:
    m = _NAME_RE.match(sequence_name)
    if not m:
        raise DataError(
            f"AIST++ sequence name {sequence_name!r} does not follow g<genre>_s<situation>_c<camera>_d<dancer>"
            f"_m<music>_ch<choreo> (e.g. gBR_sBM_cAll_d04_mBR0_ch01)"
        )
    return m


def music_id(sequence_name: str) -> str:
    """Music id of an AIST++ sequence name (``gBR_sBM_cAll_d04_mBR0_ch01`` -> ``mBR0``).

    Raises:
        DataError: the name does not follow ``g??_s??_c(All|NN)_dNN_m??N_chNN``.
    """
    return _parse_name(sequence_name).group(1)


def genre(sequence_name: str) -> str:
    """Dance genre code of an AIST++ sequence name (``gBR_sBM_cAll_d04_mBR0_ch01`` -> ``gBR``, break).

    Raises:
        DataError: the name does not follow ``g??_s??_c(All|NN)_dNN_m??N_chNN``.
    """
    return _parse_name(sequence_name).group(0)[:3]


@dataclass
class AISTMotion:
    """One AIST++ motion.

    Attributes:
        name: sequence name. music_id: e.g. ``"mBR0"``.
        poses: (T, 24, 3) float32 SMPL joint rotations, axis-angle, radians (joint 0 global).
        trans_m: (T, 3) float32 root translation in metres (``smpl_trans / smpl_scaling``).
        scaling: the fit's ``smpl_scaling`` (world units per metre, about 90-100).
        fps: 60.0.
        audio_path: ``<music_dir>/<music_id>.wav`` (may not exist when music was not downloaded).
    """

    name: str
    music_id: str
    poses: np.ndarray
    trans_m: np.ndarray
    scaling: float
    fps: float = AISTPP_FPS
    audio_path: Path | None = None

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.poses.shape[0])

    def local_rotmats(self) -> np.ndarray:
        """(T, 24, 3, 3) float32 rotation matrices of :attr:`poses` (Rodrigues, via roma)."""
        import roma
        import torch

        return roma.rotvec_to_rotmat(torch.from_numpy(self.poses.astype(np.float64))).numpy().astype(np.float32)


def load_aistpp_motion(path: str | Path, music_dir: str | Path | None = None) -> AISTMotion:
    """Load one ``motions/<seq>.pkl``.

    Args:
        path: the pickle. music_dir: folder of the ``<music id>.wav`` files (sets ``audio_path``).

    Returns:
        :class:`AISTMotion`.

    Raises:
        DataError: unreadable/truncated/unsafe pickle, missing keys, wrong shapes, non-positive
            scaling or NaN/inf (the message names the file, and the frame for NaN/inf).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"AIST++ motion file {p} not found (expected <root>/motions/<sequence>.pkl)")
    data = safe_load_pickle(p)
    if not isinstance(data, dict) or not {"smpl_poses", "smpl_trans", "smpl_scaling"} <= set(data):
        raise DataError(f"{p}: expected a dict with smpl_poses, smpl_trans and smpl_scaling")
    try:
        poses = np.asarray(data["smpl_poses"], dtype=np.float64)
        trans = np.asarray(data["smpl_trans"], dtype=np.float64)
        scaling = np.asarray(data["smpl_scaling"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise DataError(f"{p}: smpl_poses/smpl_trans/smpl_scaling are not numeric arrays ({err})") from err
    if poses.ndim == 3 and poses.shape[1:] == (AISTPP_NUM_JOINTS, 3):
        poses = poses.reshape(len(poses), -1)
    if poses.ndim != 2 or poses.shape[1] != 3 * AISTPP_NUM_JOINTS or len(poses) < 1:
        raise DataError(f"{p}: smpl_poses must be (T, 72), got {poses.shape}")
    if trans.shape != (len(poses), 3):
        raise DataError(f"{p}: smpl_trans must be ({len(poses)}, 3) to match smpl_poses, got {trans.shape}")
    if scaling.size != 1 or not np.isfinite(scaling[0]) or scaling[0] <= 0:
        raise DataError(f"{p}: smpl_scaling must be one positive number, got {scaling}")
    bad = ~(np.isfinite(poses).all(axis=1) & np.isfinite(trans).all(axis=1))
    if bad.any():
        raise DataError(f"{p}: NaN or infinite value at frame {int(np.flatnonzero(bad)[0])}")
    name = p.stem
    mid = music_id(name)
    return AISTMotion(
        name=name,
        music_id=mid,
        poses=poses.reshape(-1, AISTPP_NUM_JOINTS, 3).astype(np.float32),
        trans_m=(trans / scaling[0]).astype(np.float32),
        scaling=float(scaling[0]),
        audio_path=(Path(music_dir) / f"{mid}.wav") if music_dir is not None else None,
    )


def _read_names(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from err
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def read_ignore_list(root: str | Path) -> set[str]:
    """Names in ``<root>/ignore_list.txt`` (empty set when the file is absent)."""
    p = Path(root) / "ignore_list.txt"
    return set(_read_names(p)) if p.is_file() else set()


def aistpp_split_names(root: str | Path, split: str) -> list[str]:
    """Sequence names of an official split, in file order, without the ignore list.

    Args:
        root: the AIST++ annotation folder. split: ``'train'``, ``'val'``, ``'test'`` or ``'all'``.

    Raises:
        ConfigError: unknown split. DataError: the root or a split file is missing.
    """
    if split not in (*AISTPP_SPLIT_FILES, "all"):
        raise ConfigError(f"AIST++ split must be train, val, test or all; got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"AIST++ folder {root} does not exist; it should contain motions/, splits/ and ignore_list.txt")
    ignore = read_ignore_list(root)
    parts = list(AISTPP_SPLIT_FILES) if split == "all" else [split]
    names: list[str] = []
    for part in parts:
        f = root / "splits" / AISTPP_SPLIT_FILES[part]
        if not f.is_file():
            raise DataError(f"AIST++ split file {f} not found (expected splits/{AISTPP_SPLIT_FILES[part]})")
        names += [n for n in _read_names(f) if n not in ignore]
    return names


def load_aistpp_split(
    root: str | Path, split: str, music_dir: str | Path | None = None
) -> list[AISTMotion]:
    """Load every motion of an official split (ignore list applied).

    Args:
        root: the AIST++ annotation folder (``motions/``, ``splits/``, ``ignore_list.txt``).
        split: ``'train'``, ``'val'``, ``'test'`` or ``'all'``.
        music_dir: folder of the music wav files (default ``<root>/music``).

    Raises:
        ConfigError: unknown split. DataError: missing files or a bad motion file.
    """
    root = Path(root)
    mdir = Path(music_dir) if music_dir is not None else root / "music"
    return [load_aistpp_motion(root / "motions" / f"{n}.pkl", mdir) for n in aistpp_split_names(root, split)]
