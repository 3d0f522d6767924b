"""Causal tempo estimation from an onset envelope: a running autocorrelation, a harmonic comb over
it, a log-normal tempo prior, and hysteresis against octave (2:1) and 3:2 jumps.

Method (after Ellis, "Beat tracking by dynamic programming", JNMR 2007, sect. 3.1, tempo from the
prior-weighted autocorrelation of the onset envelope; and Klapuri et al., "Analysis of the meter of
acoustic musical signals", IEEE TASLP 2006, comb-filter resonance over metrical levels):

* the onset envelope d[n], with its running mean removed, feeds an exponentially forgetting
  autocorrelation  A[l] <- beta * A[l] + d[n] * d[n - l]  (time constant ``acf_time_s``);
* the salience of a beat period P (frames) sums the autocorrelation at its first ``n_harmonics``
  multiples:  S(P) = sum_k A(k P) / k^2, A read at fractional lags by 3-point (quadratic) Lagrange
  interpolation (:meth:`TempoEstimator._acf_at`), times a
  log-normal prior over tempo  w(bpm) = exp(-0.5 (log2(bpm / prior_bpm) / prior_octaves)^2);
* the tracked period follows the best peak inside +-4 % (tempo smoothing), and moves to a peak at
  another metrical level (ratio 2, 1/2, 3/2, 2/3 or anywhere else) only after that peak has beaten the
  current one by ``switch_margin`` for ``switch_time_s`` (octave-error hysteresis; a challenger that
  moves to its own octave keeps its count, ``octave_challenger``);
* while the tracker is young (the first ``young_time_s`` after a reset), the hysteresis against a
  clearly leading challenger (optionally also the smoothing) is shortened in proportion to its age, so the tempo
  chosen on the first second of history is corrected quickly (fast lock after a silence);
* optionally (``bank_gamma`` > 0, off by default) a multi-hypothesis bank decides instead: every tempo
  is a hypothesis scored by salience x (comb-resonator contrast) ** bank_gamma
  (:mod:`livedance.beats.bank`), leaky-integrated per hypothesis, with the same kind of hysteresis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class TempoConfig:
    """Settings of :class:`TempoEstimator`.

    Attributes:
        min_bpm, max_bpm: tempo search range, beats per minute.
        prior_bpm, prior_octaves: centre and width (in octaves) of the log-normal tempo prior.
        acf_time_s: time constant of the autocorrelation's exponential forgetting, seconds.
        mean_time_s: time constant of the running mean removed from the envelope, seconds.
        n_harmonics: multiples of the period summed in the salience.
        harmonic_exponent: the k-th multiple is weighted k ** -harmonic_exponent.
        switch_margin: factor by which another peak must beat the tracked one to take over.
        switch_time_s: for how long it must do so, seconds.
        track_tolerance: relative distance within which the tracked period follows the best peak.
        smooth_time_s: time constant of the tempo smoothing inside the tolerance, seconds.
        unbiased: normalise each autocorrelation lag by its own (forgetting-weighted) number of
            products, so that early on slow tempi are not penalised (see ``_normalise``).
        min_overlap_s: lags with less than this much overlap (seconds) are left out of the comb.
        bank_gamma: if > 0, the multi-hypothesis (tempo, phase) bank is on: every tempo of the
            search grid is a hypothesis, scored each frame by salience x (resonator contrast) **
            bank_gamma (:class:`~livedance.beats.bank.ResonatorBank`: how well the hypothesis' best
            phase grid explains the envelope), leaky-integrated per hypothesis; that evidence drives
            the selection and its hysteresis (:meth:`TempoEstimator._select_bank`). 0 = off
            (salience alone, the default; docs/beats.md, "Third follow-up").
        bank_half_life_beats: memory of the bank's resonators, beats.
        bank_octave_invariant: score each hypothesis with the bank's largest contrast over its
            octaves (T/2, T, 2T), so the bank separates metrical classes (beat against 3:2) and the
            salience alone decides the octave (the bank's contrast favours slower octaves).
        bank_time_s: time constant of the leaky integration of each hypothesis' combined score, s.
        bank_switch_s: how long another hypothesis' integrated score must beat the tracked one by
            ``bank_margin`` before the bank switches, seconds.
        bank_margin: factor by which another hypothesis' integrated score must beat the tracked one.
        first_decision_s: history (seconds since the last reset) before a first tempo is chosen.
        young_time_s: if > 0, a "young" tracker (less than this many seconds since the last reset:
            the stream start, or sound resuming after ``TrackerConfig.silence_reset_s`` of silence)
            decides faster: for a challenger with a clear lead (``young_margin``) the switch
            hysteresis (``switch_time_s``, or ``bank_switch_s`` with the bank), and with
            ``young_smooth`` also the tempo smoothing time (``smooth_time_s``), are scaled by
            ``max(age / young_time_s, young_min_frac)``, so a tempo chosen on a 1 s history is corrected as soon as the
            evidence for another metrical level is in (:meth:`TempoEstimator._youth`;
            docs/beats.md, "Fourth follow-up"). 0 = off (the fixed hysteresis of earlier rounds).
        young_min_frac: the smallest such scale factor (0.1 with the defaults: 0.1 s of hysteresis, 0.05 s with
            the bank, and 0.3 s smoothing with ``young_smooth``).
        young_smooth: also scale the tempo smoothing time while young. Off by default: it moves the
            tempo of a first pick that is a few % off faster to the peak (Armygeddon's lock
            2.85 -> 1.46 s in the benchmark's reaction table), but the learned dancer's
            start-on-beat in ``benchmarks/perform.py`` went from 2.5 to 6.4 s with it
            (docs/beats.md, "Fourth follow-up").
        young_margin: the faster switch applies only to a challenger whose score is at least this
            factor times the tracked tempo's (a clear lead); closer calls keep the full
            ``switch_time_s`` (with 1.5, or without this condition, Tang song R_2 jumps between
            metrical levels in its first seconds).
        octave_challenger: a challenger's octave (2x, 4x, 1/2, 1/4 its period) continues the
            challenger's hysteresis count instead of starting it afresh, and the switch goes to the octave
            leading at that moment. A competing metrical class often wins first at one octave and then at
            the other (country: 126 BPM tracked, 169 leads from 5.5 s, then 84 from 6.5 s); counted
            apart, each needed its own ``switch_time_s`` (docs/beats.md, "Ninth follow-up").
    """

    min_bpm: float = 55.0
    max_bpm: float = 215.0
    prior_bpm: float = 120.0
    prior_octaves: float = 1.0
    acf_time_s: float = 10.0
    mean_time_s: float = 1.0
    n_harmonics: int = 4
    harmonic_exponent: float = 2.0
    switch_margin: float = 1.15
    switch_time_s: float = 1.0
    track_tolerance: float = 0.04
    smooth_time_s: float = 3.0
    unbiased: bool = False
    min_overlap_s: float = 0.5
    bank_gamma: float = 0.0
    bank_half_life_beats: float = 4.0
    bank_octave_invariant: bool = True
    bank_time_s: float = 1.5
    bank_switch_s: float = 0.5
    bank_margin: float = 1.15
    first_decision_s: float = 1.0
    young_time_s: float = 10.0
    young_min_frac: float = 0.1
    young_margin: float = 2.0
    young_smooth: bool = False
    octave_challenger: bool = True


class TempoEstimator:
    """Causal tempo tracker over an onset envelope at ``fps`` frames per second.

    Call :meth:`update` once per frame with the envelope value; read :attr:`period` (frames, or None
    before a tempo is found), :attr:`bpm` and :attr:`strength` (normalised autocorrelation at the
    tracked period, about 0 for noise and near 1 for a click track).

    With ``cfg.bank_gamma > 0`` also :attr:`bank` (the :class:`~livedance.beats.bank.ResonatorBank`),
    :attr:`evidence` ((n_candidates,) float64 in [0, 1], the leaky-integrated combined score of every
    candidate tempo) and :attr:`bank_lead` (in [0, 1], evidence of the tracked tempo minus that of the
    best tempo that is neither it nor one of its octaves; 0 with the bank off).
    """

    def __init__(self, fps: float, cfg: TempoConfig | None = None) -> None:
        self.fps = float(fps)
        self.cfg = cfg or TempoConfig()
        c = self.cfg
        self._bpms = np.exp(np.arange(np.log(c.min_bpm), np.log(c.max_bpm), 0.004))
        self._periods = 60.0 * self.fps / self._bpms
        self._prior = np.exp(-0.5 * (np.log2(self._bpms / c.prior_bpm) / c.prior_octaves) ** 2)
        self._max_lag = int(np.ceil(self._periods.max() * c.n_harmonics)) + 2
        self._beta = float(np.exp(-1.0 / (c.acf_time_s * self.fps)))
        self._mean_a = float(np.exp(-1.0 / (c.mean_time_s * self.fps)))
        self._switch_frames = int(round(c.switch_time_s * self.fps))
        self._hw = np.arange(1, c.n_harmonics + 1, dtype=float) ** -c.harmonic_exponent
        self._smooth_a = float(np.exp(-1.0 / (c.smooth_time_s * self.fps)))
        self.bank = None
        if c.bank_gamma > 0:
            from livedance.beats.bank import ResonatorBank

            self.bank = ResonatorBank(self.fps, c.min_bpm, c.max_bpm, half_life_beats=c.bank_half_life_beats)
        self._bank_a = 1.0 - float(np.exp(-1.0 / (max(c.bank_time_s, 1e-3) * self.fps)))
        self._bank_switch_frames = max(1, int(round(c.bank_switch_s * self.fps)))
        self.reset()

    def reset(self) -> None:
        """Forget everything: the autocorrelation, the history and the tracked period."""
        self._hist = np.zeros(self._max_lag + 1)  # hist[0] newest
        self._acf = np.zeros(self._max_lag + 1)
        self._acf_u = np.zeros(self._max_lag + 1)
        self._valid = np.zeros(self._max_lag + 1, dtype=bool)
        self._mean = 0.0
        self._n = 0
        self.period: float | None = None
        self.strength = 0.0
        self.salience = np.zeros_like(self._periods)
        self._challenger: float | None = None
        self._challenger_frames = 0
        self.bank_lead = 0.0
        self.evidence = np.zeros_like(self._periods)
        self._sal_raw = np.zeros_like(self._periods)
        if self.bank is not None:
            self.bank.reset()

    @property
    def bpm(self) -> float:
        """Tracked tempo in beats per minute; 0.0 before one is found."""
        return 0.0 if self.period is None else 60.0 * self.fps / self.period

    def _acf_at(self, lags: np.ndarray) -> np.ndarray:
        """Overlap-normalised autocorrelation at fractional lags, 3-point (quadratic) Lagrange interpolation.

        Linear interpolation would put every peak on an integer lag and bias the tempo by up to
        half a frame (1.6 % at 170 BPM and 86 frames/s); the quadratic keeps peaks off the grid.
        """
        i = np.clip(np.rint(lags).astype(int), 1, len(self._acf) - 2)
        f = lags - i
        acf = self._acf_u
        a, b, c = acf[i - 1], acf[i], acf[i + 1]
        return b + 0.5 * f * (c - a) + 0.5 * f * f * (c - 2 * b + a)

    def _normalise(self) -> None:
        """Overlap-normalised ("unbiased") autocorrelation and the mask of lags with enough data.

        After n frames the forgetting sum at lag l holds sum_{m=l}^{n-1} beta^(n-1-m) products, a
        weight of (1 - beta^(n-l)) / (1 - beta); lag 0 holds (1 - beta^n) / (1 - beta). Dividing by the
        ratio puts all lags on the scale of lag 0, so that early on, when long lags have seen few
        products, slow tempi (whose harmonics lie at long lags) are not penalised for the missing
        data. Lags with less than ``min_overlap_s`` of products are marked invalid.
        """
        n = self._n
        lags = np.arange(self._acf.size)
        avail = np.maximum(n - lags, 0)
        w = 1.0 - self._beta ** avail
        w0 = 1.0 - self._beta ** n
        self._valid = avail >= self.cfg.min_overlap_s * self.fps
        self._acf_u = np.where(self._valid, self._acf * w0 / np.maximum(w, 1e-12), 0.0)

    def _comb(self, lags: np.ndarray) -> np.ndarray:
        """Harmonic comb over (..., n_harmonics) lags: sum_k w_k A(k P) / sum_k w_k over the valid k."""
        ok = self._valid[np.clip(np.ceil(lags).astype(int) + 1, 0, self._valid.size - 1)]
        w = self._hw * ok
        return (self._acf_at(lags) * w).sum(-1) / np.maximum(w.sum(-1), 1e-12) * self._hw.sum()

    def _score(self, period: float) -> float:
        k = np.arange(1, self.cfg.n_harmonics + 1)
        s = float(self._comb(period * k))
        return s * float(np.exp(-0.5 * (np.log2(60 * self.fps / period / self.cfg.prior_bpm) / self.cfg.prior_octaves) ** 2))

    def update(self, value: float, bias: np.ndarray | None = None) -> None:
        """Take the next envelope value (one frame) and update the tracked period.

        Args:
            value: onset envelope at this frame (any non-negative scale).
            bias: optional (n_candidates,) multiplicative weights over :attr:`candidate_bpms`
                (used to favour an external tempo hint such as aubio's).
        """
        c = self.cfg
        self._mean = self._mean_a * self._mean + (1 - self._mean_a) * value
        d = value - self._mean
        self._hist[1:] = self._hist[:-1]
        self._hist[0] = d
        self._acf *= self._beta
        self._acf += d * self._hist
        self._n += 1
        if self.bank is not None:
            self.bank.step(max(float(value), 0.0))
        if self._n < self.fps * c.first_decision_s or self._acf[0] <= 1e-12:
            return
        if c.unbiased:
            self._normalise()
        else:
            self._acf_u, self._valid = self._acf, np.ones(self._acf.size, dtype=bool)
        k = np.arange(1, c.n_harmonics + 1)
        lags = self._periods[:, None] * k[None, :]
        sal = self._comb(lags) * self._prior
        self._sal_raw = sal
        if bias is not None:
            sal = sal * bias
        self.salience = sal
        j = int(np.argmax(sal))
        best = float(self._periods[j])
        if 0 < j < len(sal) - 1:  # parabolic refinement in log-period
            a, b, cc = sal[j - 1], sal[j], sal[j + 1]
            den = a - 2 * b + cc
            if den < 0:
                off = 0.5 * (a - cc) / den
                best = float(np.exp(np.log(best) - 0.004 * off))
        if sal[j] <= 0:
            return
        young = self._youth()
        smooth_a = self._smooth_a ** (1.0 / young) if young < 1.0 and c.young_smooth else self._smooth_a
        if self.bank is not None:
            self._select_bank(young)
            return
        if self.period is None:
            self.period = best
        elif abs(best / self.period - 1) <= c.track_tolerance:
            self.period = smooth_a * self.period + (1 - smooth_a) * best
            self._challenger, self._challenger_frames = None, 0
        else:
            cur = self._local_best(self.period)
            s_best, s_cur = self._score(best), self._score(cur)
            fast = young < 1.0 and s_best >= c.young_margin * s_cur
            switch_frames = max(1, int(round(self._switch_frames * (young if fast else 1.0))))
            if s_best > c.switch_margin * s_cur:
                if self._challenger is not None and self._same_challenger(best):
                    self._challenger_frames += 1
                    if c.octave_challenger:
                        self._challenger = best  # the switch goes to the octave leading now
                else:
                    self._challenger, self._challenger_frames = best, 1
                if self._challenger_frames >= switch_frames:
                    self.period = best
                    self._challenger, self._challenger_frames = None, 0
            else:
                self._challenger, self._challenger_frames = None, 0
                self.period = smooth_a * self.period + (1 - smooth_a) * cur
        self.strength = float(np.clip(self._acf_at(np.array([self.period]))[0] / self._acf[0], 0.0, 1.0))

    @property
    def young(self) -> bool:
        """True for the first ``young_time_s`` seconds after a reset (always False when it is 0)."""
        return self._youth() < 1.0

    def _youth(self) -> float:
        """Scale factor in (0, 1] of the hysteresis and smoothing times: ``age / young_time_s`` (age =
        seconds since the last reset), at least ``young_min_frac``; 1 when ``young_time_s`` is 0."""
        c = self.cfg
        if c.young_time_s <= 0:
            return 1.0
        return float(min(1.0, max(self._n / (c.young_time_s * self.fps), c.young_min_frac)))

    def _select_bank(self, young: float = 1.0) -> None:
        """Period selection over the hypothesis bank.

        Every tempo of the grid is a hypothesis. Its combined score this frame is salience (without
        the external bias) x bank contrast ** bank_gamma, normalised by the frame's maximum; the
        evidence G is that score leaky-integrated per hypothesis (time constant
        ``bank_time_s``). The tracked period follows the G maximum within the tracking tolerance and
        moves to another peak when that peak's G beats the current one by ``bank_margin`` for
        ``bank_switch_s`` (hysteresis; the integration already smooths the evidence). ``young`` in
        (0, 1] scales the switch and smoothing times (:meth:`_youth`).
        """
        c = self.cfg
        smooth_a = self._smooth_a ** (1.0 / young) if young < 1.0 and c.young_smooth else self._smooth_a
        bank_c = self.bank.contrast_at(self._bpms, c.bank_octave_invariant)
        g = np.maximum(self._sal_raw, 0.0) * np.maximum(bank_c, 0.0) ** c.bank_gamma
        if g.max() > 0:
            g = g / g.max()
        self.evidence += self._bank_a * (g - self.evidence)
        G = self.evidence
        j = int(np.argmax(G))
        top = float(self._periods[j])
        if self.period is None:
            self.period = top
        elif abs(top / self.period - 1) <= c.track_tolerance:
            self.period = smooth_a * self.period + (1 - smooth_a) * top
            self._challenger, self._challenger_frames = None, 0
        else:
            m = np.abs(self._periods / self.period - 1) <= c.track_tolerance
            idx = np.flatnonzero(m)
            k = int(idx[int(np.argmax(G[idx]))]) if idx.size else j
            cur = float(self._periods[k])
            fast = young < 1.0 and G[j] >= c.young_margin * G[k]
            switch_frames = max(1, int(round(self._bank_switch_frames * (young if fast else 1.0))))
            if G[j] > c.bank_margin * G[k]:
                if self._challenger is not None and abs(top / self._challenger - 1) <= c.track_tolerance:
                    self._challenger_frames += 1
                else:
                    self._challenger, self._challenger_frames = top, 1
                if self._challenger_frames >= switch_frames:
                    self.period = top
                    self._challenger, self._challenger_frames = None, 0
            else:
                self._challenger, self._challenger_frames = None, 0
                self.period = smooth_a * self.period + (1 - smooth_a) * cur
        self.strength = float(np.clip(self._acf_at(np.array([self.period]))[0] / self._acf[0], 0.0, 1.0))
        # Lead of the tracked hypothesis, in [0, 1]: its integrated evidence minus that of the best
        # hypothesis that is neither it nor one of its octaves. It grows only as fast as the leaky
        # integration fills (so a few frames of evidence cannot give a lead) and stays near 0 when
        # two metrical classes compete.
        rel = np.abs(np.log2(self._periods / self.period))
        away = np.abs(rel - np.round(rel)) > 0.06
        second = float(G[away].max()) if away.any() else 0.0
        here = float(G[np.abs(self._periods / self.period - 1) <= c.track_tolerance].max())
        self.bank_lead = max(0.0, here - second)

    def _same_challenger(self, period: float) -> bool:
        """Whether ``period`` (frames) continues the pending challenger: within the tracking tolerance of it,
        or (with ``octave_challenger``) of one of its octaves (2x, 4x, 1/2, 1/4)."""
        c = self.cfg
        r = period / self._challenger
        if abs(r - 1) <= c.track_tolerance:
            return True
        if not c.octave_challenger:
            return False
        k = round(math.log2(r))
        return k != 0 and abs(r / 2.0 ** k - 1) <= c.track_tolerance

    def _local_best(self, period: float) -> float:
        """Best salience peak within the tracking tolerance of ``period`` (frames)."""
        m = np.abs(self._periods / period - 1) <= self.cfg.track_tolerance
        if not m.any():
            return period
        idx = np.flatnonzero(m)
        return float(self._periods[idx[int(np.argmax(self.salience[idx]))]])

    @property
    def n_effective(self) -> float:
        """Effective number of frames in the forgetting autocorrelation, (1 - beta^n) / (1 - beta)."""
        return (1.0 - self._beta ** self._n) / (1.0 - self._beta)

    @property
    def candidate_bpms(self) -> np.ndarray:
        """(n_candidates,) float64 tempo grid searched, beats per minute (log-spaced, 0.4 % steps)."""
        return self._bpms
