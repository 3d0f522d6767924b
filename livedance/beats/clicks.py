"""Synthetic click tracks in the style of JACK's ``jack_metro`` (a metronome), for tests and benchmarks.

``jack_metro -b BPM`` plays a sine burst per beat: 880 Hz, amplitude 0.5, a short linear attack and a
decay over about 100 ms. :func:`click_track` makes the same signal offline, optionally with a higher
pitched accent on the first beat of each bar.
"""

from __future__ import annotations

import numpy as np

from livedance.errors import ConfigError


def click_track(
    bpm: float,
    duration_s: float,
    sample_rate: int = 44100,
    start_s: float = 0.0,
    freq_hz: float = 880.0,
    amplitude: float = 0.5,
    click_s: float = 0.1,
    attack_s: float = 0.001,
    accent_every: int = 0,
    accent_freq_hz: float = 1760.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A metronome signal and its beat times.

    Args:
        bpm: tempo, beats per minute (> 0).
        duration_s: length of the signal, seconds.
        sample_rate: Hz.
        start_s: time of the first click, seconds (>= 0; silence before it).
        freq_hz, amplitude: sine frequency and peak amplitude of a click.
        click_s, attack_s: click length and linear attack, seconds (exponential decay after the attack).
        accent_every: if > 0, every ``accent_every``-th click (the first included) uses ``accent_freq_hz``.

    Returns:
        (audio, beats): (N,) float32 mono with N = round(duration_s * sample_rate), and (B,) float64
        click onset times in seconds.

    Raises:
        ConfigError: on a non-positive tempo, duration or sample rate, or a negative ``start_s``.
    """
    if bpm <= 0 or duration_s <= 0 or sample_rate <= 0:
        raise ConfigError(f"click_track needs bpm, duration_s and sample_rate > 0, got {bpm}, {duration_s}, {sample_rate}")
    if not start_s >= 0:
        raise ConfigError(f"click_track start_s must be >= 0 seconds (the time of the first click), got {start_s}")
    n = int(round(duration_s * sample_rate))
    audio = np.zeros(n, np.float32)
    period = 60.0 / bpm
    beats = np.arange(start_s, duration_s, period)
    m = int(round(click_s * sample_rate))
    t = np.arange(m) / sample_rate
    env = np.minimum(t / max(attack_s, 1e-6), 1.0) * np.exp(-np.maximum(t - attack_s, 0.0) / (click_s / 5))
    for i, b in enumerate(beats):
        f = accent_freq_hz if accent_every > 0 and i % accent_every == 0 else freq_hz
        s0 = int(round(b * sample_rate))
        seg = (amplitude * env * np.sin(2 * np.pi * f * t)).astype(np.float32)
        end = min(n, s0 + m)
        audio[s0:end] += seg[: end - s0]
    return audio, beats
