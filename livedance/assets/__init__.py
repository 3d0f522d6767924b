"""Files that ship with livedance: a short CC BY-SA 3.0 song excerpt for the demo (``make perform``).

``armygeddon-excerpt.ogg`` is 40 s of "Armygeddon" by Muldjord (composed by El Senator), licensed
CC BY-SA 3.0 (http://creativecommons.org/licenses/by-sa/3.0). The excerpt is a modification of that
work (cut, 5 ms fade-in, 1 s fade-out, re-encoded), so the excerpt itself is licensed CC BY-SA 3.0 as
well. ``ARMYGEDDON-ATTRIBUTION.txt`` says what was changed; ``armygeddon-readme.txt`` is the author's
own notice (the author asks for it to travel with the work); ``CC-BY-SA-3.0.txt`` is the license.

The song has one constant tempo of 170 BPM with its beat grid starting at t = 0 (tempo map of the
game chart ``notes.mid``). The excerpt starts exactly on beat 31 of the song, so its own beat grid is
``k * 60 / 170`` seconds, k = 0, 1, 2, ...: see :data:`DEMO_SONG`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livedance.errors import DataError

ASSET_DIR: Path = Path(__file__).resolve().parent
"""Folder of the bundled files."""


@dataclass(frozen=True)
class ExcerptSpec:
    """Where a bundled excerpt comes from and its beat grid.

    Attributes:
        file_name: the excerpt's file name in :data:`ASSET_DIR`.
        source_name: the original work's file name (in ``shared/data/music/muldjord-armygeddon/``).
        start_s: where the excerpt starts in the original, seconds.
        duration_s: excerpt length, seconds.
        bpm: constant tempo, beats per minute.
        first_beat_s: time of the excerpt's first beat, seconds from its start.
        fade_in_s, fade_out_s: linear fades applied at the start and the end, seconds.
        vorbis_compression: libsndfile's Vorbis compression level (0 = best quality, 1 = smallest).
    """

    file_name: str
    source_name: str
    start_s: float
    duration_s: float
    bpm: float
    first_beat_s: float
    fade_in_s: float
    fade_out_s: float
    vorbis_compression: float

    def beat_times(self) -> np.ndarray:
        """(B,) float64 beat times in seconds from the excerpt's start, all < ``duration_s``."""
        period = 60.0 / self.bpm
        return np.arange(self.first_beat_s, self.duration_s - 1e-9, period)


#: The demo excerpt: 40 s from beat 31 (31 * 60/170 = 10.941 s) of "Armygeddon", 170 BPM.
DEMO_SONG = ExcerptSpec(
    file_name="armygeddon-excerpt.ogg",
    source_name="song.ogg",
    start_s=31 * 60.0 / 170.0,
    duration_s=40.0,
    bpm=170.0,
    first_beat_s=0.0,
    fade_in_s=0.005,
    fade_out_s=1.0,
    vorbis_compression=0.5,
)

#: Plain-text attribution (credit, license, changes) that goes with the excerpt.
ATTRIBUTION_FILE = "ARMYGEDDON-ATTRIBUTION.txt"
#: The license text (CC BY-SA 3.0 Unported legal code).
LICENSE_FILE = "CC-BY-SA-3.0.txt"


def demo_song() -> Path:
    """Path of the bundled demo excerpt (Ogg Vorbis, stereo, 44.1 kHz, 40 s, 170 BPM; CC BY-SA 3.0).

    Returns:
        The absolute path of ``armygeddon-excerpt.ogg`` inside the installed package.

    Raises:
        DataError: the file is missing (a broken install: reinstall livedance).
    """
    path = ASSET_DIR / DEMO_SONG.file_name
    if not path.is_file():
        raise DataError(
            f"the bundled demo song {path} is missing; expected it inside the livedance package "
            "(reinstall livedance: pip install -e .)"
        )
    return path


def make_excerpt(source: str | Path, destination: str | Path, spec: ExcerptSpec = DEMO_SONG) -> Path:
    """Cut ``spec`` out of ``source`` and write it as Ogg Vorbis: how the bundled excerpt was made.

    Args:
        source: the original song file (any format libsndfile reads).
        destination: the ``.ogg`` file to write (overwritten).
        spec: start, length, fades and compression.

    Returns:
        ``destination`` as a Path.

    Raises:
        DataError: ``source`` cannot be read or is shorter than ``spec.start_s + spec.duration_s``.
    """
    import soundfile as sf

    src = Path(source)
    try:
        info = sf.info(str(src))
    except Exception as err:  # soundfile raises RuntimeError/LibsndfileError on unreadable files
        raise DataError(f"cannot read {src}: {err}") from None
    sr = int(info.samplerate)
    start = int(round(spec.start_s * sr))
    frames = int(round(spec.duration_s * sr))
    if start + frames > info.frames:
        raise DataError(
            f"{src} is {info.frames / sr:.1f} s long; expected at least {spec.start_s + spec.duration_s:.1f} s"
        )
    x, _ = sf.read(str(src), dtype="float32", start=start, frames=frames, always_2d=True)
    n_in = int(round(spec.fade_in_s * sr))
    n_out = int(round(spec.fade_out_s * sr))
    if n_in > 0:
        x[:n_in] *= np.linspace(0.0, 1.0, n_in, dtype=np.float32)[:, None]
    if n_out > 0:
        x[-n_out:] *= np.linspace(1.0, 0.0, n_out, dtype=np.float32)[:, None]
    dst = Path(destination)
    sf.write(str(dst), x, sr, format="OGG", subtype="VORBIS", compression_level=spec.vorbis_compression)
    return dst


__all__ = ["ASSET_DIR", "ATTRIBUTION_FILE", "DEMO_SONG", "LICENSE_FILE", "ExcerptSpec", "demo_song", "make_excerpt"]
