"""Alignment study for the Tang 2018 DANCE data: the true motion rate and per-sequence song offset.

The dataset README says motion frame ``f`` covers song frame ``S + f`` (25 fps). Measured, that is
wrong in rate: the dances' own rhythm runs about 1 % fast against their songs. This module finds,
per sequence, a linear map from motion frames to song time

    t_song(f) = offset_s + f * scale / 25            (seconds; ``scale`` = song frames per motion frame)

from the dance's own rhythm against the music's beats, and decides whether it can be trusted.

Method (docs/data.md has the full write-up and the numbers):

1. Motion rhythm. Three candidate 1-D signals (pelvis-marker height, left-minus-right foot height,
   mean marker speed) are high-passed; the one with the strongest autocorrelation peak at a lag of
   20 to 80 motion frames gives the motion cycle ``P`` (frames). It is band-passed around ``1/P``
   and its Hilbert phase ``theta(f)`` (radians) is the dance's cycle phase (for waltzes: the
   rise-and-fall, one cycle per bar).
2. Music beats. ``librosa.beat.beat_track`` (offline, Ellis 2007 dynamic programming) on the whole
   song. Its metrical level varies, so the number of beats per motion cycle ``q`` must be close to
   one of :data:`BEATS_PER_CYCLE`; otherwise the tracker is re-run with ``start_bpm`` set to that
   level's tempo.
3. Rate. The phase-locking value (PLV; Lachaux et al. 1999) between the motion cycle and the beat
   grid, ``|mean_f exp(i (theta(f) - 2 pi b(t_song(f)) / q))|`` with ``b(t)`` the fractional beat
   index, is maximised over ``scale`` (at the nominal offset; for a steady tempo the PLV does not
   depend on the offset). The *score* is the beat-level PLV, ``|mean exp(i q (...))|`` (q-th
   harmonic), which is q times more sensitive to a tempo mismatch.
4. Validation. The same scan runs against every other song (shuffled pairs, excluding copies of the
   same recording); ``margin`` = own score - the 90th percentile of the shuffled scores.
5. Offset. A beat-level phase can only fix the offset modulo one beat. Within +-half a beat of the
   nominal ``S / 25`` the offset is chosen that maximises the beat alignment score (BAS, Li et al.
   2021 / Bailando: motion beats = local minima of Gaussian-smoothed mean marker speed; score = mean
   over music beats of ``exp(-d^2 / (2 sigma^2))``), i.e. the dancer's kinematic beats are put on the
   music's beats; that is the assumption BAS itself makes.
6. ``tempo_locked`` = score >= :attr:`AlignConfig.min_score`, a beat level fits and the best scale
   is inside the scan; ``own_beats_shuffled`` = margin over the shuffled median >=
   :attr:`AlignConfig.min_margin` and the own song beats >= :attr:`AlignConfig.min_rank` of the
   shuffled songs; ``usable_for_beat`` = both.

Finding (docs/data.md): the dances and the songs are both steady in tempo, so the beat-level PLV
fixes the rate (scale) but not the phase, and songs re-tracked at the dance's tempo lock about as
well as the dance's own song; the nominal offsets carry no consistent beat phase. Only a few
sequences pass the own-versus-shuffled test.

librosa is needed (``pip install livedance[dev]``); it is imported inside the functions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from livedance.data.tang import TANG_FPS, TangSequence
from livedance.errors import DataError

#: Allowed numbers of tracked beats per motion cycle, by style. A waltz's rise and fall is one bar
#: (3 beats; 6 when the tracker runs at double tempo); the 4/4 dances' cycles are 1, 2, 4 or 8 beats.
BEATS_PER_CYCLE: dict[str, tuple[int, ...]] = {
    "waltz": (3, 6),
    "cha-cha": (1, 2, 4, 8),
    "rumba": (1, 2, 4, 8),
    "tango": (1, 2, 4, 8),
}


def beat_harmonic(q: int) -> int:
    """Harmonic of the motion cycle that runs at the musical beat: q, or q / 2 when q >= 6 (the
    tracker then counts half beats)."""
    return q // 2 if q >= 6 else q
#: Committed result file.
ALIGNMENT_PATH: Path = Path(__file__).with_name("tang_alignment.json")
#: Bump when the method changes (stored in the JSON, and in dataset cache keys).
ALIGN_VERSION: int = 1


@dataclass
class AlignConfig:
    """Parameters of :func:`align_sequence` (defaults = the committed study).

    Attributes:
        scale_min, scale_max, scale_step: scan of song frames per motion frame.
        period_min, period_max: motion cycle search range, motion frames (25 fps nominal).
        q_tolerance: max relative mismatch between measured and allowed beats per motion cycle.
        min_score: lowest beat-level PLV for ``usable_for_beat``.
        min_margin: lowest own-minus-median-shuffled margin for ``usable_for_beat``.
        min_rank: lowest fraction of shuffled songs the own song must beat for ``usable_for_beat``.
        bas_sigma_s: BAS Gaussian width, seconds (3 frames at 60 fps = 0.05 s).
        speed_sigma_frames: Gaussian smoothing of the motion speed before picking motion beats,
            motion frames (5 frames at 60 fps = 2 frames at 25 fps).
        sr, hop: audio analysis rate (Hz) and onset-envelope hop (samples).
    """

    scale_min: float = 0.98
    scale_max: float = 1.05
    scale_step: float = 0.0005
    period_min: int = 10
    period_max: int = 80
    q_tolerance: float = 0.08
    min_score: float = 0.3
    min_margin: float = 0.15
    min_rank: float = 0.75
    bas_sigma_s: float = 0.05
    speed_sigma_frames: float = 2.0
    sr: int = 22050
    hop: int = 512

    def scales(self) -> np.ndarray:
        """(K,) float64 scan grid of scales."""
        return np.arange(self.scale_min, self.scale_max + 1e-9, self.scale_step)


@dataclass
class MusicBeats:
    """Offline beat analysis of one song.

    Attributes:
        beats: (B,) float64 beat times, seconds of song time.
        duration_s: song length, seconds.
        onset_env: (N,) float32 librosa onset strength at ``sr / hop`` Hz (for duplicate detection).
    """

    beats: np.ndarray
    duration_s: float
    onset_env: np.ndarray


@dataclass
class MotionRhythm:
    """The dance's own cycle.

    Attributes:
        signal: name of the chosen signal ('pelvis_height', 'foot_diff' or 'speed').
        period: cycle length, motion frames (float, parabolic-refined autocorrelation peak).
        strength: normalised autocorrelation at ``period`` (0..1).
        phase: (T,) float64 unwrapped cycle phase, radians.
        speed: (T,) float64 mean marker speed, metres per motion frame (for BAS motion beats).
    """

    signal: str
    period: float
    strength: float
    phase: np.ndarray
    speed: np.ndarray


@dataclass
class SequenceAlignment:
    """Result for one sequence (one entry of ``tang_alignment.json``).

    Attributes:
        name, style: the sequence.
        scale: song frames (1/25 s) per motion frame; motion frame f is at song time
            ``offset_s + f * scale / 25`` seconds.
        offset_s: song time of motion frame 0, seconds.
        nominal_offset_s: ``start_position / 25`` from config.json, seconds.
        score: beat-level PLV of the own song at ``scale`` (0..1).
        shuffled_median, shuffled_p90: median and 90th percentile of the shuffled-pair scores.
        margin: ``score - shuffled_median``.
        rank: fraction of the shuffled songs whose score is below ``score``.
        n_shuffled: number of shuffled songs compared (copies of the own recording excluded).
        beats_per_cycle: tracked beats per motion cycle q (0 when none fits).
        beat_period_s: median interval of those tracked beats, seconds (0 when none fits).
        fitted_scale, fitted_offset_s: this sequence's own best fit. For a sequence that is not
            ``tempo_locked`` the fit is not trusted, and ``scale`` / ``offset_s`` are set to the
            median scale of the tempo-locked sequences and the nominal offset instead
            (:func:`run_study` does that).
        motion_signal, motion_period: the motion rhythm used (period in motion frames).
        bas_nominal, bas_aligned: BAS at (scale 1, nominal offset) and at (scale, offset_s).
        nominal_beat_phase: beat-level phase of the dance's cycle against the own song's beats at
            (scale, nominal offset), in beats, [-0.5, 0.5). If the nominal offsets were right, this
            would be about the same for every sequence.
        tempo_locked: the dance's cycle stays phase-locked to the own song's beat grid over the whole
            sequence at ``scale`` (score >= min_score, a beat level fits, scale inside the scan).
        own_beats_shuffled: margin >= min_margin and rank >= min_rank.
        usable_for_beat: ``tempo_locked and own_beats_shuffled``; only such sequences may teach or
            score beat alignment.
        reason: why not usable (empty when usable).
    """

    name: str
    style: str
    scale: float
    offset_s: float
    nominal_offset_s: float
    score: float
    shuffled_median: float
    shuffled_p90: float
    margin: float
    rank: float
    n_shuffled: int
    beats_per_cycle: int
    beat_period_s: float
    motion_signal: str
    motion_period: float
    bas_nominal: float
    bas_aligned: float
    nominal_beat_phase: float
    tempo_locked: bool
    own_beats_shuffled: bool
    usable_for_beat: bool
    reason: str = ""
    fitted_scale: float = float("nan")
    fitted_offset_s: float = float("nan")


# ---------------------------------------------------------------------------------------------
# motion side


def _highpass(x: np.ndarray, width: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    y = x - uniform_filter1d(x, width, mode="nearest")
    return (y - y.mean()) / (y.std() + 1e-12)


def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    x = x - x.mean()
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    a = np.fft.irfft(f * np.conj(f))[: max_lag + 1]
    return a / (a[0] + 1e-12)


def motion_rhythms(markers: np.ndarray, cfg: AlignConfig | None = None) -> list[MotionRhythm]:
    """The dance's candidate cycles (one per candidate signal), strongest first.

    Args:
        markers: (T, 23, 3) float world marker positions, metres, y up, motion frames.
        cfg: analysis parameters.

    Returns:
        list of :class:`MotionRhythm` (period in motion frames, phase (T,) radians), sorted by
        decreasing autocorrelation strength (the highest local autocorrelation maximum with a lag
        in [period_min, period_max]); signals without such a maximum are left out.

    Raises:
        DataError: wrong shape, fewer than ``4 * period_max`` frames, or no cycle found.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import butter, filtfilt, find_peaks, hilbert

    cfg = cfg or AlignConfig()
    m = np.asarray(markers, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (23, 3) or len(m) < 4 * cfg.period_max:
        raise DataError(f"markers must be (T>={4 * cfg.period_max}, 23, 3), got {m.shape}")
    speed = np.linalg.norm(np.diff(m, axis=0), axis=-1).mean(axis=1)
    speed = np.r_[speed[0], speed]
    cands = {
        "pelvis_height": m[:, 2, 1],
        "foot_diff": m[:, [9, 10, 11], 1].mean(1) - m[:, [18, 19, 20], 1].mean(1),
        "speed": gaussian_filter1d(speed, 1.0),
    }
    found: list[MotionRhythm] = []
    for name, sig in cands.items():
        x = _highpass(sig, 2 * cfg.period_max + 1)
        a = _acf(x, cfg.period_max + 2)
        lo, hi = cfg.period_min, cfg.period_max
        peaks = [k for k in find_peaks(a)[0] if lo <= k <= hi]
        if not peaks:
            continue
        k = max(peaks, key=lambda j: a[j])
        if a[k] < 0.05:
            continue
        y0, y1, y2 = a[k - 1], a[k], a[k + 1]
        den = y0 - 2 * y1 + y2
        p = k + (0.5 * (y0 - y2) / den if den < 0 else 0.0)
        bb, ba = butter(2, [2 * 0.7 / p, 2 * 1.4 / p], btype="band")
        phase = np.unwrap(np.angle(hilbert(filtfilt(bb, ba, x))))
        found.append(MotionRhythm(signal=name, period=float(p), strength=float(y1), phase=phase, speed=speed))
    if not found:
        raise DataError(f"no motion cycle between {cfg.period_min} and {cfg.period_max} frames")
    return sorted(found, key=lambda r: -r.strength)


def motion_rhythm(markers: np.ndarray, cfg: AlignConfig | None = None) -> MotionRhythm:
    """The strongest of :func:`motion_rhythms` (same arguments and errors)."""
    return motion_rhythms(markers, cfg)[0]


# ---------------------------------------------------------------------------------------------
# music side


def music_beats(audio_path: Path, cfg: AlignConfig | None = None, start_bpm: float = 120.0) -> MusicBeats:
    """Offline beats of a whole song with librosa (Ellis 2007).

    Args:
        audio_path: the song (any format :func:`livedance.data.audio_io.load_audio` reads).
        cfg: analysis parameters (sr, hop).
        start_bpm: the tracker's tempo prior, beats per minute.

    Raises:
        AudioError: unreadable audio. DataError: fewer than 8 beats found.
    """
    import librosa

    from livedance.data.audio_io import load_audio

    cfg = cfg or AlignConfig()
    y, sr = load_audio(audio_path, sr=cfg.sr)
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=cfg.hop)
    return beats_from_envelope(env, len(y) / sr, cfg, start_bpm)


