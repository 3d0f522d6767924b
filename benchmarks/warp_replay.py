"""Deterministic replay of the beat-synchronous playback warp (``livedance.live.warp``) on a real song.

The live benchmark (``benchmarks/perform.py``) is one real-time run: the model samples differently and
the tracker's grid moves with the thread timing, so two runs of the same settings differ by a few ms.
This replays the same pieces without threads or a clock, so warp settings can be compared:

1. dances: the shipped model dances the whole song offline through the causal step path
   (``livedance.engine.offline.generate_song``), once per ``--seeds`` value;
2. the beat grid the output clock would see at each 60 fps tick s (stream seconds): the causal beat
   tracker fed the song up to s - output latency (as the live loop's listener has heard it), its tempo
   and next beat; no grid below the warp's ``min_confidence``; or, with the true grid, the song's chart
   (one constant tempo from its MIDI file);
3. the warp: ``MotionBeatDetector`` gets the model frames 0.15 s ahead of the tick (the scheduler's
   lead), ``BeatWarp.tick`` turns s into the motion time tau, the ``MotionTimeline`` is sampled there;
4. scoring as ``benchmarks/perform.py``: motion beats of the shown frames (local minima of the
   Gaussian-smoothed mean joint speed, as the AIST++ BAS) against the chart's beats, median |offset|
   after 10 s; also against the chart re-aligned to the recording's drift
   (``livedance.beats.scoring.align_grid_to_onsets``); and the shown motion beats sorted by the
   warp's hits: "hit" (within 30 ms of a moment the warp reached a motion beat at its music beat),
   "moved" (30-150 ms from one), "other" (none within 150 ms).

With ``--reaction`` it replays the live benchmark's reaction show instead (6 s of silence, 30 s of the song
from ``--reaction-offset``, 8 s of silence; the model dances through the silences, as live, and is
cross-faded to the idle pose while the listener's silence gate is closed, as ``Performer`` does) and prints,
per dance, the time from the music's start to dancing on the beat and from its stop to idle, scored exactly
as ``benchmarks/perform.py`` does. The start depends on the dancer's first motion beats, so it is a figure
over many dances (seeds), which the live benchmark cannot afford (45 s per run). The performer's on-beat
intro (:mod:`livedance.live.intro`: the procedural dancer leads when the music starts, then hands over between
beats) is replayed too, with the same functions; ``--no-intro`` replays the show without it.

Usage::

    .venv/bin/python benchmarks/warp_replay.py                          # defaults, dances 0 1 2
    .venv/bin/python benchmarks/warp_replay.py --reaction --seeds 0 1 2 3 4 5 6 7 8 9 10 11   # start / settle
    .venv/bin/python benchmarks/warp_replay.py --reaction --no-intro              # without the on-beat intro
    .venv/bin/python benchmarks/warp_replay.py --reaction --intro-set seconds=3   # an IntroConfig field changed
    .venv/bin/python benchmarks/warp_replay.py --set lag_weight=0.5     # a WarpConfig field changed
    .venv/bin/python benchmarks/warp_replay.py --tracker-set phase_switch_beats=0   # the grid's tracker only
    .venv/bin/python benchmarks/warp_replay.py --seeds 0 --seconds 60   # quicker

Needs ``../shared/data/music/muldjord-armygeddon`` (song and chart) and the shipped model weights.
About 3 minutes for the default three dances of the whole song on the development machine; ``--reaction``
about 4 s per dance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perform import MIDI, SONG, joint_positions, offsets, parse_set, reaction_figures  # noqa: E402  (benchmarks/perform.py helpers)

LEAD_S = 0.15  # the scheduler runs the model this far ahead of the output clock
FPS = 60.0


def tracker_grids(audio: np.ndarray, sr: int, seconds: float, latency_s: float, min_confidence: float,
                  tracker_kw: dict | None = None, confidences: list | None = None) -> list:
    """Per 60 fps tick, the (anchor_s, period_s) grid the warp would get, or None (not confident yet).

    The causal tracker (``TrackerConfig`` defaults, with ``tracker_kw`` changed) is fed the song in
    512-sample hops up to ``s - latency_s`` (what the listener has heard when the frame shown at s is
    rendered). ``confidences``, when given, receives the tracker's confidence per tick.
    """
    from livedance.beats.tracker import BeatTracker, TrackerConfig
    from livedance.live.listener import grid_anchor

    tr = BeatTracker(TrackerConfig(sample_rate=sr, **(tracker_kw or {})))
    hop, fed, grids = tr.cfg.hop, 0, []
    for k in range(int(seconds * FPS)):
        heard = k / FPS - latency_s
        upto = min(len(audio) // hop * hop, max(0, int(heard * sr)) // hop * hop)
        if upto > fed:
            tr.push(audio[fed:upto])
            fed = upto
        bpm = tr.bpm
        if confidences is not None:
            confidences.append(float(tr.confidence) if bpm > 0 else 0.0)
        if bpm <= 0 or not tr.confidence >= min_confidence:
            grids.append(None)
            continue
        anchor = grid_anchor(tr)  # the listener's rule
        grids.append((anchor, 60.0 / bpm) if anchor is not None else None)
    return grids


def silence_gate(audio: np.ndarray, sr: int, times_s: np.ndarray) -> np.ndarray:
    """(len(times_s),) bool: the listener's fast silence gate at each time (RMS of the last ``silence_window_s``
    seconds below ``silence_db`` dBFS, with ``livedance.live.listener.Listener``'s own defaults)."""
    import inspect

    from livedance.live.listener import Listener

    params = inspect.signature(Listener).parameters
    window_s, level_db = params["silence_window_s"].default, params["silence_db"].default
    c = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    hi = np.clip((np.asarray(times_s) * sr).astype(int), 0, len(audio))
    lo = np.clip(hi - int(window_s * sr), 0, len(audio))
    ms = (c[hi] - c[lo]) / np.maximum(hi - lo, 1)
    return 10.0 * np.log10(np.maximum(ms, 1e-20)) < level_db


