"""Turn SIGTERM into a normal exit so that recorders' ``close()`` runs (``with`` blocks unwind).

Python's default SIGTERM action kills the process without running ``finally`` blocks or ``__exit__``;
a BVH or npz recording would then miss its last frames and, for BVH, its final frame count. Inside
:func:`exit_on_sigterm` a SIGTERM raises :class:`SystemExit` (status 143 = 128 + 15) in the main thread
instead, so every open ``with BVHWriter(...)``/``with NpzRecorder(...)`` closes cleanly. SIGKILL and
power loss cannot be caught: for those the recorders flush regularly and offer ``repair_bvh`` /
``recover_npz``. :func:`finishing` then holds SIGINT / SIGTERM while the recordings are closed, so an impatient
second Ctrl-C or a supervisor's SIGTERM during the npz merge does not cut it short (a third signal still does).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Context manager: while inside, SIGTERM raises ``SystemExit(143)``; the previous handler is restored
    on exit. Outside the main thread (where Python cannot install handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def finishing(notice: Callable[[str], None] | None = None) -> Iterator[None]:
    """Context manager for the last work before exit (closing recordings): hold SIGINT and SIGTERM while inside.

    The first SIGINT or SIGTERM is held and ``notice(name)`` is called (e.g. to print "finishing the recordings,
    press Ctrl-C again to abandon them"); a second one raises at once (``KeyboardInterrupt``, or
    ``SystemExit(128 + signum)`` for SIGTERM), so a stuck finish can still be abandoned. On leaving normally, a held
    SIGTERM is re-raised as ``SystemExit(143)`` (the exit status a supervisor expects); a held SIGINT is dropped (the
    work it asked to stop is done). The previous handlers are restored. Outside the main thread, where Python cannot
    install handlers, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def _handler(signum: int, _frame: object) -> None:
        if held:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        held.append(signum)
        if notice is not None:
            notice(signal.Signals(signum).name)

    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if held and held[0] == signal.SIGTERM:
        raise SystemExit(128 + signal.SIGTERM)
