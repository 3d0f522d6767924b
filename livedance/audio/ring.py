"""A preallocated single-producer / single-consumer ring buffer of float32 audio frames.

The producer is an audio callback (PortAudio's thread): :meth:`RingBuffer.write` copies the block
into preallocated storage and never allocates a sample buffer, takes a lock, logs or blocks. When
the ring is full the new frames are dropped (the reader keeps a continuous past) and counted in
:attr:`RingBuffer.overflows`.

Every frame has an *absolute sample index*: the number of frames the producer offered before it
(stored, dropped or skipped). Dropped frames leave a gap in that numbering; :meth:`RingBuffer.read`
never returns a block that spans a gap, so each block is contiguous in time and is labelled with
the absolute index of its first frame.

Thread safety rests on CPython's GIL: each index is a Python int owned by one side (the writer
owns ``_w`` and the gap records, the reader owns ``_r``), and an int attribute store is atomic.
A gap record is published (``_gw`` incremented) before the frames after it (``_w`` incremented).
"""

from __future__ import annotations

import numpy as np

from livedance.errors import ConfigError

#: Default number of pending gap records (one per overflow episode that the reader has not passed).
DEFAULT_MAX_GAPS = 64


class RingBuffer:
    """Lock-free SPSC ring of float32 frames with overflow counting and absolute sample indices.

    Args:
        capacity: frames the ring holds (> 0). At 48 kHz, 10 s is 480000 frames.
        channels: interleaved channels per frame (>= 1); blocks are (n, channels) float32.
        max_gaps: gap records kept for the reader. If more overflow episodes pile up unread,
            further frames are dropped (and counted) until the reader catches up, so the absolute
            indices stay exact.

    Raises:
        ConfigError: capacity, channels or max_gaps < 1.

    Producer side (one thread): :meth:`write`, :meth:`skip`, :attr:`write_index`.
    Consumer side (one thread): :meth:`read`, :attr:`available`, :attr:`read_index`.
    """

    def __init__(self, capacity: int, channels: int = 1, max_gaps: int = DEFAULT_MAX_GAPS) -> None:
        if int(capacity) < 1 or int(channels) < 1 or int(max_gaps) < 1:
            raise ConfigError(
                f"RingBuffer needs capacity >= 1, channels >= 1 and max_gaps >= 1 frames, got "
                f"capacity={capacity}, channels={channels}, max_gaps={max_gaps}"
            )
        self._cap = int(capacity)
        self._ch = int(channels)
        self._buf = np.zeros((self._cap, self._ch), dtype=np.float32)
        self._max_gaps = int(max_gaps)
        # Gap records: stored position of the first frame after a gap, and that frame's absolute index.
        self._gap_pos = np.zeros(self._max_gaps, dtype=np.int64)
        self._gap_abs = np.zeros(self._max_gaps, dtype=np.int64)
        self.reset()

    def reset(self, start_index: int = 0) -> None:
        """Empty the ring; the next frame written gets absolute index ``start_index``.

        Not thread safe: call only while no producer or consumer is running.
        """
        # writer-owned
        self._w = 0  # frames stored so far
        self._gw = 0  # gap records published so far
        self._lost = int(start_index)  # start offset + frames dropped or skipped so far
        self._pending_gap = False  # frames were lost since the last stored frame
        self._overflows = 0
        # reader-owned
        self._r = 0  # frames consumed so far
        self._gr = 0  # gap records consumed so far
        self._offset = int(start_index)  # absolute index minus stored position, at the reader

    # ---------------------------------------------------------------- properties
    @property
    def capacity(self) -> int:
        """Frames the ring holds."""
        return self._cap

    @property
    def channels(self) -> int:
        """Channels per frame."""
        return self._ch

    @property
    def overflows(self) -> int:
        """Frames dropped because the ring was full (cumulative, producer-side count)."""
        return self._overflows

    @property
    def available(self) -> int:
        """Frames stored and not yet read (consumer side)."""
        return self._w - self._r

    @property
    def write_index(self) -> int:
        """Absolute sample index the next written frame will get (producer side)."""
        return self._w + self._lost

    # ---------------------------------------------------------------- producer
    def write(self, frames: np.ndarray) -> int:
        """Copy a block into the ring (producer thread only; no allocation of sample buffers).

        Args:
            frames: (n,) or (n, channels) samples; any real dtype (copied as float32).

        Returns:
            The number of frames stored; the rest (ring full) are dropped and counted in
            :attr:`overflows`.

        Raises:
            ValueError: the block's channel count does not match the ring's (a caller bug; a 1-D block is one
                channel). Checked before anything is stored, without allocating.
        """
        n = frames.shape[0]
        if n == 0:
            return 0
        if frames.ndim == 1:
            frames = frames[:, None]
        if frames.ndim != 2 or frames.shape[1] != self._buf.shape[1]:
            raise ValueError(f"ring write: block of shape {frames.shape}, expected (n, {self._buf.shape[1]})")
        w = self._w
        free = self._cap - (w - self._r)
        if self._pending_gap:
            # The stream resumes after dropped frames: publish a gap record first.
            if free == 0 or self._gw - self._gr >= self._max_gaps:
                self._lost += n
                self._overflows += n
                return 0
            slot = self._gw % self._max_gaps
            self._gap_pos[slot] = w
            self._gap_abs[slot] = w + self._lost
            self._gw += 1
            self._pending_gap = False
        k = n if n <= free else free
        start = w % self._cap
        first = min(k, self._cap - start)
        self._buf[start : start + first] = frames[:first]
        if k > first:
            self._buf[: k - first] = frames[first:k]
        self._w = w + k
        if k < n:
            self._lost += n - k
            self._overflows += n - k
            self._pending_gap = True
        return k

    def skip(self, n_frames: int) -> None:
        """Advance the absolute index by ``n_frames`` without storing anything (producer side).

        Use it when the input had a known hole (for example a device that was lost and came
        back): the reader then sees the gap in the sample indices. Skips are not overflows.
        """
        if n_frames > 0:
            self._lost += int(n_frames)
            self._pending_gap = True

    # ---------------------------------------------------------------- consumer
    def read(self, max_frames: int) -> tuple[np.ndarray, int] | None:
        """Take up to ``max_frames`` frames that are contiguous in time (consumer thread only).

        Returns:
            ``(frames, index)``: frames a new (k, channels) float32 array, 1 <= k <= max_frames,
            and index the absolute sample index of frames[0]; or None when nothing is stored.
            A block never spans a gap left by dropped or skipped frames.
        """
        w = self._w
        r = self._r
        if w <= r or max_frames < 1:
            return None
        gw = self._gw
        while self._gr < gw:
            slot = self._gr % self._max_gaps
            if self._gap_pos[slot] > r:
                break
            self._offset = int(self._gap_abs[slot] - self._gap_pos[slot])
            self._gr += 1
        limit = w
        if self._gr < gw:
            limit = min(limit, int(self._gap_pos[self._gr % self._max_gaps]))
        k = min(limit - r, int(max_frames))
        out = np.empty((k, self._ch), dtype=np.float32)
        start = r % self._cap
        first = min(k, self._cap - start)
        out[:first] = self._buf[start : start + first]
        if k > first:
            out[first:] = self._buf[: k - first]
        index = r + self._offset
        self._r = r + k
        return out, index

    @property
    def read_index(self) -> int:
        """Absolute sample index of the next frame :meth:`read` returns, if no gap precedes it."""
        return self._r + self._offset
