"""Music beats for BAS: Bailando's librosa beat tracking of the whole song, cached; the excerpt's beats.

The reference (Bailando, ``utils/beat_align_score.py``) reads column 53 of its music features, the
``onset_beat`` of its preprocessing (``_prepro_aistpp.py`` / ``extractor.py``): the song's percussive part
(``librosa.effects.hpss``), its onset strength with ``aggregate=np.median``, and
``librosa.beat.beat_track(onset_envelope=...)`` (Ellis 2007, dynamic programming) at 15360 x 2 = 30720 Hz,
hop 512 (60 frames per second), over the **whole song**. :class:`BeatTrackConfig` (``method="bailando"``, the
default since session 16) does exactly that and keeps the beats inside the excerpt a dance covers, in seconds
from the excerpt start (= motion frame 0). ``method="excerpt"`` is the earlier rule: plain ``beat_track`` on
the mono excerpt alone at 22050 Hz (it differs by up to 0.025 BAS per clip; docs/eval.md).

Results are cached as small ``.npy`` files under ``<cache>/music_beats/``, where ``<cache>`` is
``$LIVEDANCE_CACHE`` or ``~/.cache/livedance`` (the dataset's cache folder). The key hashes the
audio file's resolved path, size and modification time, the excerpt (to the microsecond; whole songs for
``bailando``), the analysis settings and the librosa version, so an edited file or another librosa is
recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from livedance.errors import AudioError, ConfigError


def default_cache_dir() -> Path:
    """The dataset's cache folder: ``$LIVEDANCE_CACHE`` if set, else ``~/.cache/livedance``
    (:func:`livedance.data.dataset.default_cache_dir` when that module is importable)."""
    try:
        from livedance.data.dataset import default_cache_dir as dataset_cache_dir
    except ImportError:
        env = os.environ.get("LIVEDANCE_CACHE")
        return Path(env).expanduser() if env else Path.home() / ".cache" / "livedance"
    return Path(dataset_cache_dir())


@dataclass(frozen=True, kw_only=True)
class BeatTrackConfig:
    """Settings of the offline music beat tracker (see the module docstring).

    Attributes:
        method: ``"bailando"`` (the whole song's percussive part, median onset strength, as Bailando's
            preprocessing) or ``"excerpt"`` (plain ``beat_track`` on the excerpt alone; before session 16).
        sample_rate: analysis rate in Hz (audio is resampled with soxr); None (default): the method's own,
            Bailando's 30720 or the earlier rule's 22050.
        hop_length: onset-envelope hop in samples (512 at 30720 Hz = 1/60 s).

    Keyword-only (``BeatTrackConfig(method="excerpt")`` reproduces the beats of sessions before 16).
    """

    method: str = "bailando"
    sample_rate: int | None = None
    hop_length: int = 512

    def __post_init__(self) -> None:
        if self.method not in ("bailando", "excerpt"):
            raise ConfigError(f"music beat method {self.method!r}: expected 'bailando' or 'excerpt'")
        if self.sample_rate is None:
            object.__setattr__(self, "sample_rate", 30720 if self.method == "bailando" else 22050)


def _librosa():
    try:
        import librosa
    except ImportError:  # pragma: no cover - librosa is in the dev extra
        raise ConfigError(
            "music beats for BAS need librosa: pip install 'livedance[dev]' (or pip install librosa)"
        ) from None
    return librosa


def track_beats(audio: np.ndarray, sr: int, config: BeatTrackConfig = BeatTrackConfig()) -> np.ndarray:
    """Beat times (s) of a mono signal with ``librosa.beat.beat_track``.

    Args:
        audio: (N,) float32 mono audio at ``sr`` Hz (should equal ``config.sample_rate``).
        sr: sample rate in Hz.
        config: tracker settings.

    Returns:
        (M,) float64 beat times in seconds from the first sample, ascending (may be empty).
    """
    librosa = _librosa()
    y = np.asarray(audio, dtype=np.float32)
    if config.method == "bailando":  # Bailando's extractor.py: percussive part, median onset strength
        percussive = librosa.effects.hpss(y)[1]
        env = librosa.onset.onset_strength(y=percussive, sr=sr, aggregate=np.median, hop_length=config.hop_length)
        _, beats = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=config.hop_length, units="time")
    else:
        _, beats = librosa.beat.beat_track(y=y, sr=sr, hop_length=config.hop_length, units="time")
    return np.asarray(beats, dtype=np.float64).reshape(-1)


class MusicBeatCache:
    """Music beat times of song excerpts, computed once and kept on disk.

    Args:
        cache_dir: root cache folder (beats go to ``cache_dir / "music_beats"``); default
            :func:`default_cache_dir`.
        config: beat tracker settings (part of the cache key).
    """

    def __init__(self, cache_dir: str | Path | None = None, config: BeatTrackConfig = BeatTrackConfig()) -> None:
        self.root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.folder = self.root / "music_beats"
        self.config = config
        self.hits = 0
        self.misses = 0

    def key(self, audio_path: str | Path, offset_s: float, duration_s: float) -> str:
        """Cache key (hex sha1) of one excerpt; see the module docstring for what it covers.

        Raises:
            AudioError: the audio file does not exist.
        """
        path = Path(audio_path).expanduser().resolve()
        try:
            st = path.stat()
        except OSError:
            raise AudioError(f"audio file not found: {audio_path}") from None
        payload = {
            "path": str(path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "config": asdict(self.config),
            "librosa": getattr(_librosa(), "__version__", "?"),
            "method": "librosa.beat.beat_track/v1" if self.config.method == "excerpt" else "bailando-whole-song/v1",
        }
        if self.config.method == "excerpt":  # (the whole song's beats serve every excerpt otherwise)
            payload["offset_us"] = int(round(offset_s * 1e6))
            payload["duration_us"] = int(round(duration_s * 1e6))
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def beats(self, audio_path: str | Path, offset_s: float, duration_s: float) -> np.ndarray:
        """Beat times (s, from the excerpt start) of song ``audio_path`` in [offset_s, offset_s + duration_s).

        A negative ``offset_s`` (a dance that starts before the song) reads from the song start
        and shifts the beats so that 0 stays the dance's frame 0.

        Returns:
            (M,) float64 beat times in seconds, 0 = ``offset_s`` in song time.

        Raises:
            AudioError: the audio file is missing, unreadable or holds no samples in the excerpt.
        """
        from livedance.data.audio_io import load_audio

        key = self.key(audio_path, offset_s, duration_s)
        file = self.folder / f"{key}.npy"
        beats = None
        if file.is_file():
            try:
                beats = np.load(file, allow_pickle=False)
                self.hits += 1
            except (OSError, ValueError):
                pass  # a damaged cache entry is recomputed
        start = max(offset_s, 0.0)
        length = duration_s - (start - offset_s)
        if length <= 0:
            raise AudioError(f"{audio_path}: the excerpt [{offset_s:.3f} s, +{duration_s:.3f} s) lies before the song")
        if beats is None:
            if self.config.method == "excerpt":
                audio, sr = load_audio(audio_path, sr=self.config.sample_rate, offset_s=start, duration_s=length)
                beats = track_beats(audio, sr, self.config) + (start - offset_s)
            else:  # the whole song, as Bailando's preprocessing (song seconds)
                audio, sr = load_audio(audio_path, sr=self.config.sample_rate)
                beats = track_beats(audio, sr, self.config)
            self.misses += 1
            from livedance.atomic import atomic_target

            with atomic_target(file) as tmp:
                np.save(tmp, beats)
        if self.config.method == "excerpt":
            return beats
        inside = beats[(beats >= start) & (beats < offset_s + duration_s)]
        return inside - offset_s
