"""Feature configuration: sample rate, STFT framing, mel bands, onset bands and the rhythm-phase bank.

See ``docs/features.md`` for what each feature is and why these defaults.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from livedance.errors import ConfigError

#: Order of the named blocks inside one feature vector.
FEATURE_NAMES = ("logmel", "onset", "band_onset", "phase", "phase_mag")


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the per-hop audio features (shared by the streaming and the offline twin).

    Framing (the stream clock: sample 0 of the stream is at 0 s): frame ``k`` (k = 0, 1, ...) is the
    window of ``n_fft`` samples that ENDS at sample ``(k + 1) * hop`` (exclusive), i.e. samples
    ``[(k + 1) * hop - n_fft, (k + 1) * hop)``; samples before 0 are zeros (the stream starts from
    silence). Its time is the end of its window, ``(k + 1) * hop / sr`` seconds. A stream of N samples
    has ``N // hop`` complete frames.

    Attributes:
        sr: internal sample rate in Hz (audio at other rates goes through
            :class:`livedance.features.resample.StreamResampler` first). Default 22050.
        n_fft: STFT frame and window length in samples (2048 = 92.9 ms at 22050 Hz).
        hop: hop size in samples between frames (512 = 23.2 ms, 43.07 frames/s).
        window: analysis window name for ``scipy.signal.get_window`` (periodic), default "hann".
        n_mels: number of mel bands of the log-mel spectrogram.
        fmin, fmax: mel filterbank range in Hz; fmax None means sr / 2.
        mel_htk: HTK mel scale instead of Slaney's (librosa's ``htk``).
        mel_norm: librosa's filter normalisation ("slaney" = equal area, or None).
        amin: power floor before the log (1e-10 gives a floor of -100 dB).
        n_onset_bands: number of contiguous mel-band groups with their own onset strength.
        phase_bpm: modulation frequencies of the rhythm-phase bank, in beats per minute
            (BPM / 60 = Hz of the feature's periodicity).
        phase_frames: W, the causal window along time, in frames (256 = 5.94 s).
        phase_window: window along time for the phase bank: a ``scipy.signal.get_window`` name
            (periodic) or "half-hann" (rising half of a 2W Hann, newest frame weighted most).
        phase_mag_floor: below this modulation amplitude the (cos, sin) pair shrinks towards (0, 0)
            instead of showing an arbitrary angle (units of the channel: dB per frame).

    Raises:
        ConfigError: (on construction) when a value is out of range; the message names the field.
    """

    sr: int = 22050
    n_fft: int = 2048
    hop: int = 512
    window: str = "hann"
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None
    mel_htk: bool = False
    mel_norm: str | None = "slaney"
    amin: float = 1e-10
    n_onset_bands: int = 3
    phase_bpm: tuple[float, ...] = (60.0, 75.0, 90.0, 105.0, 120.0, 150.0, 180.0, 240.0)
    phase_frames: int = 256
    phase_window: str = "hann"
    phase_mag_floor: float = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase_bpm", tuple(float(b) for b in self.phase_bpm))
        for name in ("sr", "n_fft", "hop", "n_mels", "n_onset_bands", "phase_frames"):  # counts: whole numbers
            v = getattr(self, name)
            try:
                whole = (not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(v)
                         and float(v).is_integer())
            except OverflowError:  # an int beyond a float
                whole = False
            if not whole:
                raise ConfigError(f"FeatureConfig.{name} must be a whole number (samples, bands or frames), got {v!r}"
                                  + (" (a hop that is not a whole number of samples cannot be streamed: choose the "
                                     "sample rate so that sr / hop is the frame rate you need)" if name == "hop" else ""))
            object.__setattr__(self, name, int(v))
        if self.sr <= 0:
            raise ConfigError(f"FeatureConfig.sr must be a positive sample rate in Hz, got {self.sr}")
        if self.n_fft < 16:
            raise ConfigError(f"FeatureConfig.n_fft must be >= 16 samples, got {self.n_fft}")
        if not 0 < self.hop <= self.n_fft:
            raise ConfigError(f"FeatureConfig.hop must be in [1, n_fft={self.n_fft}] samples, got {self.hop}")
        if self.n_mels < 1:
            raise ConfigError(f"FeatureConfig.n_mels must be >= 1, got {self.n_mels}")
        fmax = self.sr / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < fmax <= self.sr / 2:
            raise ConfigError(
                f"FeatureConfig needs 0 <= fmin < fmax <= sr/2 = {self.sr / 2} Hz, "
                f"got fmin={self.fmin}, fmax={self.fmax}"
            )
        if not self.amin > 0:
            raise ConfigError(f"FeatureConfig.amin must be > 0 (power floor), got {self.amin}")
        if not 1 <= self.n_onset_bands <= self.n_mels:
            raise ConfigError(
                f"FeatureConfig.n_onset_bands must be in [1, n_mels={self.n_mels}], got {self.n_onset_bands}"
            )
        if self.phase_frames < 4:
            raise ConfigError(f"FeatureConfig.phase_frames must be >= 4 frames, got {self.phase_frames}")
        if not self.phase_bpm:
            raise ConfigError("FeatureConfig.phase_bpm must list at least one tempo in BPM")
        nyquist_bpm = 60.0 * self.frame_rate / 2
        window_s = self.phase_frames / self.frame_rate
        for bpm in self.phase_bpm:
            if not 0 < bpm < nyquist_bpm:
                raise ConfigError(
                    f"FeatureConfig.phase_bpm values must be in (0, {nyquist_bpm:.1f}) BPM "
                    f"(the frame rate's Nyquist), got {bpm}"
                )
            if 60.0 / bpm > window_s:
                raise ConfigError(
                    f"FeatureConfig.phase_bpm {bpm} has a period of {60 / bpm:.2f} s, longer than the "
                    f"phase window of {self.phase_frames} frames = {window_s:.2f} s"
                )
        if not self.phase_mag_floor > 0:
            raise ConfigError(f"FeatureConfig.phase_mag_floor must be > 0, got {self.phase_mag_floor}")

    # Derived quantities -------------------------------------------------------------------------
    @property
    def frame_rate(self) -> float:
        """Frames per second (sr / hop; 43.07 with the defaults)."""
        return self.sr / self.hop

    @property
    def hop_s(self) -> float:
        """Hop duration in seconds (23.2 ms with the defaults)."""
        return self.hop / self.sr

    @property
    def window_s(self) -> float:
        """STFT window duration in seconds (92.9 ms with the defaults)."""
        return self.n_fft / self.sr

    @property
    def n_bins(self) -> int:
        """One-sided STFT bins, n_fft // 2 + 1."""
        return self.n_fft // 2 + 1

    @property
    def n_phase_channels(self) -> int:
        """Channels that feed the rhythm-phase bank: the onset strength plus each band onset."""
        return 1 + self.n_onset_bands

    @property
    def n_tempi(self) -> int:
        """Number of modulation frequencies (``len(phase_bpm)``)."""
        return len(self.phase_bpm)

    @property
    def dims(self) -> dict[str, int]:
        """Width of each named block, in feature order."""
        c, k = self.n_phase_channels, self.n_tempi
        return {
            "logmel": self.n_mels,
            "onset": 1,
            "band_onset": self.n_onset_bands,
            "phase": c * k * 2,
            "phase_mag": c * k,
        }

    @property
    def slices(self) -> dict[str, slice]:
        """Name -> slice of the feature axis: 'logmel', 'onset', 'band_onset', 'phase', 'phase_mag'.

        'phase' is laid out as (channel, tempo, [cos, sin]) flattened in C order, 'phase_mag' as
        (channel, tempo); channel 0 is the onset strength, channels 1.. the band onsets (low to high).
        """
        out, start = {}, 0
        for name, width in self.dims.items():
            out[name] = slice(start, start + width)
            start += width
        return out

    @property
    def feature_dim(self) -> int:
        """D, the length of one feature vector (180 with the defaults)."""
        return sum(self.dims.values())
