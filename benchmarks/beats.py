"""Beat tracking figures, side by side: our causal tracker, plain aubio, librosa offline.

    .venv/bin/python benchmarks/beats.py [--data ../shared/data] [--json out.json] [--tang] [--no-ablations] [--reaction]

For each clip in ``<data>/beats`` (annotations ``time<TAB>position``), the CC song
``<data>/music/muldjord-armygeddon/song.ogg`` (beat grid from its MIDI tempo map, checked against
the audio: median offset of the onset peaks from the grid is printed) and synthetic jack_metro-style
click tracks, it prints mir_eval F-measure (70 ms) of

* ours: :class:`livedance.beats.BeatTracker` (causal; a beat counts at max(predicted time,
  announcement time)),
* aubio: ``aubio.tempo("default", 1024, 512, sr)`` as is (causal; a beat counts at the end of the
  hop that reported it, since that is when a live consumer hears of it; "aubio@label" scores the
  time aubio writes on the beat, get_last_s(), which is up to 4 hops in the past),
* librosa: ``librosa.beat.beat_track`` on the whole file (offline, non-causal reference),

untrimmed (every beat, the headline) and trimmed (mir_eval.beat.trim_beats: beats before 5 s
dropped), plus for ours the time from the music start to the first correct beat, the tempo settling
time (from the music start until the announced tempo stays within 4 % of the reference) and the
downbeat F-measure where annotations have bar positions. A second table gives ablations.

"1st correct beat s" is counted from the music start (first 10 ms above -50 dBFS); the extra column
"after 1st silence s" counts from the end of the first silence (>= 1 s of 10 ms frames below -50 dBFS)
before that beat, i.e. from when the sound resumed (armygeddon: a quiet intro, then 4.2 s of silence
until 5.50 s; a second one, 10.03-11.26 s, is not used); where there is none it equals the first column.
"ms/hop" is the tracker's wall time per 11.6 ms analysis hop (single thread).

A last table, the reaction table (alone with ``--reaction``, about 1 CPU-minute), is the live show's case
offline: 6 s of digital silence, then 30 s of each real clip (armygeddon from 60 s of the song, the
annotated clips from 0 s; reference beats shifted with them), then 2 s of silence. It gives the seconds
from the sound's start to the first beat that starts a run of 4 correct beats (each within 70 ms of a
reference beat, its tempo within 4 % of the reference there), to the first correct beat, and to the
tempo settling, plus F over the whole file.

``--grid-error`` (alone, about 1 CPU-minute; needs the CC song) prints the phase accuracy of the grid a
live consumer extrapolates: the distance of the tracker's predicted next beat (every 2048-sample push
with confidence >= 0.1) to the nearest MIDI beat of Armygeddon, median and 90th percentile over the full
song after 20 s (also against the MIDI grid re-aligned to the recording's local drift,
``livedance.beats.scoring.align_grid_to_onsets``: the chart is one constant tempo, the performed
recording runs +-20 ms around it section by section), and per second over the first 8 s after the sound
returns on the reaction file (6 s of silence, then the song from 60 s); for the default and the phase
variants of docs/beats.md.

``--tang`` adds the sanity set: the first 40 s of the first 10 Tang et al. 2018 songs
(``<data>/dance-tang2018/*/audio.mp3``) scored against librosa's offline beats (a tempo sanity
reference, not ground truth), mean F for the default and the main variants.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from livedance.beats import BeatTracker, TempoConfig, TrackerConfig, track
from livedance.beats import scoring as S
from livedance.beats.clicks import click_track
from livedance.data.audio_io import load_audio

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def aubio_plain(audio: np.ndarray, sr: int, hop: int = 512, win: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """aubio's default tempo tracker, causal. Returns (labelled beat times, report times), seconds."""
    import aubio

    t = aubio.tempo("default", win, hop, sr)
    n = len(audio) // hop
    x = np.ascontiguousarray(audio[: n * hop], dtype=np.float32)
    labels, reports = [], []
    for i in range(n):
        if t(x[i * hop : (i + 1) * hop])[0]:
            labels.append(float(t.get_last_s()))
            reports.append((i + 1) * hop / sr)
    return np.asarray(labels), np.asarray(reports)


