"""``livedance beats FILE``: the beat times a live consumer would have received for an audio file."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from livedance.cli import app


@app.command("beats")
def beats(
    file: Path = typer.Argument(..., help="Audio file (wav, flac, ogg, mp3, opus)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: times, bpm, confidence, latency."),
    offline: bool = typer.Option(
        False, "--offline", help="Non-causal reference instead: librosa.beat.beat_track on the whole file."
    ),
) -> None:
    """Print beat times in seconds, one per line (file time, sample 0 = 0.0 s).

    Default (causal): the file is pushed through the live BeatTracker in 512-sample blocks, and each beat is printed at the time a live consumer could have acted on it, max(predicted beat time, time the tracker announced it). Beats announced ahead are printed at their predicted time; beats heard before they were announced at the announcement time.

    --json adds, per beat, the predicted time, the announcement time (reported_at_s), bpm, confidence and downbeat flag, and "latency_s" = reported_at_s - time_s per beat (negative: announced ahead). --offline prints librosa's non-causal beat_track (needs librosa).

    Example: livedance beats song.ogg --json > beats.json
    """
    import numpy as np

    from livedance.audio.base import validate_sample_rate
    from livedance.data.audio_io import load_audio

    audio, sr = load_audio(file)
    validate_sample_rate(sr, f"audio file {file}", "resample it, e.g. sox IN -r 48000 OUT")  # as live inputs
    if offline:
        try:
            import librosa
        except ImportError as err:  # pragma: no cover - librosa is a dev dependency
            from livedance.errors import ConfigError

            raise ConfigError("--offline needs librosa: pip install 'livedance[dev]'") from err
        tempo, times = librosa.beat.beat_track(y=audio, sr=sr, units="time")
        times = [float(t) for t in times]
        payload = {
            "mode": "offline",
            "file": str(file),
            "times": times,
            "bpm": float(np.atleast_1d(tempo)[0]),
            "confidence": None,
            "latency_s": None,
        }
    else:
        from livedance.beats.scoring import announced_times
        from livedance.beats.tracker import TrackerConfig, track

        if not 8000 <= sr <= 96000:
            from livedance.data.audio_io import resample

            audio, sr = resample(audio, sr, 44100), 44100
        events = track(audio, TrackerConfig(sample_rate=sr), block=512)
        times = [round(float(t), 6) for t in announced_times(events)]
        payload = {
            "mode": "causal",
            "file": str(file),
            "times": times,
            "bpm": float(np.median([e.bpm for e in events])) if events else 0.0,
            "confidence": float(np.mean([e.confidence for e in events])) if events else 0.0,
            "latency_s": [round(e.reported_at_s - e.time_s, 6) for e in events],
            "beats": [
                {
                    "time_s": round(e.time_s, 6),
                    "reported_at_s": round(e.reported_at_s, 6),
                    "bpm": round(e.bpm, 3),
                    "confidence": round(e.confidence, 4),
                    "is_downbeat": e.is_downbeat,
                }
                for e in events
            ],
        }
    if as_json:
        typer.echo(json.dumps(payload))
    else:
        for t in payload["times"]:
            typer.echo(f"{t:.3f}")