def beats_from_envelope(env: np.ndarray, duration_s: float, cfg: AlignConfig, start_bpm: float = 120.0) -> MusicBeats:
    """Run librosa's beat tracker on an onset envelope (``cfg.sr / cfg.hop`` Hz).

    Raises:
        DataError: fewer than 8 beats found.
    """
    import librosa

    _, beats = librosa.beat.beat_track(
        onset_envelope=env, sr=cfg.sr, hop_length=cfg.hop, start_bpm=start_bpm, units="time"
    )
    beats = np.asarray(beats, dtype=np.float64)
    if len(beats) < 8:
        raise DataError(f"beat tracker found only {len(beats)} beats")
    return MusicBeats(beats=beats, duration_s=float(duration_s), onset_env=np.asarray(env, np.float32))


def _beats_per_cycle(cycle_s: float, beats: np.ndarray, tol: float, allowed: tuple[int, ...]) -> int | None:
    ibi = float(np.median(np.diff(beats)))
    ratio = cycle_s / ibi
    q = min(allowed, key=lambda c: abs(ratio / c - 1))
    return q if abs(ratio / q - 1) <= tol else None


def level_matched_beats(
    music: MusicBeats, cycle_s: float, cfg: AlignConfig, allowed: tuple[int, ...], cache: dict | None = None
) -> tuple[MusicBeats, int] | tuple[None, None]:
    """Return beats whose level fits the motion cycle, and beats per cycle q.

    If the tracker's beats do not give a q in ``allowed`` (see :data:`BEATS_PER_CYCLE`) for a motion
    cycle of ``cycle_s`` seconds (song time), the tracker is re-run with
    ``start_bpm = 60 q / cycle_s`` for each allowed q in turn. Returns ``(None, None)`` when nothing fits. ``cache`` (any dict, owned by
    the caller) memoises re-tracked beats by (song identity, start_bpm rounded to 2 BPM).
    """
    q = _beats_per_cycle(cycle_s, music.beats, cfg.q_tolerance, allowed)
    if q is not None:
        return music, q
    for q_try in allowed:
        bpm = 2.0 * round(30.0 * q_try / cycle_s)
        key = (id(music), bpm)
        if cache is not None and key in cache:
            mb = cache[key]
        else:
            try:
                mb = beats_from_envelope(music.onset_env, music.duration_s, cfg, start_bpm=bpm)
            except DataError:
                mb = None
            if cache is not None:
                cache[key] = mb
        if mb is None:
            continue
        q = _beats_per_cycle(cycle_s, mb.beats, cfg.q_tolerance, allowed)
        if q is not None:
            return mb, q
    return None, None


