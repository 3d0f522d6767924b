"""AIST++ motions as :class:`~livedance.data.dataset.MotionClip`, so every trainer and the eval run on AIST++.

:func:`livedance.data.dataset.load_split` calls :func:`load_aistpp_clips` when its data root is an AIST++ folder
(:func:`is_aistpp_root`: it holds ``motions/`` and ``splits/``), so ``livedance train tokenizer|generator|baseline|
retrieval --data-root AIST_ROOT`` and ``livedance eval --data-root AIST_ROOT`` need nothing else. What a clip is:

- the 22 SMPL-X body joints: AIST++'s 24 SMPL joint rotations (Loper et al. 2015) without SMPL's two hand joints
  (SMPL and SMPL-X share the first 22 joints and their tree, :mod:`livedance.motion.skeleton`);
- resampled from AIST++'s 60 fps to the model rate (25 fps) by slerp / lerp
  (:func:`~livedance.data.dataset.resample_motion`);
- on a rest skeleton: the SMPL body model files are licensed and not shipped (DESIGN.md), so by default the
  hand-made SMPL-X skeleton of :func:`livedance.live.rest.default_rest_offsets` (pass the template joints of a
  body model you hold as ``rest_offsets``). The pose and root path are AIST++'s own; joint positions differ from
  an SMPL forward pass by the skeletons' bone lengths only;
- the root translation is ``smpl_trans / smpl_scaling`` (metres, :attr:`~livedance.data.aistpp.AISTMotion.trans_m`),
  lifted so that the feet stand on y = 0 (the 1st percentile over frames of the lowest ankle / foot joint): the
  SMPL template's pelvis offset is not known without the model file, and this puts the floor where the Tang clips
  have it;
- the music: ``<music_dir>/<music id>.wav`` from its start (AIST++ dances start with their music, offset 0 s),
  trusted for beat alignment (``beat_aligned`` True: the dancers danced to it in the studio);
- the style: the genre code (``gBR``, ``gPO``, ...), as :func:`livedance.model.train_generator.clip_style` names it.

No cache: converting is a Rodrigues map, a slerp and FK per clip (about 1 s for the 1408 AIST++ motions' first
minute each on one core), small beside reading the pickles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from livedance.data.aistpp import AISTPP_FPS, AISTMotion, aistpp_split_names, genre, load_aistpp_motion
from livedance.data.dataset import MotionClip, resample_motion, smpl24_positions
from livedance.errors import DataError
from livedance.motion.skeleton import NUM_BODY_JOINTS, SMPLX_BODY_JOINT_NAMES

#: The joints whose lowest one stands on the floor (SMPL-X body indices of the ankles and feet).
FOOT_JOINTS: tuple[int, ...] = tuple(
    SMPLX_BODY_JOINT_NAMES.index(n) for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")
)


def is_aistpp_root(path: str | Path) -> bool:
    """Whether ``path`` is an AIST++ annotation folder (it holds ``motions/`` and ``splits/``)."""
    p = Path(path)
    return (p / "motions").is_dir() and (p / "splits").is_dir()


def aistpp_clip(motion: AISTMotion, fps: float = 25.0, rest_offsets: np.ndarray | None = None) -> MotionClip:
    """One AIST++ motion as a clip at ``fps`` (see the module docstring for every convention).

    Args:
        motion: from :func:`~livedance.data.aistpp.load_aistpp_motion` (60 fps, SMPL axis-angle).
        fps: output frame rate, frames per second (> 0; the models run at 25). Output frame k is at k / fps s
            of the song, i.e. AIST++ frame k * 60 / fps.
        rest_offsets: (22, 3) or more rows of float metres, the rest skeleton in SMPL-X order (row 0 the pelvis
            rest position, row j its offset from the parent); default the first 22 rows of
            :func:`livedance.live.rest.default_rest_offsets`.

    Returns:
        :class:`MotionClip` with K = floor((T - 1) fps / 60) + 1 frames: ``local_rotmats`` (K, 22, 3, 3) float32,
        ``root_translation`` (K, 3) float32 metres, ``positions`` (K, 24, 3) float32 metres with the floor at y = 0.

    Raises:
        DataError: fewer than 2 frames, a non-positive ``fps``, a ``rest_offsets`` of another shape, or a motion
            without a music path (load it with ``music_dir``).
    """
    if motion.num_frames < 2:
        raise DataError(f"AIST++ motion {motion.name}: {motion.num_frames} frame(s); a clip needs at least 2")
    if not fps > 0:
        raise DataError(f"AIST++ clip {motion.name}: fps must be > 0, got {fps}")
    if motion.audio_path is None:
        raise DataError(f"AIST++ motion {motion.name} has no music path; load it with music_dir=<the music folder>")
    if rest_offsets is None:
        from livedance.live.rest import default_rest_offsets

        rest_offsets = default_rest_offsets()
    rest = np.asarray(rest_offsets, np.float32)
    if rest.ndim != 2 or rest.shape[1] != 3 or rest.shape[0] < NUM_BODY_JOINTS:
        raise DataError(f"AIST++ clip {motion.name}: rest_offsets must be (>= 22, 3) metres, got {rest.shape}")
    rest = rest[:NUM_BODY_JOINTS]
    step = AISTPP_FPS / fps
    k = int(np.floor((motion.num_frames - 1) / step + 1e-9)) + 1
    u = np.minimum(np.arange(k) * step, motion.num_frames - 1)
    rot, trans = resample_motion(motion.local_rotmats()[:, :NUM_BODY_JOINTS], motion.trans_m, u)
    pos = smpl24_positions(rot, trans, rest)
    lift = np.float32(np.percentile(pos[:, list(FOOT_JOINTS), 1].min(axis=1), 1.0))
    trans = trans.copy()
    trans[:, 1] -= lift
    pos[..., 1] -= lift  # FK is linear in the root translation: the same as running it again
    return MotionClip(
        name=motion.name, style=genre(motion.name), fps=float(fps), local_rotmats=rot, root_translation=trans,
        rest_offsets=rest, positions=pos, audio_path=Path(motion.audio_path),
        audio_offset_s=0.0, beat_aligned=True,
    )


def load_aistpp_clips(
    root: str | Path, split: str, fps: float = 25.0, names: list[str] | None = None, progress: bool = True,
    music_dir: str | Path | None = None, rest_offsets: np.ndarray | None = None,
) -> list[MotionClip]:
    """The clips of an official AIST++ split (``splits/crossmodal_<split>.txt``, ignore list applied).

    Args:
        root: the AIST++ folder (``motions/``, ``splits/``, ``ignore_list.txt``, and the music wavs in ``music/``
            unless ``music_dir`` says otherwise).
        split: ``'train'``, ``'val'``, ``'test'`` or ``'all'``.
        fps: output frame rate (frames per second). names: restrict to these sequences (must be in the split).
        progress: show a rich progress bar. rest_offsets: see :func:`aistpp_clip`.

    Returns:
        list of :class:`MotionClip` in the split file's order.

    Raises:
        ConfigError: unknown split. DataError: a missing folder, split file or motion, a name not in the split,
            a bad motion file, or missing music (the message names the folder and the first missing files).
    """
    root = Path(root)
    mdir = Path(music_dir) if music_dir is not None else root / "music"
    wanted = aistpp_split_names(root, split)
    if names is not None:
        extra = sorted(set(names) - set(wanted))
        if extra:
            raise DataError(f"sequences {', '.join(extra)} are not in AIST++ split {split!r} (ignore list applied)")
        wanted = [n for n in wanted if n in set(names)]
    motions = [load_aistpp_motion(root / "motions" / f"{n}.pkl", mdir) for n in wanted]
    missing = sorted({m.audio_path.name for m in motions if not m.audio_path.is_file()})
    if missing:
        raise DataError(
            f"AIST++ music missing in {mdir}: {', '.join(missing[:3])}" + (f" and {len(missing) - 3} more" if
                                                                           len(missing) > 3 else "")
            + " (put the AIST Dance DB music there as <music id>.wav, e.g. mBR0.wav)"
        )
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not progress) as prog:
        task = prog.add_task(f"AIST++ {split} clips", total=len(motions))
        for m in motions:
            out.append(aistpp_clip(m, fps, rest_offsets))
            prog.advance(task)
    return out
