"""Streaming BVH writer for SMPL-X skeleton frames (Biovision Hierarchy, as read by Blender, MotionBuilder,
Maya and bvhio).

File layout:

- ``HIERARCHY`` from the parent table: ``ROOT`` = joint 0 with ``OFFSET 0 0 0`` and 6 channels
  ``Xposition Yposition Zposition Zrotation Yrotation Xrotation``; every other joint ``OFFSET`` = its
  rest offset from the parent and 3 channels ``Zrotation Yrotation Xrotation``; leaves get an
  ``End Site`` half as long as their own bone, along it.
- Rotation channels are Euler angles in degrees for ``R = Rz(z) * Ry(y) * Rx(x)`` (intrinsic ZYX, the
  usual BVH reading of channel order), from the local quaternions via ``scipy.spatial.transform``.
- Root position channels carry the absolute pelvis position (the ROOT OFFSET is zero, so readers that
  add the offset and readers that do not agree).
- Units: ``unit="cm"`` (default; what MotionBuilder, Maya and Mixamo tools assume) multiplies metres by
  100; ``unit="m"`` writes metres (Blender's importer then needs scale 1). Axes: y up, right-handed,
  the character facing +z, as the internal convention.

Crash safety: the header's ``Frames:`` value is a fixed-width field. Every ``flush_every`` frames the
writer flushes the file and rewrites that field in place, so the file on disk is a valid BVH up to the
last flush even if the process is killed; :meth:`BVHWriter.close` writes the rest and the final count.
:func:`repair_bvh` fixes a file left by a hard kill (drops a partial last line, recounts the frames).
Use :func:`livedance.bridges.shutdown.exit_on_sigterm` so that SIGTERM closes the writer.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from livedance.bridges.frame import SMPLX_JOINT_NAMES, SMPLX_PARENTS, PoseFrame
from livedance.errors import ConfigError, DataError

_UNITS = {"cm": 100.0, "m": 1.0}
_COUNT_WIDTH = 12  # digits reserved for the frame count: up to 10^12 frames
_FRAMES_TAG = b"Frames: "


class BVHWriter:
    """Appends frames to a BVH file as they come.

    Args:
        path: output file; its folder must exist.
        rest_offsets: (J, 3) rest offset of each joint from its parent, metres (row 0 unused).
        fps: frame rate of the written frames (``Frame Time`` = 1 / fps), a positive finite real number (numpy
            scalars too; not ``bool``).
        parents: parent table (default SMPL-X); parents precede children.
        names: joint names (default SMPL-X names); letters, digits, ``_ : - .`` only (no spaces).
        unit: ``"cm"`` or ``"m"`` for OFFSETs and root positions.
        flush_every: frames between flushes and in-place header updates, an integer >= 1 (not ``bool``).
        overwrite: allow replacing an existing file. The file is opened (created, or truncated) at the first
            frame, so an existing take survives a show that never records a frame.

    Raises:
        ConfigError: missing folder, existing file without ``overwrite``, bad unit/fps/flush_every/names.
        DataError: rest offsets of the wrong shape or non-finite.
    """

    def __init__(
        self,
        path: str | Path,
        rest_offsets: np.ndarray,
        fps: float = 60.0,
        *,
        parents: Sequence[int] = SMPLX_PARENTS,
        names: Sequence[str] = SMPLX_JOINT_NAMES,
        unit: str = "cm",
        flush_every: int = 30,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        if unit not in _UNITS:
            raise ConfigError(f"BVH unit {unit!r} is invalid; expected 'cm' or 'm'")
        if isinstance(fps, bool) or not (isinstance(fps, numbers.Real) and np.isfinite(fps) and fps > 0):
            raise ConfigError(f"BVH fps {fps!r} is invalid; expected a positive number of frames per second")
        if isinstance(flush_every, bool) or not isinstance(flush_every, numbers.Integral) or flush_every < 1:
            raise ConfigError(f"BVH flush_every {flush_every!r} is invalid; expected an integer >= 1")
        self.parents = [int(p) for p in parents]
        self.names = [str(n) for n in names]
        n = len(self.parents)
        if len(self.names) != n:
            raise ConfigError(f"BVH got {len(self.names)} joint names for {n} parents; expected one name per joint")
        bad = [nm for nm in self.names if not nm or any(c.isspace() or c in "{}" for c in nm)]
        if bad:
            raise ConfigError(f"BVH joint names {bad} contain spaces or braces; expected single tokens")
        offsets = np.asarray(rest_offsets, dtype=np.float64)
        if offsets.shape != (n, 3) or not np.all(np.isfinite(offsets)):
            raise DataError(f"BVH rest_offsets has shape {offsets.shape} or non-finite values; expected finite ({n}, 3)")
        if not self.path.parent.is_dir():
            raise ConfigError(f"BVH output folder {self.path.parent} does not exist; expected an existing folder")
        if self.path.exists() and not overwrite:
            raise ConfigError(f"BVH output {self.path} already exists; choose another name or pass overwrite=True")
        self.scale = _UNITS[unit]
        self.unit = unit
        self.fps = float(fps)
        self.flush_every = int(flush_every)
        self.frames_written = 0
        self._offsets = offsets * self.scale
        self._children: dict[int, list[int]] = {j: [] for j in range(n)}
        for j, p in enumerate(self.parents):
            if p >= 0:
                self._children[p].append(j)
        roots = [j for j, p in enumerate(self.parents) if p < 0]
        if len(roots) != 1:
            raise ConfigError(f"BVH needs exactly one root joint (parent -1); got {len(roots)}")
        self._root = roots[0]
        self._order = self._depth_first(self._root)  # the order channels appear in the header and frames
        self._header_bytes = self._header()
        self._count_pos = self._header_bytes.rindex(_FRAMES_TAG) + len(_FRAMES_TAG)
        self._fh = None  # opened at the first frame (or at close, for a new file that got none)
        self._closed = False

    def _open(self) -> None:
        self._fh = open(self.path, "wb")
        self._fh.write(self._header_bytes)
        self._fh.flush()

    # -- header -------------------------------------------------------------------------------
    def _depth_first(self, j: int) -> list[int]:
        """Joint ``j`` and its descendants in BVH (depth-first, children in index order) order."""
        order = [j]
        for c in self._children[j]:
            order.extend(self._depth_first(c))
        return order

    def _header(self) -> bytes:
        children = self._children
        lines = ["HIERARCHY"]

        def emit(j: int, depth: int) -> None:
            pad = "  " * depth
            if self.parents[j] < 0:
                lines.append(f"{pad}ROOT {self.names[j]}")
                off = np.zeros(3)
                chans = "CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation"
            else:
                lines.append(f"{pad}JOINT {self.names[j]}")
                off = self._offsets[j]
                chans = "CHANNELS 3 Zrotation Yrotation Xrotation"
            lines.append(f"{pad}{{")
            lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
            lines.append(f"{pad}  {chans}")
            if children[j]:
                for c in children[j]:
                    emit(c, depth + 1)
            else:
                end = self._offsets[j] * 0.5 if self.parents[j] >= 0 else np.array([0.0, 0.1 * self.scale, 0.0])
                lines.append(f"{pad}  End Site")
                lines.append(f"{pad}  {{")
                lines.append(f"{pad}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}")
                lines.append(f"{pad}  }}")
            lines.append(f"{pad}}}")

        emit(self._root, 0)
        lines.append("MOTION")
        lines.append(f"Frames: {0:<{_COUNT_WIDTH}d}")
        lines.append(f"Frame Time: {1.0 / self.fps:.8f}")
        return ("\n".join(lines) + "\n").encode("ascii")

    # -- frames -------------------------------------------------------------------------------
    def write_frame(self, local_quats: np.ndarray, root_position: np.ndarray) -> None:
        """Append one frame.

        Args:
            local_quats: (J, 4) local rotations (x, y, z, w), any float dtype; normalised here.
            root_position: (3,) pelvis world position in metres.

        Raises:
            DataError: wrong shapes, non-finite values, or a zero quaternion (naming its joint).
            ValueError: after :meth:`close`.
            OSError: the file cannot be opened or written (disk full ...).
        """
        if self._closed:
            raise ValueError(f"BVH writer for {self.path} is closed")
        q = np.asarray(local_quats, dtype=np.float64)
        r = np.asarray(root_position, dtype=np.float64)
        n = len(self.parents)
        if q.shape != (n, 4) or r.shape != (3,) or not (np.all(np.isfinite(q)) and np.all(np.isfinite(r))):
            raise DataError(
                f"BVH frame has local_quats {q.shape} and root_position {r.shape}; expected finite ({n}, 4) and (3,)"
            )
        norms = np.linalg.norm(q, axis=1)
        if np.any(norms < 1e-6):
            bad = int(np.argmin(norms))
            raise DataError(
                f"BVH frame local_quats row {bad} ({self.names[bad]}) is a zero quaternion; "
                "expected a rotation (x, y, z, w)"
            )
        zyx = Rotation.from_quat(q).as_euler("ZYX", degrees=True)[self._order]  # header (depth-first) order
        values = np.concatenate([r * self.scale, zyx.reshape(-1)])
        if self._fh is None:
            self._open()
        self._fh.write((" ".join(f"{v:.6f}" for v in values) + "\n").encode("ascii"))
        self.frames_written += 1
        if self.frames_written % self.flush_every == 0:
            self.flush()

    def write(self, frame: PoseFrame) -> None:
        """Append a :class:`PoseFrame` (its ``local_quats`` and ``root_position``)."""
        self.write_frame(frame.local_quats, frame.root_position)

    def flush(self) -> None:
        """Flush the frames so far to disk and update the header's frame count in place."""
        if self._fh is None:
            return
        self._fh.flush()
        # the count goes in with pwrite: the buffered stream never leaves the end of the file, so a failed
        # header update cannot make later frames overwrite the header (a seek-write-seek could)
        os.pwrite(self._fh.fileno(), f"{self.frames_written:<{_COUNT_WIDTH}d}".encode("ascii"), self._count_pos)
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Write the final frame count and close (idempotent). The file is a complete BVH afterwards. With no
        frame written nothing is written: no new file (as :class:`~livedance.bridges.npz_record.NpzRecorder`; a
        show that never started leaves no empty take that would block the same ``--record`` path next time), and
        an existing one (``overwrite``) is left as it was."""
        if self._closed:
            return
        self._closed = True
        if self._fh is None:
            return
        try:
            self.flush()
        finally:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "BVHWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair_bvh(path: str | Path) -> int:
    """Make a BVH left by a killed writer valid: drop a partial last frame line, set ``Frames:`` to the
    number of complete frame lines.

    Args:
        path: the BVH file.

    Returns:
        the number of frames in the repaired file.

    Raises:
        DataError: the file has no ``MOTION``/``Frames:``/``Frame Time:`` header.
    """
    p = Path(path)
    data = p.read_bytes()
    motion = data.find(b"\nMOTION")
    if motion < 0:
        raise DataError(f"BVH {p} has no MOTION section; expected a file written by BVHWriter")
    channels = sum(int(tok) for tok in _channel_counts(data[:motion]))
    frames_at = data.find(_FRAMES_TAG, motion)
    ft = data.find(b"Frame Time:", frames_at)
    if frames_at < 0 or ft < 0:
        raise DataError(f"BVH {p} has no 'Frames:'/'Frame Time:' lines; expected a file written by BVHWriter")
    body_start = data.index(b"\n", ft) + 1
    body = data[body_start:]
    if not body.endswith(b"\n"):  # cut off mid-line (maybe mid-number, which would still parse): drop it
        body = body[:body.rfind(b"\n") + 1]
    lines = body.split(b"\n")
    good: list[bytes] = []
    for line in lines:
        toks = line.split()
        if len(toks) != channels:
            break
        try:
            [float(t) for t in toks]
        except ValueError:
            break
        good.append(line)
    count_end = data.index(b"\n", frames_at)
    old_field = data[frames_at + len(_FRAMES_TAG):count_end]
    new_field = f"{len(good):<{max(len(old_field), 1)}d}".encode("ascii")
    out = data[:frames_at + len(_FRAMES_TAG)] + new_field + data[count_end:body_start]
    out += b"".join(g + b"\n" for g in good)
    tmp = p.with_name(p.name + ".repair.tmp")
    tmp.write_bytes(out)
    os.replace(tmp, p)
    return len(good)


def _channel_counts(hierarchy: bytes) -> list[bytes]:
    out = []
    for line in hierarchy.split(b"\n"):
        toks = line.split()
        if toks and toks[0] == b"CHANNELS":
            out.append(toks[1])
    return out
