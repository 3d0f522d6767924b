"""RingBuffer: wrap-around, overflow counting, gaps in absolute sample indices, SPSC threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from livedance.audio.ring import RingBuffer
from livedance.errors import ConfigError


def _drain(ring: RingBuffer, max_frames: int = 10_000) -> list[tuple[np.ndarray, int]]:
    out = []
    while (got := ring.read(max_frames)) is not None:
        out.append(got)
    return out


def test_wraparound_preserves_order_and_indices():
    ring = RingBuffer(capacity=10)
    x = np.arange(100, dtype=np.float32)
    got = []
    pos = 0
    for n_write, n_read in [(7, 5), (7, 9), (6, 3), (4, 10), (8, 8), (3, 4)] * 3:
        if pos < len(x):
            ring.write(x[pos : pos + n_write])
            pos += min(n_write, len(x) - pos)
        while (r := ring.read(n_read)) is not None:
            got.append(r)
    got += _drain(ring)
    assert ring.overflows == 0
    data = np.concatenate([g[0][:, 0] for g in got])
    np.testing.assert_array_equal(data, x[: len(data)])
    # every block starts where the previous ended (absolute index = position in the input)
    starts = [g[1] for g in got]
    lengths = [len(g[0]) for g in got]
    assert starts[0] == 0
    assert all(s1 == s0 + n0 for s0, n0, s1 in zip(starts, lengths, starts[1:]))
    assert max(lengths) <= 10


def test_overflow_counts_dropped_frames_and_leaves_a_gap():
    ring = RingBuffer(capacity=8)
    x = np.arange(30, dtype=np.float32)
    stored = ring.write(x[:20])  # 8 fit, 12 dropped
    assert stored == 8
    assert ring.overflows == 12
    assert ring.write(x[20:23]) == 0  # still full: 3 more dropped
    assert ring.overflows == 15
    a = ring.read(5)
    assert a[1] == 0 and list(a[0][:, 0]) == [0, 1, 2, 3, 4]
    ring.write(x[23:26])  # resumes: these keep their true absolute indices 23..25
    blocks = _drain(ring)
    # the read never spans the gap: frames 5..7, then 23..25 as its own block
    assert [(b[1], list(b[0][:, 0])) for b in blocks] == [(5, [5, 6, 7]), (23, [23, 24, 25])]
    assert ring.write_index == 26


def test_multichannel_frames_and_write_index():
    ring = RingBuffer(capacity=16, channels=3)
    block = np.arange(12, dtype=np.float32).reshape(4, 3)
    ring.write(block)
    assert ring.write_index == 4 and ring.available == 4
    frames, idx = ring.read(100)
    assert idx == 0
    np.testing.assert_array_equal(frames, block)
    with pytest.raises(ValueError):
        ring.write(np.zeros((2, 2), np.float32))


def test_skip_advances_indices_without_counting_overflow():
    ring = RingBuffer(capacity=8)
    ring.write(np.ones(3, np.float32))
    ring.skip(100)
    ring.write(np.full(2, 2.0, np.float32))
    blocks = _drain(ring)
    assert [(b[1], len(b[0])) for b in blocks] == [(0, 3), (103, 2)]
    assert ring.overflows == 0


def test_gap_records_exhausted_still_keeps_indices_exact():
    ring = RingBuffer(capacity=4, max_gaps=2)
    x = np.arange(1000, dtype=np.float32)
    pos = 0
    # Keep the ring full and read one frame at a time: many overflow episodes pile up.
    for _ in range(20):
        ring.write(x[pos : pos + 6])
        pos += 6
        ring.read(1)
    blocks = _drain(ring)
    for frames, idx in blocks:
        np.testing.assert_array_equal(frames[:, 0], x[idx : idx + len(frames)])
    assert ring.overflows > 0


def test_reset_with_start_index():
    ring = RingBuffer(capacity=4)
    ring.reset(start_index=1000)
    ring.write(np.zeros(3, np.float32))
    assert ring.read(10)[1] == 1000


def test_bad_sizes_raise_config_error():
    with pytest.raises(ConfigError, match="capacity"):
        RingBuffer(capacity=0)


def test_threads_one_producer_one_consumer():
    ring = RingBuffer(capacity=1024)
    n_blocks, block = 400, 100
    src = np.arange(n_blocks * block, dtype=np.float32)
    got: list[tuple[np.ndarray, int]] = []
    done = threading.Event()

    def consume():
        while not done.is_set() or ring.available:
            r = ring.read(333)
            if r is not None:
                got.append(r)

    th = threading.Thread(target=consume)
    th.start()
    for i in range(n_blocks):
        ring.write(src[i * block : (i + 1) * block])
    done.set()
    th.join()
    # whatever was dropped, every delivered frame carries its own true index
    for frames, idx in got:
        np.testing.assert_array_equal(frames[:, 0], src[idx : idx + len(frames)])
    delivered = sum(len(f) for f, _ in got)
    assert delivered + ring.overflows == len(src)


def test_a_block_of_the_wrong_channel_count_is_refused_before_anything_is_stored():
    ring = RingBuffer(64, 2)
    for bad in (np.zeros((8, 1), np.float32), np.zeros(8, np.float32), np.zeros((8, 3), np.float32)):
        with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
            ring.write(bad)  # numpy would have broadcast the first two into both channels
    assert ring.available == 0 and ring.overflows == 0
