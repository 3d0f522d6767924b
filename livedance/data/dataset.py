"""Training/evaluation clips from the Tang 2018 DANCE data, on the song clock, cached.

:func:`load_split` returns one :class:`MotionClip` per sequence of a split (``tang_split.json``).
Each clip is the sequence's SMPL-X body motion (IK of :mod:`livedance.data.tang_ik`) resampled so
that frame ``f`` sits at song time ``audio_offset_s + f / fps`` exactly, using the per-sequence time
map of ``tang_alignment.json`` (:mod:`livedance.data.tang_align`): raw motion frame ``m`` is at song
time ``offset_s + m * scale / 25``. Rotations are interpolated by slerp (geodesic, via roma rotation
vectors), the root translation linearly.

Clips are cached as safetensors files (never pickle) under ``$LIVEDANCE_CACHE`` or
``~/.cache/livedance``, in ``tang/<name>-<key>.safetensors``; the key hashes the sequence's JSON
files, its alignment entry, the frame rate and the source code of the modules that compute a clip,
so a change in any of them rebuilds it (and deletes that sequence's stale files). Building runs the
IK (seconds per sequence) under a rich progress bar; later loads only hash the inputs and read the
cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedance.data.split import split_names
from livedance.data.tang import TANG_FPS, check_sequence_folder, default_data_root, load_tang_sequence, tang_root
from livedance.errors import DataError

#: Bump to invalidate every cached clip (the source hash already covers code edits).
CACHE_VERSION: int = 1
#: SMPL hand joint distance from the wrist as a fraction of the forearm (elbow-wrist) length:
#: 0.087 m / 0.25 m in the SMPL template (Loper et al. 2015).
HAND_FRACTION: float = 0.35


@dataclass
class MotionClip:
    """One dance on the song clock.

    Attributes:
        name: sequence name, e.g. ``"DANCE_W_1"`` (Tang) or ``"gBR_sBM_cAll_d04_mBR0_ch01"`` (AIST++).
        style: ``'cha-cha'``, ``'rumba'``, ``'tango'`` or ``'waltz'`` (Tang); the genre code, e.g. ``'gBR'``
            (AIST++, :mod:`livedance.data.aistpp_clips`).
        fps: model frame rate, frames per second (25.0 for this data).
        local_rotmats: (T, 22, 3, 3) float32 SMPL-X body joints' parent-relative rotations (joint 0:
            global pelvis rotation); right-handed, y up, metres (see :mod:`livedance.data.tang_ik`).
        root_translation: (T, 3) float32 metres (pelvis = root_translation + rest_offsets[0]).
        rest_offsets: (22, 3) float32 metres, this dancer's skeleton.
        positions: (T, 24, 3) float32 SMPL-24 joint positions in metres by FK (22 body joints, then
            left and right hand at :data:`HAND_FRACTION` of the forearm beyond the wrist).
        audio_path: the song (``audio.mp3``).
        audio_offset_s: song time of frame 0, seconds; frame f is at ``audio_offset_s + f / fps``.
        beat_aligned: the alignment passed the study's test (``usable_for_beat``); only such clips
            may teach or score beat alignment.
        audio_speed: the song is played this many times as fast, tempo and pitch together (1 = as it is;
            other values only for speed-perturbed training copies, :func:`livedance.motion.speed.speed_clip`);
            ``audio_offset_s`` and frame times are then in the played song's seconds (file time / speed).
    """

    name: str
    style: str
    fps: float
    local_rotmats: np.ndarray
    root_translation: np.ndarray
    rest_offsets: np.ndarray
    positions: np.ndarray
    audio_path: Path
    audio_offset_s: float
    beat_aligned: bool
    audio_speed: float = 1.0

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.local_rotmats.shape[0])

    def frame_times(self) -> np.ndarray:
        """(T,) float64 song time of each frame, seconds."""
        return self.audio_offset_s + np.arange(self.num_frames) / self.fps


#: The ``"data"`` field of weights trained on the Tang data (their JSON and model card say it).
TANG_DATA: str = "Tang et al. 2018 DANCE (research use only)"
#: The same for AIST++ (:mod:`livedance.data.aistpp_clips`).
AISTPP_DATA: str = ("AIST++ (Li et al. 2021; annotations CC BY 4.0, the AIST Dance DB music under its own terms), "
                    "crossmodal splits")


def data_description(data_root: str | Path | None = None) -> str:
    """What dance data ``data_root`` holds, as trained weights record it: :data:`TANG_DATA` or :data:`AISTPP_DATA`.

    Args:
        data_root: as :func:`load_split` takes it (None: ``$LIVEDANCE_DATA`` or ``../shared/data``).
    """
    from livedance.data.aistpp_clips import is_aistpp_root

    return AISTPP_DATA if is_aistpp_root(Path(data_root) if data_root is not None else default_data_root()) else TANG_DATA


def data_root_option(data_root: str | Path | None) -> str:
    """The `` --data-root DIR`` suffix of a printed training command (weights' JSON, model cards), or ``""``.

    Args:
        data_root: as :func:`load_split` takes it; None (the default data) adds nothing, so commands for the Tang
            data read as before.
    """
    return f" --data-root {data_root}" if data_root is not None else ""


def card_data_line(data: str | None, clips: object, rest: str) -> str:
    """The ``- Data:`` line of a model card section for weights whose JSON ``"data"`` field is ``data``.

    Args:
        data: the weights' ``"data"`` field (None: older weights, the Tang data). clips: the number of train clips.
        rest: what follows the clip count inside the brackets (e.g. ``", 1132 windows"``).
    Returns:
        ``"- Data: <dataset> train split (<clips> clips<rest>)"``, the Tang data's research-use-only terms in bold.
    """
    if data is None or data == TANG_DATA:
        return f"- Data: Tang et al. 2018 DANCE train split (**research use only**; {clips} clips{rest})"
    return f"- Data: {data}, train split ({clips} clips{rest})"


def default_cache_dir() -> Path:
    """``$LIVEDANCE_CACHE`` when set, else ``~/.cache/livedance``."""
    env = os.environ.get("LIVEDANCE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "livedance"


def resample_times(n_frames: int, scale: float, fps: float = TANG_FPS) -> np.ndarray:
    """Fractional raw-frame positions of the output frames.

    Raw frame ``m`` is at ``offset + m * scale / 25`` s; output frame ``k`` at ``offset + k / fps``.
    So output frame k reads raw position ``u_k = k * 25 / (fps * scale)``, for every k with
    ``u_k <= n_frames - 1``.

    Args:
        n_frames: raw motion frames (>= 2). scale: song frames (1/25 s) per raw frame (> 0).
        fps: output frame rate.

    Returns:
        (K,) float64 raw-frame positions, K = floor((n_frames - 1) * fps * scale / 25) + 1.

    Raises:
        DataError: n_frames < 2 or non-positive scale/fps.
    """
    if n_frames < 2 or not scale > 0 or not fps > 0:
        raise DataError(f"resample: need n_frames >= 2, scale > 0, fps > 0; got {n_frames}, {scale}, {fps}")
    step = TANG_FPS / (fps * scale)
    k = int(np.floor((n_frames - 1) / step + 1e-9)) + 1
    return np.minimum(np.arange(k) * step, n_frames - 1)


def resample_motion(
    local_rotmats: np.ndarray, root_translation: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sample a motion at fractional frame positions: slerp for rotations, lerp for translation.

    Args:
        local_rotmats: (T, J, 3, 3) float rotations. root_translation: (T, 3) float metres.
        u: (K,) float fractional frame positions in [0, T - 1].

    Returns:
        ((K, J, 3, 3) float32, (K, 3) float32).

    Raises:
        DataError: u outside [0, T - 1] or shapes that do not match.
    """
    import roma
    import torch

    R = np.asarray(local_rotmats, dtype=np.float64)
    tr = np.asarray(root_translation, dtype=np.float64)
    T = R.shape[0]
    if R.ndim != 4 or R.shape[2:] != (3, 3) or tr.shape != (T, 3):
        raise DataError(f"resample: rotations {R.shape} and translation {tr.shape} do not match (T, J, 3, 3), (T, 3)")
    u = np.asarray(u, dtype=np.float64)
    if u.size and (u.min() < -1e-9 or u.max() > T - 1 + 1e-9):
        raise DataError(f"resample: positions must lie in [0, {T - 1}], got [{u.min()}, {u.max()}]")
    i0 = np.clip(np.floor(u).astype(np.int64), 0, max(T - 2, 0))
    a = np.clip(u - i0, 0.0, 1.0)
    i1 = np.minimum(i0 + 1, T - 1)
    R0 = torch.from_numpy(R[i0])
    R1 = torch.from_numpy(R[i1])
    rel = roma.rotmat_to_rotvec(R0.transpose(-1, -2) @ R1)  # (K, J, 3) geodesic step
    Ra = R0 @ roma.rotvec_to_rotmat(rel * torch.from_numpy(a)[:, None, None])
    trans = (1 - a)[:, None] * tr[i0] + a[:, None] * tr[i1]
    return Ra.numpy().astype(np.float32), trans.astype(np.float32)


def smpl24_positions(local_rotmats: np.ndarray, root_translation: np.ndarray, rest_offsets: np.ndarray) -> np.ndarray:
    """SMPL-24 joint positions of a 22-joint SMPL-X body motion by FK.

    The 22 body joints come straight from FK. SMPL's ``left_hand``/``right_hand`` are placed at
    :data:`HAND_FRACTION` x forearm length beyond each wrist along the wrist's rest bone axis
    (+x for left, -x for right in the SMPL-X rest frame), rotated by the wrist's global rotation.

    Args:
        local_rotmats: (T, 22, 3, 3). root_translation: (T, 3) metres. rest_offsets: (22, 3) metres.

    Returns:
        (T, 24, 3) float32 metres.
    """
    from livedance.motion.fk import fk_np
    from livedance.motion.skeleton import SMPLX_BODY_JOINT_NAMES, SMPLX_BODY_PARENTS

    pos, grot = fk_np(
        np.asarray(local_rotmats, np.float64), np.asarray(root_translation, np.float64),
        np.asarray(rest_offsets, np.float64), SMPLX_BODY_PARENTS, return_global_rotmats=True,
    )
    hands = []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        w = SMPLX_BODY_JOINT_NAMES.index(f"{side}_wrist")
        length = HAND_FRACTION * float(np.linalg.norm(rest_offsets[w]))
        hands.append(pos[:, w] + grot[:, w] @ np.array([sign * length, 0.0, 0.0]))
    return np.concatenate([pos, np.stack(hands, axis=1)], axis=1).astype(np.float32)


def _source_hash() -> str:
    import roma

    import livedance.data.dataset as ds
    import livedance.data.tang as tg
    import livedance.data.tang_ik as ik
    import livedance.motion.fk as fk
    import livedance.motion.rotations as rot
    import livedance.motion.skeleton as sk

    h = hashlib.sha256(str(CACHE_VERSION).encode())
    for mod in (ds, tg, ik, fk, rot, sk):  # every module the IK, the resampling and FK run through
        h.update(Path(mod.__file__).read_bytes())
    h.update(f"roma {getattr(roma, '__version__', '?')}".encode())  # the resampling's slerp
    return h.hexdigest()


def clip_cache_key(folder: Path, entry: dict, fps: float, source_hash: str) -> str:
    """Hex key of one clip: sha256 over the sequence's config.json and skeletons.json bytes, its
    alignment entry (JSON, sorted keys), ``fps`` and ``source_hash``."""
    h = hashlib.sha256()
    for f in ("config.json", "skeletons.json"):
        h.update((folder / f).read_bytes())
    h.update(json.dumps(entry, sort_keys=True).encode())
    h.update(repr(float(fps)).encode())
    h.update(source_hash.encode())
    return h.hexdigest()


def build_clip(folder: str | Path, entry: dict, fps: float = TANG_FPS) -> MotionClip:
    """Build one clip from the raw sequence and its alignment entry (no cache).

    Args:
        folder: a ``DANCE_*`` folder. entry: its ``tang_alignment.json`` entry (``scale``,
            ``offset_s``, ``usable_for_beat``). fps: output frame rate.

    Raises:
        DataError: bad sequence files (see :func:`load_tang_sequence`) or a bad entry.
    """
    from livedance.data.tang_ik import markers_to_smplx

    seq = load_tang_sequence(folder)
    try:
        scale, offset = float(entry["scale"]), float(entry["offset_s"])
        usable = bool(entry["usable_for_beat"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"alignment entry of {seq.name} lacks scale/offset_s/usable_for_beat ({err})") from err
    if not (np.isfinite(scale) and scale > 0 and np.isfinite(offset)):
        raise DataError(f"alignment entry of {seq.name}: scale {scale} and offset_s {offset}; expected a finite "
                        "scale > 0 (song frames per raw frame) and a finite offset in seconds")
    ik = markers_to_smplx(seq.markers)
    try:
        u = resample_times(seq.length, scale, fps)
        rot, trans = resample_motion(ik.local_rotmats, ik.root_translation, u)
    except DataError as err:  # name the sequence (the resampler knows only its numbers)
        raise DataError(f"{seq.name} ({folder}): {err}") from None
    rest = np.asarray(ik.rest_offsets, np.float32)
    return MotionClip(
        name=seq.name, style=seq.style, fps=float(fps), local_rotmats=rot, root_translation=trans,
        rest_offsets=rest, positions=smpl24_positions(rot, trans, rest), audio_path=seq.audio_path,
        audio_offset_s=offset, beat_aligned=usable,
    )


def _save(clip: MotionClip, path: Path) -> None:
    from safetensors.numpy import save_file

    from livedance.atomic import atomic_target

    with atomic_target(path) as tmp:  # concurrent loaders never share a temporary file
        save_file(
            {
                "local_rotmats": np.ascontiguousarray(clip.local_rotmats),
                "root_translation": np.ascontiguousarray(clip.root_translation),
                "rest_offsets": np.ascontiguousarray(clip.rest_offsets),
                "positions": np.ascontiguousarray(clip.positions),
            },
            str(tmp),
            metadata={
                "name": clip.name, "style": clip.style, "fps": repr(clip.fps), "audio_path": str(clip.audio_path),
                "audio_offset_s": repr(clip.audio_offset_s), "beat_aligned": str(int(clip.beat_aligned)),
            },
        )


def _load(path: Path) -> MotionClip:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata()
            arr = {k: f.get_tensor(k) for k in ("local_rotmats", "root_translation", "rest_offsets", "positions")}
        return MotionClip(
            name=meta["name"], style=meta["style"], fps=float(meta["fps"]), audio_path=Path(meta["audio_path"]),
            audio_offset_s=float(meta["audio_offset_s"]), beat_aligned=meta["beat_aligned"] == "1", **arr,
        )
    except Exception as err:  # corrupt or partial cache file: the caller rebuilds it
        raise DataError(f"cache file {path} is unreadable ({err})") from err


def load_split(
    split: str,
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    fps: float = TANG_FPS,
    names: list[str] | None = None,
) -> list[MotionClip]:
    """Load the clips of one split of the Tang 2018 DANCE data (or of AIST++), building the cache as needed.

    When ``data_root`` (or ``$LIVEDANCE_DATA``) is an AIST++ folder (``motions/`` and ``splits/``), the split is
    AIST++'s official crossmodal one and the clips come from :func:`livedance.data.aistpp_clips.load_aistpp_clips`
    (no cache; ``cache_dir`` is not used).

    Args:
        split: ``'train'``, ``'val'``, ``'test'`` or ``'all'`` (``livedance/data/tang_split.json``).
        data_root: folder holding ``dance-tang2018/``, or an AIST++ folder (default:
            :func:`livedance.data.tang.default_data_root`).
        cache_dir: cache folder (default: :func:`default_cache_dir`).
        progress: show a rich progress bar while building clips.
        fps: model frame rate of the clips (frames per second of song time).
        names: restrict to these sequence names (must belong to the split); for tests and tools.

    Returns:
        list of :class:`MotionClip`, in the split file's order (``split='all'``: sorted by name).

    Raises:
        ConfigError: unknown split. DataError: missing data folder, split or alignment file, a name
        not in the split, or bad sequence files.
    """
    from livedance.data.aistpp_clips import is_aistpp_root, load_aistpp_clips
    from livedance.data.tang_align import load_alignment

    given = Path(data_root) if data_root is not None else default_data_root()
    if is_aistpp_root(given):
        return load_aistpp_clips(given, split, fps=fps, names=names, progress=progress)
    wanted = split_names(split)
    if names is not None:
        extra = sorted(set(names) - set(wanted))
        if extra:
            raise DataError(f"sequences {', '.join(extra)} are not in split {split!r}")
        wanted = [n for n in wanted if n in set(names)]
    root = tang_root(data_root)
    if not root.is_dir():
        raise DataError(
            f"Tang 2018 DANCE data folder {root} does not exist (set LIVEDANCE_DATA to the folder holding dance-tang2018/)"
        )
    align = load_alignment()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    src = _source_hash()
    todo: list[tuple[str, Path, dict, Path]] = []
    for n in wanted:
        if n not in align:
            raise DataError(f"{n} has no entry in tang_alignment.json; run `livedance data align-tang`")
        folder = check_sequence_folder(root / n)  # before the cache key reads its files
        key = clip_cache_key(folder, align[n], fps, src)[:20]
        todo.append((n, folder, align[n], cache / "tang" / f"{n}-{key}.safetensors"))

    clips: dict[str, MotionClip] = {}
    missing = []
    for n, folder, entry, path in todo:
        if path.is_file():
            try:
                clips[n] = _load(path)
                clips[n].audio_path = folder / "audio.mp3"  # where the data is now (the cache may be shared)
                continue
            except DataError:
                path.unlink(missing_ok=True)
        missing.append((n, folder, entry, path))
    if missing:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            disable=not progress,
        ) as prog:
            task = prog.add_task("building Tang clips", total=len(missing))
            for n, folder, entry, path in missing:
                prog.update(task, description=f"IK + resample {n}")
                clip = build_clip(folder, entry, fps)
                _save(clip, path)
                for stale in path.parent.glob(f"{n}-*.safetensors"):  # older code or inputs
                    if stale != path:
                        stale.unlink(missing_ok=True)
                clips[n] = clip
                prog.advance(task)
    return [clips[n] for n, *_ in todo]
