"""Pose guard: keep a sampled dancer from holding poses its training dances (almost) never hold.

A generator that composes lower- and upper-body codes can make a pose that the training dances do not
contain (a leg lifted for seconds, the trunk near horizontal, the arms spread wide) and, once started, hold
it: the model is confident in it, so neither top-k nor min-p removes it (docs/model.md, "Why single seeds
explode FIDg"). On a stage that is an avatar that falls over; under the AIST++ protocol it is one clip
whose geometric features lie 10-60 reference standard deviations out.

The guard works on the decoded frames of each generator step, before they are committed:

* a :class:`PosePrior` lists the *rare* static features of Bailando's geometric set (Mueller et al. 2005
  relational features; :data:`livedance.eval.geometric.GEOMETRIC_FEATURES`: the ``plane``, ``nplane`` and
  ``angle`` ones, whose mean share of a training clip's frames is below ``max_mean``) and, per feature,
  a budget: the largest share of frames any training clip shows it in (20 s protocol windows), at least
  ``floor``;
* :class:`PoseGuard` keeps those features' flags over the last ``window_s`` seconds of committed frames;
  a step is over budget when, with its frames added, a feature's share of that window exceeds its budget
  and the step's own frames show that feature (whether or not the share was over before). Its excess is
  sum_k max(0, share_k - budget_k) / budget_k over the features the step shows. The share is taken over
  the frames committed so far (at most ``window_s`` seconds), so the first seconds of a song are judged on
  fewer frames, and more strictly: one rare frame in the first step is 1/8 of it.

:class:`~livedance.engine.learned.LearnedGenerator` then runs the same step again (same state, fresh
Gumbel noise at a higher scale, up to ``tries`` runs) and commits the run with the least excess:
rejection sampling against a prior measured on the training split. Velocity features are not used (a
fast move is not a pose); nothing is ever replaced, only resampled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livedance.errors import ConfigError, WeightsError

__all__ = ["PoseGuardConfig", "PosePrior", "PoseGuard", "default_prior_path", "prior_from_split"]

_STATIC_KINDS = ("plane", "nplane", "angle")


def default_prior_path() -> Path:
    """The shipped prior: ``livedance/weights/pose_prior.json`` (made by ``livedance train pose-prior``)."""
    return Path(__file__).resolve().parent.parent / "weights" / "pose_prior.json"


@dataclass
class PoseGuardConfig:
    """Settings of :class:`PoseGuard`.

    Attributes:
        enabled: apply the guard (off by default: its extra runs cost CPU, see docs/model.md "Pose guard";
            a generator without a prior never applies it).
        window_s: seconds of committed frames over which a rare feature's share is counted.
        tries: runs of one step at most (1 = measure only, never resample). Each run costs one step
            (about 5 ms on one CPU core with ONNX Runtime); the live loop's scheduler has 320 ms per step.
        boost_step: run k (0-based) samples with the base level's Gumbel noise scaled by 1 + k x this
            (a higher temperature, as the stall guard does), on top of the stall guard's scale.
    """

    enabled: bool = False
    window_s: float = 5.0
    tries: int = 4
    boost_step: float = 0.5

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        if not 0.5 <= float(self.window_s) <= 60.0:
            raise ConfigError(f"PoseGuardConfig.window_s must be in [0.5, 60] seconds, got {self.window_s}")
        if not 1 <= int(self.tries) <= 8:
            raise ConfigError(f"PoseGuardConfig.tries must be in 1..8, got {self.tries}")
        if not 0.0 <= float(self.boost_step) <= 2.0:
            raise ConfigError(f"PoseGuardConfig.boost_step must be in [0, 2], got {self.boost_step}")


@dataclass
class PosePrior:
    """Rare static pose features and their budgets (see the module docstring).

    Attributes:
        features: indices into :data:`livedance.eval.geometric.GEOMETRIC_FEATURES`.
        budget: (len(features),) largest share of frames per feature, in (0, 1].
        source: where the budgets come from (split, clips, command), for the model card.
    """

    features: list[int]
    budget: np.ndarray
    source: dict = field(default_factory=dict)

    @classmethod
    def from_clip_shares(cls, shares: np.ndarray, max_mean: float = 0.1, floor: float = 0.03,
                         source: dict | None = None) -> "PosePrior":
        """Build the prior from per-clip feature shares.

        Args:
            shares: (N, 32) float, the share of frames each geometric feature holds in each of N
                training clips (:func:`livedance.eval.geometric.geometric_features` of their protocol windows).
            max_mean: a static feature is rare if its mean share over the clips is below this.
            floor: smallest budget (a feature no clip shows still gets ``floor``).
            source: provenance, stored with the prior.
        Raises:
            ConfigError: ``shares`` is not (N >= 1, 32) finite values in [0, 1].
        """
        from livedance.eval.geometric import GEOMETRIC_FEATURES

        s = np.asarray(shares, np.float64)
        if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] != len(GEOMETRIC_FEATURES) or not np.isfinite(s).all() \
                or s.min() < 0 or s.max() > 1:
            raise ConfigError(f"clip shares must be (N, {len(GEOMETRIC_FEATURES)}) values in [0, 1], got {s.shape}")
        feats = [k for k, (kind, _, _) in enumerate(GEOMETRIC_FEATURES)
                 if kind in _STATIC_KINDS and s[:, k].mean() < max_mean]
        budget = np.maximum(s[:, feats].max(axis=0), floor)
        src = dict(source or {})
        src.update(max_mean=max_mean, floor=floor, clips=int(s.shape[0]))
        return cls(feats, budget, src)

    def to_json(self) -> dict:
        """A JSON-able dict (what :meth:`save` writes)."""
        from livedance.eval.geometric import GEOMETRIC_FEATURES

        return {"format": "livedance pose prior v1", "source": self.source,
                "features": [{"index": k, "kind": GEOMETRIC_FEATURES[k][0], "joints": list(GEOMETRIC_FEATURES[k][1]),
                              "budget": round(float(b), 6)} for k, b in zip(self.features, self.budget)]}

    def save(self, path: str | Path) -> Path:
        """Write the prior as JSON (atomically)."""
        from livedance.atomic import atomic_target

        path = Path(path)
        with atomic_target(path) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PosePrior":
        """Read a prior written by :meth:`save`.

        Raises:
            WeightsError: missing file, not JSON, or entries out of range (the message names the file).
        """
        from livedance.eval.geometric import GEOMETRIC_FEATURES

        path = Path(path)
        try:
            doc = json.loads(path.read_text())
            feats = [int(f["index"]) for f in doc["features"]]
            budget = np.array([float(f["budget"]) for f in doc["features"]])
        except FileNotFoundError:
            raise WeightsError(f"pose prior {path} does not exist (make it with `livedance train pose-prior`)") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise WeightsError(f"pose prior {path} is not a livedance pose prior: {err}") from None
        if any(not 0 <= k < len(GEOMETRIC_FEATURES) for k in feats) or not np.all((budget > 0) & (budget <= 1)):
            raise WeightsError(f"pose prior {path}: feature indices must be in 0..{len(GEOMETRIC_FEATURES) - 1} "
                               f"and budgets in (0, 1]")
        return cls(feats, budget, dict(doc.get("source", {})))


def prior_from_split(split: str = "train", data_root: str | Path | None = None, max_mean: float = 0.1,
                     floor: float = 0.03, progress: bool = True) -> PosePrior:
    """Measure a :class:`PosePrior` on the real dances of a Tang split (its 20 s protocol windows).

    Args:
        split: dataset split (``train``: never the split a model is scored on).
        data_root: folder holding ``dance-tang2018/`` (None: the default). max_mean, floor: see
            :meth:`PosePrior.from_clip_shares`. progress: show a progress bar while clips load.
    Raises:
        DataError / ConfigError: from :func:`livedance.data.dataset.load_split`.
    """
    from livedance.data.dataset import data_description, data_root_option, load_split
    from livedance.eval.geometric import geometric_features
    from livedance.eval.window import protocol_window

    clips = load_split(split, data_root, progress=progress)
    shares = np.stack([geometric_features(protocol_window(c.positions, c.fps), c.fps) for c in clips])
    return PosePrior.from_clip_shares(shares, max_mean, floor, source={
        "data": data_description(data_root), "split": split, "window": "20 s protocol windows (livedance.eval.window)",
        "command": f"livedance train pose-prior --split {split} --max-mean {max_mean:g} --floor {floor:g}"
                   + data_root_option(data_root)})


class PoseGuard:
    """Counts the prior's rare features over the last ``window_s`` seconds of committed frames.

    Args:
        prior: :class:`PosePrior`. rest_offsets: (22, 3) float metres, the skeleton the frames are posed on.
        fps: frame rate of the frames (25 for the shipped model). config: :class:`PoseGuardConfig` (its
            ``window_s``, ``tries``, ``boost_step``; ``enabled`` only decides whether
            :func:`~livedance.engine.loader.make_pose_guard` builds a guard: a guard given to a generator is used).

    Raises:
        ConfigError: bad config or ``fps`` <= 0.

    :meth:`assess` scores a candidate step without changing anything; :meth:`commit` takes the chosen one.
    Cost: FK of the step's frames plus the rare features, about 0.5 ms for 8 frames.
    """

    def __init__(self, prior: PosePrior, rest_offsets: np.ndarray, fps: float, config: PoseGuardConfig | None = None):
        self.cfg = config or PoseGuardConfig()
        self.cfg.validate()
        if not fps > 0:
            raise ConfigError(f"PoseGuard fps must be > 0, got {fps}")
        self.prior = prior
        self.rest = np.asarray(rest_offsets, np.float32)
        self.fps = float(fps)
        self.window = max(1, int(round(self.cfg.window_s * self.fps)))
        self.reset()

    def reset(self) -> None:
        """Forget the committed frames (a new song)."""
        self._flags = np.zeros((0, len(self.prior.features)), bool)
        self._last_pos: np.ndarray | None = None

    def flags(self, local_quats: np.ndarray, pelvis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((n, F) bool rare-feature flags of each frame, (24, 3) the last frame's SMPL-24 positions).

        Args:
            local_quats: (n, 55 or 22, 4) float32 SMPL-X local rotations (x, y, z, w). pelvis: (n, 3) metres.
        """
        from livedance.engine.offline import quat_smpl24_positions
        from livedance.eval.geometric import geometric_frame_features

        pos = quat_smpl24_positions(local_quats, np.asarray(pelvis, np.float32) - self.rest[0], self.rest)
        prev = pos[:1] if self._last_pos is None else self._last_pos[None]
        f = geometric_frame_features(np.concatenate([prev, pos]), self.fps, self.prior.features)
        return f, pos[-1]

    def assess(self, local_quats: np.ndarray, pelvis: np.ndarray) -> tuple[float, tuple]:
        """(excess, token for :meth:`commit`) of a candidate step's frames; 0.0 = within every budget."""
        f, last = self.flags(local_quats, pelvis)
        hist = np.concatenate([self._flags, f])[-self.window:]
        share = hist.mean(axis=0)
        over = np.maximum(share - self.prior.budget, 0.0) / self.prior.budget
        excess = float(np.sum(over * f.any(axis=0)))
        return excess, (hist, last)

    def commit(self, token: tuple) -> None:
        """Take the candidate that :meth:`assess` returned ``token`` for."""
        self._flags, self._last_pos = token
