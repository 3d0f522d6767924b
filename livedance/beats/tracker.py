"""Causal beat and tempo tracker for live audio (the streaming stage "beat phase and tempo").

Signal path, one analysis hop at a time (``hop`` samples at :data:`ANALYSIS_RATE`):

1. Input at any rate in 8-96 kHz is resampled to 44.1 kHz with ``soxr.ResampleStream`` (no-op at
   44.1 kHz). The resampler is delay-compensated: analysis sample k is stream time k / 44100 s. It
   does hold output back, though: analysis sample k reaches the tracker only once the caller has
   pushed input up to about k / 44100 + d s, d varying between a few ms and
   :func:`resampler_hold_s` (19.6 ms at 48 kHz, 42.5 ms at 22.05 kHz, 135 ms at 8 kHz; 0 at 44.1 kHz).
2. Triangular dither at about -100 dBFS is added, so aubio's silence gate never swallows beats in
   digitally silent passages (aubio 0.4.9 drops beats when a block is below -90 dBFS).
3. aubio's tempo tracker (``aubio.tempo("default", ...)``, Davies & Plumbley's comb-filter tracker)
   runs on every hop; its tempo, when confident, biases the tempo salience (a hint, not the answer).
4. The onset envelope is our own log-mel spectral flux (:mod:`livedance.beats.onset`).
5. :class:`~livedance.beats.tempo.TempoEstimator` gives the beat period with smoothing and
   hysteresis against octave and 3:2 errors.
6. Phase locking: a causal comb filter over the envelope history scores every phase phi of the
   current period P,  C(phi) = sum_{k=0}^{K-1} g^k e(n - phi - k P)  (Scheirer, "Tempo and beat
   analysis of acoustic musical signals", JASA 1998, eq. 5, in its feed-forward form, so it stays
   valid when P changes); the best phase gives the last beat, and last beat + P the next one. While the
   tempo is young the comb weighs recent beats more (``young_phase_decay``); after that a jump of the
   phase by more than 0.3 beat is followed only once it has held for ``phase_switch_beats`` beats.
7. A beat is announced (a :class:`BeatEvent`) when the next predicted beat falls before
   now + d + max(hop, ``announce_ahead_s``), now = the end of the hop just analysed (analysis clock) and
   d = :func:`resampler_hold_s`: the caller has the event by stream time ``reported_at_s`` = now + d and
   the next chance to announce comes a hop later, so a locked tracker announces ahead of time,
   ``reported_at_s <= time_s``.
8. Downbeats: the low-band onset accent of each announced beat is accumulated per bar position for
   3/4 and 4/4; the meter and position with the clearest accent mark the downbeats. Bar positions count
   grid beats: a beat not announced (confidence gate, silence, skipped as too late) still advances them
   (by the number of periods since the last announced beat, rounded).

Confidence in [0, 1] combines the autocorrelation strength at the period and the peak contrast of
the phase comb; it is 0 while the input is silent (RMS below ``silence_db`` over the last
``silence_time_s``), and no beats are announced below ``min_confidence``.

Clock: all times are stream seconds, sample 0 of the pushed audio = 0.0 s.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from livedance.beats.grid import BeatEvent, grid_beats, grid_phase
from livedance.beats.onset import OnsetEnvelope
from livedance.beats.tempo import TempoConfig, TempoEstimator
from livedance.errors import ConfigError
from livedance.features.validate import check_samples

#: Internal analysis sample rate, Hz. Input at other rates is resampled to it.
ANALYSIS_RATE = 44100


def _make_resampler(sample_rate: int):
    import soxr

    return soxr.ResampleStream(float(sample_rate), float(ANALYSIS_RATE), 1, dtype="float32", quality="HQ")


@lru_cache(maxsize=None)
def resampler_hold_s(sample_rate: int) -> float:
    """Longest time, seconds, that the tracker's resampler (soxr HQ, ``sample_rate`` -> 44.1 kHz) holds an
    analysis sample back: analysis sample k (stream time k / 44100) is returned by soxr once the caller has
    pushed the input up to at most k / 44100 + this (when pushing in blocks of up to 0.5 ms; larger blocks
    add their own length). 0.0 at 44.1 kHz (no resampler).

    soxr releases its output in internal blocks, so the actual hold-back is a sawtooth between a few ms and
    this maximum (48 kHz: 2.4-19.6 ms; 22.05 kHz: 4.4-42.5 ms; 8 kHz: 24-135 ms). It depends only on the
    sample counts, so it is measured once per rate by pushing 1 s of zeros through a probe resampler in
    0.5 ms steps (the step adds at most 0.5 ms, on the safe side).
    """
    sample_rate = int(sample_rate)
    if sample_rate == ANALYSIS_RATE:
        return 0.0
    rs = _make_resampler(sample_rate)
    step = max(1, sample_rate // 2000)
    zeros = np.zeros(step, np.float32)
    n_in = n_out = 0
    worst = 0.0
    while n_in < sample_rate:
        m = rs.resample_chunk(zeros, last=False).size
        n_in += step
        if m:
            # output samples n_out .. n_out + m - 1 arrive now; the oldest of them waited longest
            worst = max(worst, n_in / sample_rate - n_out / ANALYSIS_RATE)
            n_out += m
    return float(worst)


@dataclass
class TrackerConfig:
    """Settings of :class:`BeatTracker`.

    Attributes:
        sample_rate: rate of the pushed audio, Hz (8000 to 96000).
        hop: analysis hop in samples at the 44.1 kHz analysis rate (512 = 11.6 ms, 86.13 frames/s).
        win: analysis window in samples at 44.1 kHz (2048 = 46 ms).
        tempo: tempo search and smoothing settings.
        phase_beats: K, the number of past beats the phase comb looks at.
        phase_decay: g, the weight ratio between successive past beats in the phase comb.
        low_weight: weight of the low-band (< 200 Hz, kick and bass) flux added to the full-band
            flux for tempo estimation; it pulls the metrical level toward the kick pattern rather
            than eighth-note hi-hats.
        odf_power: the onset envelope is raised to this power for the phase comb (> 1 favours
            strong accents over dense weak onsets).
        phase_inertia: weight in [0, 1] of a phase prior centred on the current prediction
            (a Gaussian of ``phase_inertia_width`` beats); 0 measures the phase afresh every hop.
        period_search: the phase comb refines the beat period within +- this fraction of the
            tempo estimator's period (0.5 % steps).
        young_period_search: while the tempo estimator is young (:attr:`TempoConfig.young_time_s` after a
            reset), the phase comb refines the period within +- this fraction instead of
            ``period_search``. The autocorrelation's first tempo is often 1-3 % off (166 BPM for 170
            while its 3 s smoothing converges), and a phase fitted over K beats at a wrong period
            predicts the next beat late or early by tens of ms; the comb's own period fit removes that
            in the first seconds (docs/beats.md, fifth follow-up). When youth ends the search falls back
            to ``period_search`` and the period to the estimator's, so the grid can step by a few ms
            there if that is still off. 0 = off (the default: it costs the GTZAN country clip 0.03 F and
            1.4 s of tempo settling).
        young_phase_decay: while the tempo estimator is young, the phase comb weighs its past beats by
            this ratio instead of ``phase_decay`` (0 = use ``phase_decay``). The comb fits one phase to K
            past beats at the current period; while that period is still 1-3 % off (the young tempo), the
            fit lags by about the period error times the comb's mean age in beats, sum_k k g^k / sum_k g^k
            (4.3 beats at g = 0.9 with K = 12, 1 beat at 0.5), so the predicted beats ran 30-66 ms late for the first
            seconds. Weighing recent beats more removes most of that without touching the period
            (unlike ``young_period_search``); docs/beats.md, eighth follow-up.
        period_smooth_s: time constant of the smoothing of the refined period, seconds.
        odf_latency_s: how far the onset envelope lags the onset that caused it, seconds
            (measured on click tracks).
        announce_ahead_s: a beat is announced when it is at most this far after the time the caller
            receives the announcement (the analysis time plus :func:`resampler_hold_s`), seconds (at
            least one hop, so that no beat falls between two hops).
        phase_switch_beats: once the tempo is no longer young, a new phase more than 0.3 beat from the
            pending prediction is followed only once the comb has preferred it for this many beat periods in
            a row (0 = at once; while young it is always followed at once, so the first lock is not
            delayed). Music with a strong
            backbeat (country's "boom-chick") makes the comb prefer the off-beat for a beat or so; without
            the hold the grid jumps there and back, losing two beats each time (docs/beats.md, eighth
            follow-up).
        max_late_s: a beat whose onset is heard before it was announced is still announced
            (late) if at most this much time has passed since it, seconds; else it is skipped.
        min_confidence: beats are announced only at or above this confidence.
        silence_db: RMS level in dBFS below which the input counts as silent.
        silence_time_s: length of the RMS window for the silence gate, seconds.
        dither_db: level of the triangular dither added before analysis, dBFS.
        use_aubio: feed aubio's tempo to the tempo salience as a hint.
        aubio_weight: strength of that hint (0 = off).
        downbeats: estimate downbeats (3/4 or 4/4).
        seed: seed of the dither generator (the output is deterministic for a given seed).
        max_rise_db: clip of the frame's onset flux (and low-band flux), dB per band (0 = off). Stops
            the 60 dB rise out of a silence from dominating the autocorrelation (and so the
            confidence) for its 10 s memory; off by default because it also equalises kicks and
            hi-hats and lets eighth-note hats win the octave (docs/beats.md, "Follow-up").
        warm_beats: if > 0, the confidence's warm-up factor is the fraction of non-silent frames in
            the last ``warm_beats`` periods (a short gap no longer restarts the warm-up); 0 keeps the
            original rule (frames since the last silence over ``phase_beats`` periods).
        strength_z: if > 0, the autocorrelation strength loses ``strength_z / sqrt(N_eff)`` (its
            standard deviation for a random envelope of N_eff effective frames, Bartlett) before it
            enters the confidence; this keeps short-history noise below the threshold.
        adaptive_cap: if > 0, each frame's onset values (flux and low-band flux, for tempo and
            phase) are scaled down so that v = flux + low_weight * low is at most ``adaptive_cap``
            times the running RMS of v before this frame (forgetting with ``adaptive_time_s``,
            updated on non-silent frames, starting at ``adaptive_init`` dB). Level-relative, unlike ``max_rise_db``: a 40-60 dB rise
            out of a silence or a break is capped, while kicks keep their lead over hi-hats.
        adaptive_time_s: time constant of that running RMS (of v squared), seconds.
        adaptive_init: its starting value, dB of mean rise per band (about the RMS flux of music).
        silence_reset_s: if > 0, a silence (per the gate) of at least this long resets the tempo
            autocorrelation when sound resumes, so the re-lock does not wait for the old
            material (and the level jump) to be forgotten.
        bank_lead_full: with the hypothesis bank on (``tempo.bank_gamma > 0``), the confidence's
            warm-up factor is at least ``bank_lead / bank_lead_full`` (capped at 1), where
            ``bank_lead`` in [0, 1] is how far the tracked hypothesis' integrated evidence leads the
            best other metrical class (:class:`~livedance.beats.tempo.TempoEstimator`); 0 = off
            (the fixed K-period warm-up).
    """

    sample_rate: int = 44100
    hop: int = 512
    win: int = 2048
    tempo: TempoConfig = field(default_factory=TempoConfig)
    phase_beats: int = 12
    phase_decay: float = 0.9
    period_search: float = 0.0
    young_period_search: float = 0.0
    young_phase_decay: float = 0.5
    odf_power: float = 1.0
    low_weight: float = 0.35
    phase_inertia: float = 0.0
    phase_inertia_width: float = 0.1
    period_smooth_s: float = 1.0
    odf_latency_s: float = 0.0
    announce_ahead_s: float = 0.0
    phase_switch_beats: float = 1.0
    max_late_s: float = 0.03
    min_confidence: float = 0.3
    silence_db: float = -60.0
    silence_time_s: float = 1.0
    dither_db: float = -100.0
    use_aubio: bool = True
    aubio_weight: float = 0.3
    downbeats: bool = True
    seed: int = 0
    max_rise_db: float = 0.0
    warm_beats: float = 0.0
    strength_z: float = 0.0
    adaptive_cap: float = 6.0
    adaptive_time_s: float = 2.0
    adaptive_init: float = 1.0
    silence_reset_s: float = 1.5
    bank_lead_full: float = 0.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field out of range."""
        if not 8000 <= int(self.sample_rate) <= 96000:
            raise ConfigError(f"TrackerConfig.sample_rate must be 8000..96000 Hz, got {self.sample_rate}")
        if not 64 <= int(self.hop) <= 4096:
            raise ConfigError(f"TrackerConfig.hop must be 64..4096 samples, got {self.hop}")
        if int(self.win) < int(self.hop) or int(self.win) & (int(self.win) - 1):
            raise ConfigError(f"TrackerConfig.win must be a power of two >= hop, got {self.win}")
        if self.use_aubio and int(self.win) < 2 * int(self.hop):  # aubio's tempo runs on win // 2 >= hop samples
            raise ConfigError(f"TrackerConfig.win must be >= 2 * hop ({2 * int(self.hop)}) with use_aubio, got "
                              f"{self.win} (or set use_aubio=False)")
        if not (np.isfinite(self.odf_power) and self.odf_power > 0):
            raise ConfigError(f"TrackerConfig.odf_power must be a finite exponent > 0, got {self.odf_power}")
        if not (np.isfinite(self.tempo.prior_octaves) and self.tempo.prior_octaves > 0):
            raise ConfigError(f"TrackerConfig.tempo.prior_octaves must be a width > 0 octaves, got "
                              f"{self.tempo.prior_octaves}")
        if not 0 < self.tempo.min_bpm < self.tempo.max_bpm:
            raise ConfigError(
                f"TrackerConfig.tempo needs 0 < min_bpm < max_bpm, got {self.tempo.min_bpm}..{self.tempo.max_bpm}"
            )
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(f"TrackerConfig.min_confidence must be in [0, 1], got {self.min_confidence}")
        for name in ("period_search", "young_period_search"):
            v = getattr(self, name)
            if not 0.0 <= v <= 0.2:
                raise ConfigError(f"TrackerConfig.{name} must be a fraction in [0, 0.2], got {v}")
        if not 0.0 < self.phase_decay <= 1.0:
            raise ConfigError(f"TrackerConfig.phase_decay must be in (0, 1], got {self.phase_decay}")
        if not 0.0 <= self.phase_switch_beats <= 8.0:
            raise ConfigError(f"TrackerConfig.phase_switch_beats must be in [0, 8] beat periods, got {self.phase_switch_beats}")
        if not 0.0 <= self.young_phase_decay <= 1.0:
            raise ConfigError(f"TrackerConfig.young_phase_decay must be in [0, 1] (0 = phase_decay), "
                              f"got {self.young_phase_decay}")
        if int(self.phase_beats) != self.phase_beats or self.phase_beats < 1:
            raise ConfigError(f"TrackerConfig.phase_beats must be a whole number of beats >= 1, got {self.phase_beats}")
        if int(self.tempo.n_harmonics) != self.tempo.n_harmonics or self.tempo.n_harmonics < 1:
            raise ConfigError(
                f"TrackerConfig.tempo.n_harmonics must be a whole number >= 1, got {self.tempo.n_harmonics}"
            )
        for name, v in (
            ("period_smooth_s", self.period_smooth_s),
            ("tempo.acf_time_s", self.tempo.acf_time_s),
            ("tempo.mean_time_s", self.tempo.mean_time_s),
            ("tempo.smooth_time_s", self.tempo.smooth_time_s),
        ):
            if not v > 0:
                raise ConfigError(f"TrackerConfig.{name} must be a time constant > 0 seconds, got {v}")


