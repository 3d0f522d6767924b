"""Test doubles shared by the audio-source and bridge tests (not a test module: pytest does not collect it).

* :class:`FakeInputStream` / :class:`FakeOutputStream`: stand-ins for ``sounddevice.InputStream`` /
  ``OutputStream`` with the same keyword constructor and start/stop/abort/close; the test calls
  ``pump()`` where PortAudio's audio thread would call the callback.
* :func:`free_udp_port`: a loopback UDP port nobody listens on (for the senders).
* :func:`fail_first_pwrite`: the first ``os.pwrite`` fails with ENOSPC (a full disk under a BVH header update).
"""

from __future__ import annotations

import socket
from types import SimpleNamespace

import numpy as np


def fail_first_pwrite(monkeypatch) -> list:
    """Make the next ``os.pwrite`` raise ``OSError(ENOSPC)`` once (later ones write); returns a list that holds the
    offset of the failed write once it happened."""
    import os

    real, failed = os.pwrite, []

    def flaky(fd, data, offset):
        if not failed:
            failed.append(offset)
            raise OSError(28, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", flaky)
    return failed


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago (bound, read, released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FakeStream:
    """Keyword constructor (kept in ``kw``), start/stop/abort/close and the ``active``/``closed`` flags."""

    def __init__(self, **kw):
        self.kw = kw
        self.active = False
        self.closed = False

    def start(self):
        self.active = True

    def stop(self):
        self.active = False

    def abort(self):
        self.active = False

    def close(self):
        self.closed = True


class FakeInputStream(FakeStream):
    """Mimics sounddevice.InputStream; ``pump(block)`` delivers one (frames, channels) block."""

    def pump(self, block: np.ndarray) -> None:
        t = SimpleNamespace(inputBufferAdcTime=0.0, currentTime=0.0)
        self.kw["callback"](block.astype(np.float32), len(block), t, None)


class FakeOutputStream(FakeStream):
    """Mimics sounddevice.OutputStream; ``pump(frames)`` asks for one block of output."""

    def pump(self, frames: int) -> tuple[np.ndarray, bool]:
        """Returns (the (frames, channels) float32 block written, whether the callback raised CallbackStop)."""
        out = np.full((frames, self.kw["channels"]), np.nan, np.float32)
        t = SimpleNamespace(outputBufferDacTime=0.0, currentTime=0.0)
        try:
            self.kw["callback"](out, frames, t, None)
            return out, False
        except Exception as stop:  # CallbackStop at the end of the file
            assert "Stop" in type(stop).__name__
            return out, True
