"""Process-wide PortAudio housekeeping: importing sounddevice, rescanning devices, JACK quirks, and
the stream plumbing every PortAudio user in livedance shares (:func:`open_stream`, :func:`close_stream`,
:func:`output_lead_s`: the live input, the played file, the calibration click player and loopback).

PortAudio keeps one device list per process, built when it is initialised (at ``import
sounddevice``). A device plugged in later, or a JACK server started later, is seen only after a
rescan (``Pa_Terminate`` + ``Pa_Initialize``), which also closes every open stream of the process.

PortAudio's JACK host API (v19.6/v19.7, pa_jack.c) has two traps once the JACK server has gone
away while the process was attached to it:

* stopping, aborting or closing a stream that was running waits on a condition variable that no
  thread will signal again, for 10 minutes (``RealStop`` -> ``WaitCondition``);
* ``Pa_Terminate`` (called at interpreter exit by sounddevice) then hangs on that stream, or,
  with no stream open, aborts the process on an assertion in the JACK host API's ``Terminate``.

So a stream lost with its JACK server is *abandoned* (:func:`abandon_stream`): kept referenced,
never stopped or closed, and sounddevice's exit-time ``Pa_Terminate`` is skipped so that the
process can exit. PortAudio cannot re-attach to a restarted JACK server inside the same process
after that; the program has to be restarted. These module-level records mirror PortAudio's own
process-wide state; they are the only globals in livedance.audio.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from livedance.errors import AudioError

#: Streams abandoned after their JACK server went away (never closed; see module docstring).
_ABANDONED: list[Any] = []


def import_sounddevice() -> ModuleType:
    """Import and return :mod:`sounddevice`.

    Raises:
        AudioError: the PortAudio library is missing (Debian: ``apt-get install libportaudio2``).
    """
    try:
        import sounddevice
    except OSError as err:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise AudioError(
            f"cannot load PortAudio ({err}); install it (Debian/Ubuntu: apt-get install libportaudio2)"
        ) from None
    return sounddevice


def open_stream(factory: Callable[..., Any], what: str, hint: str = "", **kwargs: Any) -> Any:
    """Build a stream with ``factory(**kwargs)`` (sounddevice's ``InputStream``, ``OutputStream`` or
    ``Stream``, or a test's fake) and start it.

    Args:
        factory: the stream class or a callable with its keyword signature.
        what: the stream, for the error message (for example ``"input device [3] system (...) at 44100 Hz"``).
        hint: appended to the error message (a likely cause).
        **kwargs: passed to ``factory`` (device, samplerate, blocksize, channels, dtype, latency, callback ...).

    Returns:
        the started stream.

    Raises:
        AudioError: ``cannot open <what>: <PortAudio's words><hint>``; a stream that was built but would not
            start is closed first.
    """
    stream = None
    try:
        stream = factory(**kwargs)
        stream.start()
    except Exception as err:
        if stream is not None:
            close_stream(stream)
        raise AudioError(f"cannot open {what}: {err}{hint}") from None
    return stream


def close_stream(stream: Any, ops: Sequence[str] = ("abort", "close")) -> None:
    """Call ``ops`` on ``stream`` in order (``"abort"``/``"stop"``, then ``"close"``), ignoring errors.

    Never raises. Not for a stream whose JACK server went away: see :func:`abandon_stream`.
    """
    for op in ops:
        try:
            getattr(stream, op)()
        except Exception:
            pass


def close_stream_within(stream: Any, timeout_s: float, name: str = "livedance-close-stream") -> threading.Thread | None:
    """:func:`close_stream` on a short-lived daemon thread, waited for at most ``timeout_s`` seconds.

    Closing can block on a failing device (a driver that does not return from abort); the caller's stop
    must not. A close still busy after ``timeout_s`` finishes on its own: the thread ends with the close.

    Returns:
        None when the stream was closed within ``timeout_s``; else the thread still closing it (join it to wait).
        Never raises (without a thread to spare it closes inline).
    """
    try:
        th = threading.Thread(target=close_stream, args=(stream,), name=name, daemon=True)
        th.start()
    except RuntimeError:  # cannot start a thread: close inline
        close_stream(stream)
        return None
    th.join(max(float(timeout_s), 0.0))
    return th if th.is_alive() else None


def output_lead_s(time_info: Any) -> float:
    """Seconds from an output callback's start until its first sample reaches the DAC.

    Args:
        time_info: the callback's ``time`` argument (PortAudio's ``PaStreamCallbackTimeInfo``).

    Returns:
        ``outputBufferDacTime - currentTime`` (both on PortAudio's stream clock), or 0.0 when the host API
        does not report them (zeros) or reports a value outside [0, 1) s. Reads two attributes, allocates
        nothing: safe in the audio callback.
    """
    try:
        dac = time_info.outputBufferDacTime
        cur = time_info.currentTime
    except AttributeError:
        return 0.0
    if dac > 0.0 and cur > 0.0 and 0.0 <= dac - cur < 1.0:
        return dac - cur
    return 0.0


def jack_is_dead() -> bool:
    """True once a stream was abandoned because its JACK server went away (restart needed)."""
    return bool(_ABANDONED)


def rescan() -> None:
    """Rebuild PortAudio's device list (finds devices plugged in and JACK servers started since).

    Closes every PortAudio stream of this process: call it only while none is open.

    Raises:
        AudioError: PortAudio is attached to a JACK server that went away (see the module
            docstring): a rescan would hang, so the process must be restarted.
    """
    sd = import_sounddevice()
    if jack_is_dead():
        raise AudioError(
            "cannot rescan audio devices: the JACK server this process was attached to went away, "
            "and PortAudio cannot detach from it cleanly; restart livedance"
        )
    sd._terminate()
    sd._initialize()


def abandon_stream(stream: Any) -> None:
    """Keep ``stream`` alive forever without stopping or closing it (its JACK server is gone).

    Also stops sounddevice from calling ``Pa_Terminate`` at interpreter exit, which would hang or
    abort on the dead JACK client. Never raises.
    """
    _ABANDONED.append(stream)
    try:
        import sounddevice

        sounddevice._initialized = 0  # skip Pa_Terminate in sounddevice's atexit handler
    except Exception:  # pragma: no cover - sounddevice missing means there is no stream either
        pass


def jack_client_name() -> str | None:
    """Name of this process's JACK client as PortAudio opened it (for example "PortAudio").

    JACK renames a client whose name is taken ("PortAudio-01"), so ask instead of assuming.
    Returns None when PortAudio has no JACK host API (no server was running at init).
    """
    sd = import_sounddevice()
    try:
        lib = ctypes.CDLL(sd._libname)
        fn = lib.PaJack_GetClientName
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    fn.restype = ctypes.c_int
    name = ctypes.c_char_p()
    if fn(ctypes.byref(name)) != 0 or not name.value:
        return None
    return name.value.decode("utf-8", "replace")
