"""OSC over UDP for the live senders: address checks, bundle packing, and sending that never stops the show.

Encoding is OSC 1.0 (opensoundcontrol.org spec 1.0): messages and bundles are built with ``struct`` and
numpy here rather than python-osc's ``OscMessageBuilder`` (about 26 us per message, 1.5 ms for a VMC
frame, against a few us); a test checks byte-for-byte parity with python-osc's builders, and the
third-party receivers (vmcp, liblo's oscdump) decode what we send. Sending uses our own UDP socket,
*connected* to the receiver, instead of python-osc's ``SimpleUDPClient``: on a connected UDP socket
Linux reports the ICMP "port unreachable" of a closed port as ``ECONNREFUSED`` on a later send, so "no
receiver is listening" can be told to the user once. ``SimpleUDPClient`` uses an unconnected socket,
where that error is silently dropped.

Packing: the messages of one frame are packed, in order, into as few OSC bundles as fit under
``max_datagram_bytes`` each. The default 1400 bytes keeps every datagram inside one Ethernet frame
(1500-byte MTU minus IPv4/UDP headers = 1472, minus some slack for VPN/tunnel headers), so no IP
fragmentation: losing one fragment loses the whole datagram, and Wi-Fi loses fragments. Raise it to
send fewer datagrams (about 8000 on a wired LAN, where fragments are rarely lost; up to 65507 on
loopback). EVMC4U drops packets beyond about 30 per Unity frame; a full 55-bone VMC frame is 4
datagrams at 1400 bytes, 1 at 8000.

Errors: a bad host or port is a :class:`~livedance.errors.ConfigError` at construction. Once running,
a failing send (no receiver, network down, send buffer full) never raises into the caller: the first
failure logs ONE warning, every failure is counted in :attr:`OSCUDPTransport.stats`.
"""

from __future__ import annotations

import ipaddress
import logging
import numbers
import re
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from livedance.errors import ConfigError

_BUNDLE_HEADER = b"#bundle\0" + struct.pack(">Q", 1)  # time tag 1 = "immediately" (OSC 1.0)
_BUNDLE_HEADER_BYTES = len(_BUNDLE_HEADER)
_ELEMENT_SIZE_BYTES = 4  # int32 size before each bundle element
_MAX_UDP_PAYLOAD = 65507
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")  # RFC 1123 host name


def osc_string(text: str) -> bytes:
    """OSC-string: ASCII/UTF-8 bytes, NUL-terminated, padded with NULs to a multiple of 4 bytes.

    Raises:
        ValueError: ``text`` is not a str, or holds a NUL character (it would end the OSC-string early and
            shift every later argument of the message).
    """
    if not isinstance(text, str):
        raise ValueError(f"OSC string {text!r} is a {type(text).__name__}; expected a str")
    if "\0" in text:
        raise ValueError(f"OSC string {text!r} holds a NUL character; expected text without NUL")
    raw = text.encode("utf-8")
    return raw + b"\0" * (4 - len(raw) % 4)


def osc_message(address: str, args: Sequence[float | int | str]) -> bytes:
    """Encode one OSC message.

    Args:
        address: OSC address, starting with ``/``.
        args: arguments; str goes out as OSC ``s``, bool/int (also numpy integers) as ``i`` (int32,
            -2**31 .. 2**31 - 1), every other real number (float, numpy floats) as ``f`` (float32,
            big-endian).

    Returns:
        the message bytes (a multiple of 4 long).

    Raises:
        ValueError: the address or a str argument holds a NUL character, an int is outside int32, a finite
            float is outside float32, or an argument is neither a str nor a real number (``None``, a list
            ...); the message names it.
    """
    tags = [","]
    payload = []
    for a in args:
        if isinstance(a, str):
            tags.append("s")
            payload.append(osc_string(a))
        elif isinstance(a, (bool, int, np.integer)):
            if not -2**31 <= int(a) < 2**31:
                raise ValueError(f"OSC argument {a!r} of {address!r} is outside int32; expected -2**31 .. 2**31 - 1")
            tags.append("i")
            payload.append(struct.pack(">i", int(a)))
        elif isinstance(a, numbers.Real):
            try:
                payload.append(struct.pack(">f", float(a)))
            except OverflowError:
                raise ValueError(f"OSC argument {a!r} of {address!r} is outside float32; expected |x| < 3.4e38") from None
            tags.append("f")
        else:
            raise ValueError(
                f"OSC argument {a!r} of {address!r} is a {type(a).__name__}; expected a str, an int or a float"
            )
    return osc_string(address) + osc_string("".join(tags)) + b"".join(payload)


