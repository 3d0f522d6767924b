"""Logging for the output clock thread without I/O on it.

A log handler writes to a terminal or a file; a terminal that is not read (a paused ssh session, a full
pipe) blocks the writer. On the output clock that would stall every sink. :class:`DeferredLog` stands in
for a :class:`logging.Logger` there: a call only appends the record to a bounded in-memory queue (no lock
of ours, no I/O, never blocks) and another thread writes the queue out with :meth:`DeferredLog.drain`
(the performer's scheduler thread, and :meth:`~livedance.live.performer.Performer.stop`). No thread of
its own.
"""

from __future__ import annotations

import logging
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
        dropped = self.dropped
        if dropped > self._told_dropped:
            self.logger.warning("%d log records of the output clock were dropped (the log could not keep up)",
                                dropped - self._told_dropped)
            self._told_dropped = dropped
        return n
