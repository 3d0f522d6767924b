"""livedance.eval: the AIST++ dance metrics (FIDk, FIDg, Divk, Divg, BAS) and EDGE's PFC.

Modules, one job each:

- :mod:`~livedance.eval.window`: the protocol's excerpt (first 20 s, root-anchored), resampling
- :mod:`~livedance.eval.kinetic`: 72-d kinetic features
- :mod:`~livedance.eval.geometric`: 32-d Mueller-style geometric features
- :mod:`~livedance.eval.fid`: reference z-normalisation and Fréchet distance
- :mod:`~livedance.eval.diversity`: mean pairwise distance
- :mod:`~livedance.eval.beat_align`: motion beats and the Beat Align Score
- :mod:`~livedance.eval.music_beats`: librosa music beats with an on-disk cache
- :mod:`~livedance.eval.pfc`: EDGE's physical foot contact score
- :mod:`~livedance.eval.motion_io`: the motion npz format
- :mod:`~livedance.eval.suite`: the evaluation table (reference rows and generated motions)

See docs/eval.md.
"""

from livedance.eval.beat_align import beat_align_score, clip_beat_align_score, mean_joint_speed, motion_beats
from livedance.eval.diversity import average_pairwise_distance
from livedance.eval.fid import fid, frechet_distance, normalize_with_reference
from livedance.eval.geometric import GEOMETRIC_FEATURES, geometric_features, geometric_frame_features
from livedance.eval.joints import SMPL24_JOINT_NAMES
from livedance.eval.kinetic import kinetic_features
from livedance.eval.motion_io import MotionFile, find_motions, load_motion, save_motion
from livedance.eval.music_beats import BeatTrackConfig, MusicBeatCache, default_cache_dir, track_beats
from livedance.eval.pfc import physical_foot_contact
from livedance.eval.suite import (
    METRIC_NAMES,
    EvalClip,
    EvalConfig,
    EvalReport,
    FeatureSet,
    MetricRow,
    compute_bas,
    compute_features,
    derangement,
    distribution_metrics,
    evaluate,
    shared_skeleton,
)
from livedance.eval.window import PROTOCOL_SECONDS, protocol_window, resample_positions

__all__ = [
    "GEOMETRIC_FEATURES", "METRIC_NAMES", "PROTOCOL_SECONDS", "SMPL24_JOINT_NAMES",
    "BeatTrackConfig", "EvalClip", "EvalConfig", "EvalReport", "FeatureSet", "MetricRow", "MotionFile",
    "MusicBeatCache", "average_pairwise_distance", "beat_align_score", "clip_beat_align_score",
    "compute_bas", "compute_features", "default_cache_dir", "derangement", "distribution_metrics",
    "evaluate", "fid", "find_motions", "frechet_distance", "geometric_features", "geometric_frame_features",
    "kinetic_features", "load_motion", "mean_joint_speed", "motion_beats", "normalize_with_reference",
    "physical_foot_contact", "protocol_window", "resample_positions", "save_motion", "shared_skeleton", "track_beats",
]  # fmt: skip
