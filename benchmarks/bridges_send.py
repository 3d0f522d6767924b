"""Cost of the output sinks per frame (measured, not asserted): VMC and raw OSC encode+send, BVH and npz
append. A 60 fps output clock has 16.7 ms per frame for everything.

Run: ``.venv/bin/python benchmarks/bridges_send.py`` (sends to a local UDP port nobody reads).
"""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from livedance.bridges.bvh import BVHWriter
from livedance.bridges.demo import demo_frame, demo_rest_offsets
from livedance.bridges.npz_record import NpzRecorder
from livedance.bridges.osc_raw import MusicState, RawOSCSender
from livedance.bridges.osc_transport import pack_bundles
from livedance.bridges.vmc import VMCSender


def _sink_port() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    return s, s.getsockname()[1]


def _time(fn, n: int) -> float:
    fn(0)
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n * 1e3


def main(n: int = 600) -> None:
    rest = demo_rest_offsets()
    frames = [demo_frame(i / 60, rest) for i in range(n)]
    sink, port = _sink_port()
    rows = []
    for limit in (1400, 8000):
        with VMCSender("127.0.0.1", port, max_datagram_bytes=limit) as vmc:
            msgs = vmc.build_messages(frames[0])
            d = pack_bundles(msgs, limit)
            ms = _time(lambda i: vmc.send(frames[i]), n)
            rows.append((f"VMC send, 55 bones, datagram <= {limit} B", ms, len(d), sum(map(len, d))))
    with RawOSCSender("127.0.0.1", port) as raw:
        music = MusicState(0.5, 120.0, 0.3)
        d = pack_bundles(raw.build_messages(frames[0], music), 1400)
        ms = _time(lambda i: raw.send(frames[i], music), n)
        rows.append(("raw OSC send, 55 joints rot+pos (FK)", ms, len(d), sum(map(len, d))))
    with tempfile.TemporaryDirectory() as tmp:
        with BVHWriter(Path(tmp) / "b.bvh", rest, fps=60) as w:
            rows.append(("BVH write_frame (flush every 30)", _time(lambda i: w.write(frames[i]), n), 0, 0))
        with NpzRecorder(Path(tmp) / "r.npz", chunk_frames=60) as rec:
            rows.append(("npz append (chunk every 60)", _time(lambda i: rec.append(frames[i]), n), 0, 0))
    sink.close()
    print(f"{'sink':46s} {'ms/frame':>9s} {'datagrams':>10s} {'bytes':>7s}")
    for name, ms, nd, nb in rows:
        print(f"{name:46s} {ms:9.3f} {nd or '-':>10} {nb or '-':>7}")
    print(f"({n} frames each; numpy {np.__version__})")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=600, help="frames timed per sink (default 600)")
    main(max(ap.parse_args().frames, 1))