# ---------------------------------------------------------------------------------------------
# scoring


def _locking(phase: np.ndarray, beats: np.ndarray, scale: float, offset_s: float, q: int, harmonic: int) -> complex:
    """Complex mean ``mean_f exp(i h (theta(f) - 2 pi b(t(f)) / q))``; nan when under 80 % of the
    frames fall inside the beat grid."""
    t = offset_s + np.arange(len(phase)) * scale / TANG_FPS
    ok = (t > beats[0]) & (t < beats[-1])
    if ok.mean() < 0.8:
        return complex(float("nan"), float("nan"))
    bi = np.interp(t[ok], beats, np.arange(len(beats)))
    return complex(np.mean(np.exp(1j * harmonic * (phase[ok] - 2 * np.pi * bi / q))))


def _plv(phase: np.ndarray, beats: np.ndarray, scale: float, offset_s: float, q: int, harmonic: int) -> float:
    return float(abs(_locking(phase, beats, scale, offset_s, q, harmonic)))


def scan_scale(
    phase: np.ndarray, beats: np.ndarray, offset_s: float, q: int, cfg: AlignConfig
) -> tuple[float, float]:
    """Best scale by the cycle-level PLV, then the beat-level PLV (harmonic :func:`beat_harmonic`)
    refined within +-2 grid steps.

    Args:
        phase: (T,) motion cycle phase, radians. beats: (B,) beat times, s. offset_s: song time of
        motion frame 0, s. q: beats per motion cycle.

    Returns:
        (scale, beat-level PLV in 0..1); (nan, 0.0) when the motion does not fit inside the song.
    """
    scales = cfg.scales()
    cyc = np.array([_plv(phase, beats, s, offset_s, q, 1) for s in scales])
    if not np.isfinite(cyc).any():
        return float("nan"), 0.0
    i = int(np.nanargmax(cyc))
    # refine on the beat-level harmonic within +-2 steps
    fine = np.linspace(scales[max(i - 2, 0)], scales[min(i + 2, len(scales) - 1)], 17)
    h = beat_harmonic(q)
    beat = np.array([_plv(phase, beats, s, offset_s, q, h) for s in fine])
    j = int(np.nanargmax(beat)) if np.isfinite(beat).any() else 0
    return float(fine[j]), float(np.nan_to_num(beat[j]))