class _DownbeatEstimator:
    """Bar position from the low-band accent of each beat, for 3/4 and 4/4 (running averages)."""

    METERS = (3, 4)

    def __init__(self, decay: float = 0.9, min_beats: int = 8, min_contrast: float = 0.15) -> None:
        self.decay, self.min_beats, self.min_contrast = decay, min_beats, min_contrast
        self.reset()

    def reset(self) -> None:
        self.acc = {m: np.zeros(m) for m in self.METERS}
        self.count = 0

    def add(self, index: int, accent: float) -> None:
        """Add the accent of beat number ``index``."""
        for m, a in self.acc.items():
            a[index % m] = self.decay * a[index % m] + accent
        self.count += 1

    def estimate(self) -> tuple[int, int] | None:
        """(meter, downbeat position mod meter), or None while unsure."""
        if self.count < self.min_beats:
            return None
        best, best_c = None, self.min_contrast
        for m, a in self.acc.items():
            mean = a.mean()
            if mean <= 0:
                continue
            srt = np.sort(a)
            contrast = (srt[-1] - srt[-2]) / mean
            if contrast > best_c:
                best, best_c = (m, int(np.argmax(a))), contrast
        return best


class BeatTracker:
    """Causal beat and tempo tracker; see the module docstring for the method.

    Usage::

        tr = BeatTracker(TrackerConfig(sample_rate=48000))
        for block in blocks:              # (N,) float32 mono, any N
            for ev in tr.push(block):     # BeatEvent, announced ahead of time
                ...
        tail = tr.flush()                 # end of stream: the beats of the buffered tail
        tr.bpm, tr.confidence, tr.beat_phase(t), tr.predict_beats(4, t)

    The output depends only on the samples, not on how they are split into blocks.
    Implements :class:`~livedance.beats.grid.BeatGrid` on the stream clock.

    Raises:
        ConfigError: on an invalid :class:`TrackerConfig`.
    """

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self.cfg = cfg or TrackerConfig()
        self.cfg.validate()
        self.fps = ANALYSIS_RATE / self.cfg.hop
        self.hop_s = self.cfg.hop / ANALYSIS_RATE
        self._late_s = max(self.cfg.max_late_s, 0.0)
        c = self.cfg
        self._dp = np.linspace(-c.period_search, c.period_search, 2 * int(round(c.period_search / 0.005)) + 1)
        ys = c.young_period_search
        self._dp_young = np.linspace(-ys, ys, 2 * int(round(ys / 0.005)) + 1) if ys > 0 else self._dp
        self._dp_none = np.zeros(1)
        self._k = np.arange(c.phase_beats, dtype=float)
        self._kw = c.phase_decay ** self._k
        self._kw_young = (c.young_phase_decay ** self._k) if c.young_phase_decay > 0 else self._kw
        self._fine_a = 1.0 - float(np.exp(-1.0 / (c.period_smooth_s * self.fps)))
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget all state: the stream clock restarts at 0.0 s."""
        c = self.cfg
        self._resampler = None
        if int(c.sample_rate) != ANALYSIS_RATE:
            self._resampler = _make_resampler(int(c.sample_rate))
        self._hold_s = resampler_hold_s(int(c.sample_rate))
        self._flushed = False
        self._n_in = 0  # input samples pushed
        self._rng = np.random.default_rng(c.seed)
        self._dither_amp = float(10 ** (c.dither_db / 20))
        self._buf = np.zeros(c.win, np.float32)  # the newest `win` analysis samples
        self._pending = np.zeros(0, np.float32)  # analysis samples not yet in a full hop
        self._n_frames = 0
        self._onset = OnsetEnvelope(sample_rate=ANALYSIS_RATE, win=c.win, max_rise_db=c.max_rise_db)
        self._tempo = TempoEstimator(self.fps, c.tempo)
        self._aubio = None
        if c.use_aubio:
            import aubio

            self._aubio = aubio.tempo("default", c.win // 2, c.hop, ANALYSIS_RATE)
        stretch = 1.0 + max(c.period_search, c.young_period_search)  # the comb's longest period (_phase_comb)
        self._hist_len = int(np.ceil((60.0 / c.tempo.min_bpm) * stretch * self.fps * (c.phase_beats + 1))) + 4
        self._env = np.zeros(self._hist_len)  # smoothed envelope, _env[0] newest
        self._low = np.zeros(self._hist_len)
        self._sound = np.zeros(self._hist_len, dtype=bool)  # non-silent frames, _sound[0] newest
        n_rms = max(1, int(round(c.silence_time_s * self.fps)))
        self._rms = deque(maxlen=n_rms)
        self._silent = True
        self._sound_frames = 0
        self._silent_frames = 0
        self._flux_ms = float(c.adaptive_init) ** 2
        self._cap_a = 1.0 - float(np.exp(-1.0 / (max(c.adaptive_time_s, 1e-3) * self.fps)))
        self._bpm_hint = 0.0
        self._confidence = 0.0
        self._phase_contrast = 0.0
        self._next_beat: float | None = None
        self._last_emitted: float | None = None
        self._switch_since: float | None = None  # when the comb's phase started to disagree with the grid
        self._period_s: float | None = None
        self._fine_period: float | None = None
        self._beat_index = -1  # grid beat number of the last announced beat
        self._downbeat = _DownbeatEstimator()
        self._bar: tuple[int, int] | None = None
        self._last_downbeat: float | None = None

    # ------------------------------------------------------------- BeatGrid
    @property
    def bpm(self) -> float:
        """Current tempo estimate, beats per minute; 0.0 before one is found."""
        return 0.0 if self._period_s is None else 60.0 / self._period_s

    @property
    def confidence(self) -> float:
        """Confidence in [0, 1] of the current beat grid; 0.0 in silence."""
        return self._confidence

    @property
    def time_s(self) -> float:
        """Stream time analysed so far, seconds on the analysis clock (end of the last complete hop; after
        :meth:`flush`, of the zero-padded last one)."""
        return self._n_frames * self.hop_s

    def beat_phase(self, t_s: float) -> float:
        """Beat phase at stream time ``t_s`` in [0, 1): 0 on a predicted beat. 0.0 before a tempo is known."""
        if self._next_beat is None or self._period_s is None:
            return 0.0
        return grid_phase(t_s, self._next_beat, self._period_s)

    def predict_beats(self, n: int, after_s: float) -> np.ndarray:
        """The next ``n`` predicted beat times after ``after_s`` (stream seconds), (n,) float64.

        Extrapolates the current grid (next beat + k * period); (0,) before a tempo is known.
        """
        if self._next_beat is None or self._period_s is None:
            return np.zeros(0)
        return grid_beats(n, after_s, self._next_beat, self._period_s)

    def downbeat_phase(self, t_s: float) -> float:
        """Bar phase at ``t_s`` in [0, 1): 0 on a predicted downbeat. 0.0 while the meter is unknown."""
        if self._bar is None or self._last_downbeat is None or self._period_s is None:
            return 0.0
        return grid_phase(t_s, self._last_downbeat, self._period_s * self._bar[0])

    @property
    def meter(self) -> int | None:
        """Estimated beats per bar (3 or 4), or None while unsure."""
        return None if self._bar is None else self._bar[0]

    # --------------------------------------------------------------- input
    def push(self, samples: np.ndarray) -> list[BeatEvent]:
        """Analyse the next block of audio and return the beats announced meanwhile.

        Args:
            samples: (N,) float32 (or float64/float16) mono at ``cfg.sample_rate``, any N >= 0, nominally
                in [-1, 1] (a little beyond is fine; magnitudes above 1e30 and NaN/inf are not).

        Returns:
            The beats announced during this block, in time order (possibly empty).

        Raises:
            AudioError: if ``samples`` is not a 1-D float array (integer PCM must be scaled to [-1, 1]
                first), or holds NaN/inf or magnitudes above 1e30 (the tracker's state is unchanged).
            RuntimeError: after :meth:`flush`, until :meth:`reset`.
        """
        x = check_samples(samples, "BeatTracker.push samples")
        if self._flushed:
            raise RuntimeError("BeatTracker.push after flush(): the stream has ended; call reset() to start a new one")
        x = np.asarray(x, dtype=np.float32)
        self._n_in += x.size
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x, last=False)
        return self._analyse(x, end_s=None)

    def flush(self) -> list[BeatEvent]:
        """End of stream: analyse the audio still buffered and return the beats announced meanwhile.

        Drains the resampler (the output soxr still holds, up to :func:`resampler_hold_s`) and analyses
        the last partial hop padded with zeros, so the whole input has been analysed (:attr:`time_s`
        is then at or after its end, ``end_s`` = samples pushed / ``sample_rate``). Beats are announced
        as in :meth:`push`, except that only beats at or before ``end_s`` are (no audio follows), with
        ``reported_at_s`` = ``end_s``, when the caller gets them. A second call returns [];
        :meth:`push` raises until :meth:`reset`.
        """
        if self._flushed:
            return []
        self._flushed = True
        x = np.zeros(0, np.float32)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x, last=True)
        return self._analyse(x, end_s=self._n_in / float(self.cfg.sample_rate))

    def _analyse(self, x: np.ndarray, end_s: float | None) -> list[BeatEvent]:
        """Run every complete hop of pending + ``x``; at the end of the stream (``end_s``, seconds, not
        None) also the last partial hop, zero-padded."""
        data = np.concatenate([self._pending, x]) if self._pending.size else x
        hop = self.cfg.hop
        if end_s is not None and data.size % hop:
            data = np.concatenate([data, np.zeros(hop - data.size % hop, np.float32)])
        n = data.size // hop
        events: list[BeatEvent] = []
        for i in range(n):
            ev = self._step(data[i * hop : (i + 1) * hop], end_s)
            if ev is not None:
                events.append(ev)
        self._pending = data[n * hop :].copy()
        return events

    # ------------------------------------------------------------- one hop
    def _step(self, block: np.ndarray, end_s: float | None = None) -> BeatEvent | None:
        """Analyse one hop; ``end_s``: end of the stream when flushing (seconds), else None."""
        c = self.cfg
        # Triangular dither (sum of two uniforms) keeps aubio's silence gate open.
        dither = (self._rng.random(block.size) - self._rng.random(block.size)).astype(np.float32)
        block = block + self._dither_amp * dither
        self._buf = np.concatenate([self._buf[block.size :], block])
        self._n_frames += 1
        now = self._n_frames * self.hop_s

        self._rms.append(float(np.mean(block.astype(np.float64) ** 2)))
        level_db = 10 * np.log10(max(float(np.mean(self._rms)), 1e-20))
        self._silent = level_db < c.silence_db
        self._sound_frames = 0 if self._silent else self._sound_frames + 1
        if not self._silent and c.silence_reset_s > 0 and self._silent_frames >= c.silence_reset_s * self.fps:
            self._tempo.reset()  # sound after a long silence: start the tempo evidence afresh
        self._silent_frames = self._silent_frames + 1 if self._silent else 0

        flux, low = self._onset.step(self._buf)
        if c.adaptive_cap > 0:
            # Level-relative cap: v <= adaptive_cap * running RMS of the (uncapped) v. The RMS is
            # taken of the raw values so that it cannot shrink under its own cap on sparse onsets
            # (clicks at 60 BPM: one onset frame in 86); one spike raises it by little.
            v = flux + c.low_weight * low
            cap = c.adaptive_cap * np.sqrt(self._flux_ms)
            if not self._silent:
                self._flux_ms += self._cap_a * (v * v - self._flux_ms)
            if v > cap:
                flux, low = flux * cap / v, low * cap / v
        bias = None
        if self._aubio is not None:
            self._aubio(block)
            a_bpm, a_conf = float(self._aubio.get_bpm()), float(self._aubio.get_confidence())
            if a_bpm > 0 and a_conf > 0.1 and c.aubio_weight > 0:
                bpms = self._tempo.candidate_bpms
                bias = 1.0 + c.aubio_weight * np.exp(-0.5 * (np.log2(bpms / a_bpm) / 0.02) ** 2)
            self._bpm_hint = a_bpm
        self._tempo.update(flux + c.low_weight * low, bias)

        self._env[1:] = self._env[:-1]
        self._env[0] = flux ** c.odf_power
        self._low[1:] = self._low[:-1]
        self._low[0] = self._onset.low_accent
        self._sound[1:] = self._sound[:-1]
        self._sound[0] = not self._silent

        if self._silent or self._tempo.period is None:
            self._confidence = 0.0
            return None
        young = c.young_period_search > 0 and self._tempo.young
        kw = self._kw_young if self._tempo.young else self._kw
        phi, fine = self._phase(self._tempo.period, now, self._dp_young if young else self._dp, kw)  # frames
        search = c.young_period_search if young else c.period_search
        if self._fine_period is None or abs(fine / self._fine_period - 1) > search:
            self._fine_period = fine
        else:
            self._fine_period += self._fine_a * (fine - self._fine_period)
        if young:
            # The (phase, period) cell of the wider young search jumps from hop to hop; take the phase
            # at the smoothed period instead, so the predicted beat moves smoothly.
            phi, _ = self._phase(self._fine_period, now, self._dp_none, kw)
        self._period_s = self._fine_period / self.fps
        last_beat = now - c.odf_latency_s - phi / self.fps
        self._update_confidence(self._tempo.period)

        P = self._period_s
        prev = self._next_beat
        if prev is not None and prev > now - self._late_s - P:
            # Continuity: follow the pending prediction to the nearest beat of the new grid, even
            # if that beat is now due (its onset has just been heard before it was announced).
            nxt = last_beat + P * np.round((prev - last_beat) / P)
            if abs(nxt - prev) <= 0.3 * P:
                self._switch_since = None
            else:
                if self._switch_since is None:
                    self._switch_since = now
                hold = 0.0 if self._tempo.young else c.phase_switch_beats * P
                if now - self._switch_since >= hold:  # the new phase has held: follow it
                    nxt = last_beat + P * max(1.0, np.ceil((now - last_beat) / P + 1e-9))
                    self._switch_since = None
                else:  # keep the current grid for now (the guard below moves an emitted beat on by P)
                    nxt = prev
        else:  # first beat after `now` on the measured grid
            self._switch_since = None
            nxt = last_beat + P * max(1.0, np.ceil((now - last_beat) / P + 1e-9))
        if self._last_emitted is not None and nxt - self._last_emitted < 0.6 * P:
            nxt += P * max(1.0, np.ceil((self._last_emitted + 0.6 * P - nxt) / P))
        while nxt < now - self._late_s:  # too late to be of use: skip it
            nxt += P
        self._next_beat = nxt
        if self._confidence < c.min_confidence:
            return None
        # The caller gets this hop's events at stream time now + hold (the resampler's hold-back); the
        # next chance to announce comes a hop later. At the end of the stream (flush) the caller gets
        # them at end_s, and no beat after end_s is announced.
        reported = now + self._hold_s
        horizon = reported + max(self.hop_s, c.announce_ahead_s)
        if end_s is not None:
            reported, horizon = min(reported, end_s), min(horizon, end_s)
        if nxt <= horizon:
            return self._announce(nxt, now, reported)
        return None

    def _phase(self, period: float, now: float, dp: np.ndarray, kw: np.ndarray) -> tuple[float, float]:
        """Comb-filter phase and period refinement.

        Scores every phase phi (frames back from now, 0 <= phi < P') of every period
        P' = period * (1 + dp) (``dp``: the relative offsets searched, from ``period_search`` or
        ``young_period_search``; frames), C(phi, P') = sum_k g^k e(n - phi - k P') with ``kw`` = (g^k);
        returns (phi*, P*) of the best cell, both refined by parabolic interpolation. Also sets the
        phase contrast (peak minus mean over phi, over peak, at P* of the comb weighted by
        ``phase_decay``) used by the confidence.
        """
        c = self.cfg
        periods = period * (1.0 + dp)
        phis = np.arange(0.0, np.ceil(periods.max()))
        idx = phis[None, :, None] + periods[:, None, None] * self._k[None, None, :]
        idx = np.minimum(idx, self._hist_len - 2)
        i0 = idx.astype(int)
        f = idx - i0
        vals = (1 - f) * self._env[i0] + f * self._env[i0 + 1]
        score = vals @ kw  # (n_periods, n_phis)
        # The confidence's phase contrast always comes from the comb with ``phase_decay``: a comb over fewer
        # effective beats (``young_phase_decay``) is peakier on noise too.
        ref = score if kw is self._kw else vals @ self._kw
        if c.phase_inertia > 0 and self._next_beat is not None:
            # Phase prior (PLL-like inertia): favour beat positions near the current prediction.
            pred = (self._next_beat - (now - c.odf_latency_s)) * self.fps  # frames ahead of now
            d = (phis[None, :] + pred) / periods[:, None]
            d = d - np.round(d)  # circular distance in beats
            w = np.exp(-0.5 * (d / c.phase_inertia_width) ** 2)
            score = score * (1.0 - c.phase_inertia + c.phase_inertia * w)
            ref = ref * (1.0 - c.phase_inertia + c.phase_inertia * w)
        # Phases beyond a candidate's own period repeat an earlier phase: mask them out.
        score = np.where(phis[None, :] < periods[:, None], score, -np.inf)
        pi, j = np.unravel_index(int(np.argmax(score)), score.shape)
        best_phi = float(phis[j])
        row = score[pi]
        if 0 < j < len(row) - 1 and np.isfinite(row[j - 1]) and np.isfinite(row[j + 1]):
            a, b, cc = row[j - 1], row[j], row[j + 1]
            den = a - 2 * b + cc
            if den < 0:
                best_phi += 0.5 * (a - cc) / den
        best_p = float(periods[pi])
        col = score[:, j]
        if 0 < pi < len(col) - 1 and np.isfinite(col[pi - 1]) and np.isfinite(col[pi + 1]):
            a, b, cc = col[pi - 1], col[pi], col[pi + 1]
            den = a - 2 * b + cc
            if den < 0:
                best_p = float(period * (1.0 + dp[pi] + 0.5 * (a - cc) / den * (dp[1] - dp[0])))
        ref_row = ref[pi][phis < periods[pi]]
        peak = float(ref_row.max())
        self._phase_contrast = 0.0 if peak <= 0 else float((peak - ref_row.mean()) / peak)
        return best_phi, best_p

    def _update_confidence(self, period: float) -> None:
        """confidence = clip(1.5 * sqrt(strength * contrast * warm), 0, 1): ``strength`` the normalised
        autocorrelation at the period, ``contrast`` the phase comb's peak contrast, ``warm`` the
        fraction of the comb's K periods heard since the input stopped being silent (a comb over a
        half-empty history is peaky even on noise)."""
        strength = self._tempo.strength
        if self.cfg.warm_beats > 0:
            span = min(int(np.ceil(self.cfg.warm_beats * period)), self._hist_len)
            warm = float(self._sound[:span].mean())
        else:
            warm = min(1.0, self._sound_frames / (self.cfg.phase_beats * period))
        if self.cfg.bank_lead_full > 0 and self._tempo.bank is not None:
            # Fast lock: once one hypothesis clearly leads the bank, the warm-up need not wait for
            # K full periods of history.
            warm = max(warm, min(1.0, self._tempo.bank_lead / self.cfg.bank_lead_full))
        if self.cfg.strength_z > 0:
            # Significance: the normalised autocorrelation of a random envelope over N frames has a
            # standard deviation of about 1 / sqrt(N); subtract z of them (Bartlett's formula).
            strength -= self.cfg.strength_z / np.sqrt(max(self._tempo.n_effective, 1.0))
        value = max(strength, 0.0) * self._phase_contrast * warm
        self._confidence = float(np.clip(1.5 * np.sqrt(value), 0.0, 1.0))

    def _announce(self, t_beat: float, now: float, reported: float) -> BeatEvent:
        # Grid beat number: beats of the grid that were not announced (confidence gate, silence, too
        # late) still count, so bar positions stay on the grid.
        if self._last_emitted is None or self._period_s is None:
            index = self._beat_index + 1
        else:
            index = self._beat_index + max(1, int(round((t_beat - self._last_emitted) / self._period_s)))
        is_down = False
        if self.cfg.downbeats:
            # Accent of the previous announced beat (its audio has been heard by now).
            if self._last_emitted is not None:
                back = int(round((now - self._last_emitted) * self.fps))
                if 0 <= back < self._hist_len - 3:
                    lo = max(back - 2, 0)
                    self._downbeat.add(self._beat_index, float(self._low[lo : back + 3].max()))
            self._bar = self._downbeat.estimate()
            if self._bar is not None:
                meter, pos = self._bar
                is_down = index % meter == pos
                if is_down:
                    self._last_downbeat = t_beat
        self._last_emitted = t_beat
        self._beat_index = index
        return BeatEvent(
            time_s=float(t_beat),
            bpm=self.bpm,
            confidence=self._confidence,
            reported_at_s=float(reported),
            is_downbeat=bool(is_down),
        )


def track(audio: np.ndarray, cfg: TrackerConfig | None = None, block: int = 4096) -> list[BeatEvent]:
    """Offline twin of :class:`BeatTracker`: push a whole signal and collect the announced beats.

    Args:
        audio: (N,) float32 mono at ``cfg.sample_rate``.
        cfg: tracker settings (default :class:`TrackerConfig`).
        block: push size in samples (the result does not depend on it).

    Returns:
        The announced beats, as a live consumer would have received them, including those of
        :meth:`BeatTracker.flush` at the end of the signal.
    """
    tr = BeatTracker(cfg)
    out: list[BeatEvent] = []
    for i in range(0, len(audio), block):
        out.extend(tr.push(audio[i : i + block]))
    out.extend(tr.flush())
    return out
