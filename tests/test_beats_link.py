"""Ableton Link as the beat grid: a second aalink peer on loopback sets tempo and phase."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from livedance.beats import BeatTracker, PreferLink
from livedance.errors import ConfigError

aalink = pytest.importorskip("aalink", reason="aalink (Ableton Link) is not installed")


class _Peer:
    """Another Link peer (as a DJ app would be), on its own never-run event loop."""

    def __init__(self, bpm: float) -> None:
        self.loop = asyncio.new_event_loop()

        async def make():
            return aalink.Link(bpm)

        self.link = self.loop.run_until_complete(make())
        self.link.enabled = True

    def close(self) -> None:
        self.link.enabled = False
        self.loop.close()


@pytest.fixture()
def session():
    from livedance.beats.link import LinkBeatGrid

    grid = LinkBeatGrid(bpm=100.0, quantum=4.0)
    peer = _Peer(100.0)
    deadline = time.monotonic() + 3.0
    while (grid.num_peers == 0 or peer.link.num_peers == 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if grid.num_peers == 0:
        grid.close()
        peer.close()
        pytest.skip("Link peers did not discover each other in 3 s (multicast on loopback blocked?)")
    yield grid, peer
    grid.close()
    peer.close()


def test_peer_tempo_and_phase_reach_the_grid(session) -> None:
    grid, peer = session
    peer.link.tempo = 137.0
    peer.link.quantum = 4.0
    deadline = time.monotonic() + 3.0
    while abs(grid.bpm - 137.0) > 0.01 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert grid.bpm == pytest.approx(137.0, abs=0.01)
    # Phase: the peer's beat now equals the grid's beat at stream time "now" (mod 1 beat).
    t_stream = grid.clock() - grid.stream_start
    peer_phase = float(peer.link.beat) % 1.0
    d = (grid.beat_phase(t_stream) - peer_phase + 0.5) % 1.0 - 0.5
    assert abs(d) < 0.02  # 0.02 beats = 9 ms at 137 BPM
    nxt = grid.predict_beats(4, t_stream)
    assert nxt.shape == (4,) and np.all(nxt > t_stream)
    assert np.allclose(np.diff(nxt), 60.0 / 137.0, atol=1e-6)
    for t in nxt:
        ph = grid.beat_phase(float(t))  # Link's clock moves on between calls: allow 1e-4 beat
        assert min(ph, 1.0 - ph) < 1e-4
    assert 0.0 <= grid.downbeat_phase(t_stream) < 1.0


def test_link_overrides_the_tracker_while_it_has_peers(session) -> None:
    grid, peer = session
    peer.link.tempo = 90.0
    tracker = BeatTracker()
    chooser = PreferLink(tracker, grid)
    assert chooser.source is grid
    deadline = time.monotonic() + 3.0
    while abs(chooser.bpm - 90.0) > 0.01 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert chooser.bpm == pytest.approx(90.0, abs=0.01)
    peer.close()
    deadline = time.monotonic() + 10.0
    while grid.num_peers > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if grid.num_peers > 0:
        pytest.skip("Link did not notice the peer leaving within 10 s")
    assert chooser.source is tracker and chooser.bpm == 0.0


def test_link_rejects_bad_tempo() -> None:
    from livedance.beats.link import LinkBeatGrid

    with pytest.raises(ConfigError, match="BPM"):
        LinkBeatGrid(bpm=5.0)


def test_link_that_cannot_join_names_the_cause_and_closes_its_loop(monkeypatch) -> None:
    from livedance.beats.link import LinkBeatGrid
    from livedance.errors import LivedanceError

    loops: list[asyncio.AbstractEventLoop] = []
    real_new_loop = asyncio.new_event_loop

    def tracked_loop():
        loops.append(real_new_loop())
        return loops[-1]

    def no_network(bpm):
        raise OSError("no multicast interface")

    monkeypatch.setattr(asyncio, "new_event_loop", tracked_loop)
    monkeypatch.setattr(aalink, "Link", no_network)
    with pytest.raises(LivedanceError, match="no multicast interface.*--link"):
        LinkBeatGrid(bpm=120.0)
    assert len(loops) == 1 and loops[0].is_closed()
