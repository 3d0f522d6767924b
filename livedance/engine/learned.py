"""The learned model behind :class:`~livedance.engine.base.MotionGenerator`, on any step-graph backend.

Per :meth:`LearnedGenerator.step` (one chunk = K token slots = 4K frames at 25 fps, 320 ms for K = 2):

1. the new feature frames of :class:`~livedance.engine.base.MusicContext` go into a bounded buffer;
2. the chunk's slots start at ``t_n = music.t_first_frame_s`` (stream clock); the graph gets the W
   feature frames with time <= ``t_n - lag_s`` (frames missing at the start of a stream: the oldest
   one repeated, zeros before any), and per slot the beat condition extrapolated from
   ``music.bpm`` / ``music.beat_phase`` / ``music.confidence`` (:func:`~livedance.model.conditioning.slot_condition`);
   the previous chunk's tokens are committed with their own windows (frames <= ``t_j - lag_s``);
3. Gumbel noise for sampling comes from a ``numpy`` generator seeded by :meth:`reset` (so a run is a
   deterministic function of the audio and the seed, whatever the backend);
4. the decoded frames (normalised features) become SMPL-X local quaternions and root translation via
   :meth:`Representation.decode` on numpy (its fast path: torch dispatch cost more than the arithmetic on
   8 frames) and roma (heading and root velocity integrated from the last frame's);
5. after the stall guard has measured the committed frames, the forearms' twist speed is bounded
   (:class:`~livedance.engine.twist.TwistLimiter`: no joint position moves) and the VJ's energy fader
   (``music.energy``) scales the frames about the dance's running mean pose
   (:class:`~livedance.engine.energy.EnergyFader`; untouched at 1).

Style: with a :class:`~livedance.engine.style_prior.StylePrior`, :meth:`LearnedGenerator.set_style` steers every
sampled code towards a training style's codes by adding ``strength * r_s / T`` to the Gumbel noise (the
prior-shift rule of :mod:`livedance.engine.style_prior`; the graph is unchanged). The style is a show
setting: :meth:`LearnedGenerator.reset` keeps it.

Safety (nothing raises out of :meth:`LearnedGenerator.step` for bad music input):

* music input: feature rows holding NaN/inf (or a non-finite time) are dropped with their times; features that
  are not (F, ``feat_dim``) with (F,) times are dropped whole; a non-finite ``bpm``, ``beat_phase`` or
  ``confidence`` (or one that is not a number, a bpm outside 0..1000 or a confidence outside 0..1) is taken as
  "no tempo" (bpm 0, phase 0, confidence 0); a ``t_first_frame_s`` that is not a finite number is replaced by the
  time after the previous step's slots. Each step with any of these counts once in
  :attr:`LearnedGenerator.n_bad_inputs`.
* output: frames holding NaN/inf (or non-unit quaternions) are replaced by the last good frame (the rest
  pose before any), counted in ``MotionFrames.n_bad`` and in :attr:`LearnedGenerator.n_bad_total`; the next step
  continues from the heading and ground position of the frame actually emitted last. A non-finite recurrent
  state is reset (a new BOS) and counted in :attr:`LearnedGenerator.n_state_resets`; that step's own frames (sampled
  from the same broken state) are replaced by the last good frame and counted in ``n_bad``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from livedance.engine.base import MotionFrames, MusicContext
from livedance.engine.energy import EnergyConfig, EnergyFader
from livedance.engine.pose_guard import PoseGuard
from livedance.engine.style_prior import MAX_STRENGTH, StylePrior, clears_style
from livedance.engine.twist import TwistConfig, TwistLimiter
from livedance.model.conditioning import slot_condition

__all__ = ["LearnedGenerator", "NUM_SMPLX_JOINTS", "StallGuard"]

#: Joints of a SMPL-X frame on the wire (22 body, jaw, 2 eyes, 2 x 15 hands).
NUM_SMPLX_JOINTS = 55
#: Feature frames kept in the buffer (43.07 fps: ~6 s).
_BUFFER = 256


@dataclass
class StallGuard:
    """Keeps a sampled dancer from stalling while music plays.

    A low sampling temperature (the shipped one is chosen on FID) can let the sampler settle into a
    near-still attractor on some songs (a minute at 0.1 rad/s where the dance moves at 0.7-1.2 rad/s,
    ``benchmarks/model.py --freeze``). While the beat tracker hears music (confidence >= ``min_confidence``)
    and the mean body-joint rotation speed over the last ``window_s`` seconds is below ``stall_rad_s``,
    the base level's Gumbel noise is scaled by ``boost`` (= sampling at ``boost`` x the temperature, the
    graph stays the same), and by ``growth`` more for every further stalled step, up to ``max_boost``: a
    fixed boost escaped some attractors and not others (docs/model.md, "Stall guard"). The scale returns to
    1 as soon as the dance moves again. The noise scale acts like a higher temperature on the Gumbel-max
    choice; a top-k or min-p cut baked into the graph stays the one of the shipped temperature.

    Attributes:
        enabled: apply the guard.
        stall_rad_s: stall threshold, radians per second (mean geodesic angle between successive frames'
            local rotations of SMPL-X body joints 1..21, times the frame rate).
        window_s: averaging window, seconds.
        boost: noise scale at the first stalled step (>= 1).
        growth: factor on the scale for each further consecutive stalled step (>= 1; 1 = a fixed boost).
        max_boost: the largest scale (>= boost).
        min_confidence: beat-tracker confidence from which the music counts as playing.
    """

    enabled: bool = True
    stall_rad_s: float = 0.15
    window_s: float = 2.0
    boost: float = 1.5
    growth: float = 1.25
    max_boost: float = 4.0
    min_confidence: float = 0.3

    def __post_init__(self) -> None:
        from livedance.errors import ConfigError

        if not (self.stall_rad_s >= 0 and self.window_s > 0 and 1.0 <= self.boost <= self.max_boost
                and self.growth >= 1.0 and 0.0 <= self.min_confidence <= 1.0):
            raise ConfigError(
                f"StallGuard: stall_rad_s={self.stall_rad_s}, window_s={self.window_s}, boost={self.boost}, "
                f"growth={self.growth}, max_boost={self.max_boost}, min_confidence={self.min_confidence}; expected "
                "stall_rad_s >= 0, window_s > 0, 1 <= boost <= max_boost, growth >= 1, min_confidence in [0, 1]")


class LearnedGenerator:
    """A :class:`~livedance.engine.base.MotionGenerator` running the step graph on a backend.

    Args:
        backend: :class:`~livedance.engine.backends.TorchBackend`, ``OnnxBackend`` or ``TensorRTBackend``.
        input_shapes: name -> (shape, torch dtype) of the graph's inputs (``StepGraph.input_shapes(1)``).
        config: the model's :class:`~livedance.model.generator.GeneratorConfig`.
        representation: the tokenizer's :class:`~livedance.model.representation.Representation`.
        seed: sampling seed (see :meth:`reset`).
        greedy: use zero noise (argmax decoding) instead of Gumbel sampling.
        description: text for logs (weights, backend).
        stall_guard: :class:`StallGuard` settings (default on); ``n_stall_steps`` counts boosted steps.
        pose_guard: a :class:`~livedance.engine.pose_guard.PoseGuard` (None: off). A step whose frames exceed
            its rare-pose budget is run again from the same state with fresh, hotter noise, up to
            ``pose_guard.cfg.tries`` runs, and the run with the least excess is committed;
            ``n_pose_resamples`` counts the extra runs, ``n_pose_over`` the steps still over budget.
        energy: :class:`~livedance.engine.energy.EnergyConfig` of the energy fader (None: defaults).
        twist: :class:`~livedance.engine.twist.TwistConfig` of the forearm twist limiter (None: defaults, on).
        style_prior: a :class:`~livedance.engine.style_prior.StylePrior` whose codes are this model's (None: no
            styles; :meth:`set_style` then raises). The caller checks the codes (``StylePrior.check_codes``).
    Raises:
        ConfigError: bad ``energy`` / ``twist`` settings, or a ``config.fps`` that is not finite and > 0 (from
            :class:`~livedance.engine.energy.EnergyFader` / :class:`~livedance.engine.twist.TwistLimiter`;
            :class:`StallGuard` checks its own settings when it is made).
        KeyError: ``input_shapes`` without the step graph's inputs (``pend_codes``, ``pend_kind``, ``pend_cond``,
            ``gumbel_base``, ...): pass ``StepGraph.input_shapes(1)``.

    Counters (ints, since the last :meth:`reset`, which zeroes them; :func:`~livedance.engine.offline.generate_song`
    resets at the start of each song, so after it they are that song's):

    Attributes:
        n_bad_total: output frames replaced by a safe pose (the sum of the steps' ``MotionFrames.n_bad``).
        n_state_resets: steps whose recurrent state came out non-finite and was reset to a new start (BOS).
        n_bad_inputs: steps whose :class:`~livedance.engine.base.MusicContext` held unusable input (non-finite or
            misshaped features, non-finite tempo; see the module docstring), dropped or replaced.
        n_stall_steps: steps whose noise the stall guard boosted.
        n_pose_resamples: the pose guard's extra runs. n_pose_over: steps still over its budget.
        steps: steps since the reset.
    """

    def __init__(self, backend, input_shapes: dict, config, representation, seed: int = 0, greedy: bool = False,
                 description: str = "", stall_guard: StallGuard | None = None, pose_guard: PoseGuard | None = None,
                 energy: EnergyConfig | None = None, twist: TwistConfig | None = None,
                 style_prior: StylePrior | None = None):
        self.backend = backend
        self.stall_guard = stall_guard if stall_guard is not None else StallGuard()
        self.pose_guard = pose_guard
        self.config = config
        self.rep = representation
        self.greedy = bool(greedy)
        self.description = description
        self.fps = float(config.fps)
        self.energy_fader = EnergyFader(self.fps, energy)
        self.twist_limiter = TwistLimiter(representation.rest_offsets, self.fps, twist)
        self.frames_per_step = int(config.chunk * config.stride)
        self._shapes = {n: tuple(s) for n, (s, _) in input_shapes.items()}
        self._int = {n for n, (_, dt) in input_shapes.items() if "int" in str(dt)}
        self._state_names = [n for n in self._shapes if n not in (
            "pend_codes", "pend_window", "pend_cond", "pend_kind", "window", "cond", "gumbel_base", "gumbel_res")]
        self.style_prior = style_prior
        self._style: str | None = None
        self._style_strength = 1.0
        self._style_noise: dict[str, np.ndarray] = {}  # graph input name -> the style's shift of its noise
        self._pace_set: float | None = None  # the user's pace code (None: drawn at each reset)
        self.reset(seed)

    # ------------------------------------------------------------------ style
    @property
    def styles(self) -> tuple[str, ...]:
        """Names :meth:`set_style` accepts (empty without a style prior)."""
        return self.style_prior.styles if self.style_prior is not None else ()

    @property
    def style(self) -> str | None:
        """The current style's name (None: the model's own distribution)."""
        return self._style

    @property
    def style_strength(self) -> float:
        """lambda of the current style (see :mod:`livedance.engine.style_prior`)."""
        return self._style_strength

    def set_style(self, style: str | int | None, strength: float | None = None) -> None:
        """Dance in a training style from the next step on (DanceMeld's style by codes, as a sampling prior).

        Args:
            style: a name of :attr:`styles` (case-insensitive) or its index; None or ``"none"`` / ``"off"`` /
                ``"free"`` clears it.
            strength: lambda in [0, :data:`~livedance.engine.style_prior.MAX_STRENGTH`] = [0, 100] (None: keep
                the current one, 1.0 at start). 1 is the prior-shift correction; larger values push harder
                towards the style's codes.
        Raises:
            ConfigError: no style prior, a prior that does not fit the model's codes, unknown style, bad strength.
            The current style is then unchanged.

        Implements the prior-shift correction of Saerens, Latinne & Decaestecker (2002, Eq. 2.4) on the code
        distributions (:mod:`livedance.engine.style_prior`).
        """
        from livedance.errors import ConfigError

        try:
            lam = self._style_strength if strength is None else float(strength)
        except (TypeError, ValueError):
            lam = float("nan")
        if not (np.isfinite(lam) and 0 <= lam <= MAX_STRENGTH):
            raise ConfigError(f"style strength must be a number in [0, {MAX_STRENGTH:g}], got {strength!r}")
        if clears_style(style):
            self._style, self._style_strength, self._style_noise = None, lam, {}
            return
        if self.style_prior is None:
            raise ConfigError("this generator has no style prior (livedance/weights/style_prior.*, made by "
                              "`livedance train style-prior` for its tokenizer)")
        b = self.style_prior.bias(style, lam) / float(self.config.temperature)  # (P, V, C), ConfigError on bad input
        P, V, C = b.shape
        noise = {}
        shp = self._shapes["gumbel_base"]  # (1, iters, K * P, C), position k * P + p
        if (shp[-1] != C or shp[2] % P or V != getattr(self.config, "levels", V)
                or P != len(getattr(self.config, "parts", ()))):
            raise ConfigError(f"the style prior's codes (parts {P}, levels {V}, codebook {C}) do not fit this "
                              f"generator's sampling inputs {shp}")
        noise["gumbel_base"] = np.broadcast_to(np.tile(b[:, 0], (shp[2] // P, 1)), shp).astype(np.float32)
        shr = self._shapes["gumbel_res"]  # (1, K, P, V - 1, C)
        if V > 1 and shr[3] == V - 1:
            noise["gumbel_res"] = np.broadcast_to(b[:, 1:], shr).astype(np.float32)
        self._style, self._style_strength = self.style_prior.styles[self.style_prior.index(style)], lam
        self._style_noise = noise

    # ------------------------------------------------------------------ pace
    @property
    def has_pace(self) -> bool:
        """Whether the model takes the dancer's pace as an input (:mod:`livedance.model.pace`)."""
        return getattr(self.config, "pace", None) is not None

    @property
    def pace(self) -> float | None:
        """The performance's pace, m/s (the user's, or the one drawn at the last reset); None without a pace input."""
        if not self.has_pace:
            return None
        from livedance.model.pace import pace_m_s

        return float(pace_m_s(self._pace_code))

    def set_pace(self, pace_m_s: float | None) -> None:
        """Dance at this pace from the next step on (a show setting: :meth:`reset` keeps it).

        Args:
            pace_m_s: mean limb speed relative to the pelvis, m/s, in [0.05, 3] (:mod:`livedance.model.pace`; the
                Tang train dances span 0.25-0.87); None: draw a pace from the training dances' distribution at each
                :meth:`reset` (the default), starting now. The stall guard still acts: a pace so low that the dance
                nearly stops (under its ``stall_rad_s``) gets its noise boosted, as any stall does.
        Raises:
            ConfigError: the model has no pace input (train one with ``livedance train generator --pace``), or a pace
                outside [0.05, 3] m/s. The current pace is then unchanged.
        """
        from livedance.errors import ConfigError
        from livedance.model.pace import pace_code

        if not self.has_pace:
            raise ConfigError("this generator has no pace input; train one with `livedance train generator --pace`")
        if pace_m_s is None:
            self._pace_set = None
            self._pace_code = self._draw_pace()
            return
        try:
            v = float(pace_m_s)
        except (TypeError, ValueError):
            v = float("nan")
        if not (np.isfinite(v) and 0.05 <= v <= 3.0):
            raise ConfigError(f"pace must be a speed in [0.05, 3] m/s (the train dances span 0.25-0.87), got {pace_m_s!r}")
        self._pace_set = float(pace_code(v))
        self._pace_code = self._pace_set

    def _draw_pace(self) -> float:
        """A pace code from the model's prior, N(mean, std) clipped to the code range, from a generator seeded by the
        reset's seed (apart from the sampling noise, whose draws do not change)."""
        from livedance.model.pace import PACE_CODE_LIMIT

        mean, std = self.config.pace
        z = float(np.random.default_rng([self.seed, 0x9ACE]).standard_normal())
        return float(np.clip(mean + std * z, -PACE_CODE_LIMIT, PACE_CODE_LIMIT))

    # ------------------------------------------------------------------ state
    def _zeros(self, name: str) -> np.ndarray:
        return np.zeros(self._shapes[name], np.int64 if name in self._int else np.float32)

    def reset(self, seed: int = 0) -> None:
        """Forget the dance (new song / show): recurrent state, pending codes, feature buffer, heading and position,
        the guards' and filters' memories, and zero the counters (``n_bad_total``, ``n_state_resets``,
        ``n_bad_inputs``, ``n_stall_steps``, ``n_pose_resamples``, ``n_pose_over``, ``steps``); the sampling noise
        restarts from ``seed``, and a model with a pace input draws the performance's pace from ``seed`` unless the
        user set one. Kept: the settings, the style (:meth:`set_style`) and a pace set by :meth:`set_pace` (show
        settings)."""
        self.seed = int(seed)
        if self.has_pace:
            self._pace_code = self._pace_set if self._pace_set is not None else self._draw_pace()
        self.n_bad_total = 0
        self.n_state_resets = 0
        self.n_bad_inputs = 0
        self.n_stall_steps = 0
        self.n_pose_resamples = 0
        self.n_pose_over = 0
        self._rng = np.random.default_rng(self.seed)
        self._states = {n: self._zeros(n) for n in self._state_names}
        self._pend_codes = self._zeros("pend_codes")
        self._pend_cond = self._zeros("pend_cond")
        self._pend_kind = self._zeros("pend_kind")
        self._pend_kind[0, -1] = 2.0  # BOS: the first step starts the stream
        self._pend_times = np.zeros(self.config.chunk)
        self._feats = np.zeros((0, self.config.feat_dim), np.float32)
        self._times = np.zeros(0, np.float64)
        self._xz = np.zeros(2, np.float32)
        self._heading = 0.0
        self._last_good: tuple[np.ndarray, np.ndarray, float] | None = None  # (quats, root, heading rad) emitted last
        self.steps = 0
        self._speeds = np.zeros(0, np.float32)  # recent body-joint rotation speeds, rad/s (stall guard)
        self._prev_q: np.ndarray | None = None
        self._boost = 1.0  # the stall guard's noise scale for the next step (grows while a stall lasts)
        self._was_stalled = False
        if self.pose_guard is not None:
            self.pose_guard.reset()
        self.energy_fader.reset()
        self.twist_limiter.reset()

    def _push_features(self, music: MusicContext) -> bool:
        """Buffer ``music.features`` ((F, feat_dim) float32) at ``music.times_s`` ((F,) float64 s); never raises.

        Returns:
            True when all of it was usable; False when rows with a non-finite value or time were dropped (the
            finite rows are kept) or when the pair is misshaped or not numeric (all of it is dropped). F = 0 (in
            any shape) is fine.
        """
        D = self.config.feat_dim
        try:
            with np.errstate(all="ignore"):  # an overflowing float32 cast gives inf, dropped below
                f = np.asarray(music.features, np.float32)
                t = np.asarray(music.times_s, np.float64)
        except (TypeError, ValueError, OverflowError):
            return False
        if f.size == 0 and t.size == 0:
            return True
        if f.ndim != 2 or f.shape[1] != D or t.shape != (f.shape[0],):
            return False
        ok = np.isfinite(f).all(axis=1) & np.isfinite(t)
        if not ok.all():
            f, t = f[ok], t[ok]
        if f.shape[0]:
            self._feats = np.concatenate([self._feats, f])[-_BUFFER:]
            self._times = np.concatenate([self._times, t])[-_BUFFER:]
        return bool(ok.all())

    @staticmethod
    def _tempo(music: MusicContext) -> tuple[float, float, float, bool]:
        """(bpm, beat_phase, confidence, usable): all three as floats, or (0, 0, 0, False) when any is not a finite
        number, the bpm lies outside 0..1000 or the confidence outside 0..1."""
        try:
            vals = (float(music.bpm), float(music.beat_phase), float(music.confidence))
        except (TypeError, ValueError, OverflowError):
            return 0.0, 0.0, 0.0, False
        if not all(np.isfinite(v) for v in vals) or not (0.0 <= vals[2] <= 1.0) or not (0.0 <= vals[0] <= 1000.0):
            return 0.0, 0.0, 0.0, False  # (a confidence of 1e39 would be inf in the float32 condition)
        return vals[0], vals[1], vals[2], True

    def window_before(self, t_s: float) -> np.ndarray:
        """(W, feat_dim) float32: the W buffered feature frames with time <= ``t_s`` (padding: see module doc)."""
        W = self.config.window
        n = int(np.searchsorted(self._times, t_s + 1e-9, side="right"))
        rows = self._feats[max(0, n - W):n]
        if rows.shape[0] == 0:
            return np.zeros((W, self.config.feat_dim), np.float32)
        if rows.shape[0] < W:
            rows = np.concatenate([np.repeat(rows[:1], W - rows.shape[0], axis=0), rows])
        return rows

    def warm_up(self, runs: int = 1) -> None:
        """Run the backend ``runs`` times on all-zero inputs and discard the outputs; the generator's state
        (recurrent states, pending codes, sampling noise, step count) is untouched, so the dance is the same
        with or without it. Pays one-time costs before a show instead of on its first step: ONNX Runtime's
        first-run allocations, Triton's kernel compiles, and the CUDA-graph capture of
        :class:`~livedance.engine.backends.TorchBackend` (``cuda_graph=True``).
        """
        zeros = {n: self._zeros(n) for n in self._shapes}
        for _ in range(max(0, int(runs))):
            self.backend.run(zeros)

    # ------------------------------------------------------------------ step
    def step(self, music: MusicContext) -> MotionFrames:
        """Produce the next ``frames_per_step`` frames from ``music.t_first_frame_s`` (see the module docstring).

        Args:
            music: the :class:`~livedance.engine.base.MusicContext`: ``features`` (F, ``config.feat_dim``) float32,
                ``times_s`` (F,) float64 stream-clock seconds, ``bpm``, ``beat_phase`` in [0, 1), ``confidence``
                in [0, 1], ``t_first_frame_s`` seconds, ``energy`` in [0, 2].
        Returns:
            :class:`~livedance.engine.base.MotionFrames`: ``frames_per_step`` frames at ``fps``, local_quats
            (N, 55, 4) float32 x, y, z, w; root_translation (N, 3) float32 metres (pelvis world position);
            ``n_bad`` frames replaced by a safe pose.
        Raises:
            Nothing for bad music input: unusable features or tempo are dropped / replaced and counted in
            :attr:`n_bad_inputs` (module docstring). Errors of the backend itself propagate.
        """
        cfg = self.config
        K, lag, ts = cfg.chunk, cfg.lag_s, cfg.token_s
        ok_in = self._push_features(music)
        bpm, phase, confidence, ok_tempo = self._tempo(music)
        try:
            t_n = float(music.t_first_frame_s)
        except (TypeError, ValueError, OverflowError):
            t_n = math.nan
        if not math.isfinite(t_n):  # a bad step time: the step after the last one, counted as bad input
            t_n = float(self._pend_times[-1] + cfg.token_s) if self.steps else 0.0
            ok_in = False
        slot_t = t_n + ts * np.arange(K)
        cond = slot_condition(np.full(K, bpm), phase, confidence, t_n, slot_t, cfg.fps, cfg.stride)
        if self.has_pace:  # the pace code is the condition's last channel (livedance.model.pace)
            cond = np.concatenate([cond, np.full((K, 1), self._pace_code, np.float32)], axis=1)
        self.n_bad_inputs += int(not (ok_in and ok_tempo))
        inputs = dict(self._states)
        inputs["pend_codes"] = self._pend_codes
        inputs["pend_window"] = np.stack([self.window_before(t - lag) for t in self._pend_times])[None]
        inputs["pend_cond"] = self._pend_cond
        inputs["pend_kind"] = self._pend_kind
        inputs["window"] = self.window_before(t_n - lag)[None]
        inputs["cond"] = cond[None]
        guard = self.pose_guard  # a guard given is a guard used (PoseGuardConfig.enabled is make_pose_guard's switch)
        tries = guard.cfg.tries if (guard is not None and not self.greedy) else 1
        best = None
        for k in range(tries):
            for name in ("gumbel_base", "gumbel_res"):
                if self.greedy:
                    scale = 0.0
                elif name == "gumbel_res":
                    scale = self.config.residual_noise_scale
                else:
                    scale = self._boost * (1.0 + (guard.cfg.boost_step * k if guard is not None else 0.0))
                inputs[name] = (self._zeros(name) if scale == 0.0
                                else (scale * self._rng.gumbel(size=self._shapes[name])).astype(np.float32))
                if name in self._style_noise:  # (both branches above made a fresh array)
                    inputs[name] += self._style_noise[name]
            out = self.backend.run(inputs)
            decoded = self._decode(out["frames"][0], t_n)
            excess, token = (0.0, None) if guard is None else guard.assess(decoded[0].local_quats,
                                                                           decoded[0].root_translation)
            finite = all(np.isfinite(out[f"{n}_out"]).all() for n in self._state_names)
            rank = (not finite, excess)  # a run with a usable state first, then the least excess
            if best is None or rank < best[0]:
                best = (rank, out, decoded, token)
            if excess == 0.0 and (finite or k >= 1):  # a non-finite state earns one extra run, not all of them
                break
        self.n_pose_resamples += k
        (poisoned, excess), out, decoded, token = best
        self.n_pose_over += int(excess > 0.0)
        states = {n: out[f"{n}_out"] for n in self._state_names}
        if not poisoned:
            self._states = states
            self._pend_codes = out["codes"].astype(np.int64)
            self._pend_kind = np.ones_like(self._pend_kind)
        else:  # a poisoned recurrent state would never recover: start over from BOS
            # the run's own frames came from that state (NaN logits sample code 0 everywhere, finite but
            # meaningless): emit the last good pose instead, counted in n_bad like any replaced frame
            decoded = self._decode(np.full_like(out["frames"][0], np.nan), t_n)
            self.n_state_resets += 1
            self._states = {n: self._zeros(n) for n in self._state_names}
            self._pend_codes = self._zeros("pend_codes")
            self._pend_kind = self._zeros("pend_kind")
            self._pend_kind[0, -1] = 2.0
            if guard is not None:  # the guard counts the frames shown (the held pose), not the discarded run's
                _, token = guard.assess(decoded[0].local_quats, decoded[0].root_translation)
        if guard is not None:
            guard.commit(token)
        self._pend_cond = cond[None].astype(np.float32)
        self._pend_times = slot_t
        self.steps += 1
        frames = self._commit_motion(decoded)
        self._update_stall(frames.local_quats, confidence)  # the dance as generated, not as faded
        return self.energy_fader.apply(self.twist_limiter.apply(frames), music.energy)

    def _update_stall(self, q: np.ndarray, confidence: float) -> None:
        """Stall guard (:class:`StallGuard`): track the body-joint rotation speed, set the next step's boost."""
        g = self.stall_guard
        body = q[:, 1:22]
        prev = body[:1] if self._prev_q is None else self._prev_q[None]
        seq = np.concatenate([prev, body])
        dots = np.clip(np.abs((seq[1:] * seq[:-1]).sum(-1)), 0.0, 1.0)
        speed = (2.0 * np.arccos(dots)).mean(-1) * self.fps  # (n,) rad/s
        self._prev_q = body[-1].copy()
        n = max(int(round(g.window_s * self.fps)), 1)
        self._speeds = np.concatenate([self._speeds, speed.astype(np.float32)])[-n:]
        stalled = (g.enabled and not self.greedy and self._speeds.size >= n and confidence >= g.min_confidence
                   and float(self._speeds.mean()) < g.stall_rad_s)
        if not stalled:
            self._boost = 1.0
        elif not self._was_stalled:  # the first stalled step
            self._boost = min(float(g.boost), float(g.max_boost))
        else:  # grows step by step (no power of the run length: a long stall cannot overflow)
            self._boost = min(float(g.max_boost), self._boost * float(g.growth))
        self._was_stalled = stalled
        self.n_stall_steps += int(stalled)

    def _decode(self, feats: np.ndarray, t0: float) -> tuple:
        """Decode one step's (n, D) normalised features to frames, without changing the generator.

        Returns (MotionFrames, the ground position xz and the heading of the frame emitted last, the last good
        (quats, root, heading) triple, n_bad): what :meth:`_commit_motion` takes over when this run is the one
        committed. The heading is the one each frame was drawn with (start + cumulative heading velocity), so a
        replaced last frame hands on the heading and position of the good frame it repeats, never a mix.
        """
        import roma
        import torch

        n = feats.shape[0]
        q = np.zeros((n, NUM_SMPLX_JOINTS, 4), np.float32)
        q[..., 3] = 1.0
        root = np.zeros((n, 3), np.float32)
        ok_in = np.isfinite(feats).all(axis=1)
        x = np.where(ok_in[:, None], feats, 0.0).astype(np.float32)
        # numpy decode (torch's per-op dispatch cost more than the arithmetic on 8 frames); roma's quaternion
        rot, transl = self.rep.decode(x, start_xz=self._xz, start_heading=np.float32(self._heading))
        with np.errstate(all="ignore"):  # as decode integrates it: per frame, float32
            psi = np.cumsum(self.rep.denormalize(x)[:, self.rep.root_channels["heading_velocity"]].astype(np.float32))
            psi = psi + np.float32(self._heading)
        q[:, :22] = roma.rotmat_to_unitquat(torch.from_numpy(rot)).numpy()
        root[:] = transl
        good = ok_in & np.isfinite(q).all(axis=(1, 2)) & np.isfinite(root).all(axis=1)
        good &= (np.abs(np.linalg.norm(q, axis=-1) - 1.0) < 1e-3).all(axis=1) & np.isfinite(psi)
        n_bad = int((~good).sum())
        last_good = self._last_good
        for i in range(n):
            if good[i]:  # heading bounded to [0, 2 pi): float32 keeps its precision
                last_good = (q[i].copy(), root[i].copy(), float(psi[i]) % (2.0 * np.pi))
            else:
                if last_good is None:  # the rest pose: facing +z at the origin
                    rq = np.zeros((NUM_SMPLX_JOINTS, 4), np.float32)
                    rq[:, 3] = 1.0
                    last_good = (rq, np.zeros(3, np.float32), 0.0)
                q[i], root[i] = last_good[0], last_good[1]
        xz = root[-1, [0, 2]].astype(np.float32)  # = last_good's: the frame emitted last
        heading = float(last_good[2]) if last_good is not None else self._heading
        # MotionFrames carry the pelvis world position (engine/base.py); the representation decodes the
        # displacement from the rest pelvis (FK convention), so add the rest pelvis offset here.
        pelvis = root + np.asarray(self.rep.rest_offsets[0], np.float32)
        return MotionFrames(q, pelvis, self.fps, t0, n_bad), xz, heading, last_good, n_bad

    def _commit_motion(self, decoded: tuple) -> MotionFrames:
        """Take over the decoder state of the committed run (see :meth:`_decode`) and return its frames."""
        frames, self._xz, self._heading, self._last_good, n_bad = decoded
        self.n_bad_total += n_bad
        return frames