def librosa_offline(audio: np.ndarray, sr: int) -> np.ndarray:
    """librosa.beat.beat_track beat times (seconds) on the whole signal."""
    import librosa

    _, times = librosa.beat.beat_track(y=audio, sr=sr, units="time")
    return np.asarray(times, dtype=np.float64)


def grid_offset_s(audio: np.ndarray, sr: int, grid: np.ndarray) -> float:
    """Median offset (s) of the onset-envelope peak within +-1/2 beat of each grid beat (positive: audio late)."""
    from livedance.beats.onset import onset_envelope
    from livedance.data.audio_io import resample

    y = resample(audio, sr, 44100)
    env = onset_envelope(y, 44100)[:, 0]
    fps = 44100 / 512
    period = float(np.median(np.diff(grid)))
    offs = []
    for g in grid[4:-4]:
        lo, hi = int((g - period / 2) * fps), int((g + period / 2) * fps)
        if hi >= len(env) or lo < 0:
            continue
        k = lo + int(np.argmax(env[lo:hi]))
        offs.append((k + 1) * 512 / 44100 - g)  # frame k ends at sample (k+1)*hop
    return float(np.median(offs)) if offs else float("nan")


def clips(data: Path) -> list[dict]:
    """Load every clip: name, audio, sr, reference beats, reference downbeats (or None), ref bpm."""
    out = []
    beats_dir = data / "beats"
    for wav in sorted(beats_dir.glob("*.wav")) if beats_dir.is_dir() else []:
        audio, sr = load_audio(wav)
        ref, pos = S.load_beat_annotations(wav.with_suffix(".beats"))
        downs = ref[pos == 1] if (pos > 0).any() else None
        out.append(dict(name=wav.stem, audio=audio, sr=sr, ref=ref, downs=downs, note="human annotations"))
    song = data / "music" / "muldjord-armygeddon" / "song.ogg"
    if song.is_file():
        audio, sr = load_audio(song)
        grid = S.midi_beat_grid(song.with_name("notes.mid"), len(audio) / sr)
        off = grid_offset_s(audio, sr, grid)
        out.append(dict(name="armygeddon (full song)", audio=audio, sr=sr, ref=grid, downs=None,
                        note=f"MIDI tempo map; onsets {1000 * off:+.0f} ms from grid"))
    for bpm in (60.0, 120.0, 174.0):
        audio, ref = click_track(bpm, 30.0, 44100, start_s=0.5)
        out.append(dict(name=f"jack_metro-style {bpm:.0f} BPM", audio=audio, sr=44100, ref=ref, downs=None,
                        note="synthetic 880 Hz clicks"))
    return out


def sound_resumes_s(audio: np.ndarray, sr: int, before_s: float, min_gap_s: float = 1.0,
                    threshold_db: float = -50.0) -> float:
    """End (s) of the first silence of >= ``min_gap_s`` (10 ms RMS below ``threshold_db`` dBFS) after the
    music start that ends before ``before_s``; the music start if there is none."""
    n = max(1, int(sr * 0.01))
    m = len(audio) // n
    rms = np.sqrt(np.mean(np.asarray(audio[: m * n], np.float64).reshape(m, n) ** 2, axis=1))
    quiet = rms <= 10 ** (threshold_db / 20)
    start = S.music_start_s(audio, sr, threshold_db)
    out, run = start, 0
    for i, q in enumerate(quiet):
        t = i * n / sr
        if t >= before_s:
            break
        if q:
            run += 1
        else:
            if run * n / sr >= min_gap_s and t > start:
                return t
            run = 0
    return out


