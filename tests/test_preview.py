"""The web preview: HTTP endpoints, the Server-Sent Events stream (newest frame only), clean stop, and
the page itself rendered by headless Chromium (skipped when chromium is not installed)."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from livedance.bridges.frame import SMPLX_JOINT_NAMES, SMPLX_PARENTS, PoseFrame, joint_index
from livedance.bridges.preview import STATIC_DIR, PreviewServer, joint_sides
from livedance.errors import ConfigError, DataError
from livedance.live.rest import default_rest_offsets

# The page's bone colours for the character's left and right side (preview_static/preview.js).
LEFT_RGB = (0xFF, 0x6A, 0x3D)
RIGHT_RGB = (0x3D, 0xA5, 0xFF)


def _get(server: PreviewServer, path: str) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


class SSEReader:
    """A minimal text/event-stream client (what the browser's EventSource does)."""

    def __init__(self, server: PreviewServer) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        self.conn.request("GET", "/events")
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert self.resp.getheader("Content-Type") == "text/event-stream"

    def next_event(self) -> dict | None:
        """The next event's data as JSON, None at the end of the stream."""
        data = []
        while True:
            line = self.resp.fp.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                return json.loads("\n".join(data))

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def server():
    srv = PreviewServer(port=0)
    srv.start()
    yield srv
    srv.stop()


def _rest_frame(t: float = 0.0) -> PoseFrame:
    return PoseFrame.rest(default_rest_offsets(), t_show_s=t)


def _arms_down_frame() -> PoseFrame:
    f = _rest_frame()
    q = f.local_quats.copy()
    q[joint_index("left_shoulder")] = Rotation.from_euler("z", -75, degrees=True).as_quat()
    q[joint_index("right_shoulder")] = Rotation.from_euler("z", 75, degrees=True).as_quat()
    return PoseFrame(0.0, q, f.root_position, f.rest_offsets)


def test_joint_sides():
    s = joint_sides(SMPLX_JOINT_NAMES)
    assert len(s) == 55
    assert s[joint_index("left_wrist")] == "l" and s[joint_index("right_knee")] == "r"
    assert s[joint_index("pelvis")] == "c" and s[joint_index("head")] == "c"


def test_push_validates_input(server):
    with pytest.raises(DataError, match=r"\(J, 3\)"):
        server.push(np.zeros((22, 2)))
    with pytest.raises(DataError, match="NaN"):
        server.push(np.full((22, 3), np.nan))
    with pytest.raises(DataError, match="parents"):
        server.push(np.zeros((5, 3)))
    with pytest.raises(DataError, match="parent"):
        server.push(np.zeros((3, 3)), parents=[-1, 2, 0])
    assert server.frames_pushed == 0


def test_frame_json_positions_and_pose(server):
    status, _, body = _get(server, "/frame.json")
    assert status == 200 and json.loads(body) == {"seq": 0}
    pos = np.random.default_rng(0).normal(size=(22, 3))
    server.push(pos)
    obj = json.loads(_get(server, "/frame.json")[2])
    assert obj["seq"] == 1
    np.testing.assert_allclose(obj["joints"], pos, atol=1e-4)
    assert obj["parents"] == list(SMPLX_PARENTS[:22])
    assert obj["sides"] == joint_sides(SMPLX_JOINT_NAMES[:22])
    # A custom skeleton with its own parents.
    server.push([[0, 1, 0], [0, 2, 0], [1, 2, 0]], parents=[-1, 0, 1])
    obj = json.loads(_get(server, "/frame.json")[2])
    assert obj["parents"] == [-1, 0, 1] and obj["sides"] == "ccc"
    # A PoseFrame goes through forward kinematics: in the rest pose every joint sits at the sum of the
    # rest offsets along its chain; the show time travels along.
    rest = _rest_frame(t=12.5)
    server.push(rest)
    obj = server.latest()
    off = default_rest_offsets().astype(np.float64)
    expect = np.zeros((55, 3))
    for j, p in enumerate(SMPLX_PARENTS):
        expect[j] = off[0] if p < 0 else expect[p] + off[j]
    np.testing.assert_allclose(obj["joints"], expect, atol=2e-4)
    assert obj["t"] == 12.5
    # Rotating the left shoulder moves the left arm only.
    down = _arms_down_frame()
    server.push(down)
    moved = np.abs(np.asarray(server.latest()["joints"]) - expect).max(axis=1) > 1e-3
    names = [n for n, m in zip(SMPLX_JOINT_NAMES, moved) if m]
    assert "left_elbow" in names and "right_wrist" in names and "left_index3" in names
    assert not any(n in names for n in ("pelvis", "head", "left_shoulder", "left_knee"))


def test_static_page_has_no_external_resources(server):
    status, headers, page = _get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    status, headers, js = _get(server, "/preview.js")
    assert status == 200 and "javascript" in headers["Content-Type"]
    assert b"EventSource" in js
    for text in (page, js, *(p.read_bytes() for p in STATIC_DIR.iterdir())):
        # Nothing may be fetched from the internet: no absolute URLs in src/href/fetch/import.
        assert not re.search(rb"""(src|href)\s*=\s*["']?(https?:)?//""", text)
        assert not re.search(rb"""(fetch|import)\s*\(\s*["'](https?:)?//""", text)
    assert _get(server, "/nope")[0] == 404


def test_event_stream_sends_newest_frame_and_drops_old_ones():
    srv = PreviewServer(port=0, max_rate_hz=20.0)
    srv.start()
    try:
        srv.push(np.zeros((22, 3)))
        reader = SSEReader(srv)
        first = reader.next_event()
        assert first["seq"] == 1  # the current frame arrives at once
        for k in range(200):  # far faster than 20 frames/s
            srv.push(np.full((22, 3), float(k)))
        seen = []
        while True:
            ev = reader.next_event()
            seen.append(ev["seq"])
            if ev["seq"] == 201:
                assert ev["joints"][0] == [199.0, 199.0, 199.0]
                break
        assert len(seen) < 20  # old frames were dropped, not queued
        assert seen == sorted(seen)
        assert srv.clients == 1
        reader.close()
    finally:
        srv.stop()


def test_stop_ends_streams_joins_threads_and_frees_the_port():
    before = {t.ident for t in threading.enumerate()}
    srv = PreviewServer(port=0)
    srv.start()
    port = srv.port
    srv.push(_rest_frame())
    reader = SSEReader(srv)
    assert reader.next_event()["seq"] == 1
    t0 = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - t0 < 3.0
    assert reader.next_event() is None  # the stream ended
    reader.close()
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert leftover == []
    srv.stop()  # idempotent
    again = PreviewServer(port=port)  # the port is free again
    again.start()
    again.stop()


def test_port_in_use_is_a_config_error(server):
    other = PreviewServer(port=server.port)
    with pytest.raises(ConfigError, match=str(server.port)):
        other.start()
    with pytest.raises(ConfigError):
        PreviewServer(port=70000)


# ---------------------------------------------------------------------------------------------- Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(url: str, out: Path) -> np.ndarray:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=800,600",
            "--virtual-time-budget=3000", url,
        ]
        subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    if not out.exists():
        pytest.fail(f"chromium wrote no screenshot for {url}")
    from PIL import Image

    return np.asarray(Image.open(out).convert("RGB")).astype(np.int16)


