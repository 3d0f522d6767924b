"""Audio file reading: soundfile for decoding, mono mixdown, soxr for resampling.

Formats are whatever libsndfile >= 1.1 decodes: wav, flac, ogg/vorbis, opus, mp3.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from livedance.errors import AudioError

#: Shortest audio accepted by :func:`load_audio` unless the caller asks otherwise (seconds).
MIN_DURATION_S = 0.1


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Mix (N,) or (N, C) audio down to (N,) float32 by averaging the channels.

    Raises:
        AudioError: if ``audio`` is not 1-D or 2-D.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise AudioError(f"audio must have shape (samples,) or (samples, channels), got {audio.shape}")
    return audio.mean(axis=1, dtype=np.float32) if audio.shape[1] > 1 else audio[:, 0]


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample (N,) or (N, C) float audio from ``sr_in`` Hz to ``sr_out`` Hz with soxr (HQ).

    Returns float32 of length round(N * sr_out / sr_in). Returns the input unchanged when the
    rates match. Raises AudioError on a non-positive rate.
    """
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"sample rates must be positive, got {sr_in} Hz -> {sr_out} Hz")
    audio = np.asarray(audio, dtype=np.float32)
    if sr_in == sr_out:
        return audio
    import soxr

    return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def load_audio(
    path: str | Path,
    sr: int | None = None,
    mono: bool = True,
    offset_s: float = 0.0,
    duration_s: float | None = None,
    min_duration_s: float = MIN_DURATION_S,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 in [-1, 1].

    Args:
        path: wav, flac, ogg, opus or mp3 file.
        sr: target sample rate in Hz, may be fractional (resampled with soxr; the rate returned is then
            ``int(sr)``), or None to keep the file's rate.
        mono: mix down to one channel (shape (N,)); otherwise shape (N, C).
        offset_s, duration_s: the excerpt to read, in seconds of file time (offset_s >= 0, duration_s > 0).
        min_duration_s: shorter audio (after the excerpt) raises AudioError.

    Returns:
        (audio, sample_rate): audio float32 (N,) or (N, C); sample_rate in Hz.

    Raises:
        AudioError: the file is missing, unreadable, in an unknown format, empty or too short.
            The message names the file and the format libsndfile saw.
    """
    import soundfile as sf

    path = Path(path)
    if path.is_dir():
        raise AudioError(f"audio file {path} is a folder; expected an audio file (wav, flac, ogg, opus or mp3)")
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    if not (isinstance(offset_s, numbers.Real) and np.isfinite(offset_s) and offset_s >= 0):
        raise AudioError(f"audio file {path}: the excerpt's start {offset_s!r} s is not a finite number >= 0 "
                         "(seconds from the file's start)")
    if duration_s is not None and not (isinstance(duration_s, numbers.Real) and np.isfinite(duration_s) and duration_s > 0):
        raise AudioError(f"audio file {path}: the excerpt's duration {duration_s!r} s is not a finite number > 0")
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(
            f"cannot read audio file {path} (suffix {path.suffix or 'none'!r}): {str(err).rstrip('.')}. "
            "Expected wav, flac, ogg, opus or mp3."
        ) from None
    fmt = f"{info.format}/{info.subtype}, {info.samplerate} Hz, {info.channels} ch"
    start = int(round(offset_s * info.samplerate))
    stop = None if duration_s is None else start + int(round(duration_s * info.samplerate))
    try:
        audio, file_sr = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioError(f"cannot decode audio file {path} ({fmt}): {err}") from None
    if audio.shape[0] == 0:
        raise AudioError(f"audio file {path} ({fmt}) holds no samples in the requested range")
    if audio.shape[0] / file_sr < min_duration_s:
        raise AudioError(
            f"audio file {path} ({fmt}) is too short: {audio.shape[0] / file_sr:.3f} s, "
            f"need at least {min_duration_s} s"
        )
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"audio file {path} ({fmt}) holds NaN or inf samples")
    if mono:
        audio = to_mono(audio)
    if sr is not None and sr != file_sr:
        audio = resample(audio, file_sr, sr)
        file_sr = sr
    return audio, int(file_sr)