def reaction_clips(items: list[dict], lead_s: float = 6.0, body_s: float = 30.0, tail_s: float = 2.0) -> list[dict]:
    """The live show's reaction case, offline: ``lead_s`` of digital silence, ``body_s`` of a clip, ``tail_s``
    of silence. Armygeddon's body starts at 60 s of the song (its MIDI grid shifted with it), the
    annotated clips at 0 s; the reference beats are those of the body, on the new clock."""
    out = []
    for c in items:
        if c["name"].startswith("jack_metro"):
            continue
        sr = c["sr"]
        off = 60.0 if c["name"].startswith("armygeddon") else 0.0
        body = c["audio"][int(off * sr) : int((off + body_s) * sr)]
        dur = len(body) / sr
        audio = np.concatenate([np.zeros(int(lead_s * sr), np.float32), body, np.zeros(int(tail_s * sr), np.float32)])
        ref = c["ref"][(c["ref"] >= off) & (c["ref"] < off + dur)] - off + int(lead_s * sr) / sr
        name = c["name"].split(" (")[0] + (f" from {off:.0f} s" if off else "")
        out.append(dict(name=name, audio=audio, sr=sr, ref=ref, start=int(lead_s * sr) / sr))
    return out


def first_locked_beat_s(events: list, ref: np.ndarray, run: int = 4, window_s: float = S.F_WINDOW_S,
                        tolerance: float = 0.04) -> float:
    """Time (stream s, at max(time_s, reported_at_s)) of the first announced beat that starts a run of ``run``
    consecutive correct beats: each within ``window_s`` of a reference beat, its bpm within ``tolerance``
    of the reference tempo there (60 / the reference inter-beat interval at that beat); nan if none."""
    at = S.announced_times(events)
    ok = np.zeros(len(events), dtype=bool)
    for i, (e, t) in enumerate(zip(events, at)):
        k = int(np.argmin(np.abs(ref - t))) if ref.size else -1
        if k < 0 or abs(ref[k] - t) > window_s:
            continue
        ibi = ref[k + 1] - ref[k] if k + 1 < ref.size else ref[k] - ref[k - 1]
        ok[i] = abs(e.bpm * ibi / 60.0 - 1.0) <= tolerance
    for i in range(len(events) - run + 1):
        if ok[i : i + run].all():
            return float(at[i])
    return float("nan")


def score_reaction(c: dict, cfg: TrackerConfig) -> dict:
    """Reaction figures of one config on one :func:`reaction_clips` item: seconds from the sound's start to
    the first beat of a run of 4 correct ones, to the tempo settling, and F over the body."""
    cfg.sample_rate = c["sr"]
    events = track(c["audio"], cfg)
    ref_bpm = 60.0 / float(np.median(np.diff(c["ref"])))
    return dict(lock=first_locked_beat_s(events, c["ref"]) - c["start"],
                first=S.first_correct_beat_s(c["ref"], S.announced_times(events)) - c["start"],
                settle=S.tempo_settling_s(events, ref_bpm) - c["start"],
                F=S.f_measure(c["ref"], S.announced_times(events)))


def reaction_table(items: list[dict], configs: dict[str, TrackerConfig], console) -> dict:
    """Print the reaction table (6 s silence + 30 s of each real clip) for ``configs``; returns the figures."""
    from rich.table import Table

    rc = reaction_clips(items)
    if not rc:
        console.print("[yellow]no real clips: reaction table skipped[/]")
        return {}
    table = Table(title="Reaction: 6 s digital silence + 30 s of the clip; seconds from the sound's start "
                        "(lock = first of 4 correct beats in a row, 70 ms and tempo within 4 %)")
    for col in ("clip", "variant", "lock s", "1st correct beat s", "tempo settled s", "F (body)"):
        table.add_column(col, justify="left" if col in ("clip", "variant") else "right")
    f = lambda v: "-" if v != v else f"{v:.2f}"  # noqa: E731
    out: dict[str, dict] = {}
    for c in rc:
        for name, cfg in configs.items():
            r = score_reaction(c, cfg)
            out.setdefault(name, {})[c["name"]] = r
            table.add_row(c["name"], name, f(r["lock"]), f(r["first"]), f(r["settle"]), f(r["F"]))
    console.print(table)
    return out


def reaction_configs() -> dict[str, TrackerConfig]:
    """Configurations of the reaction table."""
    return {"default": TrackerConfig(),
            "before session 7 (switch 1.5 s, octave_challenger off)": TrackerConfig(
                tempo=TempoConfig(octave_challenger=False, switch_time_s=1.5)),
            "both off (before session 6)": TrackerConfig(young_phase_decay=0.0, phase_switch_beats=0.0),
            "fixed hysteresis (young_time_s 0; no young phase options either)": TrackerConfig(tempo=TempoConfig(young_time_s=0.0)),
            "+ young smoothing (young_smooth)": TrackerConfig(tempo=TempoConfig(young_smooth=True)),
            "bank (gamma 1)": TrackerConfig(tempo=TempoConfig(bank_gamma=1.0))}


