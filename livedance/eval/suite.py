"""The evaluation table: FIDk, FIDg, Divk, Divg, BAS and PFC for sets of dances.

One row scores one set of dances (:class:`EvalClip`) against a reference set of real dances:

- FIDk / FIDg: kinetic / geometric features of the first 20 s of each dance (root-anchored, see
  :mod:`livedance.eval.window`), z-normalised with the reference set's mean and std, then the
  Fréchet distance between the row's set and the reference set (Bailando's protocol);
- Divk / Divg: mean pairwise distance of the row's normalised features;
- BAS: mean over clips of the Beat Align Score of the whole clip against the music beats inside the excerpt it was
  paired with (Bailando's whole-song percussive beat tracking, :mod:`livedance.eval.music_beats`); clips without
  music beats are left out;
- PFC: mean over clips of EDGE's physical foot contact score over the same first 20 s (it depends on the length);
- MM-Dist / R@1 (when a retrieval model is given): how well each dance belongs to the music it is paired with,
  by a SoulNet-style contrastive music-dance retrieval model over the same first 20 s (:mod:`livedance.eval.alignment`).

Every clip is first resampled (linear interpolation) to the evaluation frame rate, so all rows see
the same rate.

:func:`evaluate` builds the reference rows that every run shows: "ground truth" (the split's real
dances) and "real dance, wrong song" (the same dances, each paired with another clip's music by a
seeded derangement: only BAS, MM-Dist and R@1 can change), plus optional rows for generated motions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from livedance.errors import DataError
from livedance.eval.alignment import ALIGNMENT_NAMES
from livedance.eval.beat_align import clip_beat_align_score
from livedance.eval.diversity import average_pairwise_distance
from livedance.eval.fid import fid, normalize_with_reference
from livedance.eval.geometric import geometric_features
from livedance.eval.kinetic import kinetic_features
from livedance.eval.music_beats import MusicBeatCache
from livedance.eval.pfc import physical_foot_contact
from livedance.eval.window import PROTOCOL_SECONDS, check_positions, protocol_window, resample_positions

#: Metric columns of the table, in order.
METRIC_NAMES = ("FIDk", "FIDg", "Divk", "Divg", "BAS", "PFC")


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation run.

    Attributes:
        fps: evaluation frame rate (frames per second); every clip is resampled to it.
        seconds: length of the excerpt that FID/Div features read (20 s = 1200 frames at 60 fps).
        seed: seed of the "wrong song" derangement.
        kinetic_ee: energy expenditure of the kinetic features: ``"physical"`` (default) or ``"upstream"`` (the
            reference code's precedence slip, for published FIDk; :mod:`livedance.eval.kinetic`).
        skeleton: the body the real dances (the split's and the reference's) are scored on: ``"shared"`` (default)
            renders each by FK of its own joint rotations and root path on one skeleton, the mean of the reference
            dancers' rest offsets, which with the train split as the reference (the protocol) is the skeleton the
            generators decode onto (their representation's; another reference split gives its own mean); as
            Bailando's protocol scores every row on one SMPL body, so a dancer's size (bone lengths differ by up
            to 10 % between the Tang dancers, and kinetic energies grow with their square) is not counted as
            diversity of the real rows only. ``"own"``: each dancer's own skeleton (the protocol before session
            24). Motions without joint rotations (generated, read from files) keep their positions either way.
    """

    fps: float = 25.0
    seconds: float = PROTOCOL_SECONDS
    seed: int = 0
    kinetic_ee: str = "physical"
    skeleton: str = "shared"


