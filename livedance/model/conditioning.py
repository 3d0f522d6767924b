"""What the generator may condition on: causal audio features and the CAUSAL beat tracker's predictions.

DESIGN.md ("Causality"): the frame shown at time t may condition on audio up to ``t - lag`` and on
what the live beat tracker predicts about t (tempo, beat phase). This module produces exactly those
inputs, the same way for training (whole songs, cached) and for the live / offline step path:

* audio features: :func:`livedance.features.offline_features` at 22050 Hz (equal to
  :class:`~livedance.features.StreamingFeatures`, tested in ``tests/test_features_stream.py``); frame
  k's time is the end of its window, ``(k + 1) * hop / sr`` seconds of song time.
* beat state: the real :class:`livedance.beats.BeatTracker` run over the song hop by hop (512 samples at
  44.1 kHz = 11.6 ms); after every hop a snapshot ``(time_s, bpm, beat_phase(time_s), confidence)``
  is kept (:class:`BeatTrack`). The phase at a later time t is extrapolated along the current grid,
  ``phase(t) = phase(s) + (t - s) * bpm / 60 (mod 1)``, which is what ``BeatTracker.beat_phase(t)``
  returns for a tracker stopped at s (its grid is ``next_beat + k * 60 / bpm``).

A token slot n of a clip covers frames 4n .. 4n+3 (25 fps) starting at song time ``t_n``. The
generator sees, for that slot, the last ``window`` feature frames with time <= ``t_n - lag_s`` and the
beat state of the tracker at the last hop ending at or before ``t_n - lag_s``, extrapolated to the
slot's four frame times (:func:`slot_condition`). ``lag_s`` defaults to 0.16 s (one token): the live
loop's audio-to-motion delay must be at least that (docs/model.md, "Generator: causality and lag").

Per-song results are cached as ``.npz`` (no pickles) under ``<cache>/generator/`` keyed by the audio
file's path, size and mtime, the feature and tracker configs, and :data:`CONDITIONING_VERSION`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from livedance.errors import DataError

__all__ = [
    "CONDITIONING_VERSION",
    "COND_DIM",
    "BeatTrack",
    "SongConditioning",
    "track_song",
    "song_conditioning",
    "slot_condition",
    "beat_state_before",
    "feature_index_before",
]

#: Bump to invalidate cached song conditioning.
CONDITIONING_VERSION = 1
#: Size of the per-slot condition vector: sin/cos of the beat phase at the slot's 4 frames (8),
#: log2(bpm / 120) (1), tracker confidence (1).
COND_DIM = 10
#: Tracker hop (samples at 44.1 kHz) used for the snapshots.
_TRACK_SR = 44100


@dataclass
class BeatTrack:
    """Snapshots of a causal :class:`~livedance.beats.BeatTracker` after each analysis hop.

    Attributes:
        times_s: (H,) float64 song time (seconds) analysed when the snapshot was taken (end of hop h).
        bpm: (H,) float32 tempo estimate, beats per minute (0 before one is known).
        phase: (H,) float32 beat phase in [0, 1) at ``times_s`` (0 on a predicted beat).
        confidence: (H,) float32 tracker confidence in [0, 1].
    """

    times_s: np.ndarray
    bpm: np.ndarray
    phase: np.ndarray
    confidence: np.ndarray


@dataclass
class SongConditioning:
    """Cached per-song generator inputs (see the module docstring).

    Attributes:
        features: (F, 180) float32 audio features (``FeatureConfig()`` layout) from song time 0.
        feature_times_s: (F,) float64 time of each feature frame (end of its window), seconds.
        beats: the causal tracker's :class:`BeatTrack` over the same span.
        duration_s: analysed song duration, seconds.
    """

    features: np.ndarray
    feature_times_s: np.ndarray
    beats: BeatTrack
    duration_s: float


def track_song(audio_44k: np.ndarray, hop: int = 512) -> BeatTrack:
    """Run the causal :class:`~livedance.beats.BeatTracker` over a whole song, one hop per push.

    Args:
        audio_44k: (N,) float32 mono audio at 44100 Hz, song time 0 = sample 0.
        hop: tracker hop in samples (must equal ``TrackerConfig().hop``; 512 = 11.6 ms).

    Returns:
        :class:`BeatTrack` with one snapshot per complete hop (H = N // hop).

    Raises:
        AudioError: NaN/inf in the audio (from the tracker).
    """
    from livedance.beats.tracker import BeatTracker, TrackerConfig

    tr = BeatTracker(TrackerConfig(sample_rate=_TRACK_SR, hop=hop))
    x = np.asarray(audio_44k, dtype=np.float32)
    H = x.shape[0] // hop
    times = np.empty(H, np.float64)
    bpm = np.empty(H, np.float32)
    phase = np.empty(H, np.float32)
    conf = np.empty(H, np.float32)
    for h in range(H):
        tr.push(x[h * hop:(h + 1) * hop])
        t = tr.time_s
        times[h], bpm[h], conf[h] = t, tr.bpm, tr.confidence
        phase[h] = tr.beat_phase(t)
    return BeatTrack(times, bpm, phase, conf)


def _cache_key(audio_path: Path, duration_s: float | None, speed: float = 1.0) -> str:
    from livedance.beats.tracker import TrackerConfig
    from livedance.features import FeatureConfig

    st = audio_path.stat()
    desc = {
        "path": str(audio_path.resolve()), "size": st.st_size, "mtime": int(st.st_mtime),
        "duration": None if duration_s is None else round(float(duration_s), 3),
        "features": asdict(FeatureConfig()), "tracker": repr(TrackerConfig()), "version": CONDITIONING_VERSION,
    }
    if speed != 1.0:  # keys of the songs as they are stay what they were
        desc["speed"] = float(speed)
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:20]


def song_conditioning(
    audio_path: str | Path, duration_s: float | None = None, cache_dir: str | Path | None = None, use_cache: bool = True,
    speed: float = 1.0,
) -> SongConditioning:
    """Features and causal beat track of a song from its start (cached).

    Args:
        audio_path: the song file.
        duration_s: analyse at least the first ``duration_s`` seconds (of the song as played, i.e. after
            ``speed``), rounded up to a multiple of 30 s of the file (None: the whole song).
        cache_dir: cache root (default :func:`livedance.data.dataset.default_cache_dir`).
        use_cache: read / write the cache.
        speed: play the song ``speed`` times as fast, a factor in [0.5, 2], tempo and pitch together (the
            speed perturbation of Ko et al. 2015, :mod:`livedance.motion.speed`): the audio is read at sample
            rate ``sr / speed`` and analysed as if it were at ``sr``, so every time in the result is file time
            divided by ``speed``. 1 = the song as it is (and its cache entry is the one it always had).

    Returns:
        :class:`SongConditioning`.

    Raises:
        AudioError: missing or unreadable audio.
        ConfigError: ``speed`` outside [0.5, 2] or not finite.
    """
    from livedance.data.audio_io import load_audio
    from livedance.data.dataset import default_cache_dir
    from livedance.features import FeatureConfig, offline_features
    from livedance.motion.speed import check_speed

    audio_path = Path(audio_path)
    speed = check_speed(speed)
    if duration_s is not None:  # whole 30 s blocks of the file, so that small alignment changes reuse the cache
        duration_s = 30.0 * math.ceil(float(duration_s) * speed / 30.0)
    if not audio_path.is_file():
        from livedance.errors import AudioError

        raise AudioError(f"audio file not found: {audio_path}")
    cache = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "generator"
    tag = "" if speed == 1.0 else f"-x{speed:g}"
    path = cache / f"{audio_path.parent.name}-{audio_path.stem}{tag}-{_cache_key(audio_path, duration_s, speed)}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return SongConditioning(
                    z["features"], z["feature_times_s"],
                    BeatTrack(z["beat_times_s"], z["bpm"], z["phase"], z["confidence"]), float(z["duration_s"]),
                )
        except (OSError, KeyError, ValueError):
            path.unlink(missing_ok=True)
    cfg = FeatureConfig()
    a22, _ = load_audio(audio_path, sr=cfg.sr / speed, duration_s=duration_s)  # then read as cfg.sr
    ff = offline_features(a22, cfg)
    a44, _ = load_audio(audio_path, sr=_TRACK_SR / speed, duration_s=duration_s)
    beats = track_song(a44)
    out = SongConditioning(ff.values, ff.times_s, beats, a22.shape[0] / cfg.sr)
    if use_cache:
        from livedance.atomic import atomic_target

        with atomic_target(path) as tmp:  # concurrent runs never share a temporary file
            np.savez(tmp, features=out.features, feature_times_s=out.feature_times_s, beat_times_s=beats.times_s,
                     bpm=beats.bpm, phase=beats.phase, confidence=beats.confidence, duration_s=np.float64(out.duration_s))
    return out


def feature_index_before(feature_times_s: np.ndarray, t_s: np.ndarray | float) -> np.ndarray:
    """Index of the last feature frame whose time is <= ``t_s`` (-1 when none), vectorised.

    Args:
        feature_times_s: (F,) increasing frame times, seconds.
        t_s: scalar or (M,) times, seconds.
    Returns:
        int64 array of t_s's shape.
    """
    return np.searchsorted(feature_times_s, np.asarray(t_s, np.float64) + 1e-9, side="right") - 1


def beat_state_before(track: BeatTrack, t_s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tracker snapshot taken at the last hop ending at or before ``t_s`` (vectorised).

    Returns:
        ``(time_s, bpm, phase, confidence)`` arrays of t_s's shape; before the first hop all zeros.
    """
    i = np.searchsorted(track.times_s, np.asarray(t_s, np.float64) + 1e-9, side="right") - 1
    ok = i >= 0
    j = np.maximum(i, 0)
    if track.times_s.size == 0:
        z = np.zeros_like(np.asarray(t_s, np.float64))
        return z, z.astype(np.float32), z.astype(np.float32), z.astype(np.float32)
    return (np.where(ok, track.times_s[j], 0.0), np.where(ok, track.bpm[j], 0.0).astype(np.float32),
            np.where(ok, track.phase[j], 0.0).astype(np.float32), np.where(ok, track.confidence[j], 0.0).astype(np.float32))


def slot_condition(
    bpm: np.ndarray | float, phase_ref: np.ndarray | float, confidence: np.ndarray | float,
    ref_time_s: np.ndarray | float, slot_time_s: np.ndarray | float, fps: float = 25.0, stride: int = 4,
) -> np.ndarray:
    """Per-slot beat condition vector (:data:`COND_DIM` = 10 numbers).

    ``[sin 2 pi phi_j, cos 2 pi phi_j for the slot's frames j = 0..stride-1, log2(bpm / 120), confidence]``
    with ``phi_j = phase_ref + (slot_time_s + j / fps - ref_time_s) * bpm / 60`` (the current grid
    extrapolated, as ``BeatTracker.beat_phase`` does). With no tempo (bpm <= 0) all phase terms and the
    tempo term are 0.

    Args:
        bpm, phase_ref, confidence, ref_time_s: the tracker's state (beats per minute, phase in [0, 1)
            at ``ref_time_s`` seconds, confidence in [0, 1]); scalars or (M,) arrays.
        slot_time_s: song / stream time of the slot's first frame, seconds.
        fps, stride: frame rate and frames per token.

    Returns:
        (..., 10) float32 (leading shape = broadcast of the inputs).
    """
    bpm = np.asarray(bpm, np.float64)
    known = bpm > 0
    ph0 = np.asarray(phase_ref, np.float64) + (np.asarray(slot_time_s, np.float64) - np.asarray(ref_time_s, np.float64)) * bpm / 60.0
    j = np.arange(stride) / fps
    ph = ph0[..., None] + j * bpm[..., None] / 60.0
    ang = 2 * math.pi * ph
    trig = np.stack([np.sin(ang), np.cos(ang)], axis=-1).reshape(*ph.shape[:-1], 2 * stride)
    trig = np.where(known[..., None], trig, 0.0)
    tempo = np.where(known, np.log2(np.maximum(bpm, 1e-3) / 120.0), 0.0)
    conf = np.broadcast_to(np.asarray(confidence, np.float64), tempo.shape)
    out = np.concatenate([trig, tempo[..., None], conf[..., None]], axis=-1)
    return out.astype(np.float32)


def check_song_span(cond: SongConditioning, end_s: float, what: str) -> None:
    """Raise DataError when ``cond`` does not cover song time ``end_s`` (seconds)."""
    if cond.duration_s + 1e-3 < end_s:
        raise DataError(f"{what}: song audio covers {cond.duration_s:.2f} s, the dance needs {end_s:.2f} s")
