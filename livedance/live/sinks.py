"""Sinks: where the output clock's frames go (VMC, raw OSC, BVH/npz recordings, web preview).

Every sink has ``send(frame, music)`` and ``close()``. The output clock calls :meth:`SinkSet.send`
once per tick; :class:`SinkSet` catches and counts every exception a sink raises (a warning is
logged once per sink, never a traceback into the clock), so no sink can take the output clock down.

Network sinks (UDP, non-blocking sockets) send inline in the clock thread. Recorders write files and
fsync now and then, which can take milliseconds, so they run behind a :class:`RecorderThread`: the
clock only puts the frame on a queue; :meth:`RecorderThread.close` drains the queue and closes the
files (BVH frame count and npz merge are then complete).

A BVH file times its frames by one constant Frame Time, so a tick without a frame (skipped by the clock,
lost to an error, or dropped because the disk could not keep up) would shift the rest of the take against
the music. The writer fills such a gap by repeating the last frame (see :class:`RecorderThread`); an npz
recording keeps each frame's own time and is written as shown.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from livedance.bridges.frame import PoseFrame
from livedance.bridges.osc_raw import MusicState
from livedance.errors import ConfigError

_log = logging.getLogger("livedance.live")


class Sink(Protocol):
    """A destination for output frames."""

    name: str

    def send(self, frame: PoseFrame, music: MusicState) -> None:
        """Deliver one frame (may raise; :class:`SinkSet` catches it)."""

    def close(self) -> None:
        """Flush and release (idempotent)."""


class VMCSink:
    """VMC protocol out (Unity EVMC4U, VSeeFace, Warudo, VMC4UE) via :class:`livedance.bridges.vmc.VMCSender`.

    Args:
        host, port: the receiver. profile: the avatar profile (:mod:`livedance.calibration.profiles`): a shipped
            name, a JSON path or an ``AvatarProfile``.
        travel_scale: factor on the dancer's travel sent on the root (avatar hip height / SMPL-X's 0.95 m).

    Raises:
        ConfigError: bad host, port, profile or travel scale (at construction).
    """

    def __init__(self, host: str, port: int, profile="vrm0", travel_scale: float = 1.0) -> None:
        from livedance.bridges.vmc import VMCSender

        self.sender = VMCSender(host, port, profile=profile, travel_scale=travel_scale)
        self.name = f"VMC {self.sender.host}:{self.sender.port}"

    def send(self, frame: PoseFrame, music: MusicState) -> None:
        """Send the frame's bones (send errors are counted by the sender, not raised)."""
        self.sender.send(frame)

    def set_logger(self, logger) -> None:
        """Where the sender's one send-error warning goes (:class:`SinkSet` passes its own logger)."""
        self.sender.set_logger(logger)

    @property
    def send_errors(self) -> int:
        """UDP send failures (e.g. nothing listening)."""
        return self.sender.stats.send_errors

    def close(self) -> None:
        """Close the socket."""
        self.sender.close()


class RawOSCSink:
    """Raw OSC for VJ tools via :class:`livedance.bridges.osc_raw.RawOSCSender` (joints + beat, bpm, energy).

    Raises:
        ConfigError: bad host or port (at construction).
    """

    def __init__(self, host: str, port: int, **options) -> None:
        """``options``: :class:`~livedance.bridges.osc_raw.RawOSCSender` keywords (layout, prefix, joints,
        send_rotations, send_positions)."""
        from livedance.bridges.osc_raw import RawOSCSender

        self.sender = RawOSCSender(host, port, **options)
        self.name = f"OSC {host}:{port}" + (f" ({options['layout']})" if options.get("layout", "vector") != "vector" else "")

    def send(self, frame: PoseFrame, music: MusicState) -> None:
        """Send the frame and the music state."""
        self.sender.send(frame, music)

    def set_logger(self, logger) -> None:
        """Where the sender's one send-error warning goes (:class:`SinkSet` passes its own logger)."""
        self.sender.set_logger(logger)

    @property
    def send_errors(self) -> int:
        """UDP send failures."""
        return self.sender.stats.send_errors

    def close(self) -> None:
        """Close the socket."""
        self.sender.close()


