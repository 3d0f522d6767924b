"""npz recorder: data round-trips; what was flushed before a SIGKILL is recovered."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from livedance.bridges.frame import PoseFrame
from livedance.bridges.npz_record import NpzRecorder, recover_npz
from livedance.errors import ConfigError, DataError


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    off = rng.normal(0, 0.1, (55, 3))
    q = Rotation.random(n * 55, random_state=seed).as_quat().reshape(n, 55, 4)
    root = rng.normal(0, 1, (n, 3))
    return [PoseFrame(100.0 + i / 60, q[i], root[i], off) for i in range(n)]


def test_round_trip(tmp_path):
    fs = frames(25)
    path = tmp_path / "take.npz"
    with NpzRecorder(path, chunk_frames=10, fps=60) as rec:
        for f in fs:
            rec.append(f)
    assert not (tmp_path / "take.npz.parts").exists()
    z = np.load(path)
    assert z["local_quats"].shape == (25, 55, 4)
    np.testing.assert_array_equal(z["local_quats"], np.stack([f.local_quats for f in fs]))
    np.testing.assert_array_equal(z["root_position"], np.stack([f.root_position for f in fs]))
    np.testing.assert_array_equal(z["t_show_s"], [f.t_show_s for f in fs])
    np.testing.assert_array_equal(z["rest_offsets"], fs[0].rest_offsets)
    assert float(z["fps"]) == 60.0


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from test_bridges_npz import frames
    from livedance.bridges.npz_record import NpzRecorder
    rec = NpzRecorder(sys.argv[1], chunk_frames=10)
    for f in frames(25):
        rec.append(f)
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_data_flushed_before_sigkill_is_recovered(tmp_path):
    path = tmp_path / "crash.npz"
    tests_dir = str(__import__("pathlib").Path(__file__).parent)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), tests_dir], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait(timeout=10)
    assert not path.exists()
    with pytest.raises(ConfigError, match="recover_npz"):
        NpzRecorder(path)  # refuses to clobber the leftovers
    recover_npz(path)
    z = np.load(path)
    expected = frames(25)[:20]  # two full chunks of 10 were on disk; the last 5 frames were in memory
    np.testing.assert_array_equal(z["local_quats"], np.stack([f.local_quats for f in expected]))
    np.testing.assert_array_equal(z["t_show_s"], [f.t_show_s for f in expected])
    assert not (tmp_path / "crash.npz.parts").exists()


def test_errors(tmp_path):
    with pytest.raises(DataError, match="nothing to recover"):
        recover_npz(tmp_path / "none.npz")
    with pytest.raises(ConfigError, match="does not exist"):
        NpzRecorder(tmp_path / "no" / "x.npz")
    with pytest.raises(ConfigError, match="chunk_frames"):
        NpzRecorder(tmp_path / "x.npz", chunk_frames=0)
    (tmp_path / "old.npz").write_bytes(b"")
    with pytest.raises(ConfigError, match="exists"):
        NpzRecorder(tmp_path / "old.npz")
    a, b = frames(1, seed=1)[0], frames(1, seed=2)[0]
    rec = NpzRecorder(tmp_path / "mixed.npz")
    rec.append(a)
    with pytest.raises(DataError, match="rest_offsets"):
        rec.append(b)
    rec.close()
    with pytest.raises(ValueError):
        rec.append(a)


MANY = textwrap.dedent(
    """
    import resource, sys
    sys.path.insert(0, sys.argv[2])
    from test_bridges_npz import frames
    from livedance.bridges.npz_record import NpzRecorder
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    with NpzRecorder(sys.argv[1], chunk_frames=1) as rec:  # 150 chunks against 64 open files
        for f in frames(150):
            rec.append(f)
    """
)


def test_a_take_of_more_chunks_than_open_files_merges(tmp_path):
    path = tmp_path / "long.npz"
    res = subprocess.run([sys.executable, "-c", MANY, str(path), str(Path(__file__).parent)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    z = np.load(path)
    assert z["local_quats"].shape == (150, 55, 4) and not (tmp_path / "long.npz.parts").exists()
    np.testing.assert_array_equal(z["t_show_s"], [f.t_show_s for f in frames(150)])


@pytest.mark.parametrize("fps", [None, "fast", float("nan"), -1.0, True])
def test_a_bad_fps_is_refused_before_anything_is_created(tmp_path, fps):
    path = tmp_path / "take.npz"
    with pytest.raises(ConfigError, match="fps"):
        NpzRecorder(path, fps=fps)
    assert not (tmp_path / "take.npz.parts").exists()  # nothing blocks the next recording to this path
    with pytest.raises(ConfigError, match="chunk_frames"):
        NpzRecorder(path, chunk_frames=True)
    NpzRecorder(path, fps=60.0).close()


def test_recovery_skips_an_unreadable_chunk_and_keeps_the_rest(tmp_path, caplog):
    fs = frames(30)
    path = tmp_path / "take.npz"
    rec = NpzRecorder(path, chunk_frames=10, fps=60)
    for f in fs:
        rec.append(f)
    rec.flush()  # three chunks on disk; the process "dies" here
    (tmp_path / "take.npz.parts" / "chunk_00000001.npz").write_bytes(b"not a zip")  # a damaged disk block
    with caplog.at_level("WARNING", logger="livedance.bridges"):
        recover_npz(path)
    z = np.load(path)
    np.testing.assert_array_equal(z["t_show_s"], [f.t_show_s for f in fs[:10] + fs[20:]])  # times tell the gap
    assert "skipped 1 unreadable chunk(s) of 3 (kept in" in caplog.text and "chunk_00000001.npz" in caplog.text
    assert (tmp_path / "take.npz.bad-chunks" / "chunk_00000001.npz").read_bytes() == b"not a zip"  # kept, not lost
    assert not (tmp_path / "take.npz.parts").exists()  # the next recording to this path is not blocked


def test_recovery_with_no_readable_chunk_says_so_and_keeps_the_folder(tmp_path):
    parts = tmp_path / "take.npz.parts"
    parts.mkdir()
    (parts / "chunk_00000000.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="none of its 1 chunks can be read"):
        recover_npz(tmp_path / "take.npz")
    assert parts.is_dir() and not (tmp_path / "take.npz").exists()
