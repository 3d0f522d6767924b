"""Figures of the live loop (``livedance perform``) on a real song, measured, not asserted.

Runs the whole loop (FileSource paced in real time -> features + beat tracker -> the shipped model, or the
procedural dancer with ``--procedural`` ->
60 fps output clock -> a VMC sender into a UDP socket that nobody reads + an in-memory recorder) and
prints:

* pipeline latency: an audio block's last sample captured -> its feature frames available to the
  generator, p50 / p99 (goal p99 <= 5 ms);
* output frame interval jitter: std and max |deviation| of the wake-up intervals from 1/60 s
  (goal std <= 1 ms), and the wake-up lateness after each deadline;
* deadline misses (no model frame ready; goal 0), skipped ticks, and the clock stalls (wake-up intervals over
  2.5 periods) with, given `--os-probe`, whether a separate process stalled at the same time (the machine);
* CPU use: process CPU time / wall time over the run (2-core machine: 1.0 = one core busy);
* perceived beat offset: the motion beats of the output (local minima of the mean joint speed of the
  frames, Gaussian-smoothed as in the AIST++ BAS, at the time each frame is SEEN = tick + output
  latency) against the music's beats at the moment they are HEARD (the song's MIDI tempo map, a
  ``.beats`` annotation file beside the audio, or librosa's offline beat tracker); per motion beat,
  the offset to the nearest music beat; median |offset| (goal <= 30 ms). For the Armygeddon song it
  is also given against its chart grid re-aligned to the recording's local drift (the chart is one
  constant tempo, the performed recording runs +-20 ms around it section by section;
  ``livedance.beats.scoring.align_grid_to_onsets``);
* reaction on a silence-music-silence file made by concatenation: time from the music stopping until
  the avatar has settled to idle (goal <= 2 s), and from the music starting until it dances on the
  beat (goal <= 3 s); repeated ``--reaction-runs`` times (default 5), run i with the dancer's sampling
  seed i (``livedance perform --seed``): the start depends on the dancer's first motion beats, so the
  figure is the median over dancers, with every run shown (``--same-seed`` repeats seed 0).
  ``benchmarks/warp_replay.py --reaction`` replays the same show without threads for many seeds.

Usage::

    .venv/bin/python benchmarks/perform.py                 # 5 minutes + the reaction run
    .venv/bin/python benchmarks/perform.py --seconds 60    # shorter
    .venv/bin/python benchmarks/perform.py --no-warp       # the learned model without the beat-synchronous warp

The learned model is shown through the beat-synchronous playback warp (``livedance.live.warp``) unless
``--no-warp`` is given; the table says which, with the warp's own counters.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SONG = DATA / "music" / "muldjord-armygeddon" / "song.ogg"
MIDI = DATA / "music" / "muldjord-armygeddon" / "notes.mid"


class MemoryRecorder:
    """A sink keeping t_show (s), local quats and root of every frame in preallocated arrays."""

    name = "memory"

    def __init__(self, max_frames: int):
        self.t = np.zeros(max_frames)
        self.q = np.zeros((max_frames, 55, 4), np.float32)
        self.r = np.zeros((max_frames, 3), np.float32)
        self.n = 0

    def send(self, frame, music):
        if self.n < len(self.t):
            self.t[self.n] = frame.t_show_s
            self.q[self.n] = frame.local_quats
            self.r[self.n] = frame.root_position
            self.n += 1

    def close(self):
        pass


def joint_positions(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(T, 55, 3) metres by forward kinematics on the default skeleton."""
    from scipy.spatial.transform import Rotation

    from livedance.live.rest import default_rest_offsets
    from livedance.motion.fk import fk_np
    from livedance.motion.skeleton import SMPLX_PARENTS

    rest = default_rest_offsets().astype(np.float64)
    rot = Rotation.from_quat(q.reshape(-1, 4).astype(np.float64)).as_matrix().reshape(len(q), 55, 3, 3)
    return fk_np(rot, r.astype(np.float64) - rest[0], rest, SMPLX_PARENTS)


