"""BVH writer: a third-party reader (PyPI bvhio) reads our files and its forward kinematics matches ours;
the file stays valid while recording, after SIGTERM, and (after repair_bvh) after SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from livedance.bridges.bvh import BVHWriter, repair_bvh
from livedance.bridges.fk import forward_kinematics
from livedance.bridges.frame import SMPLX_JOINT_NAMES, SMPLX_PARENTS
from livedance.errors import ConfigError, DataError

bvhio = pytest.importorskip("bvhio", reason="bvhio (dev extra) reads BVH files back")


def skeleton(seed=0):
    rng = np.random.default_rng(seed)
    off = rng.normal(0, 0.08, (55, 3))
    off[0] = [0, 0.9, 0]
    return off


def poses(n, seed=0):
    q = Rotation.random(n * 55, random_state=seed).as_quat().reshape(n, 55, 4)
    root = np.random.default_rng(seed).normal(0, 0.5, (n, 3))
    return q, root


def bvhio_positions(path, frame):
    root = bvhio.readAsHierarchy(str(path))
    root.loadPose(frame)
    return {j.Name: np.array(list(j.PositionWorld)) for j, _, _ in root.layout()}


@pytest.mark.parametrize("unit, scale", [("m", 1.0), ("cm", 100.0)])
def test_round_trip_through_bvhio_forward_kinematics(tmp_path, unit, scale):
    off = skeleton()
    q, root = poses(4)
    path = tmp_path / "take.bvh"
    with BVHWriter(path, off, fps=30, unit=unit) as w:
        for i in range(4):
            w.write_frame(q[i], root[i])
    bvh = bvhio.readAsBvh(str(path))
    assert bvh.FrameCount == 4
    assert bvh.FrameTime == pytest.approx(1 / 30)
    for i in (0, 3):
        got = bvhio_positions(path, i)
        _, expected = forward_kinematics(q[i], off, root[i], SMPLX_PARENTS)
        for j, name in enumerate(SMPLX_JOINT_NAMES):
            np.testing.assert_allclose(got[name] / scale, expected[j], atol=2e-5, err_msg=name)


def test_header_is_valid_after_each_flush_before_close(tmp_path):
    off = skeleton(1)
    q, root = poses(7, seed=1)
    path = tmp_path / "live.bvh"
    w = BVHWriter(path, off, fps=60, flush_every=3)
    for i in range(7):
        w.write_frame(q[i], root[i])
    assert bvhio.readAsBvh(str(path)).FrameCount == 6  # two flushes so far
    w.close()
    assert bvhio.readAsBvh(str(path)).FrameCount == 7
    w.close()  # idempotent
    with pytest.raises(ValueError):
        w.write_frame(q[0], root[0])


def test_a_failed_header_update_never_costs_the_header_or_the_frames(tmp_path, monkeypatch):
    """ENOSPC / EIO on the in-place frame count (a copy-on-write file system needs a new block even there) must
    leave the stream at the end of the file: the frames after it are appended, and the next flush mends the count."""
    off = skeleton(2)
    q, root = poses(9, seed=2)
    path = tmp_path / "take.bvh"
    from fakes_io import fail_first_pwrite

    failed = fail_first_pwrite(monkeypatch)
    w = BVHWriter(path, off, fps=30, flush_every=3, unit="m")
    errors = 0
    for i in range(9):
        try:
            w.write_frame(q[i], root[i])
        except OSError:
            errors += 1
    w.close()
    assert errors == 1 and failed  # the first flush failed, and was raised to the caller (who counts it)
    bvh = bvhio.readAsBvh(str(path))
    assert bvh.FrameCount == 9 and bvh.FrameTime == pytest.approx(1 / 30)
    got = bvhio_positions(path, 8)
    _, expected = forward_kinematics(q[8], off, root[8], SMPLX_PARENTS)
    np.testing.assert_allclose(got["pelvis"], expected[0], atol=2e-5)


CHILD = textwrap.dedent(
    """
    import sys, time, numpy as np
    from scipy.spatial.transform import Rotation
    from livedance.bridges.bvh import BVHWriter
    from livedance.bridges.shutdown import exit_on_sigterm
    path, flush_every, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    off = np.random.default_rng(0).normal(0, 0.08, (55, 3))
    q = Rotation.random(n * 55, random_state=0).as_quat().reshape(n, 55, 4)
    with exit_on_sigterm(), BVHWriter(path, off, fps=60, flush_every=flush_every) as w:
        for i in range(n):
            w.write_frame(q[i], np.zeros(3))
        print("ready", flush=True)
        time.sleep(60)
    """
)


def _start_child(tmp_path, flush_every, n):
    path = tmp_path / "child.bvh"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(flush_every), str(n)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc, path


def test_sigterm_closes_the_file(tmp_path):
    proc, path = _start_child(tmp_path, flush_every=1000, n=10)  # nothing flushed before the signal
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143
    assert bvhio.readAsBvh(str(path)).FrameCount == 10


def test_sigkill_leaves_a_valid_prefix_and_repair_recovers_it(tmp_path):
    proc, path = _start_child(tmp_path, flush_every=4, n=10)
    proc.kill()
    proc.wait(timeout=10)
    assert bvhio.readAsBvh(str(path)).FrameCount == 8  # valid up to the last flush (frames 9, 10 were buffered)
    # simulate frames that reached the disk after the last header update, then a write cut mid-line
    last = path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[1]
    with open(path, "ab") as fh:
        fh.write(last + b"\n" + b"0.1 0.2 0.3")
    assert repair_bvh(path) == 9
    bvh = bvhio.readAsBvh(str(path))
    assert bvh.FrameCount == 9
    assert path.read_bytes().endswith(last + b"\n")


def test_errors(tmp_path):
    off = skeleton()
    existing = tmp_path / "x.bvh"
    existing.write_text("old")
    with pytest.raises(ConfigError, match="exists"):
        BVHWriter(existing, off)
    with pytest.raises(ConfigError, match="does not exist"):
        BVHWriter(tmp_path / "nope" / "x.bvh", off)
    with pytest.raises(ConfigError, match="unit"):
        BVHWriter(tmp_path / "y.bvh", off, unit="inch")
    with pytest.raises(DataError, match="rest_offsets"):
        BVHWriter(tmp_path / "z.bvh", off[:22])
    with BVHWriter(tmp_path / "w.bvh", off) as w:
        with pytest.raises(DataError):
            w.write_frame(np.zeros((22, 4)), np.zeros(3))
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(DataError, match="MOTION"):
        repair_bvh(tmp_path / "plain.txt")
    assert os.path.exists(existing)


def test_the_file_is_replaced_only_when_the_first_frame_comes(tmp_path):
    rest = np.zeros((len(SMPLX_PARENTS), 3))
    rest[1:, 1] = 0.1
    old = tmp_path / "take.bvh"
    old.write_bytes(b"the previous take")
    w = BVHWriter(old, rest, overwrite=True)
    w.close()  # nothing recorded: the previous take stays
    assert old.read_bytes() == b"the previous take"
    new = tmp_path / "new.bvh"
    w = BVHWriter(new, rest)
    assert not new.exists()  # created at the first frame ...
    w.close()  # ... and not at all when none came (a show that never started leaves no empty take)
    assert not new.exists()
    w = BVHWriter(old, rest, overwrite=True)
    q = np.tile([0.0, 0.0, 0.0, 1.0], (len(SMPLX_PARENTS), 1))
    w.write_frame(q, np.zeros(3))
    w.close()
    assert old.read_bytes().startswith(b"HIERARCHY") and b"Frames: 1" in old.read_bytes()
    with pytest.raises(ValueError, match="closed"):
        w.write_frame(q, np.zeros(3))


def test_finishing_holds_the_first_signal_and_lets_a_second_one_through():
    """While recordings close: one Ctrl-C / SIGTERM is held (and announced), a second one acts at once; a held
    SIGTERM still ends the process with 143 afterwards; the previous handlers come back."""
    from livedance.bridges.shutdown import finishing

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    seen = []
    with finishing(seen.append):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):  # (the handler runs between bytecodes)
            if seen:
                break
    assert seen == ["SIGINT"]  # held: no KeyboardInterrupt, inside or after
    with pytest.raises(KeyboardInterrupt):
        with finishing(seen.append):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100):
                pass
            os.kill(os.getpid(), signal.SIGINT)  # the second one
            for _ in range(10_000):
                pass
    with pytest.raises(SystemExit) as ended:
        with finishing():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):
                pass
    assert ended.value.code == 143
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_repair_drops_a_last_line_cut_mid_number(tmp_path):
    off = skeleton()
    q, root = poses(3)
    path = tmp_path / "cut.bvh"
    with BVHWriter(path, off, unit="m") as w:
        for i in range(3):
            w.write_frame(q[i], root[i])
    data = path.read_bytes()
    assert data.endswith(b"\n") and data[-8:-1].replace(b".", b"").lstrip(b"-").isdigit()
    path.write_bytes(data[:-3])  # "...1.234567\n" -> "...1.2345": every token still parses
    assert repair_bvh(path) == 2
    assert bvhio.readAsBvh(str(path)).FrameCount == 2
    assert path.read_bytes() == data[:data.rstrip(b"\n").rfind(b"\n") + 1].replace(b"Frames: 3 ", b"Frames: 2 ")


def test_zero_quaternion_is_a_data_error_and_fps_types(tmp_path):
    off = skeleton()
    q, root = poses(1)
    q = q[0].copy()
    q[SMPLX_JOINT_NAMES.index("left_elbow")] = 0.0
    with BVHWriter(tmp_path / "q.bvh", off) as w:
        with pytest.raises(DataError, match="left_elbow"):
            w.write_frame(q, root[0])
    for bad in (True, "60", 0, float("nan"), None):
        with pytest.raises(ConfigError, match="fps"):
            BVHWriter(tmp_path / "f.bvh", off, fps=bad)
    for bad in (True, 2.0, 0):
        with pytest.raises(ConfigError, match="flush_every"):
            BVHWriter(tmp_path / "f.bvh", off, flush_every=bad)
    with BVHWriter(tmp_path / "f32.bvh", off, fps=np.float32(60), flush_every=np.int64(2)) as w:
        assert w.fps == 60.0 and w.flush_every == 2
        w.write_frame(np.tile([0.0, 0.0, 0.0, 1.0], (len(off), 1)), np.zeros(3))
    assert bvhio.readAsBvh(str(tmp_path / "f32.bvh")).FrameTime == pytest.approx(1 / 60)
