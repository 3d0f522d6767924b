"""Beat-synchronous playback warp (livedance.live.warp): motion beats of a learned dancer moved onto the
music's beats, causally.

The unit tests replay the live loop's two threads deterministically in simulated time: a "scheduler"
appends 8-frame chunks at 25 fps ``ahead_s`` beyond the show time and runs the motion-beat detector, a
60 fps "output clock" asks the warp for the motion time and samples the timeline there. The output's
motion beats are then found with the evaluation code (``livedance.eval.beat_align``, the BAS
definition the perform benchmark uses), not with the detector under test.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from livedance.engine.base import MotionFrames
from livedance.errors import ConfigError
from livedance.eval.beat_align import motion_beats
from livedance.live.rest import default_rest_offsets
from livedance.live.timeline import MotionTimeline
from livedance.live.warp import BeatWarp, MotionBeatDetector, MotionBeats, WarpConfig
from livedance.motion.fk import fk_np
from livedance.motion.skeleton import SMPLX_JOINT_NAMES, SMPLX_PARENTS

FPS = 25.0
OUT_FPS = 60.0
REST = default_rest_offsets()
L_SH, R_SH = SMPLX_JOINT_NAMES.index("left_shoulder"), SMPLX_JOINT_NAMES.index("right_shoulder")
L_KNEE, R_KNEE = SMPLX_JOINT_NAMES.index("left_knee"), SMPLX_JOINT_NAMES.index("right_knee")


def _axis_angle_z(angle: np.ndarray) -> np.ndarray:
    return np.stack([np.zeros_like(angle), np.zeros_like(angle), np.sin(angle / 2), np.cos(angle / 2)], -1)


def swing(n: int, bpm: float = 120.0, phase_s: float = 0.0, amp: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """A dance with motion beats at ``bpm``: both arms swing about z, amplitude ``amp`` rad, one full
    swing per two beats, so the joint speed is zero at each end of the swing: every 60 / bpm seconds,
    at ``phase_s + (k + 1/2) * 60 / bpm``. Returns (n, 55, 4) float32 quats and (n, 3) pelvis positions."""
    t = np.arange(n) / FPS - phase_s
    ang = amp * np.sin(np.pi * t * bpm / 60.0)
    q = np.tile(np.array([0, 0, 0, 1.0], np.float32), (n, 55, 1))
    q[:, L_SH] = _axis_angle_z(ang)
    q[:, R_SH] = _axis_angle_z(ang)
    q[:, L_KNEE] = _axis_angle_z(0.3 * ang)
    r = np.tile(REST[0], (n, 1)).astype(np.float32)
    return q, r


def positions(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(T, 55, 3) metres by FK on the default skeleton, as the perform benchmark computes them."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_quat(q.reshape(-1, 4).astype(np.float64)).as_matrix().reshape(len(q), 55, 3, 3)
    return fk_np(rot, r.astype(np.float64) - REST[0], REST.astype(np.float64), SMPLX_PARENTS)


def simulate(q, r, grid_at, seconds: float, cfg: WarpConfig | None = None, ahead_s: float = 0.15, chunk: int = 8):
    """Replay scheduler + output clock. ``grid_at(s)`` gives the beat grid (anchor, period) or None.

    Returns a dict of per-tick arrays: s, tau, rate, end (newest frame time), q, r, and the warp."""
    cfg = cfg or WarpConfig()
    det = MotionBeatDetector(REST, SMPLX_PARENTS, cfg)
    warp = BeatWarp(cfg)
    tl = MotionTimeline(1024)
    beats: MotionBeats | None = None
    n_next = 0
    rows = {k: [] for k in ("s", "tau", "rate", "end", "q", "r")}
    for k in range(int(seconds * OUT_FPS)):
        s = k / OUT_FPS
        while n_next / FPS <= s + ahead_s and n_next + chunk <= len(q):
            mf = MotionFrames(q[n_next : n_next + chunk], r[n_next : n_next + chunk], FPS, n_next / FPS)
            tl.append(mf)
            beats = det.push(mf)
            n_next += chunk
        tau = warp.tick(s, beats, grid_at(s))
        smp = tl.sample(tau)
        for key, val in (("s", s), ("tau", tau), ("rate", warp.rate), ("end", tl.end_s), ("q", smp.local_quats), ("r", smp.root)):
            rows[key].append(val)
    out = {k: np.asarray(v) for k, v in rows.items()}
    out["warp"] = warp
    return out


def output_beat_times(out) -> np.ndarray:
    """Motion beats of the output (BAS definition, 60 fps), seconds at which they are shown."""
    mb = motion_beats(positions(out["q"], out["r"]), OUT_FPS)
    return out["s"][mb] + 0.5 / OUT_FPS


def grid_offsets(t: np.ndarray, anchor: float, period: float) -> np.ndarray:
    ph = (t - anchor) / period
    return (ph - np.round(ph)) * period


# ------------------------------------------------------------------------------------------ the warp
@pytest.mark.parametrize("music_bpm, min_within_30ms", [(170.0, 0.7), (90.0, 0.4)])
def test_warped_motion_beats_land_on_the_music_beats(music_bpm, min_within_30ms):
    """A 120 BPM swing on a 170 / 90 BPM grid: unwarped its beats fall anywhere on the grid; warped,
    after a short warm-up, most motion beats of the output are on a music beat; the rate stays in
    bounds, the motion time never passes the newest frame and the lag stays in [0, D_max].

    At 170 BPM every motion beat can go on a beat (3 grid beats per 2 motion beats on average); at
    90 BPM the swing has 4 beats per 3 grid beats and the rate must average 1 (the lag is bounded), so
    at most 3 in 4 motion beats can be placed on a beat (the warp manages 2 in 4 here).
    """
    cfg = WarpConfig()
    period, anchor = 60.0 / music_bpm, 0.137
    q, r = swing(int(16 * FPS), bpm=120.0, phase_s=0.05)
    out = simulate(q, r, lambda s: (anchor, period), 15.0, cfg)

    plain = motion_beats(positions(q, r), FPS) / FPS + 0.5 / FPS  # the unwarped motion's beats
    plain_off = np.abs(grid_offsets(plain[(plain > 4.0) & (plain < 14.5)], anchor, period))
    mt = output_beat_times(out)
    off = np.abs(grid_offsets(mt[(mt > 4.0) & (mt < 14.5)], anchor, period))
    assert len(off) >= 10
    assert np.mean(off <= 0.03) >= min_within_30ms, off
    assert np.mean(off <= 0.03) >= 2.0 * np.mean(plain_off <= 0.03)
    if music_bpm == 170.0:
        assert np.median(off) < 0.02, off
    warp = out["warp"]
    assert warp.beats_hit >= 10 and warp.resyncs == 0
    hits = np.asarray(warp.recent_hits)  # (s at the hit, music beat T): the hits land on their beats
    assert len(hits) == min(warp.beats_hit, 256)
    assert np.median(np.abs(hits[:, 0] - hits[:, 1])) < 0.02
    assert np.all(out["rate"] >= cfg.rate_min - 1e-9) and np.all(out["rate"] <= cfg.rate_max + 1e-9)
    assert np.all(out["tau"] <= out["end"] + 1e-9)
    lag = out["s"] - out["tau"]
    assert np.all(lag >= -1e-9) and np.all(lag <= cfg.max_lag_s + 1e-9)


def test_without_a_confident_grid_the_rate_returns_to_one_and_the_lag_to_nominal():
    """Aligning for 6 s leaves the lag wherever the last beat put it; when the grid goes away (silence,
    no confidence) the rate relaxes to 1 and the lag to ``lag_s``, without jumps."""
    cfg = WarpConfig()
    q, r = swing(int(16 * FPS), bpm=120.0)
    out = simulate(q, r, lambda s: (0.0, 60.0 / 170.0) if s < 6.0 else None, 15.0, cfg)
    s, lag, rate = out["s"], out["s"] - out["tau"], out["rate"]
    assert np.max(np.abs(rate[s > 2.0] - 1.0)) > 0.2  # it was warping
    end = s > 13.0
    assert np.all(np.abs(rate[end] - 1.0) < 0.01)
    assert np.all(np.abs(lag[end] - cfg.lag_s) < 0.01)
    assert np.all(np.diff(out["tau"]) > 0)  # motion time only moves forward, no resync jumps
    assert out["warp"].resyncs == 0
    assert not out["warp"].aligning


def test_lag_beyond_the_maximum_resyncs_and_tau_never_passes_the_newest_frame():
    cfg = WarpConfig(lag_s=0.3, max_lag_s=0.6)
    w = BeatWarp(cfg)
    beats = MotionBeats((), (), end_s=10.0)
    assert w.tick(1.0, beats, None) == pytest.approx(0.7)
    w.tau = 0.2  # as if the motion had fallen far behind
    tau = w.tick(1.0 + 1 / 60, beats, None)
    assert w.resyncs == 1 and tau == pytest.approx(1.0 + 1 / 60 - 0.3)
    # the newest frame is older than s - lag: tau is held there (counted), never beyond
    w2 = BeatWarp(cfg)
    short = MotionBeats((), (), end_s=0.5)
    taus = [w2.tick(0.7 + k / 60, short, None) for k in range(20)]
    assert max(taus) <= 0.5 + 1e-12 and w2.clamps > 0


def test_bad_grid_values_and_time_going_backwards_do_not_raise():
    w = BeatWarp()
    beats = MotionBeats((1.0, 1.5), (0.8, 1.3), end_s=2.0)
    t0 = w.tick(1.0, beats, (math.nan, 0.35))
    assert math.isfinite(t0)
    assert w.tick(0.9, beats, (0.0, 0.0)) == t0  # no time passed: nothing changes
    assert math.isfinite(w.tick(1.1, None, (0.0, -1.0)))


def test_warp_config_is_validated():
    with pytest.raises(ConfigError, match="rate_min"):
        BeatWarp(WarpConfig(rate_min=1.5))
    with pytest.raises(ConfigError, match="lag_s"):
        WarpConfig(lag_s=1.0, max_lag_s=0.5).validate()
    with pytest.raises(ConfigError, match="accent"):
        WarpConfig(accent=0.8).validate()
    from livedance.live.performer import PerformConfig

    with pytest.raises(ConfigError, match="max_lag_s"):
        PerformConfig(warp=WarpConfig(max_lag_s=-1.0)).validate()


@pytest.mark.parametrize("accent", [0.0, 0.15, 0.3])
def test_accent_slows_the_shown_motion_on_each_beat_and_keeps_the_beats_in_place(accent):
    """With no motion beat to align, the motion time advances by d sigma = (1 - a cos 2 pi phi) ds: 1 - a
    times the show time's pace on a music beat, 1 + a half-way between, and at each beat tau is exactly
    the nominal lag behind s (sigma = s on the beats)."""
    period, anchor = 0.5, 0.137
    w = BeatWarp(WarpConfig(accent=accent))
    beats = MotionBeats((), (), end_s=100.0)
    s = np.arange(0, 6 * OUT_FPS) / OUT_FPS
    tau = np.array([w.tick(float(x), beats, (anchor, period)) for x in s])
    pace = np.diff(tau) / np.diff(s)
    mid = 0.5 * (s[1:] + s[:-1])
    phase = ((mid - anchor) / period) % 1.0
    on_beat = (phase < 0.03) | (phase > 0.97)
    half_way = np.abs(phase - 0.5) < 0.03
    assert np.allclose(pace[on_beat], 1.0 - accent, atol=0.01)
    assert np.allclose(pace[half_way], 1.0 + accent, atol=0.01)
    k = np.arange(2, 11)  # beats 2..10: tau on each beat (linear between ticks) = beat - lag_s
    t_beat = anchor + k * period
    assert np.allclose(np.interp(t_beat, s, tau), t_beat - WarpConfig().lag_s, atol=2e-4)


def test_accent_never_jumps_when_the_grid_jumps_changes_tempo_or_goes_away():
    """The accented show time is integrated tick by tick: a phase jump of half a beat, a new tempo, the
    grid going away and coming back never make the motion time skip or stall (the pace stays within
    (1 +- 2a) x the relaxing rate's bounds), and on a steady grid it is back on the closed form (tau on each
    beat = beat - lag_s). Hits and the lag are reported on the show time s."""
    a = 0.3
    cfg = WarpConfig(accent=a, grid_median_s=0.0)
    w = BeatWarp(cfg)
    beats = MotionBeats((), (), end_s=100.0)

    def grid_at(s):
        if s < 2.0:
            return (0.1, 0.5)
        if s < 4.0:
            return (0.35, 0.5)  # half a beat later
        if s < 5.0:
            return None  # silence
        return (0.2, 0.4)  # a new tempo

    s = np.arange(0, 9 * OUT_FPS) / OUT_FPS
    tau = []
    for x in s:
        tau.append(w.tick(float(x), beats, grid_at(x)))
        assert w.lag_s == pytest.approx(x - tau[-1])
    tau = np.array(tau)
    pace = np.diff(tau) / np.diff(s)
    lo, hi = (1 - 2 * a) * (1 - cfg.relax_max), (1 + 2 * a) * (1 + cfg.relax_max)
    assert np.all(pace > lo - 1e-9) and np.all(pace < hi + 1e-9), (pace.min(), pace.max())
    t_beat = 0.2 + np.arange(18, 21) * 0.4  # steady again: tau on the beats is the nominal lag behind
    assert np.allclose(np.interp(t_beat, s, tau), t_beat - cfg.lag_s, atol=1e-3)


def test_live_accent_control_changes_the_pulse_smoothly_and_zero_returns_to_the_show_time():
    """The per-tick accent (the OSC fader) overrides the configured one: 0.3 from 2 s, then 0 from 5 s; the
    pace follows without a jump, and with the accent at 0 the motion time is back on s - lag everywhere."""
    period, anchor = 0.5, 0.137
    cfg = WarpConfig(accent=0.15, grid_median_s=0.0)
    w = BeatWarp(cfg)
    beats = MotionBeats((), (), end_s=100.0)
    s = np.arange(0, 9 * OUT_FPS) / OUT_FPS
    tau = np.array([w.tick(float(x), beats, (anchor, period), accent=None if x < 2 else (0.3 if x < 5 else 0.0))
                    for x in s])
    pace = np.diff(tau) / np.diff(s)
    assert np.all(pace > 1 - 0.3 - 0.3 - 1e-9) and np.all(pace < 1 + 0.3 + 0.3 + 1e-9)
    mid = 0.5 * (s[1:] + s[:-1])
    phase = ((mid - anchor) / period) % 1.0
    on_beat = (phase < 0.03) | (phase > 0.97)
    assert np.allclose(pace[on_beat & (mid > 3.0) & (mid < 4.9)], 0.7, atol=0.02)  # the fader's 0.3
    late = mid > 7.0
    assert np.allclose(pace[late], 1.0, atol=1e-6)  # accent 0: the show time's own pace
    assert np.allclose(tau[s > 7.0], s[s > 7.0] - cfg.lag_s, atol=1e-6)


def test_accent_gives_a_beatless_motion_its_motion_beats_on_the_music_beats():
    """A pelvis gliding at a constant 1 m/s has no motion beats of its own; with the accent its shown
    speed dips on every music beat, so the BAS-definition motion beats of the output land on the grid
    (within one 60 fps frame); without it the flat curve's minima are float noise, anywhere. (``min_prominence``
    keeps the detector from publishing float-rounding minima of the flat speed curve.)"""
    n = int(12 * FPS)
    q = np.tile(np.array([0, 0, 0, 1.0], np.float32), (n, 55, 1))
    r = np.tile(REST[0], (n, 1)).astype(np.float32)
    r[:, 0] += np.arange(n) / FPS  # 1 m/s along x
    period, anchor = 60.0 / 128.0, 0.21
    off = {}
    for a in (0.0, 0.15):
        out = simulate(q, r, lambda s: (anchor, period), 11.0, WarpConfig(accent=a, min_prominence=0.05))
        mt = output_beat_times(out)
        off[a] = np.abs(grid_offsets(mt[(mt > 2.0) & (mt < 10.5)], anchor, period))
    assert len(off[0.15]) >= 15 and np.all(off[0.15] <= 1.0 / OUT_FPS), off[0.15]
    assert len(off[0.0]) == 0 or np.mean(off[0.0] <= 1.0 / OUT_FPS) < 0.5, off[0.0]  # float-noise minima, if any: anywhere


# ------------------------------------------------------------------------------------------ the detector
def test_detector_finds_the_swing_beats_causally_and_ignores_stillness():
    q, r = swing(int(8 * FPS), bpm=120.0, phase_s=0.05)
    det = MotionBeatDetector(REST, SMPLX_PARENTS, WarpConfig())
    seen = []
    for i in range(0, len(q), 8):
        b = det.push(MotionFrames(q[i : i + 8], r[i : i + 8], FPS, i / FPS))
        assert all(t <= b.end_s - WarpConfig().confirm_s for t in b.times_s)  # only confirmed minima
        assert all(sw < t for sw, t in zip(b.switch_s, b.times_s))
        seen.extend(b.times_s)
    found = np.unique(np.round(seen, 6))
    truth = 0.05 + (np.arange(16) + 0.5) * 0.5
    truth = truth[(truth > 0.3) & (truth < 7.5)]
    err = np.array([np.min(np.abs(found - t)) for t in truth])
    assert np.all(err < 0.01), err  # sub-frame (40 ms frames) accuracy
    still = MotionBeatDetector(REST, SMPLX_PARENTS, WarpConfig())
    qs, rs = swing(100, amp=1e-4)
    assert still.push(MotionFrames(qs, rs, FPS, 0.0)).times_s == ()


def test_detector_restarts_after_a_gap():
    q, r = swing(60)
    det = MotionBeatDetector(REST, SMPLX_PARENTS, WarpConfig())
    det.push(MotionFrames(q[:40], r[:40], FPS, 0.0))
    assert det.beats.times_s
    b = det.push(MotionFrames(q[40:48], r[40:48], FPS, 5.0))  # 3.4 s later: a scheduler resync
    assert all(t > 5.0 for t in b.times_s) and b.end_s == pytest.approx(5.0 + 7 / FPS)  # nothing from before the gap


def test_detector_agrees_with_the_benchmark_motion_beats_on_the_shipped_model():
    """On the shipped learned model's real output (the bundled demo song), the detector's motion beats
    (FK speed at 25 fps, pushed chunk by chunk) match those of the perform benchmark / BAS code on the
    60 fps output (timeline sampled at 60 fps, FK, livedance.eval.beat_align.motion_beats)."""
    import torch

    torch.set_num_threads(1)
    pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the shipped model")
    from livedance.assets import demo_song
    from livedance.engine.offline import generate_song
    from livedance.errors import WeightsError

    try:
        from livedance.engine.loader import load_generator

        gen = load_generator()
    except (WeightsError, ImportError, OSError) as err:
        pytest.skip(f"the shipped model does not load here: {err}")
    m = generate_song(gen, demo_song(), start_s=5.0, duration_s=16.0)
    q = m.local_quats
    r = (m.root_translation + REST[0]).astype(np.float32)  # MotionFrames carry the pelvis position
    cfg = WarpConfig(history_s=30.0)
    det = MotionBeatDetector(REST, SMPLX_PARENTS, cfg)
    tl = MotionTimeline(1024)
    for i in range(0, len(q), 8):
        mf = MotionFrames(q[i : i + 8], r[i : i + 8], FPS, i / FPS)
        tl.append(mf)
        det.push(mf)
    ours = np.array(det.beats.times_s)
    ts = np.arange(0.0, (len(q) - 1) / FPS, 1.0 / OUT_FPS)
    smp = [tl.sample(t) for t in ts]
    pos = positions(np.stack([x.local_quats for x in smp]), np.stack([x.root for x in smp]))
    bench = ts[motion_beats(pos, OUT_FPS)] + 0.5 / OUT_FPS
    span = (bench > 1.0) & (bench < ts[-1] - 1.0)
    ours_in = ours[(ours > 1.0) & (ours < ts[-1] - 1.0)]
    assert len(ours_in) >= 10
    d_ours = np.array([np.min(np.abs(bench - t)) for t in ours_in])
    d_bench = np.array([np.min(np.abs(ours - t)) for t in bench[span]])
    assert np.median(d_ours) < 0.012 and np.mean(d_ours < 0.03) >= 0.9, d_ours
    # the detector drops minima closer than min_separation_s and near-still ones; most are shared
    assert np.mean(d_bench < 0.03) >= 0.75, d_bench


# ------------------------------------------------------------------------------------------ in the loop
class SwingDancer:
    """A stand-in for the learned generator: the 120 BPM swing, 8 frames per step at 25 fps."""

    fps = FPS
    frames_per_step = 8

    def reset(self, seed=0):
        pass

    def step(self, music):
        n0 = int(round(music.t_first_frame_s * FPS))
        q, r = swing(n0 + 8)
        return MotionFrames(q[n0:], r[n0:], FPS, music.t_first_frame_s)


class Keep:
    name = "keep"

    def __init__(self):
        self.n = 0

    def send(self, frame, music):
        assert np.isfinite(frame.local_quats).all()
        self.n += 1

    def close(self):
        pass


@pytest.fixture(scope="module")
def clicks_wav(tmp_path_factory) -> Path:
    import soundfile as sf

    sr = 22050
    x = 0.003 * np.random.default_rng(0).standard_normal(int(3.0 * sr))
    for c in np.arange(0.2, 3.0, 60.0 / 170.0):
        i = int(c * sr)
        k = np.arange(int(0.02 * sr))
        x[i : i + len(k)] += 0.8 * np.sin(2 * np.pi * 1000 * k / sr) * np.exp(-k / (0.004 * sr))
    path = tmp_path_factory.mktemp("warp") / "clicks170.wav"
    sf.write(path, x.astype(np.float32), sr)
    return path


def test_the_performer_warps_only_a_learned_generator_and_survives_warp_errors(clicks_wav):
    from livedance.audio.file import FileSource
    from livedance.live.performer import PerformConfig, Performer

    def run(gen, cfg, seconds, break_warp=False):
        keep = Keep()
        p = Performer(FileSource(clicks_wav, realtime=True), [keep], gen, cfg)
        if break_warp:
            def boom(*a, **k):
                raise RuntimeError("warp exploded")

            p._warp.tick = boom
        p.run(duration_s=seconds)
        p.stop()
        return p.stats(), keep

    st, keep = run(SwingDancer(), PerformConfig(), 1.5)
    assert st.warp_ticks > 0.8 * st.frames_sent and st.warp_errors == 0 and st.clock_errors == 0
    assert keep.n == st.frames_sent > 40
    assert 0.0 <= st.warp_lag_s <= PerformConfig().warp.max_lag_s
    st, _ = run(SwingDancer(), PerformConfig(warp=WarpConfig(enabled=False)), 0.5)
    assert st.warp_ticks == 0 and st.frames_sent > 10
    st, _ = run(None, PerformConfig(), 0.5)  # the procedural dancer is phase-locked already
    assert st.warp_ticks == 0 and st.frames_sent > 10
    from livedance.live.procedural import ProceduralGenerator

    st, _ = run(ProceduralGenerator(), PerformConfig(), 0.5)  # `perform --procedural`: not the fallback object
    assert st.warp_ticks == 0 and st.frames_sent > 10
    st, keep = run(SwingDancer(), PerformConfig(), 0.6, break_warp=True)
    assert st.warp_errors > 10 and st.clock_errors == 0 and keep.n == st.frames_sent > 10


def test_warp_errors_counted_by_both_threads_at_once_are_all_counted(clicks_wav):
    """The motion-beat detector (scheduler thread) and the warp (output clock) both count ``warp_errors``: when
    both fail at once, on their own threads, every failure is counted (``Performer._count`` takes a lock). The
    stats object yields the GIL between reading and writing a counter, as a preempted ``+=`` would."""
    import threading
    import time as _time
    from dataclasses import fields

    from livedance.audio.file import FileSource
    from livedance.live.performer import PerformConfig, Performer, PerformStats

    class YieldingStats(PerformStats):
        def __setattr__(self, name, value):
            _time.sleep(0)  # let the other thread in between the read and the write
            object.__setattr__(self, name, value)

    def boom(*a, **k):
        raise RuntimeError("exploded")

    p = Performer(FileSource(clicks_wav, realtime=True), [Keep()], SwingDancer(), PerformConfig())
    p._stats = YieldingStats(**{f.name: getattr(p._stats, f.name) for f in fields(PerformStats)})
    p._warp.tick = boom
    p._beat_detector.push = boom
    n = 2000
    ts = [threading.Thread(target=lambda: [p._detect_motion_beats(None) for _ in range(n)]),
          threading.Thread(target=lambda: [p._motion_time(1.0, (0.5, 0.5)) for _ in range(n)])]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    p.stop()
    assert p.stats().warp_errors == 2 * n
