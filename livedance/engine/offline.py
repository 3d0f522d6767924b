"""Offline generation through the live step path: a song file in, a motion out.

:func:`generate_song` plays the file through the same stages as the live loop, in song time: the
audio goes hop by hop into :class:`~livedance.features.StreamingFeatures` (22050 Hz) and the causal
:class:`~livedance.beats.BeatTracker` (44100 Hz); before the step for the chunk starting at song time
``t`` they have heard the audio up to ``t - lag_s`` (the generator's lag), and the generator gets the
feature frames that became ready since its last step plus the tracker's tempo, confidence and beat
phase predicted at ``t`` (a :class:`~livedance.engine.base.MusicContext`), exactly as in training
(:mod:`livedance.model.conditioning`). Offline, the analysis hears a block of steps ahead and the generator
then runs them back to back (:data:`LOOKAHEAD_STEPS`): each step still gets only what it would have heard
live, and the weights stay in the CPU caches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedance.engine.base import MusicContext

__all__ = ["GeneratedMotion", "generate_song", "motion_positions", "quat_smpl24_positions", "save_generated", "generate_for_clips", "clip_seed"]


@dataclass
class GeneratedMotion:
    """A generated dance on the song clock.

    Attributes:
        local_quats: (T, 55, 4) float32 SMPL-X local rotations (x, y, z, w).
        root_translation: (T, 3) float32 metres (pelvis = root_translation + rest_offsets[0]).
        fps: frames per second (25).
        audio_path: the song. audio_offset_s: song time of frame 0, seconds.
        n_bad: frames replaced by a safe pose, counted over whole steps: the last step's frames past the end,
            which are cut, count too (a step reports how many, not which). step_s: (S,) wall seconds per step.
        n_state_resets: steps whose recurrent state was reset after coming out non-finite
            (``generator.n_state_resets``; 0 for generators without the counter).
        n_bad_inputs: steps whose music input was unusable and dropped / replaced (``generator.n_bad_inputs``; 0
            for generators without the counter).
    """

    local_quats: np.ndarray
    root_translation: np.ndarray
    fps: float
    audio_path: Path
    audio_offset_s: float
    n_bad: int
    step_s: np.ndarray
    n_state_resets: int = 0
    n_bad_inputs: int = 0


#: Steps the audio analysis of :func:`generate_song` runs ahead of the generator (32 steps of 320 ms = 10.24 s).
LOOKAHEAD_STEPS = 32


def _blocks_to(n_target: int, fed: int) -> int:
    return max(fed, n_target)


def generate_song(generator, audio_path: str | Path, start_s: float = 0.0, duration_s: float | None = None,
                  seed: int = 0, audio: tuple[np.ndarray, np.ndarray] | None = None,
                  lookahead_steps: int = LOOKAHEAD_STEPS, on_progress=None) -> GeneratedMotion:
    """Dance to a song file through the causal step path (see the module docstring).

    Scheduling: the audio analysis runs ``lookahead_steps`` steps ahead of the generator (each step's
    :class:`~livedance.engine.base.MusicContext` is built when the analysis has heard exactly the audio up to
    that step's ``t - lag_s``, as in the live loop), then those steps run back to back. The contexts, and so
    the dance, are the same for every ``lookahead_steps`` (tested bit for bit); 1 is the live loop's
    interleaving. Back-to-back steps keep the model's weights in the CPU caches: on the 2-core CI machine the
    generator's real-time factor was 11-25 % higher than when the feature extractor and the beat tracker
    run between its steps (``benchmarks/model.py --lookahead 1``, docs/model.md).

    Args:
        generator: a :class:`~livedance.engine.learned.LearnedGenerator` (any MotionGenerator with
            ``config.lag_s``; others use lag 0). Each step must return its ``frames_per_step`` frames at its
            ``fps`` (the MotionGenerator protocol).
        audio_path: the song.
        start_s: song time of the first frame, seconds (the audio before it is heard, not danced).
        duration_s: seconds to dance (None: to the end of the song).
        seed: sampling seed (``generator.reset(seed)``).
        audio: optional pre-loaded ``(audio at 22050 Hz, audio at 44100 Hz)`` mono float32.
        lookahead_steps: steps heard ahead of the generator, >= 1 (memory: about 10 KB of features each).
        on_progress: optional ``f(done_s, total_s)``, called after each block of steps with the seconds of
            dance generated so far and in all (e.g. to move a progress bar).
    Returns:
        :class:`GeneratedMotion` with ``round(duration * fps)`` frames (whole steps, trimmed).
    Raises:
        AudioError: missing / unreadable audio. ConfigError: start beyond the song's end, ``lookahead_steps``
        < 1, or a generator step that returned another number of frames than its ``frames_per_step``.
    """
    import time

    from livedance.beats.tracker import BeatTracker, TrackerConfig
    from livedance.data.audio_io import load_audio
    from livedance.errors import ConfigError
    from livedance.features import FeatureConfig, StreamingFeatures

    fcfg = FeatureConfig()
    if audio is None:
        end = None if duration_s is None else start_s + duration_s + 1.0
        a22, _ = load_audio(audio_path, sr=fcfg.sr, duration_s=end)
        a44, _ = load_audio(audio_path, sr=44100, duration_s=end)
    else:
        a22, a44 = audio
    song_s = a22.shape[0] / fcfg.sr
    end_s = song_s if duration_s is None else min(song_s, start_s + duration_s)
    if start_s >= end_s:
        raise ConfigError(f"generate: start {start_s:.2f} s is not before the end {end_s:.2f} s of {audio_path}")
    if int(lookahead_steps) < 1:
        raise ConfigError(f"generate: lookahead_steps must be >= 1, got {lookahead_steps}")
    lag = float(getattr(getattr(generator, "config", None), "lag_s", 0.0))
    feats = StreamingFeatures(fcfg)
    tracker = BeatTracker(TrackerConfig(sample_rate=44100))
    hop44 = tracker.cfg.hop
    generator.reset(seed)
    fed22 = fed44 = 0
    qs, rs, times = [], [], []
    rep = getattr(generator, "rep", None)
    rest_pelvis = np.zeros(3, np.float32) if rep is None else np.asarray(rep.rest_offsets[0], np.float32)
    n_bad = 0
    t = float(start_s)
    n_total = int(round((end_s - start_s) * generator.fps))
    per_step = int(generator.frames_per_step)
    n_steps = -(-n_total // per_step)

    def hear(t: float) -> MusicContext:
        """The context of the step starting at song time t: the analysis advanced to the audio up to t - lag."""
        nonlocal fed22, fed44
        heard = t - lag
        n22 = min(a22.shape[0], _blocks_to(int(math.floor(max(heard, 0.0) * fcfg.sr + 1e-6)), fed22))
        ff = feats.push(a22[fed22:n22])
        fed22 = n22
        n44 = min(a44.shape[0] // hop44 * hop44, _blocks_to(int(math.floor(max(heard, 0.0) * 44100 / hop44 + 1e-9)) * hop44, fed44))
        tracker.push(a44[fed44:n44])
        fed44 = n44
        bpm = tracker.bpm
        return MusicContext(ff.values, ff.times_s, bpm, tracker.beat_phase(t) if bpm > 0 else 0.0, tracker.confidence, t)

    for first in range(0, n_steps, int(lookahead_steps)):
        block = []
        for _ in range(min(int(lookahead_steps), n_steps - first)):
            block.append(hear(t))
            t = t + per_step / float(generator.fps)  # a step's frames end where the next one starts
        for ctx in block:
            t0 = time.perf_counter()
            mf = generator.step(ctx)
            times.append(time.perf_counter() - t0)
            if len(mf) != per_step:
                raise ConfigError(f"generate: {type(generator).__name__}.step returned {len(mf)} frames at "
                                  f"{ctx.t_first_frame_s:.2f} s; its frames_per_step is {per_step}")
            qs.append(mf.local_quats)
            rs.append(mf.root_translation - rest_pelvis)  # MotionFrames: pelvis world position -> FK displacement
            n_bad += int(mf.n_bad)
        if on_progress is not None:
            on_progress(min(len(qs) * per_step, n_total) / float(generator.fps), n_total / float(generator.fps))
    q = np.concatenate(qs)[:n_total]
    r = np.concatenate(rs)[:n_total]
    return GeneratedMotion(q, r, float(generator.fps), Path(audio_path), float(start_s), n_bad, np.asarray(times),
                           int(getattr(generator, "n_state_resets", 0)), int(getattr(generator, "n_bad_inputs", 0)))


def quat_smpl24_positions(local_quats: np.ndarray, root_translation: np.ndarray, rest_offsets: np.ndarray) -> np.ndarray:
    """SMPL-24 joint positions (T, 24, 3) float32 metres by FK of SMPL-X local quaternions.

    Args:
        local_quats: (T, 22 or 55, 4) float SMPL-X local rotations (x, y, z, w); the first 22 (body) are used.
        root_translation: (T, 3) float metres (pelvis = root_translation + rest_offsets[0]).
        rest_offsets: (22, 3) float metres.
    """
    import roma
    import torch

    from livedance.data.dataset import smpl24_positions

    R = roma.unitquat_to_rotmat(torch.from_numpy(np.ascontiguousarray(local_quats[:, :22], np.float32))).numpy()
    return smpl24_positions(R, root_translation, rest_offsets).astype(np.float32)


def motion_positions(motion: GeneratedMotion, rest_offsets: np.ndarray) -> np.ndarray:
    """SMPL-24 joint positions (T, 24, 3) float32 metres of a generated motion (FK on ``rest_offsets`` (22, 3))."""
    return quat_smpl24_positions(motion.local_quats, motion.root_translation, rest_offsets)


def save_generated(motion: GeneratedMotion, path: str | Path, rest_offsets: np.ndarray, bvh: str | Path | None = None) -> Path:
    """Write the motion npz (docs/formats.md) and optionally a BVH of the 22 body joints.

    Raises:
        DataError: an invalid motion (from :func:`livedance.eval.motion_io.save_motion`). ConfigError: BVH path problems.
    """
    from livedance.eval.motion_io import save_motion

    pos = motion_positions(motion, rest_offsets)
    out = save_motion(path, pos, motion.fps, str(Path(motion.audio_path).resolve()), motion.audio_offset_s,
                      motion.local_quats, motion.root_translation)
    if bvh is not None:
        from livedance.bridges.bvh import BVHWriter
        from livedance.motion.skeleton import SMPLX_BODY_JOINT_NAMES, SMPLX_BODY_PARENTS

        off = np.asarray(rest_offsets, np.float64)
        with BVHWriter(bvh, off, motion.fps, parents=SMPLX_BODY_PARENTS, names=SMPLX_BODY_JOINT_NAMES,
                       overwrite=True) as w:
            for q, r in zip(motion.local_quats[:, :22], motion.root_translation):
                w.write_frame(q, r + off[0])
    return out


def clip_seed(seed: int, name: str) -> int:
    """The sampling seed of one clip of a seeded run: a 63-bit int from ``numpy.random.SeedSequence([seed, crc32(name)])``.

    Each clip of an evaluation run gets its own noise, so the run's dances are independent samples (with one seed
    for every clip they all start from the same Gumbel draws, and the diversity between them is understated),
    and a clip's dance does not depend on which other clips are in the run.

    Args:
        seed: the run's seed (``livedance eval --seed``), an int >= 0. name: the clip's name, e.g. ``"DANCE_W_4"``.
    Returns:
        int in [0, 2**63).
    """
    import zlib

    state = np.random.SeedSequence([int(seed), zlib.crc32(str(name).encode("utf-8"))]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def generate_for_clips(model: str, clips, folder: str | Path, seed: int = 0, backend: str = "onnx",
                       weights: str | Path | None = None, progress=None, temperature: float | None = None,
                       residual_temperature: float | None = None, top_k: int | None = None,
                       min_p: float | None = None, pose_guard=None, guidance: float | None = None,
                       style: str | None = None, style_strength: float = 1.0, shared_seed: bool = False,
                       pace: float | None = None) -> list:
    """Dance to each clip's music excerpt (its song from ``audio_offset_s`` for its duration) through the step path.

    Used by ``livedance eval --models``: the rows of generated dances are scored against the same
    excerpts as the ground truth.

    Args:
        model: ``'livedance'`` or ``'baseline'`` (shipped weights unless ``weights`` is given).
        clips: dataset ``MotionClip`` list. folder: where the npz files go (``<model>/<clip>.npz``).
        seed: the run's sampling seed (each clip samples with :func:`clip_seed` of it and its name).
        backend: engine backend. progress: optional ``rich.progress.Progress``.
        weights: weights stem (None: the shipped ``model`` weights).
        temperature: sampling temperature (None: the one in the weights' config).
        residual_temperature: residual levels' temperature (None: the weights' config; 0: argmax).
        top_k: top-k sampling (None: the weights' config; 0: all codes).
        min_p: min-p sampling (None: the weights' config; 0: off).
        pose_guard: :class:`~livedance.engine.pose_guard.PoseGuardConfig` (None: the defaults).
        guidance: classifier-free guidance scale (None: the weights' config; 1: off).
        style: a training style for every clip (:meth:`LearnedGenerator.set_style`), ``"label"`` for each clip's
            own labelled style (as a VJ who knows the dance would set it), None: the model's own choice.
        style_strength: the style's lambda.
        shared_seed: sample every clip with ``seed`` itself (the protocol before 2026-11-24) instead of its own
            :func:`clip_seed`.
        pace: dance every clip at this pace, m/s (:meth:`LearnedGenerator.set_pace`; needs a model with a pace
            input); None: each clip's pace is drawn by its seed (models with a pace input).
    Returns:
        list of :class:`~livedance.eval.motion_io.MotionFile`, one per clip.
    Raises:
        WeightsError: missing / mismatched weights (or style prior, with a style). AudioError: unreadable songs.
        ConfigError: an unknown style; a pace for a model without a pace input, or outside [0.05, 3] m/s.
    """
    from livedance.engine import load_generator
    from livedance.eval.motion_io import load_motion

    from livedance.engine.style_prior import default_style_prior
    from livedance.model.train_generator import clip_style

    by_label = style == "label"
    gen = load_generator(weights, backend=backend, seed=seed, kind=model, temperature=temperature,
                         residual_temperature=residual_temperature, top_k=top_k, min_p=min_p, pose_guard=pose_guard,
                         guidance=guidance, style=None if by_label else style, style_strength=style_strength,
                         style_prior=None if style is None else default_style_prior())
    if pace is not None:
        gen.set_pace(pace)
    out_dir = Path(folder) / model
    task = progress.add_task(f"generating ({model})", total=len(clips)) if progress is not None else None
    files = []
    for c in clips:
        if by_label:
            gen.set_style(clip_style(c.name), style_strength)
        s = int(seed) if shared_seed else clip_seed(seed, c.name)
        m = generate_song(gen, c.audio_path, float(c.audio_offset_s), c.num_frames / c.fps, s)
        files.append(load_motion(save_generated(m, out_dir / f"{c.name}.npz", gen.rep.rest_offsets)))
        if task is not None:
            progress.advance(task)
    return files
