"""Turn SIGTERM into a normal exit so that recorders' ``close()`` runs (``with`` blocks unwind).

Python's default SIGTERM action kills the process without running ``finally`` blocks or ``__exit__``;
a BVH or npz recording would then miss its last frames and, for BVH, its final frame count. Inside
:func:`exit_on_sigterm` a SIGTERM raises :class:`SystemExit` (status 143 = 128 + 15) in the main thread
instead, so every open ``with BVHWriter(...)``/``with NpzRecorder(...)`` closes cleanly. SIGKILL and
power loss cannot be caught: for those the recorders flush regularly and offer ``repair_bvh`` /
``recover_npz``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
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