@dataclass(frozen=True)
class EvalClip:
    """One dance with the music it is scored against.

    Attributes:
        name: identifier shown in per-clip output.
        positions: (T, 24, 3) SMPL-24 joint positions, metres, y up.
        fps: frame rate of ``positions``.
        audio_path: the song.
        audio_offset_s: song time (s) of frame 0.
        beat_aligned: whether the clip's timing against its music is trusted (BAS uses the
            beat-aligned clips of a set whenever it has any).
    """

    name: str
    positions: np.ndarray
    fps: float
    audio_path: Path
    audio_offset_s: float
    beat_aligned: bool = True

    @property
    def duration_s(self) -> float:
        """Length in seconds, T / fps."""
        return self.positions.shape[0] / self.fps

    @classmethod
    def from_clip(cls, clip: Any, rest_offsets: np.ndarray | None = None) -> "EvalClip":
        """From any object with ``name, positions, fps, audio_path, audio_offset_s`` (and optionally
        ``beat_aligned``), e.g. a dataset ``MotionClip`` or a :class:`~livedance.eval.motion_io.MotionFile`.

        Args:
            clip: the dance.
            rest_offsets: (22, 3) metres: render a clip that has ``local_rotmats`` (T, 22, 3, 3) and
                ``root_translation`` (T, 3) on this skeleton by FK (:func:`~livedance.data.dataset.smpl24_positions`)
                instead of taking its ``positions``; None, or a clip without rotations, keeps ``positions``.
        """
        positions = clip.positions
        rotmats, root = getattr(clip, "local_rotmats", None), getattr(clip, "root_translation", None)
        if rest_offsets is not None and rotmats is not None and root is not None:
            from livedance.data.dataset import smpl24_positions

            positions = smpl24_positions(rotmats, root, rest_offsets)
        return cls(
            name=str(clip.name),
            positions=np.asarray(positions),
            fps=float(clip.fps),
            audio_path=Path(clip.audio_path),
            audio_offset_s=float(clip.audio_offset_s),
            beat_aligned=bool(getattr(clip, "beat_aligned", True)),
        )

    def at_fps(self, fps: float) -> "EvalClip":
        """This clip resampled to ``fps`` (linear interpolation; frame 0 keeps its song time).

        Raises:
            DataError: bad positions (shape, NaN/inf, naming the clip and frame) or frame rate.
        """
        pos = check_positions(self.positions, f"clip {self.name}")
        if self.fps != fps:
            pos = resample_positions(pos, self.fps, fps)
        return EvalClip(self.name, pos, float(fps), self.audio_path, self.audio_offset_s, self.beat_aligned)


def shared_skeleton(reference_clips: Sequence[Any]) -> np.ndarray | None:
    """The one skeleton real dances are scored on (``EvalConfig.skeleton == "shared"``).

    Args:
        reference_clips: the FID reference's dances (the train split), each with ``rest_offsets`` (22, 3) metres.
    Returns:
        (22, 3) float32 metres, the mean of their rest offsets (the same mean that
        :meth:`~livedance.model.representation.Representation.fit` keeps as the generators' canonical skeleton),
        or None when a clip has no ``rest_offsets`` (positions only: nothing to re-render).
    """
    offs = [getattr(c, "rest_offsets", None) for c in reference_clips]
    if not offs or any(o is None for o in offs):
        return None
    return np.mean([np.asarray(o, np.float64) for o in offs], axis=0).astype(np.float32)


@dataclass
class FeatureSet:
    """Per-clip features of a set of N clips (all at the evaluation rate).

    Attributes:
        names: N clip names.
        kinetic: (N, 72) float64 kinetic features.
        geometric: (N, 32) float64 geometric features.
        pfc: (N,) PFC per clip (EDGE units, x 10^4).
    """

    names: list[str]
    kinetic: np.ndarray
    geometric: np.ndarray
    pfc: np.ndarray


@dataclass
class MetricRow:
    """One row of the evaluation table.

    Attributes:
        label: row name ("ground truth", ...).
        n_clips: number of dances in the set.
        metrics: ``METRIC_NAMES`` -> value (NaN where undefined), then ``ALIGNMENT_NAMES`` -> value when the run
            had a retrieval model.
        bas_clips: number of clips that BAS averaged over.
        beat_aligned: number of clips flagged beat-aligned (None when the set has no such flag).
        notes: free-text remarks (which clips BAS used, the reference set).
        per_clip: per clip: name, BAS, PFC, the music it was scored against, its MM-Dist (with a retrieval model:
            which dance fits its music least), and its largest kinetic
            and geometric z-score against the FID reference with the feature it occurs on
            (``max_zk``, ``max_zk_feature``, ``max_zg``, ``max_zg_feature``; :func:`feature_outliers`).
    """

    label: str
    n_clips: int
    metrics: dict[str, float]
    bas_clips: int
    beat_aligned: int | None = None
    notes: list[str] = field(default_factory=list)
    per_clip: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not np.isfinite(v):
                return None
            return v

        return {
            "label": self.label,
            "n_clips": self.n_clips,
            **{k: clean(float(v)) for k, v in self.metrics.items()},
            "bas_clips": self.bas_clips,
            "beat_aligned": self.beat_aligned,
            "notes": list(self.notes),
            "per_clip": [{k: clean(v) for k, v in c.items()} for c in self.per_clip],
        }


