"""Tempo from the DJ: an Ableton Link session as a :class:`~livedance.beats.grid.BeatGrid`.

Ableton Link (https://ableton.github.io/link/) shares one tempo and beat timeline between the peers
of a local network (DJ software, Ableton Live, Traktor, Bitwig, VJ tools). :class:`LinkBeatGrid`
joins the session through the ``aalink`` package and answers the BeatGrid questions on the
livedance stream clock: stream time t (seconds, sample 0 = 0.0) is clock time ``stream_start + t``
on ``time.perf_counter``. When the session has peers, :class:`~livedance.beats.grid.PreferLink` uses
this grid instead of the audio tracker's estimate.

aalink needs an asyncio event loop at construction; this class makes a private one and never runs
it (the tempo, beat and phase properties work without it), so no thread is started. Call
:meth:`LinkBeatGrid.close` (or use it as a context manager) to leave the session.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import numpy as np

from livedance.errors import ConfigError, LivedanceError


class LinkBeatGrid:
    """An Ableton Link session seen as a beat grid on the stream clock.

    Args:
        bpm: tempo proposed to the session if it is empty (a session with peers keeps its tempo).
        quantum: beats per bar for the bar phase (Link's quantum; 4 = 4/4).
        stream_start: clock time (seconds on ``clock``) of stream sample 0; default: now.
        clock: the monotonic clock, ``time.perf_counter`` by default.

    Raises:
        ConfigError: if bpm is outside Link's 20..999 range or quantum is not positive.
        LivedanceError: if aalink cannot join a session (its error named; the private event loop is closed).
    """

    def __init__(
        self,
        bpm: float = 120.0,
        quantum: float = 4.0,
        stream_start: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not 20.0 <= bpm <= 999.0:
            raise ConfigError(f"Link tempo must be 20..999 BPM, got {bpm}")
        if quantum <= 0:
            raise ConfigError(f"Link quantum must be > 0 beats, got {quantum}")
        import aalink

        self.clock = clock
        self.stream_start = clock() if stream_start is None else float(stream_start)
        self._loop = asyncio.new_event_loop()

        async def _make() -> "aalink.Link":
            return aalink.Link(float(bpm))

        try:
            self._link = self._loop.run_until_complete(_make())
            self._link.quantum = float(quantum)
            self._link.enabled = True
        except Exception as e:  # aalink's own errors (e.g. no network interface for Link's UDP multicast)
            self._loop.close()
            self._loop = None
            raise LivedanceError(f"Ableton Link: aalink could not join a session ({type(e).__name__}: {e}); run "
                                 "without --link, or check that the network allows Link's UDP multicast") from e

    # ------------------------------------------------------------ session
    @property
    def num_peers(self) -> int:
        """Number of other peers in the Link session (0 when alone)."""
        return int(self._link.num_peers)

    @property
    def quantum(self) -> float:
        """Beats per bar used for :meth:`downbeat_phase`."""
        return float(self._link.quantum)

    def set_tempo(self, bpm: float) -> None:
        """Propose a tempo (BPM) to the session; every peer follows it.

        Raises:
            ConfigError: if bpm is outside 20..999.
        """
        if not 20.0 <= bpm <= 999.0:
            raise ConfigError(f"Link tempo must be 20..999 BPM, got {bpm}")
        self._link.tempo = float(bpm)

    def close(self) -> None:
        """Leave the session (idempotent)."""
        if self._loop is not None:
            self._link.enabled = False
            self._loop.close()
            self._loop = None

    def __enter__(self) -> "LinkBeatGrid":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ BeatGrid
    @property
    def bpm(self) -> float:
        """Session tempo, beats per minute."""
        return float(self._link.tempo)

    def beat_at(self, t_s: float) -> float:
        """Session beat (Link's timeline, beats) at stream time ``t_s`` seconds, extrapolated from now
        at the current tempo."""
        beat_now, now = float(self._link.beat), self.clock()
        return beat_now + (self.stream_start + t_s - now) * self.bpm / 60.0

    def beat_phase(self, t_s: float) -> float:
        """Beat phase at stream time ``t_s``, in [0, 1): 0 on a session beat."""
        ph = self.beat_at(t_s) % 1.0
        return 0.0 if ph >= 1.0 else float(ph)

    def downbeat_phase(self, t_s: float) -> float:
        """Bar phase at stream time ``t_s`` in [0, 1) (Link's phase over the quantum): 0 on a bar start."""
        ph = (self.beat_at(t_s) % self.quantum) / self.quantum
        return 0.0 if ph >= 1.0 else float(ph)

    def predict_beats(self, n: int, after_s: float) -> np.ndarray:
        """The next ``n`` session beats strictly after stream time ``after_s``, (n,) float64 stream seconds."""
        b = self.beat_at(after_s)
        k = np.floor(b) + 1.0 + np.arange(max(int(n), 0))
        return after_s + (k - b) * 60.0 / self.bpm
