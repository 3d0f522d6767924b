"""Logging for the output clock thread without I/O on it.

A log handler writes to a terminal or a file; a terminal that is not read (a paused ssh session, a full
pipe) blocks the writer. On the output clock that would stall every sink. :class:`DeferredLog` stands in
for a :class:`logging.Logger` there: a call only appends the record to a bounded in-memory queue (no lock
of ours, no I/O, never blocks). Its own writer thread (:meth:`DeferredLog.start`, ``livedance-log``, a
daemon that :meth:`DeferredLog.stop` ends) writes the queue out, so a blocked terminal stalls only that
thread, neither the output clock nor the scheduler. Without it, :meth:`DeferredLog.drain` writes on the
calling thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque


class DeferredLog:
    """A logger stand-in whose calls are queued and written out later by :meth:`drain`.

    Args:
        logger: where the drained records go.
        maxlen: records held before new ones are dropped (counted in :attr:`dropped`).

    ``debug``/``info``/``warning``/``log`` take :class:`logging.Logger`'s message and %-arguments (formatted
    when drained). Records below the logger's level are not queued. Any thread may call them (a deque's
    append and popleft are atomic in CPython).
    """

    def __init__(self, logger: logging.Logger, maxlen: int = 256) -> None:
        self.logger = logger
        self.maxlen = int(maxlen)
        self.dropped = 0  #: records not queued because the queue was full
        self._q: deque = deque()
        self._told_dropped = 0
        self._told_lock = threading.Lock()  # one drain at a time reports drops (writers only; the clock never takes it)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, period_s: float = 0.1) -> None:
        """Write the queue out every ``period_s`` seconds on a daemon thread (``livedance-log``) until :meth:`stop`.
        Starting a started writer does nothing."""
        if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
            return  # (a writer still finishing after a timed-out stop is replaced by a new one)
        self._stop = threading.Event()  # the old writer, if any, keeps its own (set) event and ends
        th = threading.Thread(target=self._run, args=(float(period_s), self._stop), name="livedance-log", daemon=True)
        th.start()
        self._thread = th

    def stop(self, timeout: float = 0.5) -> bool:
        """End the writer after a last write-out; waits at most ``timeout`` seconds (a writer blocked on a handler
        finishes on its own: a daemon thread cannot keep the process alive). Without a writer, writes the queue out
        here. Raises nothing.

        Returns:
            True when the writer has ended (or there was none).
        """
        th = self._thread
        if th is None:
            self._drain_quietly()
            return True
        self._stop.set()
        th.join(max(float(timeout), 0.0))
        if th.is_alive():
            return False
        self._thread = None
        self._drain_quietly()  # records queued after the writer's last pass (e.g. by a thread that outlived its join)
        return True

    def _run(self, period_s: float, stop: threading.Event) -> None:
        while not stop.wait(period_s):
            self._drain_quietly()
        self._drain_quietly()

    def _drain_quietly(self) -> None:
        try:
            self.drain()
        except Exception:  # noqa: BLE001 - a failing log handler must not end the writer
            pass

    def log(self, level: int, msg: str, *args) -> None:
        """Queue one record (never blocks; a full queue drops it and counts it)."""
        if not self.logger.isEnabledFor(level):
            return
        if len(self._q) >= self.maxlen:
            self.dropped += 1
            return
        self._q.append((level, msg, args))

    def debug(self, msg: str, *args) -> None:
        """Queue a DEBUG record."""
        self.log(logging.DEBUG, msg, *args)

    def info(self, msg: str, *args) -> None:
        """Queue an INFO record."""
        self.log(logging.INFO, msg, *args)

    def warning(self, msg: str, *args) -> None:
        """Queue a WARNING record."""
        self.log(logging.WARNING, msg, *args)

    def drain(self) -> int:
        """Write the queued records to the logger (on the calling thread, which may block on a slow handler).

        Returns:
            how many records were written.
        """
        n = 0
        while True:
            try:
                level, msg, args = self._q.popleft()
            except IndexError:
                break
            self.logger.log(level, msg, *args)
            n += 1
        if self.dropped > self._told_dropped and self._told_lock.acquire(blocking=False):
            try:  # claim the drops before writing, so a second writer (after a timed-out stop) cannot report them again
                dropped = self.dropped
                new, self._told_dropped = dropped - self._told_dropped, dropped
            finally:
                self._told_lock.release()
            if new > 0:
                self.logger.warning("%d log records of the output clock were dropped (the log could not keep up)", new)
        return n