def derangement(n: int, seed: int, keys: Sequence[Any] | None = None, max_tries: int = 10_000) -> np.ndarray:
    """A seeded random permutation without fixed points (deterministic for a given ``seed``).

    Args:
        n: number of items, >= 2.
        seed: seed of ``numpy.random.default_rng``.
        keys: optional (n,) labels (e.g. the songs); a permutation is then also required to map no
            item to another with the same key, when such a permutation is found within
            ``max_tries`` draws (else only fixed points are excluded).
        max_tries: rejection-sampling budget.

    Returns:
        (n,) int64 permutation ``perm`` with ``perm[i] != i`` for all i.

    Raises:
        DataError: n < 2 (no derangement exists).
    """
    if n < 2:
        raise DataError(f"a wrong-song pairing needs at least 2 clips, got {n}")
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    first_plain: np.ndarray | None = None
    for _ in range(max_tries):
        perm = rng.permutation(n)
        if np.any(perm == idx):
            continue
        if keys is None or all(keys[i] != keys[perm[i]] for i in range(n)):
            return perm.astype(np.int64)
        if first_plain is None:
            first_plain = perm.astype(np.int64)
    if first_plain is not None:
        return first_plain
    # Unreachable in practice (the chance of a derangement is about 1/e per draw); a cyclic shift.
    return np.roll(idx, 1).astype(np.int64)


def _song_key(path: Path) -> str:
    """Identity of a song for the wrong-song pairing: the sha1 of the file's bytes (so two copies of
    one recording in different folders count as the same song), or its path if unreadable. Each file is
    read once per run of the process while its size and modification time stay the same."""
    p = Path(path).resolve()
    try:
        st = p.stat()
        return _file_sha1(str(p), st.st_size, st.st_mtime_ns)
    except OSError:
        return str(p)


@functools.lru_cache(maxsize=256)
def _file_sha1(path: str, size: int, mtime_ns: int) -> str:
    """sha1 hex of a file's bytes, memoised on (path, size, mtime) (:func:`_song_key`'s rows share songs)."""
    import hashlib

    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _track(progress: Any, items: Sequence[Any], description: str) -> Iterable[Any]:
    if progress is None:
        yield from items
        return
    task = progress.add_task(description, total=len(items))
    for item in items:
        yield item
        progress.advance(task)


def compute_features(clips: Sequence[EvalClip], config: EvalConfig, progress: Any = None, what: str = "") -> FeatureSet:
    """Kinetic and geometric features and PFC of clips already at ``config.fps`` (see :meth:`EvalClip.at_fps`),
    all over the protocol window (first ``config.seconds``, root-anchored). PFC (EDGE) normalises the root
    acceleration by its maximum over the clip it is given, so it depends on the length: every row gets the same
    window (before session 16 the real dances were scored whole, 41-113 s, the generated ones over 20 s).

    Args:
        clips: N clips at the evaluation rate.
        config: the run's settings.
        progress: optional ``rich.progress.Progress`` to show a bar on.
        what: label of the bar.

    Raises:
        DataError: a clip is shorter than 3 frames or holds NaN/inf.
    """
    kin, geo, pfc = [], [], []
    for clip in _track(progress, clips, f"features {what}".strip()):
        if clip.positions.shape[0] < 3:
            raise DataError(f"clip {clip.name}: needs at least 3 frames at {config.fps} fps, has {clip.positions.shape[0]}")
        window = protocol_window(clip.positions, config.fps, config.seconds)
        kin.append(kinetic_features(window, config.fps, ee=config.kinetic_ee))
        geo.append(geometric_features(window, config.fps))
        pfc.append(physical_foot_contact(window, config.fps))
    return FeatureSet(
        [c.name for c in clips],
        np.asarray(kin, dtype=np.float64).reshape(len(clips), -1),
        np.asarray(geo, dtype=np.float64).reshape(len(clips), -1),
        np.asarray(pfc, dtype=np.float64),
    )


