"""livedance.atomic: a target is replaced whole or not at all."""

from __future__ import annotations

import numpy as np
import pytest

from livedance.atomic import atomic_target


def test_atomic_target_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "sub" / "beats.npy"
    with atomic_target(path) as tmp:
        assert tmp.parent == path.parent and tmp.name.endswith(".tmp.npy") and tmp != path
        np.save(tmp, np.arange(3))  # np.save keeps a name that already ends in .npy
    assert np.array_equal(np.load(path), np.arange(3))
    with pytest.raises(RuntimeError):
        with atomic_target(path) as tmp:
            np.save(tmp, np.arange(5))
            raise RuntimeError("writer failed")
    assert np.array_equal(np.load(path), np.arange(3))  # the old file stays
    assert sorted(p.name for p in path.parent.iterdir()) == ["beats.npy"]  # no temporary left behind


def test_concurrent_writers_get_distinct_temporary_files(tmp_path):
    path = tmp_path / "x.npz"
    with atomic_target(path) as a, atomic_target(path) as b:
        assert a != b
        np.savez(a, v=np.zeros(1))
        np.savez(b, v=np.ones(1))
    assert np.load(path)["v"][0] == 0.0  # the last writer to finish (a, the outer one) wins
