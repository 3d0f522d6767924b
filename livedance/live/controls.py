"""Live controls over OSC: a VJ's fader and buttons for the dancer.

Addresses (OSC 1.0 over UDP, bound to 127.0.0.1 by default):

============================  ======  ===========================================================
address                       types   effect
============================  ======  ===========================================================
``/livedance/energy``         f|i     energy fader in [0, 2] (1 = as trained); clamped
``/livedance/style``          s|i     style by name or index, if the generator has styles (learned:
                                      ``cha-cha``/``rumba``/``tango``/``waltz``, ``none``; procedural:
                                      ``groove``/``bounce``/``wave``)
``/livedance/style/strength`` f|i     how hard the learned dancer's style pulls, in [0, 2] (1 = the
                                      prior-shift correction, 0 = no pull, the style kept); clamped
``/livedance/pace``           f|i     the learned dancer's pace, m/s of limb speed (a model trained with
                                      ``--pace``), clamped to 0.05..3; 0 = the pace the model drew;
                                      a negative value is refused as malformed
``/livedance/freeze``         (none)  the output holds the current pose (frames keep going out)
``/livedance/resume``         (none)  back to live motion
``/livedance/nudge``          f|i     shift the beat phase by this many beats (cumulative, -1..1)
``/livedance/nudge/bpm``      f|i     add this many BPM to the tracked tempo (cumulative, -40..40)
``/livedance/nudge/reset``    (none)  clear both nudges
``/livedance/accent``         f|i     beat accent of the warped learned dance in [0, 0.5]; clamped
============================  ======  ===========================================================

Anything else (unknown address, wrong argument count or type, non-finite numbers, a datagram that
is not OSC) is ignored and counted in :attr:`ControlState.malformed`; the first one is logged (one
warning, from the control server's thread: its address, argument types and what was expected). Packets are decoded with
python-osc's parser (``pythonosc.osc_packet.OscPacket``; bundles are unpacked) in a small receive
loop of our own, so that undecodable datagrams can be counted (python-osc's server drops them
silently).
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from dataclasses import dataclass, field

from livedance.errors import ConfigError

_log = logging.getLogger("livedance.live")

#: Address prefix of every control.
PREFIX = "/livedance"

#: What each control address takes (named in the warning about a malformed message).
EXPECTED = {
    f"{PREFIX}/energy": "one finite number (f or i), 0..2",
    f"{PREFIX}/style": "one style name (s) or index (i)",
    f"{PREFIX}/style/strength": "one finite number (f or i), 0..2",
    f"{PREFIX}/pace": "one finite, non-negative number of m/s (f or i), 0.05..3, or 0 for the model's own pace",
    f"{PREFIX}/freeze": "no arguments",
    f"{PREFIX}/resume": "no arguments",
    f"{PREFIX}/nudge": "one finite number of beats (f or i)",
    f"{PREFIX}/nudge/bpm": "one finite number of BPM (f or i)",
    f"{PREFIX}/nudge/reset": "no arguments",
    f"{PREFIX}/accent": "one finite number (f or i), 0..0.5",
}


def _osc_tag(x) -> str:
    """The OSC type tag of a decoded argument (T/F, i, f, s, b, N; else the Python type's name in brackets)."""
    if isinstance(x, bool):
        return "T" if x else "F"
    if x is None:
        return "N"
    for typ, tag in ((int, "i"), (float, "f"), (str, "s"), (bytes, "b")):
        if isinstance(x, typ):
            return tag
    return f"[{type(x).__name__}]"


def describe_malformed(address: str, args: list) -> str:
    """One line on a control message that was ignored: its address, its argument types and what was expected."""
    tags = "".join(_osc_tag(a) for a in args)
    types = f"argument types {tags!r}" if tags else "no arguments"
    want = EXPECTED.get(address)
    if want is None:
        return f"OSC control {address!r} ({types}) ignored: unknown address; expected one of {', '.join(EXPECTED)}"
    return f"OSC control {address} ({types}) ignored: expected {want}"


@dataclass
class ControlState:
    """The current values of the live controls (written by the control thread, read by the loop).

    Attributes:
        energy: energy fader in [0, 2].
        frozen: True while the output holds its pose.
        phase_offset_beats: beat phase nudge in beats, added to the tracker's phase.
        bpm_offset: tempo nudge in BPM, added to the tracker's tempo.
        style_request: a style (name or index) not yet applied by the scheduler, or None.
        style_strength_request: a style strength in [0, 2] not yet applied by the scheduler, or None.
        accent: beat accent of the warp in [0, 0.5] (:attr:`livedance.live.warp.WarpConfig.accent`), or None
            for the configured one.
        pace_request: a pace in m/s (in [0.05, 3]; 0 = the model's own draw) not yet applied by the scheduler, or
            None.
        received: well-formed control messages handled.
        malformed: messages or datagrams ignored (unknown address, bad arguments, not OSC).
        unsupported: style (and style strength) and pace requests the generator could not apply.
    """

    energy: float = 1.0
    frozen: bool = False
    phase_offset_beats: float = 0.0
    bpm_offset: float = 0.0
    style_request: str | int | None = None
    style_strength_request: float | None = None
    accent: float | None = None
    pace_request: float | None = None
    received: int = 0
    malformed: int = 0
    unsupported: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def take_style_request(self) -> str | int | None:
        """Return and clear the pending style request alone (the performer takes both at once,
        :meth:`take_style_requests`)."""
        with self._lock:
            req, self.style_request = self.style_request, None
            return req

    def take_style_strength_request(self) -> float | None:
        """Return and clear the pending style strength request alone (see :meth:`take_style_requests`)."""
        with self._lock:
            lam, self.style_strength_request = self.style_strength_request, None
            return lam

    def nudges(self) -> tuple[float, float]:
        """``(bpm_offset, phase_offset_beats)`` read together (output clock / scheduler threads), so a
        ``/livedance/nudge/reset`` arriving meanwhile cannot pair one nudge's old value with the other's new one."""
        with self._lock:
            return self.bpm_offset, self.phase_offset_beats

    def take_style_requests(self) -> tuple[str | int | None, float | None]:
        """Return and clear the pending style and style strength requests together (scheduler thread), so a style
        and a strength sent together are applied at the same step."""
        with self._lock:
            req, lam = self.style_request, self.style_strength_request
            self.style_request = self.style_strength_request = None
            return req, lam

    def take_pace_request(self) -> float | None:
        """Return and clear the pending pace request, m/s (0: the model's own pace) (scheduler thread)."""
        with self._lock:
            pace, self.pace_request = self.pace_request, None
            return pace

    def apply(self, address: str, args: list) -> bool:
        """Apply one control message. Returns False (and counts it as malformed) when it is not valid."""

        def number(x) -> float | None:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                return None
            v = float(x)
            return v if math.isfinite(v) else None

        with self._lock:
            ok = True
            if address == f"{PREFIX}/energy" and len(args) == 1 and number(args[0]) is not None:
                self.energy = min(max(number(args[0]), 0.0), 2.0)
            elif address == f"{PREFIX}/style" and len(args) == 1 and (
                (isinstance(args[0], str) and args[0].strip()) or (isinstance(args[0], int) and not isinstance(args[0], bool))
            ):
                self.style_request = args[0].strip() if isinstance(args[0], str) else int(args[0])
            elif address == f"{PREFIX}/style/strength" and len(args) == 1 and number(args[0]) is not None:
                self.style_strength_request = min(max(number(args[0]), 0.0), 2.0)
            elif address == f"{PREFIX}/pace" and len(args) == 1 and number(args[0]) is not None:
                v = number(args[0])
                if v < 0:  # no pace is negative: a typo, not a request for the model's own pace
                    ok = False
                else:
                    self.pace_request = 0.0 if v == 0 else min(max(v, 0.05), 3.0)
            elif address == f"{PREFIX}/freeze" and not args:
                self.frozen = True
            elif address == f"{PREFIX}/resume" and not args:
                self.frozen = False
            elif address == f"{PREFIX}/nudge" and len(args) == 1 and number(args[0]) is not None:
                v = self.phase_offset_beats + number(args[0])
                self.phase_offset_beats = (v + 1.0) % 2.0 - 1.0
            elif address == f"{PREFIX}/nudge/bpm" and len(args) == 1 and number(args[0]) is not None:
                self.bpm_offset = min(max(self.bpm_offset + number(args[0]), -40.0), 40.0)
            elif address == f"{PREFIX}/accent" and len(args) == 1 and number(args[0]) is not None:
                self.accent = min(max(number(args[0]), 0.0), 0.5)
            elif address == f"{PREFIX}/nudge/reset" and not args:
                self.phase_offset_beats = 0.0
                self.bpm_offset = 0.0
            else:
                ok = False
            if ok:
                self.received += 1
            else:
                self.malformed += 1
            return ok

    def count_malformed(self) -> None:
        """Count a datagram that could not be decoded at all."""
        with self._lock:
            self.malformed += 1


class ControlServer:
    """Receives OSC control messages on ``host:port`` in a thread and applies them to a :class:`ControlState`.

    Args:
        state: where the values go.
        port: UDP port (1..65535), or 0 for a free port chosen by the OS (see :attr:`port`).
        host: interface to bind; 127.0.0.1 by default (only this machine may steer the show).
        logger: where the one warning about a malformed control goes (a ``logging.Logger`` or the show's
            :class:`~livedance.live.deferlog.DeferredLog`, so a blocked terminal cannot stall this thread);
            default the ``livedance.live`` logger.

    Raises:
        ConfigError: the port is out of range (here); from :meth:`start`: the port is in use or the host is bad.

    :meth:`stop` ends the thread within ``poll_s`` (0.1 s) and closes the socket.
    """

    poll_s = 0.1

    def __init__(self, state: ControlState, port: int = 9000, host: str = "127.0.0.1", logger=None) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"control port {port!r} is invalid; expected an integer UDP port 1..65535 (0 = any free)")
        self.state = state
        self.host = host
        self._port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._warned = False  # the first malformed message was logged
        self._log = logger if logger is not None else _log  # a show passes its DeferredLog: no I/O on this thread

    @property
    def port(self) -> int:
        """The bound port (the OS's choice when constructed with 0)."""
        return self._port

    def start(self) -> None:
        """Bind the socket and start the receive thread.

        Raises:
            ConfigError: cannot bind (port in use, bad host).
        """
        if self._thread is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self._port))
        except (OSError, OverflowError) as err:
            sock.close()
            raise ConfigError(
                f"cannot listen for OSC controls on {self.host}:{self._port} ({err}); choose another --control-port"
            ) from None
        sock.settimeout(self.poll_s)
        self._sock = sock
        self._port = sock.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="livedance-controls", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the socket (idempotent, never raises)."""
        self._stop.set()
        th, self._thread = self._thread, None
        if th is not None and th is not threading.current_thread():
            th.join(timeout=1.0)
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _run(self) -> None:
        from pythonosc.osc_packet import OscPacket, ParseError

        sock = self._sock
        while not self._stop.is_set() and sock is not None:
            try:
                data, _ = sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                packet = OscPacket(data)
            except (ParseError, Exception):  # noqa: BLE001 - anything undecodable is malformed
                self.state.count_malformed()
                self._warn_once(lambda: f"OSC control datagram of {len(data)} bytes ignored: not an OSC message or "
                                        f"bundle; expected one of {', '.join(EXPECTED)} with its arguments")
                continue
            for timed in packet.messages:
                address, args = timed.message.address, list(timed.message.params)
                try:
                    ok = self.state.apply(address, args)
                except Exception:  # noqa: BLE001 - a control message never takes the loop down
                    self.state.count_malformed()
                    ok = False
                if not ok:
                    self._warn_once(lambda: describe_malformed(address, args))

    def _warn_once(self, text) -> None:
        """Control thread: log the first malformed control (``text()`` builds the line); later ones are only
        counted (:attr:`ControlState.malformed`)."""
        if self._warned:
            return
        self._warned = True
        try:
            self._log.warning("%s (further malformed controls are only counted)", text())
        except Exception:  # noqa: BLE001 - a message that cannot be described is still counted
            pass