def bank_configs() -> dict[str, TrackerConfig]:
    """The multi-hypothesis bank variants (third follow-up): gamma 1, and with the fast-lock warm-up."""
    return {
        "bank (gamma 1)": TrackerConfig(tempo=TempoConfig(bank_gamma=1.0)),
        "bank + fast lock": TrackerConfig(tempo=TempoConfig(bank_gamma=1.0), bank_lead_full=0.5),
    }


def grid_error_configs() -> dict[str, TrackerConfig]:
    """Configurations of the ``--grid-error`` table (phase settings tried in docs/beats.md)."""
    return {"default": TrackerConfig(), "young_phase_decay 0": TrackerConfig(young_phase_decay=0.0),
            "phase_switch_beats 0": TrackerConfig(phase_switch_beats=0.0),
            "both off (before session 6)": TrackerConfig(young_phase_decay=0.0, phase_switch_beats=0.0),
            "young_period_search 0.03": TrackerConfig(young_period_search=0.03),
            "phase_decay 0.95": TrackerConfig(phase_decay=0.95),
            "K 24, decay 0.95": TrackerConfig(phase_beats=24, phase_decay=0.95),
            "odf_power 2": TrackerConfig(odf_power=2.0), "period_search 0.02": TrackerConfig(period_search=0.02)}


def next_beat_predictions(audio: np.ndarray, sr: int, cfg: TrackerConfig, block: int = 2048) -> np.ndarray:
    """(n, 2) float64 rows (stream time s, predicted next beat s), one per pushed block whose confidence is
    >= 0.1 (what a live consumer would extrapolate from)."""
    cfg.sample_rate = sr
    tr = BeatTracker(cfg)
    rows = []
    for i in range(0, len(audio), block):
        tr.push(audio[i : i + block])
        b = tr.predict_beats(1, tr.time_s - 0.2) if tr.confidence >= 0.1 else np.zeros(0)
        if b.size:
            rows.append((tr.time_s, float(b[0])))
    return np.asarray(rows).reshape(-1, 2)