def osc_float_messages(prefixes: Sequence[bytes], values: np.ndarray) -> list[bytes]:
    """Many messages that share a layout ``<prefix><n float32>``, encoded in one numpy call.

    Args:
        prefixes: per message, the encoded address + type tags (+ any leading string arguments), e.g.
            ``osc_string("/VMC/Ext/Bone/Pos") + osc_string(",sfffffff") + osc_string("Hips")``.
        values: (len(prefixes), n) float array; written as big-endian float32.

    Returns:
        the encoded messages.
    """
    raw = np.ascontiguousarray(values, dtype=">f4").tobytes()
    width = 4 * (values.shape[1] if values.ndim == 2 else 1)
    return [p + raw[i * width:(i + 1) * width] for i, p in enumerate(prefixes)]


def pack_bundles(messages: Sequence[bytes], max_datagram_bytes: int) -> list[bytes]:
    """Pack encoded messages, keeping their order, into OSC bundles of at most ``max_datagram_bytes`` each.

    A message that alone exceeds the limit goes out in a bundle of its own (it cannot be split).

    Args:
        messages: encoded OSC messages (from :func:`osc_message` / :func:`osc_float_messages`), in send order.
        max_datagram_bytes: upper bound of one datagram's size in bytes, bundle header and element sizes
            included (16 + 4 per message on top of the messages).

    Returns:
        the encoded datagrams (each an OSC bundle with time tag 1 = "immediately").
    """
    datagrams: list[bytes] = []
    current: list[bytes] = [_BUNDLE_HEADER]
    size = _BUNDLE_HEADER_BYTES
    for msg in messages:
        need = _ELEMENT_SIZE_BYTES + len(msg)
        if len(current) > 1 and size + need > max_datagram_bytes:
            datagrams.append(b"".join(current))
            current, size = [_BUNDLE_HEADER], _BUNDLE_HEADER_BYTES
        current.append(struct.pack(">i", len(msg)))
        current.append(msg)
        size += need
    if len(current) > 1:
        datagrams.append(b"".join(current))
    return datagrams


def validate_endpoint(host: object, port: object, what: str) -> tuple[str, int]:
    """Check a destination host and port.

    Args:
        host: an IPv4/IPv6 address or a resolvable host name.
        port: UDP port 1..65535: an int (numpy integers too), an integer-valued float (``39539.0``) or a
            string of digits; ``bool`` is rejected.
        what: the sender's name, for the message (``"VMC"``, ``"raw OSC"``).

    Returns:
        (host, port) as (str, int).

    Raises:
        ConfigError: naming the bad value and what was expected.
    """
    if isinstance(port, bool):
        raise ConfigError(f"{what} port {port!r} is a bool; expected an integer UDP port 1..65535")
    if isinstance(port, numbers.Integral):
        port = int(port)
    elif isinstance(port, numbers.Real):
        if not float(port).is_integer():
            raise ConfigError(f"{what} port {port!r} is not a whole number; expected an integer UDP port 1..65535")
        port = int(port)
    elif isinstance(port, str) and port.strip().isdigit():
        port = int(port.strip())
    else:
        raise ConfigError(f"{what} port {port!r} is not a number; expected an integer UDP port 1..65535")
    if not 1 <= port <= 65535:
        raise ConfigError(f"{what} port {port} is out of range; expected an integer UDP port 1..65535")
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"{what} host {host!r} is empty; expected an IP address or host name")
    host = host.strip()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if re.fullmatch(r"[0-9.]+", host):
            raise ConfigError(f"{what} host {host!r} is not a valid IPv4 address (four numbers 0..255)") from None
        if not _HOSTNAME_RE.match(host):
            raise ConfigError(
                f"{what} host {host!r} is neither an IP address nor a valid host name "
                "(letters, digits, '-' and '.')"
            ) from None
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as err:
        raise ConfigError(f"{what} host {host!r} does not resolve ({err.strerror}); expected an IP address "
                          "or a host name this machine can resolve") from None
    return host, port