class PreviewSink:
    """The web preview (``livedance.bridges.preview.PreviewServer``), fed joint positions by forward kinematics.

    Raises:
        ConfigError: the preview module is not installed, or its server cannot start.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765) -> None:
        try:
            from livedance.bridges import preview
        except ImportError:
            raise ConfigError("--preview: the web preview (livedance.bridges.preview) is not available") from None
        self.server = preview.PreviewServer(host=host, port=port)
        self.server.start()
        self.name = f"preview http://{host}:{self.server.port}/"  # the bound port (port 0 picks a free one)

    def send(self, frame: PoseFrame, music: MusicState) -> None:
        """Push the pose (non-blocking)."""
        self.server.push(frame)

    def close(self) -> None:
        """Stop the web server."""
        self.server.stop()


def make_recorder(path: str | Path, rest_offsets: np.ndarray, fps: float, overwrite: bool = False):
    """A BVH or npz recorder for ``path`` by its suffix.

    Args:
        path: ``*.bvh`` (:class:`livedance.bridges.bvh.BVHWriter`, centimetres) or ``*.npz``
            (:class:`livedance.bridges.npz_record.NpzRecorder`).
        rest_offsets: (55, 3) metres (BVH hierarchy).
        fps: output frame rate (BVH Frame Time, npz ``fps``).
        overwrite: replace an existing file, once the new recording has a frame (an existing take survives
            a show that never starts).

    Returns:
        An object with ``write(frame)`` and ``close()``.

    Raises:
        ConfigError: unknown suffix, missing folder or existing file without overwrite.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".bvh":
        from livedance.bridges.bvh import BVHWriter

        w = BVHWriter(p, rest_offsets, fps=float(fps), overwrite=overwrite)
        return w
    if suffix == ".npz":
        from livedance.bridges.npz_record import NpzRecorder

        # (with overwrite, an existing take is replaced only by the merged new one at close, atomically)
        rec = NpzRecorder(p, fps=float(fps), overwrite=overwrite)
        rec.write = rec.append  # same verb as the BVH writer
        return rec
    raise ConfigError(f"--record {path}: unknown recording format {suffix or '(none)'!r}; expected .bvh or .npz")


def _fixed_period_s(rec) -> float | None:
    """1 / fps, seconds, of a recorder whose file times its frames by a constant frame time (a BVH writer, or one
    with ``fixed_frame_time = True`` and ``fps``); None for one that keeps each frame's time (npz)."""
    fixed = getattr(rec, "fixed_frame_time", None)
    if fixed is None:
        from livedance.bridges.bvh import BVHWriter

        fixed = isinstance(rec, BVHWriter)
    fps = getattr(rec, "fps", None)
    if not fixed or isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (math.isfinite(fps) and fps > 0):
        return None
    return 1.0 / float(fps)


