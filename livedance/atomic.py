"""Atomic file writes: write to a unique temporary file beside the target, then ``os.replace`` it.

Readers never see a half-written file, and concurrent writers of the same target (two ``livedance
eval`` runs filling one cache) never share a temporary file: the last complete file wins.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from livedance.errors import ConfigError

__all__ = ["atomic_target", "check_output_path", "fsync_path"]


@contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """Yield a unique temporary path in ``path``'s folder; on a clean exit it replaces ``path``.

    The temporary name ends with ``.tmp`` plus the target's suffix (``x.npz`` -> ``.x.npz.<random>.tmp.npz``),
    so writers that append a suffix of their own (``np.savez``, ``np.save``) keep the name. The folder
    is created if needed; the file keeps the permissions of the one it replaces (a new one gets 0666 minus the umask),
    and the file and the folder
    are fsync'ed around the rename, so a power cut leaves the old file or the new one, never an empty one. On an exception
    the temporary file is removed and the exception propagates; ``path`` is left as it was.

    Args:
        path: the file to (re)place.
    Yields:
        the temporary :class:`~pathlib.Path` to write (it exists, empty).
    Raises:
        OSError: the folder cannot be created or written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        try:  # an existing file keeps its permissions (a config shared with a service account stays readable)
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # a new file: the usual permissions (mkstemp makes 0600)
        try:
            os.chmod(tmp, mode)
        except OSError:  # a file system without permissions (vfat, some network mounts)
            pass
        fsync_path(tmp)  # the data is on disk before the rename makes it the file (a power cut leaves old or new)
        os.replace(tmp, path)
        fsync_path(path.parent)  # ... and the rename itself
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_path(path: Path) -> None:
    """``fsync`` a file or a folder by path; a file system that cannot (some network and virtual ones) is skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_output_path(path: str | Path, what: str, overwrite: bool = False, make_parent: bool = False) -> Path:
    """Check, before any work, that a file can be written at ``path`` (so a long run cannot fail at its end).

    Args:
        path: the output file. what: how the message names it (e.g. ``"--record take.bvh"``).
        overwrite: an existing file may be replaced.
        make_parent: create a missing folder (as :func:`atomic_target` does) instead of refusing.
    Returns:
        the path.
    Raises:
        ConfigError: a folder at that path, a missing or unwritable folder, or an existing file without
            ``overwrite``; the message says what to do.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise ConfigError(f"{what} is a folder; expected a file path")
    parent = p.parent if str(p.parent) else Path(".")
    if make_parent and not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"{what}: cannot create folder {parent} ({err.strerror or err})") from None
    if not parent.is_dir():
        raise ConfigError(f"{what}: folder {parent} does not exist; create it first")
    try:  # a real write (os.access says yes to root on read-only and virtual file systems)
        fd, probe = tempfile.mkstemp(prefix=".livedance-write-check-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"{what}: cannot write in folder {parent} ({err.strerror or err})") from None
    if p.exists() and not overwrite:
        raise ConfigError(f"{what} already exists; pass --overwrite to replace it, or choose another name")
    return p

