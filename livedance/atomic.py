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

__all__ = ["atomic_target"]


@contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """Yield a unique temporary path in ``path``'s folder; on a clean exit it replaces ``path``.

    The temporary name ends with ``.tmp`` plus the target's suffix (``x.npz`` -> ``.x.npz.<random>.tmp.npz``),
    so writers that append a suffix of their own (``np.savez``, ``np.save``) keep the name. The folder
    is created if needed; the file gets the usual permissions (0666 minus the umask). On an exception
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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