def fade_to_idle(q: np.ndarray, root: np.ndarray, silent_at_step: np.ndarray, fade_s: float = 0.5, chunk: int = 8,
                 fps: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """The performer's cross-fade to the idle pose (:func:`livedance.live.performer.fade_to_idle`), applied per
    model step of ``chunk`` frames: ``silent_at_step[i]`` is the silence gate when step i was computed."""
    from livedance.engine.base import MotionFrames
    from livedance.live.performer import fade_to_idle as fade
    from livedance.live.procedural import ProceduralGenerator
    from livedance.live.rest import default_rest_offsets

    idle = ProceduralGenerator(rest_offsets=default_rest_offsets())
    q, root, w = q.copy(), root.copy(), 0.0
    for k, i in enumerate(range(0, len(q), chunk)):
        mf, w = fade(MotionFrames(q[i:i + chunk], root[i:i + chunk], fps, i / fps), w, bool(silent_at_step[k]),
                     fade_s, idle.safe_pose)
        q[i:i + chunk], root[i:i + chunk] = mf.local_quats, mf.root_translation
    return q, root


def intro_blend(out: dict, grids: list, confs: list, silent_tick: np.ndarray, intro_kw: dict) -> dict:
    """The performer's on-beat intro (:mod:`livedance.live.intro`) on replayed ticks: a procedural dancer stepped
    on the tracker's grid at show time, blended with the shown (warped) learned poses by ``IntroGate``'s weight."""
    from livedance.engine.base import MusicContext
    from livedance.live.intro import IntroConfig, IntroGate, blend_poses
    from livedance.live.procedural import ProceduralConfig, ProceduralGenerator
    from livedance.live.rest import default_rest_offsets

    cfg = IntroConfig(**intro_kw)
    gate = IntroGate(cfg)
    dancer = ProceduralGenerator(ProceduralConfig(fps=FPS), rest_offsets=default_rest_offsets())
    T, Q, R = out["t"], out["q"].copy(), out["r"].copy()
    n = dancer.frames_per_step
    qi = np.zeros_like(Q)
    ri = np.zeros_like(R)
    for i in range(0, len(T), n):
        g = grids[i]
        bpm, phase = (60.0 / g[1], ((T[i] - g[0]) / g[1]) % 1.0) if g is not None else (0.0, 0.0)
        mf = dancer.step(MusicContext(np.zeros((0, 180), np.float32), np.zeros(0), bpm, phase, confs[i], float(T[i])))
        m = min(n, len(T) - i)
        qi[i:i + m], ri[i:i + m] = mf.local_quats[:m], mf.root_translation[:m]
    for k, s in enumerate(T):
        w = gate.update(float(s), bool(silent_tick[k]), grids[k])
        Q[k], R[k] = blend_poses(qi[k], ri[k], Q[k], R[k], w)
    return {**out, "q": Q, "r": R}


def reaction(args, warp_kw: dict, tracker_kw: dict) -> int:
    """``--reaction``: the live benchmark's reaction show (6 s silence + 30 s of the song from
    ``--reaction-offset`` + 8 s silence), replayed per seed: dance offline through the causal step path (the
    model runs through the silences, as live), fade to idle while the gate is silent, the tracker's grid, the
    warp; the start and settle figures exactly as ``benchmarks/perform.py`` scores them."""
    import tempfile

    import soundfile as sf
    import torch
    from rich.console import Console
    from rich.table import Table

    from livedance.data.audio_io import load_audio
    from livedance.engine import load_generator
    from livedance.engine.offline import generate_song
    from livedance.live.warp import WarpConfig

    torch.set_num_threads(1)
    lead, body, tail = 6.0, 30.0, 8.0
    x, sr = load_audio(SONG, sr=44100, offset_s=args.reaction_offset, duration_s=body)
    y = np.concatenate([np.zeros(int(lead * sr), np.float32), x, np.zeros(int(tail * sr), np.float32)])
    seconds = len(y) / sr - 1.0
    cfg = WarpConfig(**warp_kw)
    confs: list = []
    grids = tracker_grids(y, sr, seconds, args.latency_ms / 1e3, cfg.min_confidence, tracker_kw, confs)
    silent_tick = silence_gate(y, sr, np.arange(len(grids)) / FPS - args.latency_ms / 1e3)
    from livedance.live.intro import IntroConfig

    intro_kw = parse_set(args.intro_set, IntroConfig, "--intro-set") if args.intro_set else {}
    if args.no_intro:
        intro_kw["seconds"] = 0.0
    gen = load_generator(None)
    rest_pelvis = np.asarray(gen.rep.rest_offsets[0], np.float32)
    step_t = np.arange(int((seconds + 1.0) * 25.0 / 8) + 2) * 8 / 25.0
    silent = silence_gate(y, sr, step_t - LEAD_S)
    rows = []
    with tempfile.TemporaryDirectory() as td:
        f = Path(td) / "silence_music_silence.wav"
        sf.write(f, y, sr)
        for seed in args.seeds:
            m = generate_song(gen, f, 0.0, seconds + 1.0, seed)
            q, r = fade_to_idle(m.local_quats, m.root_translation + rest_pelvis, silent)
            out = intro_blend(replay(q, r, grids, warp_kw), grids, confs, silent_tick, intro_kw)
            fig = reaction_figures(out["t"], out["q"], out["r"], SONG, args.reaction_offset,
                                   lead, body)
            rows.append({"seed": seed, "start": fig["start"], "settle": fig["settle"],
                         "hits": int(out["warp"].beats_hit), "resyncs": int(out["warp"].resyncs)})
            print(f"dance {seed}: start {fig['start']:.2f} s, settle {fig['settle']:.2f} s", file=sys.stderr, flush=True)
    starts = np.array([r["start"] for r in rows])
    tab = Table(title=f"warp replay, reaction show ({lead:g} s silence + {body:g} s of Armygeddon from "
                      f"{args.reaction_offset:g} s + {tail:g} s silence), WarpConfig {warp_kw or 'defaults'}, "
                      f"grid TrackerConfig {tracker_kw or 'defaults'}", title_justify="left")
    for col in ("dance", "music starts -> on the beat", "music stops -> idle", "warp hits", "resyncs"):
        tab.add_column(col, justify="right")
    for r in rows:
        tab.add_row(str(r["seed"]), f"{r['start']:.2f} s", f"{r['settle']:.2f} s", str(r["hits"]), str(r["resyncs"]))
    med = float(np.median(np.nan_to_num(starts, nan=np.inf)))
    tab.add_row("median", f"{med:.2f} s", f"{np.median([r['settle'] for r in rows]):.2f} s", "", "")
    tab.add_row("<= 3 s", f"{int(np.sum(starts <= 3.0))} of {len(rows)}", "", "", "")
    Console().print(tab)
    if args.json:
        Path(args.json).write_text(json.dumps({"warp": warp_kw, "tracker": tracker_kw, "reaction": rows}, indent=1))
    return 0


def replay(q: np.ndarray, root: np.ndarray, grids: list, warp_kw: dict) -> dict:
    """Run detector + warp + timeline over the ticks; returns the shown times, poses, motion times tau and the warp's hits.

    Args:
        q: (T, 55, 4) float32 local quaternions (x, y, z, w) at 25 fps. root: (T, 3) pelvis world
            position, metres. grids: per tick (anchor_s, period_s) or None. warp_kw: WarpConfig fields.
    """
    from livedance.engine.base import MotionFrames
    from livedance.live.rest import default_rest_offsets
    from livedance.live.timeline import MotionTimeline
    from livedance.live.warp import BeatWarp, MotionBeatDetector, WarpConfig
    from livedance.motion.skeleton import SMPLX_PARENTS

    cfg = WarpConfig(**warp_kw)
    det = MotionBeatDetector(default_rest_offsets(), SMPLX_PARENTS, cfg)
    warp = BeatWarp(cfg)
    tl = MotionTimeline(1024)
    chunk, fps_m = 8, 25.0
    n_next, beats, hits = 0, None, []
    T = np.arange(len(grids)) / FPS
    Q = np.zeros((len(grids), q.shape[1], 4), np.float32)
    TAU = np.zeros(len(grids))
    R = np.zeros((len(grids), 3), np.float32)
    for k, s in enumerate(T):
        while n_next / fps_m <= s + LEAD_S and n_next + chunk <= len(q):
            mf = MotionFrames(q[n_next:n_next + chunk], root[n_next:n_next + chunk], fps_m, n_next / fps_m)
            tl.append(mf)
            beats = det.push(mf)
            n_next += chunk
        before = warp.beats_hit
        tau = warp.tick(float(s), beats, grids[k])
        if warp.beats_hit > before:
            hits.append(warp.recent_hits[-1][0])
        smp = tl.sample(tau)
        Q[k], R[k], TAU[k] = smp.local_quats, smp.root, tau
    return {"t": T, "q": Q, "r": R, "tau": TAU, "hits": np.asarray(hits), "warp": warp}


def score(out: dict, chart: np.ndarray, aligned: np.ndarray, seconds: float) -> dict:
    """Offsets of the shown motion beats after 10 s (ms) and their hit / moved / other split."""
    from livedance.eval.beat_align import motion_beats

    pos = joint_positions(out["q"], out["r"])
    mt = out["t"][motion_beats(pos, FPS)] + 0.5 / FPS
    sel = mt[(mt > 10.0) & (mt < seconds - 1.0)]
    off = np.abs(offsets(sel, chart)) * 1e3
    off_al = np.abs(offsets(sel, aligned)) * 1e3
    hits = out["hits"]
    if len(hits) >= 2:
        j = np.clip(np.searchsorted(hits, sel), 1, len(hits) - 1)
        near = np.minimum(np.abs(sel - hits[j - 1]), np.abs(sel - hits[j]))
    else:
        near = np.full(len(sel), np.inf)
    cats = {"hit": near < 0.03, "moved": (near >= 0.03) & (near < 0.15), "other": near >= 0.15}
    res = {"n": int(len(sel)), "median_ms": float(np.median(off)), "aligned_median_ms": float(np.median(off_al)),
           "within_70ms": float(np.mean(off <= 70.0)), "resyncs": int(out["warp"].resyncs)}
    for name, m in cats.items():
        res[f"{name}_share"] = float(m.mean())
        res[f"{name}_median_ms"] = float(np.median(off[m])) if m.any() else float("nan")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampling seeds of the dances (default 0 1 2)")
    ap.add_argument("--seconds", type=float, default=None, help="length of the replay (default: the whole song)")
    ap.add_argument("--latency-ms", type=float, default=100.0, help="output latency of the replayed loop (ms)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a WarpConfig field to change (repeatable)")
    ap.add_argument("--tracker-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a TrackerConfig field to change for the warp's grid only (repeatable); the dances keep "
                         "the default tracker, so two settings are compared on the same dances")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--reaction", action="store_true",
                    help="replay the live benchmark's reaction show instead (silence, 30 s of the song, silence) and "
                         "print the start and settle figures per dance")
    ap.add_argument("--no-intro", action="store_true", help="--reaction without the on-beat intro (IntroConfig.seconds = 0)")
    ap.add_argument("--intro-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="an IntroConfig field to change for --reaction (repeatable)")
    ap.add_argument("--reaction-offset", type=float, default=60.0, help="song time (s) of the reaction show's music")
    args = ap.parse_args()
    if not (SONG.exists() and MIDI.exists()):
        print(f"needs {SONG} and {MIDI} (../shared/data)")
        return 2
    warp_kw = parse_set(args.set, flag="--set")
    from livedance.beats.tracker import TrackerConfig

    tracker_kw = parse_set(args.tracker_set, TrackerConfig, "--tracker-set")
    if args.reaction:
        return reaction(args, warp_kw, tracker_kw)

    import torch
    from rich.console import Console
    from rich.table import Table

    from livedance.beats.scoring import align_grid_to_onsets, midi_beat_grid
    from livedance.data.audio_io import load_audio
    from livedance.engine import load_generator
    from livedance.engine.offline import generate_song
    from livedance.live.warp import WarpConfig

    torch.set_num_threads(1)
    audio, sr = load_audio(SONG, sr=44100)
    song_s = len(audio) / sr
    seconds = min(args.seconds or song_s - 2.0, song_s - 2.0)
    chart = midi_beat_grid(MIDI, song_s)
    aligned, _ = align_grid_to_onsets(chart, audio, sr)
    cfg = WarpConfig(**warp_kw)
    grids = {"tracker": tracker_grids(audio.astype(np.float32), sr, seconds, args.latency_ms / 1e3, cfg.min_confidence,
                                      tracker_kw),
             "true": [(0.0, float(np.median(np.diff(chart))))] * int(seconds * FPS)}
    gen = load_generator(None)
    rest_pelvis = np.asarray(gen.rep.rest_offsets[0], np.float32)
    rows = []
    for seed in args.seeds:
        print(f"dance {seed}: generating {seconds:.0f} s ...", file=sys.stderr, flush=True)
        m = generate_song(gen, SONG, 0.0, seconds + 1.0, seed)
        for name, g in grids.items():
            res = score(replay(m.local_quats, m.root_translation + rest_pelvis, g, warp_kw), chart, aligned, seconds)
            rows.append({"seed": seed, "grid": name, **res})
    tab = Table(title=f"warp replay: Armygeddon, {seconds:.0f} s, WarpConfig {warp_kw or 'defaults'}, "
                      f"grid TrackerConfig {tracker_kw or 'defaults'} "
                      f"(median |offset| of the shown motion beats after 10 s, ms)", title_justify="left")
    for col in ("grid", "dance", "median", "re-aligned", "within 70 ms", "hit: share / median", "moved", "other", "resyncs"):
        tab.add_column(col, justify="left" if col == "grid" else "right")
    for grid in grids:
        sub = [r for r in rows if r["grid"] == grid]
        for r in sub + [None]:
            if r is None:
                if len(sub) < 2:
                    continue
                r = {k: float(np.mean([x[k] for x in sub])) for k in sub[0] if k not in ("seed", "grid")}
                r["seed"], r["grid"] = "mean", grid
            tab.add_row(grid, str(r["seed"]), f"{r['median_ms']:.1f}", f"{r['aligned_median_ms']:.1f}",
                        f"{100 * r['within_70ms']:.0f} %",
                        f"{100 * r['hit_share']:.0f} % / {r['hit_median_ms']:.1f}",
                        f"{100 * r['moved_share']:.0f} % / {r['moved_median_ms']:.1f}",
                        f"{100 * r['other_share']:.0f} % / {r['other_median_ms']:.1f}", f"{r['resyncs']:.0f}")
    Console().print(tab)
    if args.json:
        Path(args.json).write_text(json.dumps({"warp": warp_kw, "tracker": tracker_kw, "seconds": seconds, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
