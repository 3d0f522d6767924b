"""A live web preview of the dancing skeleton: a small HTTP server and a self-contained page.

``PreviewServer(host, port).start()`` serves ``http://host:port/``: a page (``preview_static/``:
plain JavaScript and a 2D ``<canvas>``; nothing is fetched from the internet) that draws the skeleton
in 3D with a perspective projection (pinhole camera, ``x_screen = f * x_cam / z_cam``) and an
orbiting camera (drag to orbit, wheel to zoom, ``r`` toggles the slow auto-orbit). Frames reach the
page over Server-Sent Events (the WHATWG HTML standard's ``text/event-stream``; the browser's
``EventSource`` reconnects on its own if the server restarts).

Each :meth:`PreviewServer.push` replaces the latest frame (older ones are dropped, never queued), so a
slow browser never holds up the live loop; each connected page gets the newest frame at most
``max_rate_hz`` times a second. Forward kinematics and JSON encoding run in the server's threads,
not in the caller's.

HTTP endpoints: ``/`` (the page), ``/preview.js``, ``/frame.json`` (the latest frame, or
``{"seq": 0}``), ``/events`` (the SSE stream; each event's ``data`` is a frame object; ``HEAD /events``
gets the stream's headers only, and the connection is closed).

Frame object: ``{"seq": int, "t": float seconds (perf_counter clock, the frame's show time),
"joints": [[x, y, z], ...] metres (y up, right-handed, character facing +z, its left at +x),
"parents": [int, ...] (-1 for the root), "sides": "lrc..." (one letter per joint: the character's
left, right, or centre, for colouring)}``.

Threads: one that runs the HTTP server and one per connected page; :meth:`PreviewServer.stop` ends
every page's stream, shuts the server down and joins all of them.
"""

from __future__ import annotations

import errno
import html
import json
import logging
import numbers
import socket
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from livedance.bridges.frame import SMPLX_JOINT_NAMES, SMPLX_PARENTS, PoseFrame
from livedance.errors import ConfigError, DataError

_log = logging.getLogger("livedance.preview")

STATIC_DIR: Path = Path(__file__).resolve().with_name("preview_static")
"""Folder of the page's files (index.html, preview.js)."""

_STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/preview.js": ("preview.js", "text/javascript; charset=utf-8"),
}

#: Seconds between SSE keep-alive comments when no frame arrives.
KEEPALIVE_S = 10.0


def joint_sides(names: Sequence[str]) -> str:
    """One letter per joint: ``l`` (name starts with ``left_``), ``r`` (``right_``) or ``c``."""
    return "".join("l" if n.startswith("left_") else "r" if n.startswith("right_") else "c" for n in names)


def pose_positions(frame: PoseFrame) -> np.ndarray:
    """World joint positions of a :class:`PoseFrame` by forward kinematics.

    Implements ``p_j = p_parent(j) + G_parent(j) * offset_j`` (SMPL, Loper et al. 2015, Eq. 4 without
    skinning) through :func:`livedance.bridges.fk.forward_kinematics`.

    Returns:
        (55, 3) float64 metres, SMPL-X joint order.
    """
    from livedance.bridges.fk import forward_kinematics

    _, pos = forward_kinematics(frame.local_quats, frame.rest_offsets, frame.root_position, SMPLX_PARENTS)
    return pos


def _check_parents(parents: Sequence[int], n: int) -> list[int]:
    par = [int(p) for p in parents]
    if len(par) != n:
        raise DataError(f"preview: {len(par)} parents for {n} joints; expected one parent index per joint")
    for j, p in enumerate(par):
        if p >= j or p < -1:
            raise DataError(f"preview: parent {p} of joint {j} must be -1 (root) or an earlier joint index")
    return par