def motion_beats(speed: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Kinematic beats: local minima of the Gaussian-smoothed mean marker speed (BAS, Bailando).

    Args:
        speed: (T,) mean marker speed per motion frame. sigma_frames: smoothing, motion frames.

    Returns:
        (M,) int64 motion frame indices.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import argrelextrema

    return argrelextrema(gaussian_filter1d(speed, sigma_frames), np.less)[0]


def beat_alignment_score(
    music_beat_s: np.ndarray, motion_beat_s: np.ndarray, sigma_s: float, lo: float, hi: float
) -> float:
    """BAS (Li et al. 2021, AI Choreographer; as in Bailando's metrics): mean over the music beats
    in [lo, hi] seconds of ``exp(-d^2 / (2 sigma^2))``, d = distance to the nearest motion beat (s).
    Returns 0.0 when either set is empty."""
    mb = music_beat_s[(music_beat_s >= lo) & (music_beat_s <= hi)]
    if len(mb) == 0 or len(motion_beat_s) == 0:
        return 0.0
    d = np.min(np.abs(mb[:, None] - motion_beat_s[None, :]), axis=1)
    return float(np.mean(np.exp(-(d**2) / (2 * sigma_s**2))))


def best_offset(
    mbeat_frames: np.ndarray, beats: np.ndarray, scale: float, nominal_s: float, n_frames: int, cfg: AlignConfig
) -> tuple[float, float]:
    """Offset within +-half a beat of ``nominal_s`` that maximises BAS at ``scale``.

    Returns:
        (offset_s, BAS there).
    """
    ibi = float(np.median(np.diff(beats)))
    best = (nominal_s, -1.0)
    for d in np.arange(-0.5 * ibi, 0.5 * ibi + 1e-9, 0.01):
        o = nominal_s + d
        mt = o + mbeat_frames * scale / TANG_FPS
        bas = beat_alignment_score(beats, mt, cfg.bas_sigma_s, o, o + n_frames * scale / TANG_FPS)
        if bas > best[1]:
            best = (float(o), bas)
    return best


def same_recording(a: MusicBeats, b: MusicBeats) -> bool:
    """True when two songs are copies of one recording (durations within 0.1 s and onset envelopes
    over the first 60 s correlate above 0.9)."""
    if abs(a.duration_s - b.duration_s) > 0.1:
        return False
    n = min(len(a.onset_env), len(b.onset_env), 2600)
    r = np.corrcoef(a.onset_env[:n], b.onset_env[:n])[0, 1]
    return bool(r > 0.9)


# ---------------------------------------------------------------------------------------------
# the study


def align_sequence(
    seq: TangSequence,
    rhythms: list[MotionRhythm],
    songs: dict[str, MusicBeats],
    cfg: AlignConfig | None = None,
    cache: dict | None = None,
) -> SequenceAlignment:
    """Align one sequence against its own song and validate it against the other songs.

    Args:
        seq: the raw sequence. rhythms: :func:`motion_rhythms` of its markers; the first whose
            cycle fits a beat level of the own song is used.
        songs: sequence name -> :class:`MusicBeats` of every sequence's song (own one included).
        cfg: parameters. cache: a dict shared across calls (see :func:`level_matched_beats`).

    Returns:
        :class:`SequenceAlignment`.
    """
    cfg = cfg or AlignConfig()
    nominal = seq.start_position / TANG_FPS
    own_music, q, rhythm = None, None, rhythms[0]
    allowed = BEATS_PER_CYCLE[seq.style]
    for r in rhythms:
        own_music, q = level_matched_beats(songs[seq.name], r.period * 1.01 / TANG_FPS, cfg, allowed, cache)
        if own_music is not None:
            rhythm = r
            break
    cycle_s = rhythm.period * 1.01 / TANG_FPS  # song seconds, at the mid-scan scale
    mb = motion_beats(rhythm.speed, cfg.speed_sigma_frames)
    nominal_beats = songs[seq.name].beats
    bas_nom = beat_alignment_score(
        nominal_beats, nominal + mb / TANG_FPS, cfg.bas_sigma_s, nominal, nominal + seq.length / TANG_FPS
    )
    common = dict(
        name=seq.name, style=seq.style, nominal_offset_s=round(nominal, 4), motion_signal=rhythm.signal,
        motion_period=round(rhythm.period, 3), bas_nominal=round(bas_nom, 4),
    )
    nan = float("nan")
    if own_music is None:
        return SequenceAlignment(
            scale=1.0, offset_s=nominal, score=0.0, shuffled_median=nan, shuffled_p90=nan, margin=nan, rank=nan,
            n_shuffled=0, beats_per_cycle=0, beat_period_s=0.0, bas_aligned=round(bas_nom, 4), nominal_beat_phase=nan, tempo_locked=False,
            own_beats_shuffled=False, usable_for_beat=False,
            reason="no beat level of the song fits any motion cycle", fitted_scale=1.0, fitted_offset_s=nominal,
            **common,
        )
    scale, score = scan_scale(rhythm.phase, own_music.beats, nominal, q, cfg)
    if not np.isfinite(scale):
        scale, score = 1.0, 0.0
    shuffled = []
    for other, music in songs.items():
        if other == seq.name or same_recording(music, songs[seq.name]):
            continue
        om, oq = level_matched_beats(music, cycle_s, cfg, allowed, cache)
        if om is None:
            shuffled.append(0.0)
            continue
        # place the dance at the same nominal offset, moved earlier if the song is too short
        o = min(nominal, max(0.0, om.beats[-1] - seq.length * 1.05 / TANG_FPS))
        _, s_score = scan_scale(rhythm.phase, om.beats, o, oq, cfg)
        shuffled.append(s_score)
    sh = np.asarray(shuffled)
    med = float(np.median(sh)) if len(sh) else nan
    p90 = float(np.quantile(sh, 0.9)) if len(sh) else nan
    rank = float(np.mean(sh < score)) if len(sh) else nan
    margin = score - med
    offset, bas = best_offset(mb, own_music.beats, scale, nominal, seq.length, cfg)
    z = _locking(rhythm.phase, own_music.beats, scale, nominal, q, beat_harmonic(q))
    nom_phase = float(np.angle(z) / (2 * np.pi)) if np.isfinite(z) else nan
    reasons = []
    edge = min(scale - cfg.scale_min, cfg.scale_max - scale) < 2 * cfg.scale_step
    if score < cfg.min_score:
        reasons.append(f"score {score:.2f} < {cfg.min_score}")
    if edge:
        reasons.append(f"best scale {scale:.4f} at the edge of the scan")
    locked = not reasons
    if not margin >= cfg.min_margin:
        reasons.append(f"margin over shuffled median {margin:.2f} < {cfg.min_margin}")
    if not rank >= cfg.min_rank:
        reasons.append(f"beats only {rank:.0%} of shuffled songs (< {cfg.min_rank:.0%})")
    beats_shuffled = bool(margin >= cfg.min_margin and rank >= cfg.min_rank)
    return SequenceAlignment(
        scale=round(scale, 5), offset_s=round(offset, 4), score=round(score, 4), shuffled_median=round(med, 4),
        shuffled_p90=round(p90, 4), margin=round(margin, 4), rank=round(rank, 4), n_shuffled=len(sh),
        beats_per_cycle=int(q), beat_period_s=round(float(np.median(np.diff(own_music.beats))), 4),
        fitted_scale=round(scale, 5), fitted_offset_s=round(offset, 4), bas_aligned=round(bas, 4), nominal_beat_phase=round(nom_phase, 4), tempo_locked=locked,
        own_beats_shuffled=beats_shuffled, usable_for_beat=locked and beats_shuffled,
        reason="; ".join(reasons), **common,
    )


def run_study(
    seqs: list[TangSequence],
    cfg: AlignConfig | None = None,
    progress: Callable[[str], None] | None = None,
    only: set[str] | None = None,
) -> dict:
    """Run the whole study; returns the JSON-ready result (see :func:`write_alignment`).

    Args:
        seqs: all sequences (every one's song serves as a shuffled song for the others).
        cfg: parameters.
        progress: called with a stage label once per song analysed and once per sequence aligned.
        only: align only these names (default: all).

    Returns:
        ``{"version", "method", "config", "summary", "sequences": {name: entry}}``.
    """
    cfg = cfg or AlignConfig()
    songs: dict[str, MusicBeats] = {}
    for s in seqs:
        songs[s.name] = music_beats(s.audio_path, cfg)
        if progress:
            progress(f"beats {s.name}")
    out = []
    cache: dict = {}
    for s in seqs:
        if only and s.name not in only:
            continue
        out.append(asdict(align_sequence(s, motion_rhythms(s.markers, cfg), songs, cfg, cache)))
        if progress:
            progress(f"align {s.name}")
    apply_population_scale(out)
    return {
        "version": ALIGN_VERSION,
        "method": "see livedance/data/tang_align.py and docs/data.md",
        "config": asdict(cfg),
        "summary": summarise(out),
        "sequences": {d["name"]: d for d in out},
    }


def apply_population_scale(entries: list[dict]) -> None:
    """In place: give every entry that is not ``tempo_locked`` the median scale of the tempo-locked
    entries (the population's motion rate) and its nominal offset; ``fitted_*`` keep its own fit."""
    locked = [e["scale"] for e in entries if e["tempo_locked"]]
    if not locked:
        return
    med = round(float(np.median(locked)), 5)
    for e in entries:
        if not e["tempo_locked"]:
            e["scale"], e["offset_s"] = med, e["nominal_offset_s"]
            e["reason"] = (e["reason"] + "; " if e["reason"] else "") + (
                f"uses the tempo-locked median scale {med} and the nominal offset"
            )


def summarise(entries: list[dict]) -> dict:
    """Study-level figures: counts, scale statistics of the tempo-locked sequences, and the
    Rayleigh consistency R (0..1) of their nominal beat phases, with the Rayleigh test's p-value
    ``exp(-n R^2)`` (Fisher 1993, Sec. 4.3; a small p means the nominal offsets share a beat phase)."""
    locked = [e for e in entries if e["tempo_locked"]]
    scales = np.array([e["fitted_scale"] for e in locked])
    ph = np.array([e["nominal_beat_phase"] for e in locked], dtype=np.float64)
    r = float(abs(np.mean(np.exp(2j * np.pi * ph)))) if len(ph) else float("nan")
    return {
        "n_sequences": len(entries),
        "n_tempo_locked": len(locked),
        "n_own_beats_shuffled": sum(bool(e["own_beats_shuffled"]) for e in entries),
        "n_usable_for_beat": sum(bool(e["usable_for_beat"]) for e in entries),
        "usable_for_beat": [e["name"] for e in entries if e["usable_for_beat"]],
        "tempo_locked_scale_median": round(float(np.median(scales)), 5) if len(scales) else None,
        "tempo_locked_scale_min": round(float(scales.min()), 5) if len(scales) else None,
        "tempo_locked_scale_max": round(float(scales.max()), 5) if len(scales) else None,
        "nominal_phase_consistency_R": round(r, 4),
        "nominal_phase_rayleigh_p": round(float(np.exp(-len(ph) * r * r)), 4) if len(ph) else None,
    }


def write_alignment(result: dict, path: Path = ALIGNMENT_PATH) -> Path:
    """Write :func:`run_study`'s result as indented JSON (NaN written as null). Returns the path."""

    def clean(v):
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    from livedance.atomic import atomic_target

    with atomic_target(path) as tmp:  # training reads it: never half a file
        tmp.write_text(json.dumps(clean(result), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


def load_alignment(path: str | Path | None = None) -> dict[str, dict]:
    """Read ``tang_alignment.json``: sequence name -> entry (keys as in :class:`SequenceAlignment`).

    Raises:
        DataError: the file is missing or malformed.
    """
    p = Path(path) if path is not None else ALIGNMENT_PATH
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        seqs = data["sequences"]
    except FileNotFoundError as err:
        raise DataError(f"alignment file {p} not found; run `livedance data align-tang`") from err
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(f"alignment file {p} is malformed ({err})") from err
    for name, e in seqs.items():
        if not {"scale", "offset_s", "usable_for_beat"} <= set(e):
            raise DataError(f"alignment file {p}: entry {name!r} lacks scale/offset_s/usable_for_beat")
    return seqs