def preferred_address(host: str, port: int) -> tuple:
    """The ``socket.getaddrinfo`` entry (family, type, proto, canonname, sockaddr) to send UDP to ``host:port``.

    An IPv4 address is preferred when the name has one: a host name such as ``localhost`` may resolve to
    ``::1`` first, while Unity (EVMC4U), VSeeFace, Warudo and most VJ tools listen on IPv4 only, so the first
    entry would send every frame where nobody listens. An IPv6 literal (or a name with only IPv6) gives IPv6.

    Raises:
        socket.gaierror: the name does not resolve (:func:`validate_endpoint` reports it first, as ConfigError).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    return next((i for i in infos if i[0] == socket.AF_INET), infos[0])


@dataclass
class TransportStats:
    """Counters of one transport. ``send_errors`` counts datagrams that failed to go out."""

    datagrams_sent: int = 0
    bytes_sent: int = 0
    send_errors: int = 0
    last_error: str | None = None


class OSCUDPTransport:
    """A UDP socket to one OSC receiver that packs messages into bundles and never raises on send.

    Args:
        host: receiver IP address or host name.
        port: receiver UDP port (1..65535).
        max_datagram_bytes: upper bound of one datagram (64..65507); see the module docstring.
        name: sender name used in messages and the warning (``"VMC"``, ``"raw OSC"``).
        logger: where the single warning goes; default ``logging.getLogger("livedance.bridges")``.

    Raises:
        ConfigError: bad host, port or datagram size.

    The socket is connected to the receiver when it can be (a refused send then reports that nothing listens);
    a connect that fails, e.g. with no route at start-up, is tried again on a send every :attr:`RECONNECT_S`
    seconds, and until then the datagrams go out with ``sendto``.
    """

    #: Seconds between connect attempts while the socket is not connected.
    RECONNECT_S = 1.0

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_datagram_bytes: int = 1400,
        name: str = "OSC",
        logger: logging.Logger | None = None,
    ) -> None:
        self.host, self.port = validate_endpoint(host, port, name)
        if isinstance(max_datagram_bytes, bool) or not isinstance(max_datagram_bytes, int) or not (
            64 <= max_datagram_bytes <= _MAX_UDP_PAYLOAD
        ):
            raise ConfigError(
                f"{name} max_datagram_bytes {max_datagram_bytes!r} is invalid; expected an integer 64..65507"
            )
        self.max_datagram_bytes = max_datagram_bytes
        self.name = name
        self.stats = TransportStats()
        self._log = logger or logging.getLogger("livedance.bridges")
        self._warned = False  # the one send-error warning
        self._warned_connect = False  # the one connect-failure warning
        family, socktype, proto, _, addr = preferred_address(self.host, self.port)
        self._addr = addr
        self._sock: socket.socket | None = socket.socket(family, socktype, proto)
        self._sock.setblocking(False)
        if family == socket.AF_INET:  # VJ rigs broadcast OSC: without this, connect/send to x.x.x.255 gets EACCES
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._connected = False
        self._connect_after = 0.0  # time.monotonic() of the next connect attempt while unconnected
        self._try_connect()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._sock is None

    def send_datagrams(self, datagrams: Sequence[bytes]) -> int:
        """Send encoded datagrams; count and swallow failures.

        Returns:
            the number of datagrams that the OS accepted (0 after :meth:`close`).
        """
        if self._sock is None:
            return 0
        if not self._connected and time.monotonic() >= self._connect_after:
            self._try_connect()
        ok = 0
        for dgram in datagrams:
            try:
                if self._connected:
                    self._sock.send(dgram)
                else:
                    self._sock.sendto(dgram, self._addr)
            except OSError as err:  # ECONNREFUSED, ENETUNREACH, EAGAIN ...: never into the caller
                self._note_error(err)
                continue
            ok += 1
            self.stats.datagrams_sent += 1
            self.stats.bytes_sent += len(dgram)
        return ok

    def send_messages(self, messages: Sequence[bytes]) -> int:
        """Pack ``messages`` into bundles (:func:`pack_bundles`) and send them.

        Returns:
            the number of datagrams the OS accepted.
        """
        return self.send_datagrams(pack_bundles(messages, self.max_datagram_bytes))

    def _try_connect(self) -> None:
        """Connect the socket to the receiver (so that ICMP "port unreachable" comes back as a refused send); on
        failure (e.g. no route yet at start-up) send with ``sendto`` meanwhile and try again a second later."""
        try:
            self._sock.connect(self._addr)
            self._connected = True
        except OSError as err:  # not a send: noted (and warned about once), not counted in send_errors
            self._connect_after = time.monotonic() + self.RECONNECT_S
            self.stats.last_error = f"{type(err).__name__}: {err}"
            if not self._warned_connect:
                self._warned_connect = True
                self._log.warning("%s: cannot connect to %s:%d yet: %s. Sending anyway; the connect is retried "
                                  "every %g s.", self.name, self.host, self.port, err, self.RECONNECT_S)

    def _note_error(self, err: OSError) -> None:
        self.stats.send_errors += 1
        self.stats.last_error = f"{type(err).__name__}: {err}"
        if not self._warned:
            self._warned = True
            hint = " (nothing is listening on that port?)" if isinstance(err, ConnectionRefusedError) else ""
            self._log.warning(
                "%s: sending to %s:%d failed: %s%s. Streaming goes on; further send errors are counted, "
                "not logged.", self.name, self.host, self.port, err, hint,
            )

    def set_logger(self, logger) -> None:
        """Send the one send-error warning to ``logger`` (a :class:`logging.Logger` or anything with its
        ``warning``), e.g. a logger that only queues the record when :meth:`send_datagrams` runs on a thread that
        must not block on I/O (the live loop's output clock)."""
        self._log = logger

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "OSCUDPTransport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