@dataclass
class RecorderThread:
    """Writes frames to recorders in a background thread, fed by a queue (see the module docstring).

    The writer thread owns the recorders: it writes every queued frame and then closes them as its last act,
    so a file is never closed while frames for it are still queued or being written. :meth:`close` asks for
    that and waits until it is done (a slow disk takes as long as it takes; progress is logged every
    ``progress_s`` seconds).

    Gaps: for a recorder with a constant frame time (BVH: ``Frame Time`` = 1 / its ``fps``), a frame whose
    ``t_show_s`` comes more than 1.5 frame periods after the time that recorder's take already reaches is preceded
    by copies of the last frame it wrote, round(gap / period) - 1 of them (at most ``max_fill_s`` seconds' worth),
    so that every later frame stays at its time in the take: ticks skipped or dropped, and frames that failed to
    write to that file, alike. Recorders that keep each frame's time (npz) get the frames as shown.

    Attributes:
        recorders: objects with ``write(frame)`` and ``close()`` (and a ``path``, for messages).
        name: for messages.
        max_queue: frames buffered before new ones are dropped (and counted).
        progress_s: seconds between "still writing" messages while :meth:`close` waits.
        max_fill_s: longest gap filled, seconds (a longer one is filled this far and counted in ``fill_capped``).
        dropped: frames not recorded because the queue was full (the disk could not keep up); every recorder
            missed them.
        filled: copies of a previous frame written to fill gaps (each fixed-frame-time recording counts its own).
        fill_capped: gaps longer than ``max_fill_s`` (the take after them is early by the rest of the gap).

    Properties (derived from one counter pair per recorder): ``per_recorder`` (``{path: [frames written,
    write/close errors]}``, for a report per file; the first failure is logged), ``errors`` (over all recorders),
    ``frames`` (written to every recorder).
    """

    recorders: list
    name: str = "recorder"
    max_queue: int = 600
    progress_s: float = 5.0
    max_fill_s: float = 10.0
    dropped: int = 0
    filled: int = 0
    fill_capped: int = 0
    _counts: list = field(init=False, repr=False)  # per recorder: [frames written, write/close errors]
    _periods: list = field(init=False, repr=False)  # per recorder: its constant frame period (s), or None
    _last: list = field(init=False, repr=False)  # per recorder: the last frame it wrote (writer thread)
    _covered: list = field(init=False, repr=False)  # per recorder: show time (s) its take reaches, fills included
    _q: queue.Queue = field(init=False, repr=False)
    _closing: threading.Event = field(init=False, repr=False)
    _send_lock: threading.Lock = field(init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _warned: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._counts = [[0, 0] for _ in self.recorders]
        self._periods = [_fixed_period_s(r) for r in self.recorders]
        self._last = [None for _ in self.recorders]
        self._covered = [None for _ in self.recorders]
        self._q = queue.Queue(maxsize=self.max_queue)
        self._closing = threading.Event()
        self._send_lock = threading.Lock()  # send()'s closing check and put, against close(): no frame slips past
        self._thread = threading.Thread(target=self._run, name="livedance-recorder", daemon=True)
        self._thread.start()

    def send(self, frame: PoseFrame, music: MusicState) -> None:
        """Queue the frame (never blocks; a full queue drops it and counts it; after :meth:`close`, dropped)."""
        with self._send_lock:  # (uncontended but for the one close(): never blocks the output clock for long)
            if self._closing.is_set():
                self.dropped += 1
                return
            try:
                self._q.put_nowait(frame)
            except queue.Full:
                self.dropped += 1

    @property
    def per_recorder(self) -> dict[str, list[int]]:
        """``{path (else index): [frames written, write/close errors]}`` of each recorder."""
        return {str(getattr(r, "path", i)): list(c) for i, (r, c) in enumerate(zip(self.recorders, self._counts))}

    @property
    def errors(self) -> int:
        """Write or close failures over all recorders."""
        return sum(c[1] for c in self._counts)

    @property
    def frames(self) -> int:
        """Frames written to every recorder (the fewest any recorder wrote)."""
        return min((c[0] for c in self._counts), default=0)

    def _error(self, what: str, i: int, rec, err: Exception) -> None:
        self._counts[i][1] += 1
        if not self._warned:
            self._warned = True
            _log.warning("%s %s failed: %s (further errors counted)", what, getattr(rec, "path", rec), err)

    def _run(self) -> None:
        closing = False
        while True:
            try:
                # closing is set under send()'s lock, so once seen, the queue only drains
                frame = self._q.get_nowait() if closing else self._q.get(timeout=0.1)
            except queue.Empty:
                if closing:
                    break
                closing = self._closing.is_set()
                continue
            for i, rec in enumerate(self.recorders):
                self._fill_gap(i, rec, frame)
                if self._write(i, rec, frame):  # a frame lost to an error is a gap: the next one written fills it
                    self._last[i] = frame
                    self._covered[i] = getattr(frame, "t_show_s", None)  # (never raise on the writer thread)
        for i, rec in enumerate(self.recorders):  # the queue is empty and nothing more comes: finish the files
            try:
                rec.close()
            except Exception as err:  # noqa: BLE001
                self._error("closing recording", i, rec, err)

    def _write(self, i: int, rec, frame) -> bool:
        """Writer thread: ``rec.write(frame)``; True when the frame is in the recording. A recorder that counts its
        frames (``frames_written``, as :class:`~livedance.bridges.bvh.BVHWriter`) may keep a frame and still raise
        (a flush that failed after it): its counter decides, so such a frame is neither lost nor written twice."""
        before = getattr(rec, "frames_written", None)
        try:
            rec.write(frame)
            kept = True
        except Exception as err:  # noqa: BLE001 - keep recording the others
            self._error("recording to", i, rec, err)
            after = getattr(rec, "frames_written", None)
            kept = isinstance(before, int) and isinstance(after, int) and after > before
        if kept:
            self._counts[i][0] += 1
        return kept

    def _fill_gap(self, i: int, rec, frame) -> None:
        """Writer thread: before ``frame``, repeat the last frame recorder ``i`` wrote over a gap in a
        fixed-frame-time recording (ticks skipped, dropped, or lost to this recorder's own write errors)."""
        period, last, covered = self._periods[i], self._last[i], self._covered[i]
        if period is None or last is None:
            return
        try:
            gap = float(frame.t_show_s) - float(covered)
        except (AttributeError, TypeError, ValueError):
            return
        if not (math.isfinite(gap) and gap > 1.5 * period):
            return
        n = int(round(gap / period)) - 1
        cap = int(self.max_fill_s / period)
        if n > cap:
            n = cap
            self.fill_capped += 1
        for _ in range(n):
            if not self._write(i, rec, last):  # counted like any write error; the frame itself is tried next
                return
            self.filled += 1
            self._covered[i] = covered = covered + period  # (a frame that then fails is not filled twice)

    def close(self, timeout: float | None = None) -> bool:
        """Write what is queued, then close every recorder (the files are complete afterwards).

        Args:
            timeout: seconds to wait at most (None: until done, the default: nothing the user asked to
                record is given up on a slow disk).
        Returns:
            True when every recorder was closed; False when ``timeout`` ran out first (the writer then
            finishes on its own, while the process lives; this is logged).
        """
        with self._send_lock:  # after this, send() queues nothing: the writer drains what is queued, then closes
            self._closing.set()
        th = self._thread
        if th is None:
            return True
        t0 = time.monotonic()
        while th.is_alive():
            left = None if timeout is None else timeout - (time.monotonic() - t0)
            if left is not None and left <= 0:
                _log.warning("recording %s not finished after %.1f s (%d frames still queued); it goes on while "
                             "the process runs", self.name, timeout, self._q.qsize())
                return False
            th.join(self.progress_s if left is None else min(self.progress_s, left))
            if th.is_alive():
                _log.warning("still writing the recording (%d frames queued) ...", self._q.qsize())
        self._thread = None
        return True


class SinkSet:
    """All sinks of one performance; :meth:`send` never raises.

    Args:
        sinks: the sinks (network sinks, a :class:`RecorderThread`, the preview ...).
        logger: where the one warning per failing sink goes (a :class:`logging.Logger`, or anything with its
            ``warning``: the performer passes a :class:`~livedance.live.deferlog.DeferredLog`, since :meth:`send` runs
            on the output clock). Sinks with a ``set_logger`` (the network senders, whose first send error is
            warned from inside :meth:`send`) get it too.
    """

    def __init__(self, sinks: list, logger: logging.Logger | None = None) -> None:
        self.sinks = list(sinks)
        self.errors: dict[str, int] = {self._name(s): 0 for s in self.sinks}
        self.last_error: dict[str, str] = {}
        self._log = logger or _log
        if logger is not None:
            for s in self.sinks:
                if hasattr(s, "set_logger"):
                    s.set_logger(logger)

    @staticmethod
    def _name(sink) -> str:
        return getattr(sink, "name", type(sink).__name__)

    def send(self, frame: PoseFrame, music: MusicState) -> int:
        """Send to every sink; returns how many raised (caught, counted, warned once per sink)."""
        bad = 0
        for s in self.sinks:
            try:
                s.send(frame, music)
            except Exception as err:  # noqa: BLE001 - no sink may stop the output clock
                bad += 1
                name = self._name(s)
                self.errors[name] = self.errors.get(name, 0) + 1
                if name not in self.last_error:
                    self._log.warning("sink %s failed: %s: %s (further errors are counted)", name, type(err).__name__, err)
                self.last_error[name] = f"{type(err).__name__}: {err}"
        return bad

    @property
    def total_errors(self) -> int:
        """Exceptions caught over all sinks (UDP send errors that the senders count are not included)."""
        return sum(self.errors.values())

    @property
    def send_errors(self) -> int:
        """UDP send failures counted inside the network senders (e.g. no receiver listening)."""
        return sum(int(getattr(s, "send_errors", 0)) for s in self.sinks)

    @property
    def record_fills(self) -> int:
        """Copies of a previous frame written to fill gaps in fixed-frame-time recordings (BVH), over the
        :class:`RecorderThread` sinks."""
        return sum(int(r.filled) for r in self.sinks if isinstance(r, RecorderThread))

    @property
    def record_fills_capped(self) -> int:
        """Gaps in fixed-frame-time recordings longer than the fill cap (``RecorderThread.max_fill_s``): the take
        after each is early against the music by the rest of the gap."""
        return sum(int(r.fill_capped) for r in self.sinks if isinstance(r, RecorderThread))

    @property
    def record_counts(self) -> dict[str, tuple[int, int, int]]:
        """Per recording (its path): (frames written, frames dropped, write/close errors), over the
        :class:`RecorderThread` sinks (a dropped frame is missed by every recording of its thread)."""
        out = {}
        for r in self.sinks:
            if isinstance(r, RecorderThread):
                for key, (n, err) in r.per_recorder.items():
                    out[key] = (int(n), int(r.dropped), int(err))
        return out

    def close(self) -> None:
        """Close every sink (recordings are flushed); never raises."""
        for s in self.sinks:
            try:
                s.close()
            except Exception as err:  # noqa: BLE001
                self._log.warning("closing sink %s failed: %s", self._name(s), err)