def nearest_error(pred: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(n,) predicted beat minus the nearest reference beat, seconds."""
    j = np.clip(np.searchsorted(grid, pred), 1, len(grid) - 1)
    left, right = grid[j - 1], grid[j]
    return np.where(np.abs(pred - left) < np.abs(pred - right), pred - left, pred - right)


def grid_error_table(data: Path, configs: dict[str, TrackerConfig], console) -> dict | None:
    """The ``--grid-error`` table (module docstring); None without the CC song."""
    from rich.table import Table

    song = data / "music" / "muldjord-armygeddon" / "song.ogg"
    if not song.is_file():
        console.print(f"[yellow]{song} not found: grid-error table skipped[/]")
        return None
    audio, sr = load_audio(song)
    grid = S.midi_beat_grid(song.with_name("notes.mid"), len(audio) / sr + 1.0)
    aligned, _ = S.align_grid_to_onsets(grid, audio, sr)
    lead, off, body = 6.0, 60.0, 30.0
    x, _ = load_audio(song, offset_s=off, duration_s=body)
    react = np.concatenate([np.zeros(int(lead * sr), np.float32), x.astype(np.float32)])
    rgrid = grid[(grid >= off) & (grid < off + body)] - off + lead
    table = Table(title="Predicted next beat vs Armygeddon's MIDI grid, |error| ms (confidence >= 0.1); "
                        "'aligned': vs the grid re-aligned to the recording's local drift")
    for col in ("config", "full song median", "full song p90", "aligned median", "aligned p90",
                *(f"{k}-{k + 1} s" for k in range(1, 8))):
        table.add_column(col, justify="left" if col == "config" else "right")
    out = {}
    for name, cfg in configs.items():
        full = next_beat_predictions(audio.astype(np.float32), sr, cfg)
        late = full[full[:, 0] > 20.0, 1]
        e, ea = np.abs(nearest_error(late, grid)), np.abs(nearest_error(late, aligned))
        r = next_beat_predictions(react, sr, cfg)
        re = nearest_error(r[:, 1], rgrid) if len(r) else np.zeros(0)
        early = []
        for k in range(1, 8):
            m = (r[:, 0] >= lead + k) & (r[:, 0] < lead + k + 1)
            early.append(float(np.median(np.abs(re[m]))) if m.any() else float("nan"))
        out[name] = dict(median_s=float(np.median(e)), p90_s=float(np.percentile(e, 90)),
                         aligned_median_s=float(np.median(ea)), aligned_p90_s=float(np.percentile(ea, 90)), early_s=early)
        table.add_row(name, f"{1000 * out[name]['median_s']:.1f}", f"{1000 * out[name]['p90_s']:.1f}",
                      f"{1000 * out[name]['aligned_median_s']:.1f}", f"{1000 * out[name]['aligned_p90_s']:.1f}",
                      *(f"{1000 * v:.0f}" for v in early))
    console.print(table)
    return out


def tang_configs() -> dict[str, TrackerConfig]:
    """Configurations scored on the Tang sanity set."""
    return {"default": TrackerConfig(),
            "octave_challenger off": TrackerConfig(tempo=TempoConfig(octave_challenger=False)),
            "before session 7 (switch 1.5 s, octave_challenger off)": TrackerConfig(
                tempo=TempoConfig(octave_challenger=False, switch_time_s=1.5)),
            "both off (before session 6)": TrackerConfig(young_phase_decay=0.0, phase_switch_beats=0.0),
            "old default (no cap, no reset)": TrackerConfig(adaptive_cap=0.0, silence_reset_s=0.0),
            "young off (fixed hysteresis)": TrackerConfig(tempo=TempoConfig(young_time_s=0.0)), **bank_configs()}


def hop_cost(audio: np.ndarray, sr: int, configs: dict[str, TrackerConfig]) -> dict[str, tuple[float, float]]:
    """Wall time per analysis hop (ms): median and 99th percentile, pushing one hop at a time."""
    out = {}
    for name, cfg in configs.items():
        cfg.sample_rate = sr
        tr = BeatTracker(cfg)
        hop = int(round(cfg.hop * sr / 44100))
        times = []
        for i in range(0, len(audio) - hop, hop):
            t0 = time.perf_counter()
            tr.push(audio[i : i + hop])
            times.append(time.perf_counter() - t0)
        ms = 1000 * np.asarray(times[20:])
        out[name] = (float(np.median(ms)), float(np.percentile(ms, 99)))
    return out


def score_ours(c: dict, cfg: TrackerConfig) -> dict:
    t0 = time.perf_counter()
    events = track(c["audio"], cfg)
    elapsed = time.perf_counter() - t0
    at = S.announced_times(events)
    start = S.music_start_s(c["audio"], c["sr"])
    ref_bpm = 60.0 / float(np.median(np.diff(c["ref"])))
    first_abs = S.first_correct_beat_s(c["ref"], at)
    first = first_abs - start
    first_resume = first_abs - sound_resumes_s(c["audio"], c["sr"], first_abs) if first_abs == first_abs else first_abs
    settle = S.tempo_settling_s(events, ref_bpm) - start
    down_f = float("nan")
    if c["downs"] is not None:
        down_f = S.f_measure(c["downs"], np.asarray([max(e.time_s, e.reported_at_s) for e in events if e.is_downbeat]))
    n_hops = len(c["audio"]) / c["sr"] * 44100 / cfg.hop
    return dict(F=S.f_measure(c["ref"], at), Ft=S.f_measure(c["ref"], at, trim=True), first=first,
                first_resume=first_resume, settle=settle, ms_per_hop=1000 * elapsed / n_hops,
                bpm=float(np.median([e.bpm for e in events])) if events else 0.0, ref_bpm=ref_bpm, down_F=down_f,
                rtf=elapsed / (len(c["audio"]) / c["sr"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    ap.add_argument("--tang", action="store_true", help="also score the Tang sanity set (about 2 CPU-minutes)")
    ap.add_argument("--no-ablations", action="store_true", help="skip the ablation table")
    ap.add_argument("--grid-error", action="store_true",
                    help="only the next-beat phase error against Armygeddon's MIDI grid (about 1 CPU-minute)")
    ap.add_argument("--reaction", action="store_true",
                    help="only the reaction table (6 s silence + 30 s of each real clip; about 1 CPU-minute)")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    if args.grid_error:
        ge = grid_error_table(args.data, grid_error_configs(), console)
        if args.json:
            args.json.write_text(json.dumps(dict(grid_error=ge), indent=1, default=float))
        return
    items = clips(args.data)
    if args.reaction:
        rea = reaction_table(items, reaction_configs(), console)
        if args.json:
            args.json.write_text(json.dumps(dict(reaction=rea), indent=1, default=float))
        return
    if not any(c["note"] != "synthetic 880 Hz clicks" for c in items):
        console.print(f"[yellow]no real clips under {args.data}: only synthetic click tracks[/]")
    table = Table(title="Beat tracking, mir_eval F-measure (70 ms); untrimmed | trimmed (beats < 5 s dropped)")
    for col in ("clip", "ours F", "ours F trim", "aubio F", "aubio F trim", "aubio@label F", "librosa F (offline)",
                "librosa F trim", "1st correct beat s", "after 1st silence s", "tempo settled s", "bpm ours/ref",
                "downbeat F", "RTF", "ms/hop", "reference"):
        table.add_column(col, justify="left" if col in ("clip", "reference") else "right")
    abl = Table(title="Ablations of ours (F untrimmed)")
    variants = {
        "default": TrackerConfig(),
        "octave_challenger off": TrackerConfig(tempo=TempoConfig(octave_challenger=False)),
        "before session 7 (switch 1.5 s, octave_challenger off)": TrackerConfig(
            tempo=TempoConfig(octave_challenger=False, switch_time_s=1.5)),
        "young_phase_decay 0": TrackerConfig(young_phase_decay=0.0),
        "phase_switch_beats 0": TrackerConfig(phase_switch_beats=0.0),
        "both off (before session 6)": TrackerConfig(young_phase_decay=0.0, phase_switch_beats=0.0),
        "no aubio hint": TrackerConfig(use_aubio=False),
        "no low-band tempo weight": TrackerConfig(low_weight=0.0),
        "min_confidence 0.2": TrackerConfig(min_confidence=0.2),
        "clip 10 dB + z 2 + warm 4": TrackerConfig(max_rise_db=10.0, strength_z=2.0, warm_beats=4.0),
        "old default (no cap, no reset)": TrackerConfig(adaptive_cap=0.0, silence_reset_s=0.0),
        "no adaptive cap": TrackerConfig(adaptive_cap=0.0),
        "no silence reset": TrackerConfig(silence_reset_s=0.0),
        "+ z 2 + warm 4": TrackerConfig(strength_z=2.0, warm_beats=4.0),
        "switch 1.5 s (before session 7)": TrackerConfig(),
        "+ switch 0.75 s": TrackerConfig(),
        "young off (fixed hysteresis)": TrackerConfig(tempo=TempoConfig(young_time_s=0.0)),
    }
    variants["+ switch 0.75 s"].tempo.switch_time_s = 0.75
    variants["switch 1.5 s (before session 7)"].tempo.switch_time_s = 1.5
    variants.update(bank_configs())
    for col in ("clip", *variants):
        abl.add_column(col, justify="left" if col == "clip" else "right")
    bank_names = set(bank_configs())
    bank_tab = Table(title="Bank variants (third follow-up): F and start-up, same definitions as the first table")
    for col in ("clip", "variant", "F", "F trim", "1st correct beat s", "after 1st silence s", "tempo settled s",
                "bpm ours/ref"):
        bank_tab.add_column(col, justify="left" if col in ("clip", "variant") else "right")
    results = []
    f = lambda v: "-" if v != v else f"{v:.2f}"  # noqa: E731 (nan -> "-")
    for c in items:
        sr = c["sr"]
        ours = score_ours(c, TrackerConfig(sample_rate=sr))
        lab, rep = aubio_plain(c["audio"], sr)
        aub_at = np.maximum(lab, rep)
        lib = librosa_offline(c["audio"], sr)
        row = dict(clip=c["name"], ours=ours,
                   aubio=dict(F=S.f_measure(c["ref"], aub_at), Ft=S.f_measure(c["ref"], aub_at, True),
                              F_label=S.f_measure(c["ref"], lab)),
                   librosa=dict(F=S.f_measure(c["ref"], lib), Ft=S.f_measure(c["ref"], lib, True)))
        table.add_row(c["name"], f(ours["F"]), f(ours["Ft"]), f(row["aubio"]["F"]), f(row["aubio"]["Ft"]),
                      f(row["aubio"]["F_label"]), f(row["librosa"]["F"]), f(row["librosa"]["Ft"]),
                      f(ours["first"]), f(ours["first_resume"]), f(ours["settle"]),
                      f"{ours['bpm']:.1f}/{ours['ref_bpm']:.1f}", f(ours["down_F"]), f"{ours['rtf']:.3f}",
                      f"{ours['ms_per_hop']:.2f}", c["note"])
        abl_row = {}
        for name, cfg in ({} if args.no_ablations else variants).items():
            cfg.sample_rate = sr
            if name in bank_names:  # the start-up figures of the bank variants go into their own table
                b = score_ours(c, cfg)
                abl_row[name] = b["F"]
                bank_tab.add_row(c["name"], name, f(b["F"]), f(b["Ft"]), f(b["first"]), f(b["first_resume"]),
                                 f(b["settle"]), f"{b['bpm']:.1f}/{b['ref_bpm']:.1f}")
                continue
            abl_row[name] = ours["F"] if name == "default" else S.f_measure(c["ref"], S.announced_times(track(c["audio"], cfg)))
        if abl_row:
            abl.add_row(c["name"], *(f(v) for v in abl_row.values()))
        row["ablations"] = abl_row
        results.append(row)
    console.print(table)
    if not args.no_ablations:
        console.print(abl)
        console.print(bank_tab)
    console.print("1st correct beat / tempo settled: seconds after the music start (first 10 ms RMS above -50 dBFS); "
                  "'-' = never. RTF: tracker wall time / audio duration (single thread).")
    real = [c for c in items if not c["name"].startswith("jack_metro")] or items
    cost = hop_cost(real[0]["audio"], real[0]["sr"], {"default": TrackerConfig(), **bank_configs()})
    console.print(f"Per-hop cost on {real[0]['name']} (one 11.6 ms hop per push, single thread; median / 99th "
                  "percentile ms): " + "; ".join(f"{k} {a:.2f} / {b:.2f}" for k, (a, b) in cost.items()))
    rea = reaction_table(items, reaction_configs(), console)
    tang = tang_sanity(args.data, console) if args.tang else None
    if args.json:
        args.json.write_text(json.dumps(dict(clips=results, tang=tang, hop_cost_ms=cost, reaction=rea), indent=1,
                                        default=float))


def tang_sanity(data: Path, console) -> dict | None:
    """Mean F (70 ms) of the first 40 s of the first 10 Tang songs against librosa's offline beats."""
    from rich.table import Table

    songs = sorted(p for p in (data / "dance-tang2018").glob("*/audio.mp3"))[:10]
    if not songs:
        console.print(f"[yellow]no Tang songs under {data / 'dance-tang2018'}: sanity set skipped[/]")
        return None
    configs = tang_configs()
    table = Table(title="Sanity set: first 40 s of 10 Tang songs, F vs librosa offline beats (not ground truth)")
    for col in ("song", *configs):
        table.add_column(col, justify="left" if col == "song" else "right")
    out: dict[str, dict[str, float]] = {name: {} for name in configs}
    for song in songs:
        audio, sr = load_audio(song, duration_s=40.0)
        ref = librosa_offline(audio, sr)
        for name, cfg in configs.items():
            cfg.sample_rate = sr
            out[name][song.parent.name] = S.f_measure(ref, S.announced_times(track(audio, cfg)))
        table.add_row(song.parent.name, *(f"{out[n][song.parent.name]:.2f}" for n in configs))
    table.add_row("mean", *(f"{np.mean(list(out[n].values())):.3f}" for n in configs))
    console.print(table)
    return out


if __name__ == "__main__":
    main()