def compute_bas(
    clips: Sequence[EvalClip],
    music: Sequence[tuple[Path, float]],
    config: EvalConfig,
    cache: MusicBeatCache,
    progress: Any = None,
    what: str = "",
) -> np.ndarray:
    """BAS of each clip against the music excerpt ``music[i] = (audio_path, song time of frame 0)``.

    The excerpt runs for the clip's duration. Music beats come from ``cache``
    (:class:`~livedance.eval.music_beats.MusicBeatCache`).

    Returns:
        (N,) float64 scores (NaN for a clip whose excerpt has no beats).

    Raises:
        AudioError: a song is missing or unreadable.
    """
    if len(music) != len(clips):
        raise DataError(f"BAS: {len(clips)} clips but {len(music)} music excerpts")
    scores = []
    for clip, (audio, offset) in _track(progress, list(zip(clips, music)), f"music beats {what}".strip()):
        beats = cache.beats(audio, offset, clip.duration_s)
        scores.append(clip_beat_align_score(clip.positions, config.fps, beats))
    return np.asarray(scores, dtype=np.float64)


def distribution_metrics(features: FeatureSet, reference: FeatureSet) -> dict[str, float]:
    """FIDk, FIDg, Divk, Divg of ``features`` against ``reference`` (Bailando's ``quantized_metrics``).

    Both sets are z-normalised with the reference statistics; FID compares the two sets; Div is the
    mean pairwise distance within ``features``. Values are NaN when a set has fewer than 2 clips.
    """
    out: dict[str, float] = {}
    for short, attr in (("k", "kinetic"), ("g", "geometric")):
        ref, feat = normalize_with_reference(getattr(reference, attr), getattr(features, attr))
        enough = feat.shape[0] >= 2 and ref.shape[0] >= 2
        out[f"FID{short}"] = fid(feat, ref) if enough else float("nan")
        out[f"Div{short}"] = average_pairwise_distance(feat) if feat.shape[0] >= 2 else float("nan")
    return out


#: A clip this many reference standard deviations out on one feature is named in the row's notes.
OUTLIER_Z = 10.0


def _geometric_name(i: int) -> str:
    from livedance.eval.geometric import GEOMETRIC_FEATURES

    kind, joints, _ = GEOMETRIC_FEATURES[i]
    return f"{kind} {','.join(joints)}"


