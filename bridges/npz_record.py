"""Streaming recorder of pose frames into one ``.npz`` file, that keeps what it wrote if the process dies.

While recording, frames collect in memory and every ``chunk_frames`` frames go to disk as one chunk file
``<path>.parts/chunk_<k>.npz`` (written to a temporary name, fsynced, then atomically renamed, so a chunk
on disk is always complete). :meth:`NpzRecorder.close` concatenates the chunks into ``<path>`` (again via
a temporary file and an atomic rename) and removes the parts folder. After a crash or SIGKILL, at most
the last unflushed ``chunk_frames`` frames are lost: :func:`recover_npz` merges the chunks that made it.

The final file (``numpy.load``-able) holds:

- ``t_show_s``: (T,) float64, perf_counter seconds when each frame was to be seen
- ``local_quats``: (T, 55, 4) float32, local rotations (x, y, z, w)
- ``root_position``: (T, 3) float32, pelvis world position, metres
- ``rest_offsets``: (55, 3) float32, from the first frame (metres)
- ``fps``: () float64, the nominal frame rate given to the recorder (0 when not given)

Blend shapes are not recorded.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from livedance.bridges.frame import PoseFrame
from livedance.errors import ConfigError, DataError

_log = logging.getLogger("livedance.bridges")

_FIELDS = ("t_show_s", "local_quats", "root_position")


def parts_dir(path: Path) -> Path:
    """The folder of chunk files an :class:`NpzRecorder` for ``path`` writes while it records (``<path>.parts``);
    one left behind means the recording was cut off: :func:`recover_npz` merges it."""
    return Path(path).with_name(Path(path).name + ".parts")


def _atomic_savez(target: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


class NpzRecorder:
    """Appends :class:`PoseFrame` s and writes them as one npz on :meth:`close`.

    Args:
        path: the output ``.npz``; its folder must exist.
        chunk_frames: frames per on-disk chunk (>= 1); also the most frames a crash can lose.
        fps: nominal frame rate stored in the file (informational).
        overwrite: allow replacing an existing output file.

    Raises:
        ConfigError: missing folder, existing output without ``overwrite``, a parts folder left by a crash
            (run :func:`recover_npz` first), or a bad ``chunk_frames`` or ``fps`` (checked before anything is
            created on disk).
    """

    def __init__(self, path: str | Path, *, chunk_frames: int = 60, fps: float = 0.0, overwrite: bool = False) -> None:
        self.path = Path(path)
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
            raise ConfigError(f"npz recorder chunk_frames {chunk_frames!r} is invalid; expected an integer >= 1")
        try:  # checked before the parts folder exists: a bad value must not leave one behind
            fps_value = float(fps) if not isinstance(fps, bool) else math.nan
        except (TypeError, ValueError):
            fps_value = math.nan
        if not (math.isfinite(fps_value) and fps_value >= 0.0):
            raise ConfigError(f"npz recorder fps {fps!r} is invalid; expected a finite number >= 0 (frames per second)")
        if not self.path.parent.is_dir():
            raise ConfigError(f"npz output folder {self.path.parent} does not exist; expected an existing folder")
        if self.path.exists() and not overwrite:
            raise ConfigError(f"npz output {self.path} already exists; choose another name or pass overwrite=True")
        self.parts = parts_dir(self.path)
        if self.parts.exists():
            raise ConfigError(
                f"{self.parts} is left from an interrupted recording; run "
                f"livedance.bridges.npz_record.recover_npz({str(self.path)!r}) or delete it first"
            )
        self.parts.mkdir()
        self.chunk_frames = chunk_frames
        self.fps = fps_value
        self.frames_written = 0
        self._chunks = 0
        self._buf: dict[str, list[np.ndarray]] = {k: [] for k in _FIELDS}
        self._rest: np.ndarray | None = None
        self._closed = False

    def append(self, frame: PoseFrame) -> None:
        """Add one frame; writes a chunk every ``chunk_frames`` frames.

        Raises:
            DataError: a frame whose rest offsets differ from the first frame's.
            ValueError: after :meth:`close`.
        """
        if self._closed:
            raise ValueError(f"npz recorder for {self.path} is closed")
        if self._rest is None:
            self._rest = frame.rest_offsets.copy()
        elif not np.array_equal(self._rest, frame.rest_offsets):
            raise DataError(f"npz recorder {self.path}: rest_offsets changed mid-recording; expected one skeleton")
        self._buf["t_show_s"].append(np.float64(frame.t_show_s))
        self._buf["local_quats"].append(frame.local_quats.astype(np.float32))
        self._buf["root_position"].append(frame.root_position.astype(np.float32))
        self.frames_written += 1
        if len(self._buf["t_show_s"]) >= self.chunk_frames:
            self.flush()

    def flush(self) -> None:
        """Write the buffered frames as one chunk file now (no-op when the buffer is empty)."""
        if not self._buf["t_show_s"] or self._closed:
            return
        arrays = {k: np.stack(v) for k, v in self._buf.items()}
        arrays["rest_offsets"] = self._rest
        arrays["fps"] = np.float64(self.fps)
        _atomic_savez(self.parts / f"chunk_{self._chunks:08d}.npz", arrays)
        self._chunks += 1
        self._buf = {k: [] for k in _FIELDS}

    def close(self) -> Path:
        """Flush, merge the chunks into :attr:`path`, remove the parts folder (idempotent).

        Returns:
            the output path (not written when no frame was appended; the parts folder is removed then too).
        """
        if not self._closed:
            self.flush()
            self._closed = True
            _merge(self.path, self.parts)
        return self.path

    def __enter__(self) -> "NpzRecorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def recover_npz(path: str | Path) -> Path:
    """Merge the chunks an interrupted :class:`NpzRecorder` left in ``<path>.parts`` into ``<path>``.

    Returns:
        the output path.

    Raises:
        DataError: no parts folder, or it holds no readable chunk.
    """
    p = Path(path)
    parts = parts_dir(p)
    if not parts.is_dir():
        raise DataError(f"{parts} does not exist; nothing to recover for {p}")
    if not any(parts.glob("chunk_*.npz")):
        raise DataError(f"{parts} holds no complete chunk; nothing to recover for {p}")
    _merge(p, parts)
    return p


def _merge(path: Path, parts: Path) -> None:
    """Concatenate the readable chunks of ``parts`` into ``path`` and remove ``parts``.

    A chunk that cannot be read (a damaged disk; chunks are written atomically, so not a crash) is skipped
    with a warning: the frames keep their own times, so the rest of the take is still right. The skipped chunks
    are kept in ``<path>.bad-chunks/`` (an EIO may be transient), not deleted with the parts folder.

    Raises:
        DataError: chunks exist but none can be read (``parts`` is then kept, for whoever can mend it).
    """
    chunks = sorted(parts.glob("chunk_*.npz"))  # .tmp files (a chunk cut mid-write) are ignored
    if chunks:
        # one chunk open at a time: a long take has thousands (60 frames each), more than the open-file limit
        pieces: dict[str, list[np.ndarray]] = {k: [] for k in _FIELDS}
        first, bad = None, []
        for c in chunks:
            try:
                with np.load(c, allow_pickle=False) as z:
                    got = {k: z[k] for k in _FIELDS}
                    if first is None:
                        first = {"rest_offsets": z["rest_offsets"], "fps": z["fps"]}
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
                bad.append((c, type(err).__name__))
                continue
            for k in _FIELDS:
                pieces[k].append(got[k])
        said = [f"{c.name} ({why})" for c, why in bad]
        if first is None:
            raise DataError(f"{parts}: none of its {len(chunks)} chunks can be read ({', '.join(said[:3])}); "
                            f"nothing merged into {path}, the folder is kept")
        arrays = {k: np.concatenate(v) for k, v in pieces.items()}
        arrays.update(first)
        _atomic_savez(path, arrays)
        if bad:
            keep = path.with_name(path.name + ".bad-chunks")
            keep.mkdir(exist_ok=True)
            for c, _ in bad:
                shutil.move(str(c), str(keep / c.name))
            _log.warning("%s: skipped %d unreadable chunk(s) of %d (kept in %s): %s", path, len(bad), len(chunks),
                         keep, ", ".join(said))
    shutil.rmtree(parts)
