"""Scoring causal beat trackers: reference grids, announced times, F-measure, start-up figures.

Causal scoring rule used across livedance: a beat counts at the time a live consumer could have
acted on it, ``max(time_s, reported_at_s)`` (:func:`announced_times`). A beat announced ahead of time
counts at its predicted time; a beat reported after it happened counts at the report time. Scores
are mir_eval's F-measure with a +-70 ms window (Dixon 2001; mir_eval.beat.f_measure). "Untrimmed"
scores every beat; "trimmed" first applies mir_eval.beat.trim_beats (drops beats before 5 s) to
reference and estimate, as mir_eval's own evaluate() does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from livedance.beats.grid import BeatEvent
from livedance.errors import DataError

#: mir_eval's standard beat F-measure window, seconds.
F_WINDOW_S = 0.07


def load_beat_annotations(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``.beats`` file: one beat a line, ``time_in_seconds<TAB>position_in_bar``.

    Returns:
        (times, positions): (B,) float64 seconds and (B,) int64 bar positions (1 = downbeat;
        0 where the file has no position column).

    Raises:
        DataError: if the file is missing or a line does not parse.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"beat annotation file not found: {path}")
    times, pos = [], []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            times.append(float(parts[0]))
            pos.append(int(float(parts[1])) if len(parts) > 1 else 0)
        except ValueError as err:
            raise DataError(f"{path}:{i}: expected 'time<TAB>position', got {line!r}") from err
    if not times:
        raise DataError(f"{path}: no beats in the file")
    return np.asarray(times), np.asarray(pos, dtype=np.int64)


def midi_beat_grid(path: str | Path, duration_s: float) -> np.ndarray:
    """Beat times of a MIDI file's tempo map (one beat per quarter note) from tick 0 to ``duration_s``.

    Follows every ``set_tempo`` event (microseconds per quarter note) of all tracks, with the file's
    ticks_per_beat; parsed with ``mido``.

    Returns:
        (B,) float64 beat times in seconds, starting at 0.0.

    Raises:
        DataError: if the file cannot be read as MIDI, has no positive ticks per beat or a tempo of 0, or
            ``duration_s`` is not a finite number of seconds.
    """
    import mido

    if not np.isfinite(duration_s):
        raise DataError(f"MIDI beat grid of {path}: duration {duration_s} s; expected a finite number of seconds")

    try:
        mid = mido.MidiFile(str(path))
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read MIDI file {path}: {err}") from err
    tpb = mid.ticks_per_beat
    if not (isinstance(tpb, int) and tpb > 0):
        raise DataError(f"MIDI file {path}: ticks_per_beat {tpb!r}; expected a positive whole number")
    changes: list[tuple[int, int]] = []  # (tick, microseconds per beat)
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                if msg.tempo <= 0:  # the beats would never advance
                    raise DataError(f"MIDI file {path}: set_tempo of {msg.tempo} microseconds per beat at tick "
                                    f"{tick}; expected a positive tempo")
                changes.append((tick, msg.tempo))
    changes.sort(key=lambda c: c[0])  # stable: at equal ticks the later event in file order wins
    if not changes or changes[0][0] > 0:
        changes.insert(0, (0, 500000))  # MIDI default: 120 BPM
    beats, t, tick_prev, tempo = [], 0.0, 0, changes[0][1]
    ci, beat_tick = 1, 0
    while t <= duration_s:
        # advance to the next beat tick, crossing tempo changes
        target = beat_tick
        while ci < len(changes) and changes[ci][0] <= target:
            t += (changes[ci][0] - tick_prev) / tpb * tempo / 1e6
            tick_prev, tempo = changes[ci][0], changes[ci][1]
            ci += 1
        t_beat = t + (target - tick_prev) / tpb * tempo / 1e6
        if t_beat > duration_s:
            break
        beats.append(t_beat)
        beat_tick += tpb
    return np.asarray(beats)


def align_grid_to_onsets(
    grid: np.ndarray, audio: np.ndarray, sample_rate: int, search_s: float = 0.045, min_strength: float = 3.0,
    smooth_s: float = 4.0, min_onsets: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """A chart's constant-tempo beat grid, locally re-aligned to the recording's onsets (offline reference).

    A hand-made note chart (Armygeddon's ``notes.mid``: a Frets on Fire chart at one constant tempo) puts
    every beat on an ideal grid, while the recording drifts around it by some tens of milliseconds from
    section to section (a performed recording; the drift is also negative, so it is not the onset
    envelope's own delay). A listener hears the performed beats. This keeps the chart's beats and their
    global alignment and corrects only the local drift:

    1. onset strength at 1.45 ms resolution (librosa ``onset_strength``: 1024-sample STFT, hop 64 at
       44.1 kHz, lag-1 spectral flux of the log-mel spectrum, no max filter);
    2. per chart beat g, the strongest peak within ``g +- search_s`` (half a 16th note at 170 BPM) is a
       *strong onset* when it is at least ``min_strength`` times the envelope's median over g +- 0.2 s;
       its offset is o_g = t_peak - g;
    3. the correction of beat g is the median of the offsets of the strong onsets within ``g +- smooth_s``
       minus the median over the whole recording (so the chart's global alignment is kept), or 0 where
       fewer than ``min_onsets`` strong onsets lie in that span.

    Args:
        grid: (B,) float64 chart beat times, seconds, ascending.
        audio: (N,) or (N, C) float samples of the recording (mixed down).
        sample_rate: Hz of ``audio``.
        search_s, min_strength, smooth_s, min_onsets: as above (seconds, ratio, seconds, count).
    Returns:
        (aligned, correction): (B,) float64 seconds each; aligned = grid + correction.
    Raises:
        DataError: an empty or non-ascending grid, empty audio, or a non-positive sample rate.
    """
    import librosa

    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or len(grid) == 0 or np.any(np.diff(grid) <= 0):
        raise DataError(f"beat grid: expected (B,) ascending seconds, got shape {grid.shape}")
    if sample_rate <= 0:
        raise DataError(f"sample rate {sample_rate}: expected a positive rate in Hz")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.size == 0:
        raise DataError("audio: no samples")
    hop, n_fft = max(1, round(64 * sample_rate / 44100)), 1024
    env = librosa.onset.onset_strength(y=x, sr=sample_rate, hop_length=hop, n_fft=n_fft, lag=1, max_size=1)
    t = librosa.frames_to_time(np.arange(len(env)), sr=sample_rate, hop_length=hop, n_fft=n_fft)
    offs = np.full(len(grid), np.nan)
    # t and grid ascend: each window is a slice found by bisection (O(B log n), not O(B n))
    near_lo, near_hi = np.searchsorted(t, grid - search_s, "right"), np.searchsorted(t, grid + search_s, "left")
    loc_lo, loc_hi = np.searchsorted(t, grid - 0.2, "right"), np.searchsorted(t, grid + 0.2, "left")
    for i, g in enumerate(grid):
        a, b = near_lo[i], near_hi[i]
        if b - a < 3:
            continue
        j = a + int(np.argmax(env[a:b]))
        local = np.median(env[loc_lo[i]:loc_hi[i]])
        if env[j] >= min_strength * local and env[j] > 0:
            offs[i] = t[j] - g
    strong = np.isfinite(offs)
    correction = np.zeros(len(grid))
    if strong.sum() >= min_onsets:
        centre = float(np.median(offs[strong]))
        lo, hi = np.searchsorted(grid, grid - smooth_s, "left"), np.searchsorted(grid, grid + smooth_s, "right")
        for i in range(len(grid)):
            span = offs[lo[i]:hi[i]]
            span = span[np.isfinite(span)]
            if len(span) >= min_onsets:
                correction[i] = float(np.median(span)) - centre
    return grid + correction, correction


def announced_times(events: Iterable[BeatEvent]) -> np.ndarray:
    """Times at which a live consumer could act on each beat: max(time_s, reported_at_s), (B,) seconds."""
    return np.asarray([max(e.time_s, e.reported_at_s) for e in events], dtype=np.float64)


def f_measure(reference: np.ndarray, estimate: np.ndarray, trim: bool = False) -> float:
    """mir_eval beat F-measure (70 ms window); with ``trim`` both lists lose beats before 5 s first."""
    import mir_eval

    ref = np.sort(np.asarray(reference, dtype=np.float64))
    est = np.sort(np.asarray(estimate, dtype=np.float64))
    if trim:
        ref, est = mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(est)
    if ref.size == 0 or est.size == 0:
        return 0.0
    return float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=F_WINDOW_S))


def music_start_s(audio: np.ndarray, sample_rate: int, threshold_db: float = -50.0) -> float:
    """First time (seconds) at which the 10 ms RMS of ``audio`` ((N,) float) exceeds ``threshold_db`` dBFS."""
    n = max(1, int(sample_rate * 0.01))
    m = len(audio) // n
    if m == 0:
        return 0.0
    rms = np.sqrt(np.mean(np.asarray(audio[: m * n], np.float64).reshape(m, n) ** 2, axis=1))
    loud = np.flatnonzero(rms > 10 ** (threshold_db / 20))
    return float(loud[0] * n / sample_rate) if loud.size else float("nan")


def first_correct_beat_s(reference: np.ndarray, estimate: np.ndarray, window_s: float = F_WINDOW_S) -> float:
    """Time (seconds, same clock) of the first estimated beat within ``window_s`` of a reference beat; nan if none."""
    ref = np.asarray(reference, dtype=np.float64)
    for t in np.sort(np.asarray(estimate, dtype=np.float64)):
        if ref.size and np.min(np.abs(ref - t)) <= window_s:
            return float(t)
    return float("nan")


def tempo_settling_s(events: list[BeatEvent], reference_bpm: float, tolerance: float = 0.04) -> float:
    """Report time (stream seconds) from which every announced beat's bpm stays within ``tolerance``
    (relative, 4 % as in the MIREX tempo task) of ``reference_bpm``; nan if it never settles."""
    ok = np.asarray([abs(e.bpm / reference_bpm - 1.0) <= tolerance for e in events], dtype=bool)
    if ok.size == 0 or not ok[-1]:
        return float("nan")
    bad = np.flatnonzero(~ok)
    first = 0 if bad.size == 0 else int(bad[-1]) + 1
    return float(events[first].reported_at_s)
