"""Raw loader for the DANCE dataset of Tang, Jia and Mao (2018).

Source: "Dance with Melody: An LSTM-autoencoder Approach to Music-oriented Dance Synthesis" (ACM MM
2018) and "AniDance" (ACM MM 2018 demo); data from mhy12345/Music-to-Dance-Motion-Synthesis. The
shared copy lives in ``<data root>/dance-tang2018`` (see its README). Each sequence folder
``DANCE_<style>_<n>/`` holds ``audio.mp3`` (the whole song), ``config.json``
(``{"start_position": S, "end_position": E}``, song frames at 25 fps) and ``skeletons.json``
(``{"length": T, "center": T x 3, "skeletons": T x 23 x 3}`` at nominally 25 fps, markers relative to
``center``).

Units and axes, checked on the data (``DANCE_W_1``): the raw root ``center`` reads about 91 on the second axis
and the highest marker (``center`` + marker) about 178 (medians over the frames), so the raw values are centimetres
with y up. This module converts to metres (divide by 100) and keeps y up; world position = ``center`` + marker. The
file's frame is left-handed (see :mod:`livedance.data.tang_ik`, which mirrors x); the markers here
stay in the file's frame.

This is the *raw* loader: motion frames are returned as stored. How the motion frames map to song
time is not what the README's config suggests at face value; see
:mod:`livedance.data.tang_align` and ``livedance/data/tang_alignment.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedance.errors import DataError

#: Frame rate of the song clock used by ``config.json`` and the nominal motion rate, frames per second.
TANG_FPS: float = 25.0
#: Number of markers per frame in ``skeletons.json``.
TANG_N_MARKERS: int = 23
#: Raw centimetres to metres.
TANG_UNIT_TO_M: float = 0.01
#: Style letter in ``DANCE_<letter>_<n>`` to style name.
TANG_STYLES: dict[str, str] = {"C": "cha-cha", "R": "rumba", "T": "tango", "W": "waltz"}
#: Files each sequence folder must contain.
TANG_REQUIRED_FILES: tuple[str, ...] = ("audio.mp3", "config.json", "skeletons.json")
#: Folder name of the dataset under the data root.
TANG_DIRNAME: str = "dance-tang2018"


def default_data_root() -> Path:
    """Return the shared data root.

    It is ``$LIVEDANCE_DATA`` when that environment variable is set, else ``<repo>/../shared/data``
    (the folder next to the repository that holds ``dance-tang2018/``, ``beats/``, ``music/``).
    The path is returned whether or not it exists; loaders raise :class:`DataError` when it is absent.
    """
    env = os.environ.get("LIVEDANCE_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def tang_root(data_root: str | Path | None = None) -> Path:
    """Return ``<data_root>/dance-tang2018`` (``data_root`` defaults to :func:`default_data_root`).

    Accepts the dataset folder itself too (a path whose name is ``dance-tang2018`` or that directly
    holds ``DANCE_*`` folders).
    """
    root = Path(data_root) if data_root is not None else default_data_root()
    if root.name == TANG_DIRNAME or any(root.glob("DANCE_*")):
        return root
    return root / TANG_DIRNAME


@dataclass
class TangSequence:
    """One raw DANCE sequence.

    Attributes:
        name: folder name, e.g. ``"DANCE_W_1"``.
        style: one of ``'cha-cha'``, ``'rumba'``, ``'tango'``, ``'waltz'``.
        folder: the sequence folder.
        markers: (T, 23, 3) float32 world marker positions in metres, y up, in the file's own
            (left-handed) frame (``center`` + relative marker), at the stored motion rate
            (nominally 25 fps; see :mod:`livedance.data.tang_align` for the measured rate). Marker indices as in the dataset
            README (0/1 head, 2 pelvis, 3-6 and 12-15 arms, 7-11 and 16-20 legs and feet, 21/22 hands).
        start_position: first song frame ``S`` of the dance (25 fps song frames, from config.json).
        end_position: last song frame ``E`` of the dance (25 fps song frames, from config.json).
        audio_path: path of ``audio.mp3`` (the whole song).
        length: number of motion frames T (``skeletons.json``'s ``length``; often 2 to 57 frames
            fewer than ``E - S + 1``).
    """

    name: str
    style: str
    folder: Path
    markers: np.ndarray
    start_position: int
    end_position: int
    audio_path: Path
    length: int

    @property
    def start_s(self) -> float:
        """Song time of ``start_position`` in seconds (``S / 25``)."""
        return self.start_position / TANG_FPS

    @property
    def end_s(self) -> float:
        """Song time of ``end_position`` in seconds (``E / 25``)."""
        return self.end_position / TANG_FPS


def style_of(name: str) -> str:
    """Style of a sequence from its folder name ``DANCE_<letter>_<n>``.

    Raises:
        DataError: the name does not follow ``DANCE_<C|R|T|W>_<n>``.
    """
    parts = name.split("_")
    if len(parts) != 3 or parts[0] != "DANCE" or parts[1] not in TANG_STYLES or not parts[2].isdigit():
        raise DataError(
            f"sequence folder name {name!r} does not follow DANCE_<C|R|T|W>_<n> "
            f"(C = cha-cha, R = rumba, T = tango, W = waltz)"
        )
    return TANG_STYLES[parts[1]]


def check_sequence_folder(folder: str | Path) -> Path:
    """``folder`` as a Path, once it is a folder holding :data:`TANG_REQUIRED_FILES`.

    Raises:
        DataError: the folder or one of its files is missing (the message names the folder and the files it should
            contain).
    """
    folder = Path(folder)
    need = ", ".join(TANG_REQUIRED_FILES)
    if not folder.is_dir():
        raise DataError(f"sequence folder {folder} does not exist; it should contain {need}")
    missing = [f for f in TANG_REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"sequence folder {folder} lacks {', '.join(missing)}; it should contain {need}")
    return folder


def _sort_key(p: Path) -> tuple[str, int]:
    parts = p.name.split("_")
    return (parts[1] if len(parts) > 1 else "", int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else -1)


def list_tang_sequences(root: str | Path | None = None) -> list[Path]:
    """List the sequence folders ``DANCE_*`` under the dataset folder, sorted by style then number.

    Args:
        root: the data root (holding ``dance-tang2018/``) or the dataset folder itself; defaults to
            :func:`default_data_root`.

    Returns:
        Folder paths, e.g. ``[.../DANCE_C_2, ..., .../DANCE_W_34]`` (38 in the shared copy).

    Raises:
        DataError: the folder does not exist or holds no ``DANCE_*`` folders.
    """
    folder = tang_root(root)
    if not folder.is_dir():
        raise DataError(
            f"Tang 2018 DANCE data folder {folder} does not exist; expected a folder of DANCE_<style>_<n>/ "
            f"sequence folders (set LIVEDANCE_DATA to the folder holding dance-tang2018/)"
        )
    seqs = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith("DANCE_")), key=_sort_key)
    if not seqs:
        raise DataError(f"{folder} holds no DANCE_<style>_<n>/ sequence folders")
    return seqs


def _read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from err
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError) as err:
        raise DataError(f"{path} is malformed or truncated JSON ({err})") from err


def _as_int(value: object, path: Path, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or int(value) != value:
        raise DataError(f"{path}: {key!r} must be an integer song frame, got {value!r}")
    return int(value)


def load_tang_sequence(folder: str | Path) -> TangSequence:
    """Load one DANCE sequence folder.

    Args:
        folder: a ``DANCE_<style>_<n>/`` folder holding audio.mp3, config.json and skeletons.json.

    Returns:
        :class:`TangSequence` with markers (T, 23, 3) float32 in metres, y up.

    Raises:
        DataError: the folder or one of its three files is missing (the message names the folder and
            the files it should contain); a JSON file is malformed or truncated, or lacks a key, or has
            the wrong shape (the message names the file); a coordinate is NaN or infinite (the message
            names the file and the first bad frame index); the folder name is not DANCE_<C|R|T|W>_<n>.
    """
    folder = check_sequence_folder(folder)
    style = style_of(folder.name)

    cfg_path = folder / "config.json"
    cfg = _read_json(cfg_path)
    if not isinstance(cfg, dict) or "start_position" not in cfg or "end_position" not in cfg:
        raise DataError(f"{cfg_path} must be an object with 'start_position' and 'end_position'")
    start = _as_int(cfg["start_position"], cfg_path, "start_position")
    end = _as_int(cfg["end_position"], cfg_path, "end_position")
    if start < 0 or end < start:
        raise DataError(f"{cfg_path}: expected 0 <= start_position <= end_position, got {start}, {end}")

    sk_path = folder / "skeletons.json"
    sk = _read_json(sk_path)
    if not isinstance(sk, dict) or not {"length", "center", "skeletons"} <= set(sk):
        raise DataError(f"{sk_path} must be an object with 'length', 'center' and 'skeletons'")
    length = _as_int(sk["length"], sk_path, "length")
    try:
        center = np.asarray(sk["center"], dtype=np.float64)
        rel = np.asarray(sk["skeletons"], dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise DataError(f"{sk_path}: 'center'/'skeletons' are not rectangular number arrays ({err})") from err
    if center.ndim != 2 or center.shape[1] != 3:
        raise DataError(f"{sk_path}: 'center' must be T x 3, got shape {center.shape}")
    if rel.ndim != 3 or rel.shape[1:] != (TANG_N_MARKERS, 3):
        raise DataError(f"{sk_path}: 'skeletons' must be T x {TANG_N_MARKERS} x 3, got shape {rel.shape}")
    if not (center.shape[0] == rel.shape[0] == length) or length < 2:
        raise DataError(
            f"{sk_path}: 'length' ({length}), len('center') ({center.shape[0]}) and len('skeletons') "
            f"({rel.shape[0]}) must agree and be at least 2"
        )
    world = (rel + center[:, None, :]) * TANG_UNIT_TO_M
    bad = ~np.isfinite(world).all(axis=(1, 2))
    if bad.any():
        raise DataError(f"{sk_path}: NaN or infinite coordinate at frame {int(np.flatnonzero(bad)[0])}")
    return TangSequence(
        name=folder.name,
        style=style,
        folder=folder,
        markers=world.astype(np.float32),
        start_position=start,
        end_position=end,
        audio_path=folder / "audio.mp3",
        length=length,
    )