def feature_outliers(features: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per clip, its largest |z| against the reference statistics and the feature it occurs on.

    The FID protocol z-normalises with the reference's per-feature standard deviation; a feature that
    the reference dances almost never show (std near 0) turns a small difference into a huge z, and
    one such clip can dominate FIDk / FIDg on a small split. This names the clip and the feature
    (index into :data:`~livedance.eval.geometric.GEOMETRIC_FEATURES` for the geometric set, into the
    72 kinetic features for the kinetic one).

    Args:
        features: (N, D) float features of the row's clips. reference: (M, D) the reference set's.
    Returns:
        (max_abs_z, feature_index): (N,) float64 and (N,) int64.
    Raises:
        DataError: as :func:`~livedance.eval.fid.normalize_with_reference`.
    """
    _, z = normalize_with_reference(reference, features)
    a = np.abs(z)
    return a.max(axis=1), a.argmax(axis=1).astype(np.int64)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x[np.isfinite(x)])) if np.isfinite(x).any() else float("nan")


def _row(
    label: str,
    clips: Sequence[EvalClip],
    feats: FeatureSet,
    ref: FeatureSet,
    bas_idx: np.ndarray,
    bas: np.ndarray,
    music: Sequence[tuple[Path, float]],
    beat_aligned: int | None,
    notes: list[str],
    alignment: dict[str, Any] | None = None,
) -> MetricRow:
    metrics = distribution_metrics(feats, ref)
    metrics["BAS"] = _nanmean(bas)
    metrics["PFC"] = float(np.mean(feats.pfc))
    bas_of = {int(i): float(b) for i, b in zip(bas_idx, bas)}
    outliers = {short: feature_outliers(getattr(feats, attr), getattr(ref, attr))
                for short, attr in (("k", "kinetic"), ("g", "geometric"))}
    per_clip = []
    for i, clip in enumerate(clips):
        entry: dict[str, Any] = {"name": clip.name, "PFC": float(feats.pfc[i]), "BAS": bas_of.get(i, float("nan"))}
        entry["music"] = str(music[i][0])
        entry["music_offset_s"] = float(music[i][1])
        if alignment and "per_pair_mm_dist" in alignment:
            entry["MM-Dist"] = float(alignment["per_pair_mm_dist"][i])
        for short, (z, dim) in outliers.items():
            entry[f"max_z{short}"] = float(z[i])
            entry[f"max_z{short}_feature"] = int(dim[i])
        per_clip.append(entry)
    notes = list(notes)
    n_nan = int(np.size(bas) - np.isfinite(bas).sum())
    if n_nan:
        notes.append(f"{label}: no music beats within the dance for {n_nan} of {np.size(bas)} clips (a dance past its "
                     "song's end?): BAS is the mean over the rest")
    if len(clips) < 2:
        notes.append(f"{label}: FID and Div need at least 2 dances; this row has {len(clips)}")
    for short, (z, dim) in outliers.items():
        i = int(np.argmax(z)) if len(z) else 0
        if len(z) and z[i] > OUTLIER_Z:
            what = "kinetic" if short == "k" else f"geometric ({_geometric_name(int(dim[i]))})"
            notes.append(f"{label}: clip {clips[i].name} lies at z = {z[i]:.0f} on {what} feature {int(dim[i])}, "
                         f"which the reference dances hardly vary: that one clip can dominate FID{short}")
    return MetricRow(
        label,
        len(clips),
        {**{k: metrics[k] for k in METRIC_NAMES}, **{k: alignment[k] for k in ALIGNMENT_NAMES if alignment}},
        int(np.isfinite(bas).sum()),
        beat_aligned,
        notes,
        per_clip,
    )


def alignment_figures(
    model: Any, clips: Sequence[EvalClip], music: Sequence[tuple[Path, float]], config: EvalConfig,
    progress: Any = None,
) -> dict[str, Any]:
    """MM-Dist and R@1 of dances paired with music excerpts (:func:`livedance.eval.alignment.retrieval_figures`).

    Args:
        model: a :class:`~livedance.model.retrieval.MusicDanceRetrieval`.
        clips: the dances (resampled to the model's frame rate here).
        music: per clip, (song path, song time in seconds of the clip's frame 0); may differ from the clip's own.
        config: ``seconds`` bounds the windows (the protocol's first 20 s).
    Returns:
        ``{"MM-Dist", "R@1", "R@3", "windows", "clips", "per_pair_mm_dist"}`` (R@1 / R@3 NaN with fewer than 31
        windows of other songs; ``per_pair_mm_dist`` is each clip's own MM-Dist, in ``clips`` order).
    Raises:
        DataError: no clip as long as one window, or a dance that starts after its song's end.
        AudioError: a song is missing or unreadable.
    """
    from livedance.eval.alignment import retrieval_figures
    from livedance.model.retrieval import paired_clip

    fps = model.config.fps
    pairs = [paired_clip(c.name, c.at_fps(fps).positions, fps, path, offset)
             for c, (path, offset) in zip(_track(progress, clips, "retrieval features"), music)]
    return retrieval_figures(model, pairs, songs=[_song_key(path) for path, _ in music], seconds=config.seconds,
                             seed=config.seed)


def _row_alignment(model: Any, label: str, clips: Sequence[EvalClip], music: Sequence[tuple[Path, float]],
                   config: EvalConfig, progress: Any, notes: list[str]) -> dict[str, Any]:
    """:func:`alignment_figures` for one row; what it cannot score becomes NaN and a note, never an abort."""
    nan = {"MM-Dist": float("nan"), "R@1": float("nan")}
    try:
        fig = alignment_figures(model, clips, music, config, progress)
    except DataError as e:
        notes.append(f"{label}: no MM-Dist / R@1 ({e})")
        return nan
    if fig["clips"] < len(clips):
        notes.append(f"{label}: MM-Dist / R@1 over the {fig['clips']} of {len(clips)} clips at least "
                     f"{model.config.window / model.config.fps:g} s long")
    if not np.isfinite(fig["R@1"]):
        notes.append(f"{label}: no R@1 (its clips give fewer than 31 windows of other songs to draw against)")
    return fig


@dataclass
class EvalReport:
    """Result of :func:`evaluate`.

    Attributes:
        rows: the table rows, reference rows first.
        config: the run's settings.
        split: name of the evaluated split; reference_split: the FID reference set's split.
        derangement: the "wrong song" pairing: clip i danced to the music of clip derangement[i].
    """

    rows: list[MetricRow]
    config: EvalConfig
    split: str
    reference_split: str
    derangement: list[int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "split": self.split,
            "reference_split": self.reference_split,
            "fps": self.config.fps,
            "seconds": self.config.seconds,
            "seed": self.config.seed,
            "kinetic_ee": self.config.kinetic_ee,
            "skeleton": self.config.skeleton,
            "derangement": list(self.derangement),
            "rows": [r.to_dict() for r in self.rows],
        }


def evaluate(
    split_clips: Sequence[Any],
    reference_clips: Sequence[Any],
    motions: dict[str, Sequence[Any]] | None = None,
    config: EvalConfig = EvalConfig(),
    cache: MusicBeatCache | None = None,
    progress: Any = None,
    split: str = "test",
    reference_split: str = "train",
    retrieval: Any = None,
) -> EvalReport:
    """Score the reference rows for a split, and optional rows of generated motions.

    Args:
        split_clips: the split's real dances (dataset ``MotionClip``-like objects, see
            :meth:`EvalClip.from_clip`), >= 2.
        reference_clips: real dances whose feature statistics are the FID reference (and whose
            mean/std z-normalise every row), >= 2.
        motions: optional label -> motions (e.g. :class:`~livedance.eval.motion_io.MotionFile`),
            each scored against the music it names.
        config: frame rate, excerpt length, derangement seed.
        cache: music beat cache (default: :class:`MusicBeatCache` in the default cache folder).
        progress: optional ``rich.progress.Progress``.
        split, reference_split: names shown in the report.
        retrieval: optional :class:`~livedance.model.retrieval.MusicDanceRetrieval`; every row then also gets
            MM-Dist and R@1 (:func:`alignment_figures`).

    Returns:
        :class:`EvalReport` with rows "ground truth", "real dance, wrong song", then one per
        ``motions`` entry.

    BAS of the split rows averages over the split's beat-aligned clips when it has any (else over
    all); the wrong-song row scores the same clips, each against the music excerpt of the clip the
    derangement assigns it (drawn over the whole split, avoiding the same song when possible).

    Raises:
        DataError: fewer than 2 clips in the split or the reference, or a bad clip. (A row whose MM-Dist / R@1 cannot
            be scored, e.g. every dance to one song or shorter than 4 s, gets NaN and a note instead.)
        AudioError: a song is missing or unreadable.
    """
    if len(split_clips) < 2:
        raise DataError(f"split '{split}' has {len(split_clips)} clips; evaluation needs at least 2")
    if len(reference_clips) < 2:
        raise DataError(f"reference split '{reference_split}' has {len(reference_clips)} clips; need at least 2")
    if config.skeleton not in ("shared", "own"):
        raise DataError(f"EvalConfig.skeleton {config.skeleton!r}: expected 'shared' or 'own'")
    cache = cache if cache is not None else MusicBeatCache()
    canon = shared_skeleton(reference_clips) if config.skeleton == "shared" else None
    gt = [EvalClip.from_clip(c, canon).at_fps(config.fps) for c in split_clips]
    ref = [EvalClip.from_clip(c, canon).at_fps(config.fps) for c in reference_clips]
    ref_feats = compute_features(ref, config, progress, f"({reference_split}, reference)")
    gt_feats = compute_features(gt, config, progress, f"({split})")

    aligned = np.array([c.beat_aligned for c in gt], dtype=bool)
    bas_idx = np.flatnonzero(aligned) if aligned.any() else np.arange(len(gt))
    which = (
        f"BAS over the {len(bas_idx)} beat-aligned clips of {len(gt)}"
        if aligned.any()
        else f"no clip is beat-aligned: BAS over all {len(gt)} clips"
    )
    own_music = [(c.audio_path, c.audio_offset_s) for c in gt]
    keys = [_song_key(c.audio_path) for c in gt]
    perm = derangement(len(gt), config.seed, keys=keys)
    wrong_music = [own_music[int(perm[i])] for i in range(len(gt))]
    bas_clips = [gt[i] for i in bas_idx]
    bas_own = compute_bas(bas_clips, [own_music[i] for i in bas_idx], config, cache, progress, "(own song)")
    bas_wrong = compute_bas(bas_clips, [wrong_music[i] for i in bas_idx], config, cache, progress, "(wrong song)")
    ref_note = f"FID reference: real dances of split '{reference_split}' ({len(ref)} clips)"
    shared = {c.name for c in gt} & {c.name for c in ref}
    if shared:  # e.g. --split all, or --reference-split all: FID against a reference that holds the dances flatters
        ref_note += (f"; it holds {len(shared)} of the {len(gt)} scored dances, so FID here is not the protocol's "
                     "(score a split against another one)")
    if config.skeleton == "own":
        ref_note += ("; real dances on their dancers' own skeletons (their size differences count as diversity; "
                     "the generated rows are on one skeleton)")
    elif canon is None:
        ref_note += "; real dances scored on their positions as given (no rest offsets to put them on one skeleton)"
    if config.kinetic_ee != "physical":  # FIDk / Divk on another scale: say so on every row
        ref_note += (f"; kinetic features with EE '{config.kinetic_ee}' (the reference code's precedence slip): "
                     "FIDk / Divk are not comparable with the default's")
    n_aligned = int(aligned.sum())
    def align(label: str, clips: Sequence[EvalClip], music: Sequence[tuple[Path, float]],
              notes: list[str]) -> dict[str, Any] | None:
        """The row's MM-Dist / R@1 (None without a retrieval model); what it leaves out goes into ``notes``."""
        if retrieval is None:
            return None
        return _row_alignment(retrieval, label, clips, music, config, progress, notes)

    gt_notes = [ref_note, which]
    wrong_notes = [ref_note, which, f"music from a derangement of the split's clips (seed {config.seed})"]
    same = [gt[i].name for i in range(len(gt)) if keys[i] == keys[int(perm[i])]]
    if same:  # the derangement's draws found no pairing that gives every dance another song
        wrong_notes.append(f"{len(same)} dance(s) ({', '.join(same)}) kept their own song: no pairing that avoids "
                           "it was found in the derangement's draws")
    gt_align = align("ground truth", gt, own_music, gt_notes)
    wrong_align = align("real dance, wrong song", gt, wrong_music, wrong_notes)
    rows = [
        _row("ground truth", gt, gt_feats, ref_feats, bas_idx, bas_own, own_music, n_aligned, gt_notes, gt_align),
        _row(
            "real dance, wrong song",
            gt,
            gt_feats,
            ref_feats,
            bas_idx,
            bas_wrong,
            wrong_music,
            n_aligned,
            wrong_notes,
            wrong_align,
        ),
    ]
    for label, items in (motions or {}).items():
        clips = [EvalClip.from_clip(m).at_fps(config.fps) for m in items]
        feats = compute_features(clips, config, progress, f"({label})")
        music = [(c.audio_path, c.audio_offset_s) for c in clips]
        bas = compute_bas(clips, music, config, cache, progress, f"({label})")
        notes = [ref_note, f"BAS over all {len(clips)} clips"]
        fig = align(label, clips, music, notes)
        rows.append(_row(label, clips, feats, ref_feats, np.arange(len(clips)), bas, music, None, notes, fig))
    return EvalReport(rows, config, split, reference_split, [int(i) for i in perm])