class _Handler(BaseHTTPRequestHandler):
    """Serves the page, the latest frame and the SSE stream (one instance per request)."""

    server: _PreviewHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 5.0  # socket timeout: a stuck client cannot hold a thread past stop()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base-class signature
        _log.debug("%s - %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        try:
            if path in _STATIC_FILES:
                name, ctype = _STATIC_FILES[path]
                self._send(HTTPStatus.OK, owner._static(name), ctype)
            elif path == "/frame.json":
                _, body = owner._payload()
                self._send(HTTPStatus.OK, body, "application/json")
            elif path == "/events" and self.command == "HEAD":
                self._stream_headers()  # headers only: a HEAD must not open an endless stream
            elif path == "/events":
                self._stream_events(owner)
            elif path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError) as err:
            _log.debug("preview client %s went away: %s", self.address_string(), err)
            self.close_connection = True

    def _stream_headers(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _stream_events(self, owner: PreviewServer) -> None:
        self._stream_headers()
        self.wfile.write(b"retry: 1000\n\n")
        self.wfile.flush()
        owner._client_delta(+1)
        try:
            last_seq = 0
            # 3/4 of the period: frames pushed at exactly max_rate_hz with some jitter still all go out.
            min_gap = 0.75 / owner.max_rate_hz
            last_sent = 0.0
            while True:
                seq = owner._wait_newer(last_seq, KEEPALIVE_S)
                if seq is None:  # stopped
                    return
                if seq == last_seq:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    continue
                wait = last_sent + min_gap - time.perf_counter()
                if wait > 0 and owner._stopped.wait(wait):
                    return
                seq, body = owner._payload()
                self.wfile.write(b"id: %d\ndata: " % seq + body + b"\n\n")
                self.wfile.flush()
                last_seq = seq
                last_sent = time.perf_counter()
                owner._count_sent()
        finally:
            owner._client_delta(-1)


class _PreviewHTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # joined by server_close(): stop() leaves no thread behind
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: PreviewServer) -> None:
        self.owner = owner
        if ":" in address[0]:  # an IPv6 literal ("::", "::1"): the class default is AF_INET
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class PreviewServer:
    """The web preview server (see the module docstring).

    Args:
        host: interface to listen on (127.0.0.1: this machine only; 0.0.0.0: the whole network; an IPv6
            literal such as ``::1`` or ``::`` listens on IPv6).
        port: TCP port, an integer 0..65535 (not ``bool``); 0 picks a free one (read :attr:`port` after
            :meth:`start`).
        max_rate_hz: frames per second sent to each page, at most (a real number > 0; frames closer
            together than 3/4 of a period are merged: the newer one is sent).
        title: shown in the page's corner.

    Raises:
        ConfigError: a port that is not an integer 0..65535 or a ``max_rate_hz`` that is not a number > 0
            (at construction); from :meth:`start` when the port is taken or the host cannot be bound.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, max_rate_hz: float = 60.0, title: str = "livedance") -> None:
        if isinstance(port, bool) or not (isinstance(port, numbers.Integral) and 0 <= port <= 65535):
            raise ConfigError(f"preview port must be an integer 0..65535, got {port!r}")
        if isinstance(max_rate_hz, bool) or not (isinstance(max_rate_hz, numbers.Real) and max_rate_hz > 0):
            raise ConfigError(f"preview max_rate_hz must be a number of frames per second > 0, got {max_rate_hz!r}")
        self.host = str(host)
        self._port = int(port)
        self.max_rate_hz = float(max_rate_hz)
        self.title = title
        self._cond = threading.Condition()
        self._stopped = threading.Event()
        self._seq = 0
        self._raw: tuple[Any, list[int] | None] | None = None
        self._cache: tuple[int, bytes] = (0, b'{"seq": 0}')
        self._cache_lock = threading.Lock()
        self._httpd: _PreviewHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._static_cache: dict[str, bytes] = {}
        self.frames_pushed = 0
        self.frames_sent = 0
        self._clients = 0

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Bind and serve in a background thread (idempotent).

        Raises:
            ConfigError: the port is in use or the host cannot be bound (the message names them).
        """
        if self._httpd is not None:
            return
        for name in ("index.html", "preview.js"):
            self._static(name)  # fail now, not in a browser, if the page files are missing
        self._stopped.clear()
        try:
            httpd = _PreviewHTTPServer((self.host, self._port), self)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"preview: port {self._port} on {self.host} is already in use; pick another (--preview-port)"
                ) from None
            raise ConfigError(f"preview: cannot listen on {self.host}:{self._port}: {err}") from None
        self._httpd = httpd
        self._port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="livedance-preview", daemon=True
        )
        self._thread.start()
        _log.info("preview at %s", self.url)

    def stop(self) -> None:
        """End every page's stream, stop the server and join its threads (idempotent, never raises)."""
        httpd, self._httpd = self._httpd, None
        self._stopped.set()
        with self._cond:
            self._cond.notify_all()
        if httpd is None:
            return
        try:
            httpd.shutdown()
            httpd.server_close()  # joins the per-request threads
        except Exception as err:  # noqa: BLE001 - stop never raises
            _log.warning("preview: error while stopping: %s", err)
        th, self._thread = self._thread, None
        if th is not None:
            th.join(timeout=5.0)

    def __enter__(self) -> PreviewServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port (the one picked when constructed with 0, once started)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port/`` of the page."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else "::1" if self.host == "::" else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}/"

    @property
    def clients(self) -> int:
        """Pages connected to the event stream now."""
        return self._clients

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._httpd is not None

    # ------------------------------------------------------------------ frames
    def push(self, frame: PoseFrame | np.ndarray, parents: Sequence[int] | None = None) -> None:
        """Make ``frame`` the latest pose (non-blocking: the previous one, if unsent, is dropped).

        Args:
            frame: a :class:`PoseFrame` (positions by forward kinematics), or joint positions
                (J, 3) in metres (y up, right-handed): J = 55 (SMPL-X) or 22 (SMPL-X body) take the
                SMPL-X parents by default; any other J needs ``parents``.
            parents: length-J parent indices (-1 for the root, parents before children).

        Raises:
            DataError: positions that are not (J, 3), not finite, or a wrong parent table.
        """
        if isinstance(frame, PoseFrame):
            item: Any = frame
            par = None
        else:
            pos = np.array(frame, dtype=np.float64)
            if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 1:
                raise DataError(f"preview: joint positions have shape {pos.shape}; expected (J, 3) metres")
            if not np.all(np.isfinite(pos)):
                raise DataError("preview: joint positions hold NaN or inf; expected finite metres")
            n = pos.shape[0]
            if parents is None:
                if n not in (22, len(SMPLX_PARENTS)):
                    raise DataError(f"preview: {n} joints need a parents table (default only for 22 or 55 SMPL-X joints)")
                parents = SMPLX_PARENTS[:n]
            par = _check_parents(parents, n)
            item = pos
        with self._cond:
            self._raw = (item, par)
            self._seq += 1
            self.frames_pushed += 1
            self._cond.notify_all()

    def _wait_newer(self, seq: int, timeout: float) -> int | None:
        """Block until a frame newer than ``seq`` exists (returns its seq), the timeout passes (returns
        ``seq``), or the server stops (returns None)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seq or self._stopped.is_set(), timeout)
            if self._stopped.is_set():
                return None
            return self._seq

    def _payload(self) -> tuple[int, bytes]:
        """(seq, JSON bytes) of the latest frame, encoded once per frame."""
        with self._cond:
            seq, raw = self._seq, self._raw
        with self._cache_lock:
            if self._cache[0] == seq or raw is None:
                return self._cache
        item, par = raw
        if isinstance(item, PoseFrame):
            pos = pose_positions(item)
            par = list(SMPLX_PARENTS)
            t = float(item.t_show_s)
        else:
            pos, t = item, None
        n = pos.shape[0]
        names = SMPLX_JOINT_NAMES[:n] if n in (22, len(SMPLX_JOINT_NAMES)) else ()
        obj = {
            "seq": seq,
            "t": t,
            "joints": np.round(pos, 4).tolist(),
            "parents": par,
            "sides": joint_sides(names) if names else "c" * n,
        }
        body = json.dumps(obj, separators=(",", ":")).encode()
        with self._cache_lock:
            if seq > self._cache[0]:
                self._cache = (seq, body)
            return self._cache

    def latest(self) -> dict:
        """The latest frame object (as the page receives it), ``{"seq": 0}`` before the first push."""
        return json.loads(self._payload()[1])

    # ------------------------------------------------------------------ helpers for the handler
    def _static(self, name: str) -> bytes:
        if name not in self._static_cache:
            path = STATIC_DIR / name
            try:
                data = path.read_bytes()
            except OSError as err:
                raise ConfigError(f"preview: page file {path} is missing ({err}); reinstall livedance") from None
            if name == "index.html":
                data = data.replace(b"{{TITLE}}", html.escape(self.title).encode("utf-8", "replace"))
            self._static_cache[name] = data
        return self._static_cache[name]

    def _client_delta(self, d: int) -> None:
        with self._cond:
            self._clients += d

    def _count_sent(self) -> None:
        with self._cond:
            self.frames_sent += 1


__all__ = ["STATIC_DIR", "PreviewServer", "joint_sides", "pose_positions"]