def motion_beat_times(t_show: np.ndarray, q: np.ndarray, r: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(motion beat times on the perf_counter clock, smoothed mean joint speed (T-1,) m/frame)."""
    from scipy.ndimage import gaussian_filter1d

    from livedance.eval.beat_align import mean_joint_speed, motion_beats

    pos = joint_positions(q, r)
    mb = motion_beats(pos, fps)
    speed = gaussian_filter1d(mean_joint_speed(pos), 5.0 * fps / 60.0)
    return t_show[mb] + 0.5 / fps, speed


def music_beats(path: Path, duration_s: float, loops: int = 1, aligned: bool = False) -> np.ndarray | None:
    """Beat times (s, file clock) over ``loops`` repetitions of the file.

    ``aligned``: the song's chart grid re-aligned to the recording's local drift
    (:func:`livedance.beats.scoring.align_grid_to_onsets`); None for files without a chart.
    """
    import soundfile as sf

    file_dur = sf.info(str(path)).duration
    if path.resolve() == SONG.resolve() and MIDI.exists():
        from livedance.beats.scoring import align_grid_to_onsets, midi_beat_grid

        one = midi_beat_grid(MIDI, file_dur)
        if aligned:
            from livedance.data.audio_io import load_audio

            x, sr = load_audio(path)
            one, _ = align_grid_to_onsets(one, x, sr)
    elif aligned:
        return None
    elif path.with_suffix(".beats").exists():  # human annotations beside the file (../shared/data/beats)
        from livedance.beats.scoring import load_beat_annotations

        one = np.asarray(load_beat_annotations(path.with_suffix(".beats"))[0], np.float64)
    else:
        from livedance.data.audio_io import load_audio
        from livedance.eval.music_beats import track_beats

        x, sr = load_audio(path, sr=22050)
        one = track_beats(x, sr)
    beats = np.concatenate([k * file_dur + one for k in range(loops)])
    return beats[beats < duration_s]


def offsets(motion_t: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Signed offset (s) of each motion beat from the nearest music beat (motion - music).

    Taken per motion beat (when the avatar hits, how far is the heard beat?), so a dancer on another
    metrical level (half or double tempo) is judged by whether its hits land on beats.
    """
    idx = np.clip(np.searchsorted(beats, motion_t), 1, len(beats) - 1)
    left, right = beats[idx - 1], beats[idx]
    return np.where(np.abs(motion_t - left) < np.abs(motion_t - right), motion_t - left, motion_t - right)


def parse_set(items: list[str], cls=None, flag: str = "--warp-set") -> dict:
    """``FIELD=VALUE`` strings -> overrides of the dataclass ``cls`` (default
    :class:`~livedance.live.warp.WarpConfig`); values are parsed as JSON (numbers, true / false).

    Raises:
        SystemExit: an item without ``=`` or a field the dataclass does not have (the message lists them).
    """
    if cls is None:
        from livedance.live.warp import WarpConfig as cls

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in cls.__dataclass_fields__:
            raise SystemExit(f"{flag} {item!r}: expected FIELD=VALUE with a {cls.__name__} field "
                             f"({', '.join(cls.__dataclass_fields__)})")
        out[key] = json.loads(value)
    return out


#: The OS probe (``--os-probe``): a separate Python process that sleeps 1 ms at a time and reports every
#: wake-up more than ``gap`` seconds after its previous one, as (perf_counter at wake-up, gap) pairs. It holds
#: no lock of ours and has its own GIL, so a gap it sees at the same time as the output clock stalls the whole
#: machine (scheduler, hypervisor), not the show's threads. perf_counter is CLOCK_MONOTONIC on Linux: one clock
#: for both processes.
PROBE = """
import json, select, sys, time
gap, out = float(sys.argv[1]), []
last = time.perf_counter()
while not select.select([sys.stdin], [], [], 0)[0]:  # until the benchmark writes a line
    time.sleep(0.001)
    now = time.perf_counter()
    if now - last > gap:
        out.append((now, now - last))
    last = now
print(json.dumps(out[-100000:]))
"""


def start_probe(gap_s: float = 0.01):
    """Start the OS probe process (see :data:`PROBE`) reporting wake-up gaps over ``gap_s`` seconds.

    Returns the ``subprocess.Popen``; stop it with :func:`stop_probe`. Its own 1000 wake-ups per second cost a
    little CPU, so a run with the probe is not the run of the headline jitter figures.
    """
    import subprocess

    return subprocess.Popen([sys.executable, "-c", PROBE, str(gap_s)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def stop_probe(proc) -> list[tuple[float, float]]:
    """End the probe. Returns its gaps as (perf_counter seconds at the wake-up, gap in seconds); a probe that does
    not answer within 10 s is killed and reports nothing."""
    import subprocess

    try:
        out, _ = proc.communicate("stop\n", timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return []
    return [tuple(x) for x in json.loads(out or "[]")]


def clock_stalls(wakes: np.ndarray, period_s: float, probe: list | None, factor: float = 2.5) -> list[dict]:
    """Output clock stalls and whether the OS probe stalled with them.

    Args:
        wakes: (N,) float64 perf_counter seconds of the clock's wake-ups. period_s: the tick period, seconds.
        probe: :func:`stop_probe`'s gaps, or None. factor: a stall is a wake-up interval over factor periods.
    Returns:
        one dict per stall: ``at_s`` (seconds after the first wake-up), ``interval_ms``, and
        ``os_probe_stalled_too``: whether the probe's gaps cover at least half of the stall (summed over its
        gaps; None without a probe). On a 2-core machine a busy show could also starve the probe, so a shared gap
        says "the machine", not "proven outside the process".
    """
    out = []
    iv = np.diff(wakes)
    for i in np.flatnonzero(iv > factor * period_s):
        a, b = float(wakes[i]), float(wakes[i + 1])
        both = None
        if probe is not None:
            both = bool(sum(max(0.0, min(b, t) - max(a, t - g)) for t, g in probe) >= 0.5 * (b - a))
        out.append({"at_s": a - float(wakes[0]), "interval_ms": 1e3 * (b - a), "os_probe_stalled_too": both})
    return out


def run_loop(path: Path, seconds: float, latency_s: float, loop: bool, procedural: bool = False, warp: bool = True,
             warp_kw: dict | None = None, seed: int = 0, intro_kw: dict | None = None):
    """Run the loop on ``path`` for ``seconds``; returns (performer, recorder, wall, cpu).

    The generator is the one ``livedance perform`` uses: the shipped learned model (ONNX Runtime), or
    the procedural dancer with ``procedural=True`` (or when no weights load). ``warp``: the
    beat-synchronous playback warp of the learned model (``PerformConfig.warp.enabled``); ``warp_kw``:
    other :class:`~livedance.live.warp.WarpConfig` fields to change (``--warp-set``); ``seed``: the learned
    dancer's sampling seed (``livedance perform --seed``); ``intro_kw``: :class:`~livedance.live.intro.IntroConfig`
    fields to change (``--intro-set``, ``--no-intro``).
    """
    from livedance.audio.file import FileSource
    from livedance.live.intro import IntroConfig
    from livedance.live.performer import PerformConfig, Performer
    from livedance.live.setup import load_generator
    from livedance.live.sinks import VMCSink
    from livedance.live.warp import WarpConfig

    gen, desc = load_generator(None, procedural)
    gen.reset(seed)
    print(f"generator: {desc}, seed {seed}")

    sink_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a receiver that never reads
    sink_sock.bind(("127.0.0.1", 0))
    vmc = VMCSink("127.0.0.1", sink_sock.getsockname()[1], "vrm0")
    rec = MemoryRecorder(int((seconds + 5) * 60))
    src = FileSource(path, realtime=True, loop=loop, duration_s=None)
    p = Performer(src, [vmc, rec], generator=gen, config=PerformConfig(
        fps=60.0, latency_s=latency_s, warp=WarpConfig(enabled=warp, **(warp_kw or {})), intro=IntroConfig(**(intro_kw or {}))))
    c0, w0 = time.process_time(), time.perf_counter()
    p.run(duration_s=seconds)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    p.stop()
    sink_sock.close()
    return p, rec, wall, cpu


def warp_figures(st) -> dict:
    """The beat-synchronous warp's counters (``PerformStats.warp_*``); warp_on: it showed warped time."""
    return {
        "warp_on": bool(st.warp_ticks > 0),
        "warp_ticks": st.warp_ticks,
        "warp_beats_hit": st.warp_beats_hit,
        "warp_hit_error_ms": st.warp_hit_error_ms,
        "warp_resyncs": st.warp_resyncs,
        "warp_clamps": st.warp_clamps,
        "warp_mean_abs_rate_dev": st.warp_mean_abs_rate_dev,
        "warp_errors": st.warp_errors,
    }


def main_run(args) -> dict:
    path = Path(args.audio)
    import soundfile as sf

    file_dur = sf.info(str(path)).duration
    loops = int(np.ceil(args.seconds / file_dur))
    print(f"main run: {path.name} ({file_dur:.1f} s, {'looped' if loops > 1 else 'once'}) for {args.seconds:g} s, "
          f"output latency {args.latency_ms:g} ms ...", file=sys.stderr, flush=True)
    probe = start_probe() if args.os_probe else None
    try:
        p, rec, wall, cpu = run_loop(path, min(args.seconds, file_dur * loops), args.latency_ms / 1000,
                                     loop=loops > 1, procedural=args.procedural, warp=not args.no_warp,
                                     warp_kw=args.warp_kw, intro_kw=args.intro_kw)
    finally:
        gaps = stop_probe(probe) if probe is not None else None
    st = p.stats()
    lat = np.array(p.listener.stats.latency_s) * 1e3
    wakes, dls = np.array(st.tick_wakes), np.array(st.tick_deadlines)
    iv = np.diff(wakes)
    dev = (iv - 1 / 60) * 1e3
    late = (wakes - dls) * 1e3
    n = rec.n
    mt, _ = motion_beat_times(rec.t[:n], rec.q[:n], rec.r[:n], 60.0)
    mt_stream = mt - p.stream_origin
    beats = music_beats(path, mt_stream[-1] + 2.0, loops)
    sel = mt_stream[(mt_stream > args.warmup) & (mt_stream < mt_stream[-1] - 1.0)]
    off = offsets(sel, beats) * 1e3
    beats = beats[(beats > args.warmup) & (beats < mt_stream[-1] - 1.0)]
    aligned = music_beats(path, mt_stream[-1] + 2.0, loops, aligned=True)
    off_al = offsets(sel, aligned) * 1e3 if aligned is not None else np.full(1, np.nan)  # NaN: no chart
    dancer_bpm = 60.0 / np.median(np.diff(mt_stream[mt_stream > args.warmup]))
    music_bpm = 60.0 / np.median(np.diff(beats))
    return {
        "seconds": wall,
        "pipeline_latency_ms_p50": float(np.percentile(lat, 50)),
        "pipeline_latency_ms_p99": float(np.percentile(lat, 99)),
        "pipeline_latency_ms_max": float(lat.max()),
        "frame_interval_std_ms": float(dev.std()),
        "frame_interval_max_dev_ms": float(np.abs(dev).max()),
        "wake_late_ms_p50": float(np.percentile(late, 50)),
        "wake_late_ms_p99": float(np.percentile(late, 99)),
        "frames_sent": st.frames_sent,
        "deadline_misses": st.misses,
        "skipped_ticks": st.skipped_ticks,
        "clock_errors": st.clock_errors,
        "clock_stalls": clock_stalls(wakes, 1 / 60, gaps),
        "os_probe_gaps": None if gaps is None else [{"at_s": t - float(wakes[0]), "gap_ms": 1e3 * g} for t, g in gaps],
        "cpu_per_wall": cpu / wall,
        "beats_scored": int(len(sel)),
        "beat_offset_ms_median_abs": float(np.median(np.abs(off))),
        "beat_offset_ms_median_signed": float(np.median(off)),
        "beats_within_70ms": float(np.mean(np.abs(off) <= 70.0)),
        "beat_offset_aligned_ms_median_abs": float(np.median(np.abs(off_al))),
        "beat_offset_aligned_ms_median_signed": float(np.median(off_al)),
        "dancer_bpm": float(dancer_bpm),
        "music_bpm": float(music_bpm),
        "final_tracker_bpm": float(p.listener.beat.bpm),
        **warp_figures(st),
    }


def print_start_detail(beats_s: np.ndarray, offs: np.ndarray, performer, lead: float, until_s: float = 10.0) -> None:
    """``--start-detail``: per motion beat of the first ``until_s`` seconds of music (seconds from the music's
    start): its offset from the nearest music beat, and the distance to the nearest beat the warp hit
    (``BeatWarp.recent_hits``, the same clock). "on the beat": within 70 ms; "hit": the warp aimed this beat
    (within 30 ms of a hit); "moved": a hit within 150 ms, but the shown minimum moved (the rate around it
    tilts the speed curve); "passed": the warp let it pass (the motion has more beats than the music)."""
    hits = np.asarray([h for h, _ in performer.warp.recent_hits]) - lead
    print("motion beats of the first seconds (s from the music start; offset from the music beat; nearest warp hit):")
    for b, o in zip(beats_s, offs):
        if b > until_s:
            break
        d = float(np.min(np.abs(hits - b))) if hits.size else float("inf")
        kind = "hit" if d <= 0.03 else ("moved" if d <= 0.15 else "passed")
        print(f"  {b:6.2f} s  offset {1000 * o:+6.0f} ms  {'on the beat' if abs(o) <= 0.07 else 'off':11s}  "
              f"nearest hit {1000 * d:5.0f} ms ({kind})")


def reaction_figures(t_stream: np.ndarray, q: np.ndarray, r: np.ndarray, song: Path, offset_s: float, lead: float,
                     body: float) -> dict:
    """Settle and start figures of a silence (``lead`` s) + music (``body`` s of ``song`` from ``offset_s``) +
    silence show, from its shown frames.

    Args:
        t_stream: (T,) float64 show time of each frame on the stream clock, seconds (60 fps).
        q: (T, 55, 4) float32 local quaternions; r: (T, 3) float32 pelvis position, metres.
        song, offset_s, lead, body: the song and the layout of the show.

    Returns:
        dict: ``idle`` / ``dance`` (median smoothed speed in the silence and in the music, m per frame),
        ``settle`` (s after the music stops until the speed stays under idle + 10 % of the range),
        ``start`` (s after the music starts to the first of 4 motion beats in a row within 70 ms of
        music beats, while dancing; NaN if never), ``motion_beats_s`` (stream seconds, during the
        music) and ``offsets_s`` (their signed offsets from the nearest music beat).
    """
    mt, speed = motion_beat_times(t_stream, q, r, 60.0)
    ts = 0.5 * (t_stream[1:] + t_stream[:-1])
    idle = np.median(speed[(ts > 1.0) & (ts < lead - 0.5)])
    dance = np.median(speed[(ts > lead + 8) & (ts < lead + body - 1)])
    thr = idle + 0.1 * (dance - idle)
    t_stop = lead + body
    above = np.where((ts > t_stop) & (speed > thr))[0]
    settle = float(ts[above[-1]] - t_stop) if len(above) else 0.0
    # beats of the body on the stream clock
    song_beats = music_beats(song, offset_s + body + 1)
    bb = song_beats[(song_beats >= offset_s) & (song_beats < offset_s + body)]
    bb = bb - offset_s + lead
    mts = mt[(mt > lead) & (mt < lead + body)]
    signed = offsets(mts, bb)
    off = np.abs(signed)
    start = float("nan")
    for i in range(len(mts) - 4):  # first of 4 motion beats in a row on music beats, while dancing
        k = np.searchsorted(ts, mts[i : i + 4])
        if np.all(off[i : i + 4] <= 0.07) and np.all(speed[np.minimum(k, len(speed) - 1)] > thr):
            start = float(mts[i] - lead)
            break
    return {"idle": float(idle), "dance": float(dance), "settle": settle, "start": start, "motion_beats_s": mts,
            "offsets_s": signed}


def reaction_run(args, seed: int = 0) -> dict:
    """Silence (lead) + music (body) + silence (tail), made by concatenation; settle and start times of the
    dancer with sampling seed ``seed``."""
    import soundfile as sf

    from livedance.data.audio_io import load_audio

    path = Path(args.audio)
    lead, body, tail = 6.0, min(30.0, sf.info(str(path)).duration - args.reaction_offset), 8.0
    x, sr = load_audio(path, offset_s=args.reaction_offset, duration_s=body)
    sil = np.zeros(int(lead * sr), np.float32), np.zeros(int(tail * sr), np.float32)
    y = np.concatenate([sil[0], x, sil[1]])
    with tempfile.TemporaryDirectory() as td:
        f = Path(td) / "silence_music_silence.wav"
        sf.write(f, y, sr)
        print(f"reaction run: {lead:g} s silence + {body:g} s of {path.name} from {args.reaction_offset:g} s + "
              f"{tail:g} s silence ...", file=sys.stderr, flush=True)
        p, rec, wall, cpu = run_loop(f, lead + body + tail, args.latency_ms / 1000, loop=False, procedural=args.procedural,
                                     warp=not args.no_warp, warp_kw=args.warp_kw, seed=seed,
                                     intro_kw=args.intro_kw)
    n = rec.n
    t_stream = rec.t[:n] - p.stream_origin  # when each frame is seen, on the stream clock
    fig = reaction_figures(t_stream, rec.q[:n], rec.r[:n], path, args.reaction_offset, lead, body)
    if getattr(args, "start_detail", False):
        print_start_detail(fig["motion_beats_s"] - lead, fig["offsets_s"], p, lead)
    idle, dance, settle, start = fig["idle"], fig["dance"], fig["settle"], fig["start"]
    return {
        "idle_speed_mm_per_frame": float(idle * 1e3),
        "dance_speed_mm_per_frame": float(dance * 1e3),
        "settle_to_idle_s": settle,
        "start_dancing_on_beat_s": start,
        "misses": p.stats().misses,
        **warp_figures(p.stats()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="length of the main run (default 300 s)")
    ap.add_argument("--audio", default=None, help="audio file (default: the Armygeddon song, else the bundled excerpt)")
    ap.add_argument("--latency-ms", type=float, default=100.0, help="visual latency given to the loop (PerformConfig.latency_s, ms); the audio is heard at its stream time")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds ignored at the start for the beat offset")
    ap.add_argument("--reaction-offset", type=float, default=60.0, help="song time (s) of the reaction run's music")
    ap.add_argument("--no-reaction", action="store_true", help="skip the silence-music-silence run")
    ap.add_argument("--reaction-runs", type=int, default=5,
                    help="repeat the reaction run this many times, run i with the dancer's sampling seed i (the start "
                         "depends on the dancer's first motion beats: the table gives the median over the dancers and "
                         "every run; default 5, about 45 s each)")
    ap.add_argument("--same-seed", action="store_true",
                    help="every reaction run with seed 0 (the run-to-run spread of one dance, as before session 7)")
    ap.add_argument("--no-main", action="store_true", help="skip the main run (reaction run only)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--os-probe", action="store_true",
                    help="also run a separate process that measures its own 1 ms sleeps, and say for each output clock "
                    "stall whether it stalled too (the machine, not the show)")
    ap.add_argument("--procedural", action="store_true", help="measure the procedural dancer instead of the shipped model")
    ap.add_argument("--start-detail", action="store_true",
                    help="reaction run: list each motion beat of the first 10 s of music (offset from the music "
                         "beat, distance to the warp's nearest hit) to see why the start is late")
    ap.add_argument("--no-warp", action="store_true", help="show the learned model without the beat-synchronous playback warp")
    ap.add_argument("--no-intro", action="store_true", help="without the on-beat intro (IntroConfig.seconds = 0)")
    ap.add_argument("--intro-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="an IntroConfig field to change (repeatable), e.g. --intro-set seconds=3")
    ap.add_argument("--warp-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a WarpConfig field to change (repeatable; values as JSON), e.g. --warp-set skip_cost=1.0")
    args = ap.parse_args()
    args.warp_kw = parse_set(args.warp_set)
    from livedance.live.intro import IntroConfig

    args.intro_kw = parse_set(args.intro_set, IntroConfig, "--intro-set")
    if args.no_intro:
        args.intro_kw["seconds"] = 0.0
    if args.start_detail and (args.no_reaction or args.procedural or args.no_warp):
        ap.error("--start-detail lists the warp's hits in the reaction run: it needs the reaction run, the learned "
                 "model and the warp (drop --no-reaction / --procedural / --no-warp)")
    if args.audio is None:
        if SONG.exists():
            args.audio = str(SONG)
        else:
            try:
                from livedance.assets import demo_song

                args.audio = str(demo_song())
            except ImportError:
                print("no audio: pass --audio FILE (../shared/data is absent and there is no bundled excerpt)")
                return 2
    import torch

    torch.set_num_threads(1)
    out = {"audio": args.audio, "latency_ms": args.latency_ms, "warp_requested": not args.no_warp}
    if not args.no_main:
        out["main"] = main_run(args)
    if not args.no_reaction:
        runs = []
        for i in range(max(1, args.reaction_runs)):
            runs.append(reaction_run(args, seed=0 if args.same_seed else i))
            args.start_detail = False  # the detail is printed for the first run only
        out["reaction"] = dict(runs[0])
        for key in ("settle_to_idle_s", "start_dancing_on_beat_s"):
            vals = [r[key] for r in runs]
            med = float(np.median(np.nan_to_num(vals, nan=np.inf)))  # NaN (never on the beat) counts as the worst
            out["reaction"][key] = med if np.isfinite(med) else float("nan")
            out["reaction"][key + "_runs"] = vals

    from rich.console import Console
    from rich.table import Table

    m = out.get("main")
    secs = f"{m['seconds']:.0f} s, " if m else ""
    tab = Table(title=f"livedance perform loop: {Path(args.audio).name}, {secs}60 fps, "
                f"output latency {args.latency_ms:g} ms", title_justify="left")
    tab.add_column("figure")
    tab.add_column("value", justify="right")
    tab.add_column("goal", justify="right")
    rows = [] if m is None else [
        ("pipeline latency p50 / p99 (block -> features)", f"{m['pipeline_latency_ms_p50']:.2f} / {m['pipeline_latency_ms_p99']:.2f} ms", "p99 <= 5 ms"),
        ("frame interval jitter: std / max |dev|", f"{m['frame_interval_std_ms']:.3f} / {m['frame_interval_max_dev_ms']:.2f} ms", "std <= 1 ms"),
        ("wake-up lateness p50 / p99", f"{m['wake_late_ms_p50']:.3f} / {m['wake_late_ms_p99']:.2f} ms", ""),
        ("deadline misses / skipped ticks / frames", f"{m['deadline_misses']} / {m['skipped_ticks']} / {m['frames_sent']}", "0 misses"),
        ("clock stalls over 2.5 periods (41.7 ms)" + (": with the OS probe stalled too" if args.os_probe else ""),
         f"{len(m['clock_stalls'])}" + (f": {sum(bool(x['os_probe_stalled_too']) for x in m['clock_stalls'])}"
                                         if args.os_probe else "")
         + "".join(f" ({x['interval_ms']:.0f} ms at {x['at_s']:.0f} s)" for x in m["clock_stalls"][:4]), ""),
        ("CPU (process CPU time / wall)", f"{100 * m['cpu_per_wall']:.1f} %", ""),
        ("perceived beat offset: median |offset|", f"{m['beat_offset_ms_median_abs']:.1f} ms", "<= 30 ms"),
        ("  median signed (motion - music) / hits within 70 ms", f"{m['beat_offset_ms_median_signed']:+.1f} ms / {100 * m['beats_within_70ms']:.0f} %", ""),
        ("  dancer / music tempo", f"{m['dancer_bpm']:.1f} / {m['music_bpm']:.1f} BPM ({m['beats_scored']} motion beats)", ""),
    ]
    if m is not None and np.isfinite(m["beat_offset_aligned_ms_median_abs"]):  # a song with a chart (MIDI) grid
        rows.insert(7, ("  against the chart re-aligned to the recording's drift: median |offset| / signed",
                        f"{m['beat_offset_aligned_ms_median_abs']:.1f} / {m['beat_offset_aligned_ms_median_signed']:+.1f} ms", ""))
    w = m or out.get("reaction")
    if w is not None:
        warp = ("on" if w["warp_on"] else "off") + ("" if w["warp_on"] or args.no_warp else " (procedural dancer: never warped)")
        rows.append(("beat-synchronous warp (--no-warp turns it off)", warp, ""))
        if w["warp_on"]:
            rows.append(("  warp: beats hit (residual) / resyncs / clamps / mean |r - 1|",
                         f"{w['warp_beats_hit']} ({w['warp_hit_error_ms']:.1f} ms) / {w['warp_resyncs']} / {w['warp_clamps']} / "
                         f"{w['warp_mean_abs_rate_dev']:.3f}", ""))
    if "reaction" in out:
        r = out["reaction"]
        rows += [
            ("music stops -> settled to idle (median; runs)",
             f"{r['settle_to_idle_s']:.2f} s ({', '.join(f'{v:.2f}' for v in r['settle_to_idle_s_runs'])})", "<= 2 s"),
            ("music starts -> dancing on the beat (median; runs)",
             f"{r['start_dancing_on_beat_s']:.2f} s ({', '.join(f'{v:.2f}' for v in r['start_dancing_on_beat_s_runs'])})",
             "<= 3 s"),
        ]
    for row in rows:
        tab.add_row(*row)
    Console().print(tab)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