def _mask(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> np.ndarray:
    return np.all(np.abs(img - np.array(rgb, np.int16)) <= tol, axis=2)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium; scripts/setup.sh installs it)")
def test_page_draws_the_pushed_pose_in_headless_chromium(tmp_path):
    """The page draws the skeleton it receives over the event stream (once=1: one frame, then the
    stream closes so headless Chromium's virtual clock can finish). T-pose vs arms down: the
    coloured pixels' bounding box must change accordingly, and with the camera in front of the
    character its left side (orange) appears on the right of the image."""
    srv = PreviewServer(port=0)
    srv.start()
    try:
        url = f"{srv.url}?orbit=0&yaw=0&pitch=10&once=1"
        srv.push(_rest_frame())
        t_pose = _screenshot(url, tmp_path / "tpose.png")
        srv.push(_arms_down_frame())
        down = _screenshot(url, tmp_path / "down.png")
    finally:
        srv.stop()
    h, w, _ = t_pose.shape
    for img in (t_pose, down):
        left, right = _mask(img, LEFT_RGB), _mask(img, RIGHT_RGB)
        assert left.sum() > 500 and right.sum() > 500  # both sides drawn
        assert np.nonzero(left)[1].mean() > w / 2 > np.nonzero(right)[1].mean()  # mirror view
    both_t = _mask(t_pose, LEFT_RGB) | _mask(t_pose, RIGHT_RGB)
    both_d = _mask(down, LEFT_RGB) | _mask(down, RIGHT_RGB)
    x0t, y0t, x1t, y1t = _bbox(both_t)
    x0d, y0d, x1d, y1d = _bbox(both_d)
    assert (x1t - x0t) > 1.8 * (x1d - x0d)  # arms out vs arms down
    assert abs((y1t - y0t) - (y1d - y0d)) < 0.35 * (y1t - y0t)  # the legs did not change
    # The arms-down wrists hang below the T-pose's arm line.
    assert np.nonzero(_mask(down, LEFT_RGB))[0].mean() > np.nonzero(_mask(t_pose, LEFT_RGB))[0].mean()


def test_head_events_answers_headers_only_and_opens_no_stream(server):
    import socket

    server.push(_rest_frame())
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as s:
        s.sendall(b"HEAD /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while True:  # the server closes the connection: no endless stream
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
    assert body == b""
    assert server.clients == 0


@pytest.mark.parametrize("kwargs, needle", [
    ({"port": True}, "port"), ({"port": 1.0}, "port"), ({"port": "8765"}, "port"),
    ({"max_rate_hz": "fast"}, "max_rate_hz"), ({"max_rate_hz": None}, "max_rate_hz"),
    ({"max_rate_hz": float("nan")}, "max_rate_hz"), ({"max_rate_hz": True}, "max_rate_hz"),
])
def test_bad_port_and_rate_types_are_config_errors(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        PreviewServer(**kwargs)


def test_ipv6_host_listens_on_ipv6():
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv = PreviewServer("::1", port=np.int64(0))
    srv.start()
    try:
        assert srv.url == f"http://[::1]:{srv.port}/"
        conn = http.client.HTTPConnection("::1", srv.port, timeout=5)
        conn.request("GET", "/frame.json")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) == {"seq": 0}
        conn.close()
    finally:
        srv.stop()


def test_the_perform_preview_sink_names_the_port_it_bound():
    """``--preview-port 0`` picks a free port: the banner must show that port, not 0."""
    from livedance.live.sinks import PreviewSink

    sink = PreviewSink(port=0)
    try:
        port = sink.server.port
        assert port > 0 and sink.name == f"preview http://127.0.0.1:{port}/"
    finally:
        sink.close()
