"""The feature thread's clock (livedance.live.listener): bad audio blocks must not shift the published beat grid."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from livedance.audio.base import AudioBlock
from livedance.live.listener import Listener

SR, BS = 44100, 1024


class _Source:
    """Only what the Listener reads of a source when blocks are handed to it directly."""

    sample_rate = SR

    def stop(self):
        pass


def _clicks(seconds: float = 40.0) -> np.ndarray:
    """Clicks exactly on a 120 BPM grid (beats at k * 0.5 s of stream time) over a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    x = (1e-3 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    burst = (0.8 * np.sin(2 * np.pi * 1000 * t[:400]) * np.exp(-t[:400] * 200)).astype(np.float32)
    for k in range(int(seconds * 2)):
        i = int(k * 0.5 * SR)
        x[i : i + 400] += burst
    return x


def _grid_error_after(spoil, x: np.ndarray, bad_from_s: float = 10.0, n_bad: int = 5) -> tuple[float, Listener]:
    """Feed ``x`` block by block through ``Listener._handle``; blocks ``n_bad`` from ``bad_from_s`` go through
    ``spoil(listener, block) -> block``. Returns the published beat's distance from the true grid (s) at the end."""
    lst = Listener(_Source())
    first_bad = int(bad_from_s * SR / BS)
    for b, i in enumerate(range(0, x.size - BS + 1, BS)):
        blk = AudioBlock(samples=x[i : i + BS].copy(), sample_index=i, t_capture=time.perf_counter(), sample_rate=SR)
        if first_bad <= b < first_bad + n_bad:
            blk = spoil(lst, blk)
        lst._handle(blk)
    beat = lst.beat
    assert beat.bpm == pytest.approx(120.0, abs=1.0)
    return (beat.beat_s + 0.25) % 0.5 - 0.25, lst


def test_nan_and_huge_samples_are_cleaned_and_keep_the_grid_on_the_stream_clock():
    x = _clicks()
    clean, _ = _grid_error_after(lambda lst, blk: blk, x)

    def spoil(lst, blk):
        blk.samples[10] = np.nan
        blk.samples[20] = np.inf
        blk.samples[30] = 1e30
        return blk

    err, lst = _grid_error_after(spoil, x)
    assert lst.stats.bad_blocks == 5 and lst.stats.errors == 0
    assert abs(clean) < 0.03 and abs(err - clean) < 0.005  # before the fix: 108 ms off after 5 NaN blocks


def test_a_block_that_fails_restarts_the_analysis_on_the_stream_clock(caplog):
    x = _clicks()
    clean, _ = _grid_error_after(lambda lst, blk: blk, x)

    def spoil(lst, blk):  # the analysis fails after taking part of the block (the resampler has it)
        push = lst._features.push

        def fail(y):
            lst._features.push = push
            raise RuntimeError("feature front end failed")

        lst._features.push = fail
        return blk

    with caplog.at_level(logging.DEBUG, logger="livedance.live"):
        err, lst = _grid_error_after(spoil, x)
    assert lst.stats.errors == 5 and lst.stats.gaps == 5  # each failure restarts the analysis at the next block
    assert abs(err - clean) < 0.02
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1  # warned once, then counted


@pytest.mark.parametrize("status", ["lost", "stopped"])
def test_the_feature_thread_waits_instead_of_spinning_while_the_source_cannot_deliver(status):
    """A lost or stopped source answers read() at once; the thread must not spin a core on it (the output
    clock shares the CPU)."""
    import time

    from livedance.audio.base import AudioSource, SourceStatus

    class Silent(AudioSource):
        def __init__(self):
            super().__init__()
            self.reads = 0

        @property
        def sample_rate(self):
            return 22050

        @property
        def status(self):
            return SourceStatus(status)

        @property
        def overflows(self):
            return 0

        def start(self):
            pass

        def stop(self):
            pass

        def _read_now(self, n):
            self.reads += 1
            return None

    src = Silent()
    listener = Listener(src)
    listener.start()
    time.sleep(0.5)
    listener.stop()
    assert 0 < src.reads < 2000  # a few hundred polls at most; a spinning thread makes hundreds of thousands


@pytest.mark.parametrize("dropped_s, fills", [(0.07, True), (1.0, False)])
def test_a_short_gap_is_filled_with_silence_and_a_long_one_restarts(dropped_s, fills):
    """An input overflow drops a few blocks: the analysis hears silence there and keeps its tempo and grid; a long
    gap (a device loss) restarts it."""
    x = _clicks()
    clean, _ = _grid_error_after(lambda lst, blk: blk, x)
    lst = Listener(_Source())
    drop_at, drop_n = int(10.0 * SR), int(dropped_s * SR)
    bpm_after = None
    for i in range(0, x.size - BS + 1, BS):
        if drop_at <= i < drop_at + drop_n:
            continue  # lost samples: the next block's index jumps
        lst._handle(AudioBlock(samples=x[i:i + BS].copy(), sample_index=i, t_capture=time.perf_counter(),
                               sample_rate=SR))
        if bpm_after is None and i >= drop_at + drop_n:
            bpm_after = lst._tracker.bpm  # right after the gap
    assert lst.beat.bpm == pytest.approx(120.0, abs=1.0)
    err = (lst.beat.beat_s + 0.25) % 0.5 - 0.25
    if fills:
        assert lst.stats.gaps == 0 and lst.stats.filled_gaps == 1
        assert lst.stats.filled_samples == BS * sum(drop_at <= i < drop_at + drop_n for i in range(0, x.size, BS))
        assert bpm_after == pytest.approx(120.0, abs=1.0)  # the tracker kept its tempo through the gap
        assert abs(err - clean) < 0.005
    else:
        assert lst.stats.gaps == 1 and lst.stats.filled_gaps == 0 and bpm_after == 0.0  # restarted: relearning
