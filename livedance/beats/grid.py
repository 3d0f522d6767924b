"""The beat grid interface shared by the audio beat tracker and Ableton Link, and the beat event.

A beat grid answers three questions about one clock (seconds): the tempo now, the beat phase at a
time (0 on a beat, rising linearly to 1 at the next), and the next beat times. Both
:class:`livedance.beats.tracker.BeatTracker` (stream clock: sample 0 of the audio = 0.0 s) and
:class:`livedance.beats.link.LinkBeatGrid` (the same stream clock, mapped to Link's session clock
through the stream's start time) implement it, so the rest of the pipeline can take either;
:class:`PreferLink` picks Link while it has peers and the tracker otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class BeatEvent:
    """One beat as the live tracker announced it.

    Attributes:
        time_s: when the beat happens, stream clock seconds (sample 0 = 0.0).
        bpm: tempo at the time of the announcement, beats per minute.
        confidence: tracker confidence in [0, 1] when it announced the beat.
        reported_at_s: stream time (seconds) by which the caller has pushed the audio that produced
            the announcement: the end of the analysis hop that triggered it, plus the resampler's
            hold-back at input rates other than 44.1 kHz (an upper bound,
            :func:`livedance.beats.tracker.resampler_hold_s`; pushing in larger blocks adds their
            length). A beat predicted ahead has ``reported_at_s <= time_s``; the difference is how
            early it was announced.
        is_downbeat: True if the tracker estimates the beat starts a bar (False while unsure).
    """

    time_s: float
    bpm: float
    confidence: float
    reported_at_s: float
    is_downbeat: bool = False


@runtime_checkable
class BeatGrid(Protocol):
    """A tempo and beat phase on one clock (seconds). See the module docstring."""

    @property
    def bpm(self) -> float:
        """Current tempo in beats per minute; 0.0 while unknown."""
        ...

    def beat_phase(self, t_s: float) -> float:
        """Beat phase at ``t_s`` seconds, in [0, 1): 0 on a beat. 0.0 while the tempo is unknown."""
        ...

    def predict_beats(self, n: int, after_s: float) -> np.ndarray:
        """The next ``n`` beat times strictly after ``after_s``, (n,) float64 seconds ascending; (0,) while unknown."""
        ...


def grid_phase(t_s: float, anchor_s: float, period_s: float) -> float:
    """Phase in [0, 1) of ``t_s`` on a grid with a beat at ``anchor_s`` and period ``period_s`` (seconds)."""
    ph = ((t_s - anchor_s) / period_s) % 1.0
    return 0.0 if ph >= 1.0 else float(ph)  # guard against 1.0 from rounding of tiny negatives


def grid_beats(n: int, after_s: float, anchor_s: float, period_s: float) -> np.ndarray:
    """The ``n`` grid times ``anchor_s + k * period_s`` strictly after ``after_s``, (n,) float64 seconds."""
    k0 = np.floor((after_s - anchor_s) / period_s) + 1.0
    times = anchor_s + (k0 + np.arange(max(int(n), 0))) * period_s
    # floor() rounding can leave the first time equal to after_s; shift by one beat then.
    if times.size and times[0] <= after_s:
        times = times + period_s
    return times


class PreferLink:
    """A beat grid that follows Ableton Link while the Link session has peers, else the tracker.

    Args:
        tracker: the audio beat grid (usually a :class:`~livedance.beats.tracker.BeatTracker`).
        link: a :class:`~livedance.beats.link.LinkBeatGrid` (anything with ``num_peers`` and the
            :class:`BeatGrid` methods), or None for the tracker alone.

    The DJ's tempo wins: a Link session with at least one peer is a tempo and phase someone set on
    purpose, so it overrides the estimate from audio.
    """

    def __init__(self, tracker: BeatGrid, link: "BeatGrid | None" = None) -> None:
        self.tracker = tracker
        self.link = link

    @property
    def source(self) -> BeatGrid:
        """The grid in use now: the Link grid if it has peers, else the tracker."""
        if self.link is not None and getattr(self.link, "num_peers", 0) > 0:
            return self.link
        return self.tracker

    @property
    def bpm(self) -> float:
        """Tempo of :attr:`source`, beats per minute."""
        return self.source.bpm

    def beat_phase(self, t_s: float) -> float:
        """Beat phase of :attr:`source` at ``t_s`` (stream seconds), in [0, 1)."""
        return self.source.beat_phase(t_s)

    def predict_beats(self, n: int, after_s: float) -> np.ndarray:
        """Next ``n`` beats of :attr:`source` after ``after_s`` (stream seconds)."""
        return self.source.predict_beats(n, after_s)
