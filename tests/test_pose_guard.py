"""Pose guard (livedance.engine.pose_guard): the prior's rare static features and budgets, the running
window, and the generator's resampling of steps over budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from livedance.engine.pose_guard import PoseGuard, PoseGuardConfig, PosePrior, default_prior_path
from livedance.errors import ConfigError, WeightsError
from livedance.eval.geometric import GEOMETRIC_FEATURES
from livedance.live.rest import default_rest_offsets

from engine_fixtures import music_contexts, tiny_step_graph

torch.set_num_threads(1)
REST = default_rest_offsets()[:22]
TRUNK_LEVEL = 28  # angle(neck, root, zero, y_unit) in 70-110 degrees: the trunk near horizontal


def _standing(n: int) -> tuple[np.ndarray, np.ndarray]:
    q = np.tile(np.array([0, 0, 0, 1.0], np.float32), (n, 55, 1))
    pelvis = np.tile(REST[0], (n, 1)).astype(np.float32)
    return q, pelvis


def _lying(n: int) -> tuple[np.ndarray, np.ndarray]:
    q, pelvis = _standing(n)
    q[:, 0] = [np.sin(np.pi / 4), 0, 0, np.cos(np.pi / 4)]  # pelvis pitched 90 degrees about x
    return q, pelvis


def test_prior_keeps_only_rare_static_features_with_budgets_at_least_the_floor():
    rng = np.random.default_rng(0)
    shares = rng.uniform(0.3, 0.9, size=(10, len(GEOMETRIC_FEATURES)))
    shares[:, TRUNK_LEVEL] = 0.0  # never seen: rare, budget = floor
    shares[:, 16] = np.linspace(0.0, 0.08, 10)  # rare, the largest clip share is the budget
    shares[:, 12] = 0.0  # rare but a velocity feature ("fast"): not a pose
    prior = PosePrior.from_clip_shares(shares, max_mean=0.1, floor=0.03)
    assert prior.features == [16, TRUNK_LEVEL]
    np.testing.assert_allclose(prior.budget, [0.08, 0.03])
    with pytest.raises(ConfigError, match="clip shares"):
        PosePrior.from_clip_shares(shares[:, :5])


def test_prior_round_trips_through_json_and_bad_files_name_themselves(tmp_path):
    prior = PosePrior([16, TRUNK_LEVEL], np.array([0.05, 0.1]), {"split": "train"})
    back = PosePrior.load(prior.save(tmp_path / "prior.json"))
    assert back.features == prior.features and np.allclose(back.budget, prior.budget)
    assert back.source["split"] == "train"
    with pytest.raises(WeightsError, match="missing.json.*does not exist"):
        PosePrior.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"features": [{"index": 99, "budget": 0.1}]}))
    with pytest.raises(WeightsError, match="bad.json"):
        PosePrior.load(bad)


def test_shipped_prior_loads_and_includes_the_trunk_level_pose():
    prior = PosePrior.load(default_prior_path())
    assert TRUNK_LEVEL in prior.features and prior.source.get("split") == "train"
    assert np.all((prior.budget >= 0.03) & (prior.budget <= 1.0))


def test_guard_lets_a_standing_dancer_pass_and_flags_a_held_horizontal_trunk():
    prior = PosePrior([TRUNK_LEVEL], np.array([0.1]))
    guard = PoseGuard(prior, REST, 25.0, PoseGuardConfig(window_s=2.0))  # 50 frames
    for _ in range(10):  # 80 standing frames: never over budget
        excess, token = guard.assess(*_standing(8))
        assert excess == 0.0
        guard.commit(token)
    excess, token = guard.assess(*_lying(4))  # 4 of 50 frames = 8 %: within the 10 % budget
    assert excess == 0.0
    guard.commit(token)
    excess, _ = guard.assess(*_lying(8))  # 12 of 50 = 24 %: over, by (0.24 - 0.1) / 0.1
    assert excess == pytest.approx(1.4, abs=1e-6)
    excess, _ = guard.assess(*_standing(8))  # a step that does not show the pose is never blamed
    assert excess == 0.0
    guard.reset()
    assert guard.assess(*_lying(2))[0] > 0.0  # 2 of 2 frames after a reset
    with pytest.raises(ConfigError, match="tries"):
        PoseGuardConfig(tries=0).validate()


class _StubGuard:
    """Stands in for PoseGuard: returns the scripted excess of each assess call and records the frames."""

    def __init__(self, excesses, tries=4):
        self.cfg = PoseGuardConfig(enabled=True, tries=tries)
        self.script = list(excesses)  # the excess of run 0, 1, ... of every step
        self.seen = []
        self.committed = []
        self._run = 0

    def reset(self):
        pass

    def assess(self, local_quats, pelvis):
        self.seen.append(local_quats.copy())
        excess = self.script[self._run % len(self.script)]
        self._run += 1
        return excess, len(self.seen) - 1

    def commit(self, token):
        self.committed.append(token)
        self._run = 0


@pytest.fixture(scope="module")
def graph_parts():
    return tiny_step_graph()


def test_generator_resamples_a_step_over_budget_and_commits_the_least_excess(graph_parts):
    from livedance.engine import build_generator

    graph, rep = graph_parts
    # every step: the first run is over budget, the second is worse, the third is fine
    stub = _StubGuard([2.0, 5.0, 0.0, 9.0], tries=4)
    g = build_generator(graph, rep, "torch", seed=3, pose_guard=stub)
    out = [g.step(c) for c in music_contexts(4)]
    assert len(stub.seen) == 4 * 3 and g.n_pose_resamples == 4 * 2 and g.n_pose_over == 0
    for k, f in enumerate(out):  # the committed frames are those of each step's third run
        np.testing.assert_array_equal(f.local_quats, stub.seen[3 * k + 2])
    assert stub.committed == [2, 5, 8, 11]
    # always over budget: all runs are made, the least excess (here the first run's) is committed and counted
    stub2 = _StubGuard([1.0, 3.0], tries=2)
    g2 = build_generator(graph, rep, "torch", seed=3, pose_guard=stub2)
    f = g2.step(next(music_contexts(1)))
    np.testing.assert_array_equal(f.local_quats, stub2.seen[0])
    assert not np.array_equal(stub2.seen[0], stub2.seen[1])
    assert g2.n_pose_over == 1 and g2.n_pose_resamples == 1 and stub2.committed == [0]
    # a guard that never objects: the same dance as no guard (no extra noise drawn)
    plain = build_generator(graph, rep, "torch", seed=3)
    calm = build_generator(graph, rep, "torch", seed=3, pose_guard=_StubGuard([0.0]))
    for c in music_contexts(3):
        np.testing.assert_array_equal(plain.step(c).local_quats, calm.step(c).local_quats)
    assert calm.n_pose_resamples == 0


def test_make_pose_guard_is_off_by_default_and_loads_the_shipped_prior_when_asked(tmp_path):
    from livedance.engine.loader import make_pose_guard
    from livedance.model.representation import Representation

    rep = Representation()
    assert make_pose_guard(rep, 25.0) is None  # off unless asked for
    guard = make_pose_guard(rep, 25.0, PoseGuardConfig(enabled=True))
    assert isinstance(guard, PoseGuard) and guard.prior.features == PosePrior.load(default_prior_path()).features
    assert guard.window == 125  # 5 s at 25 fps
    with pytest.raises(WeightsError, match="nowhere.json"):
        make_pose_guard(rep, 25.0, PoseGuardConfig(enabled=True), prior=tmp_path / "nowhere.json")


def test_perform_setup_refuses_the_guard_with_the_procedural_dancer_and_a_missing_prior(monkeypatch, tmp_path):
    import livedance.engine.pose_guard as pg
    from livedance.live.setup import load_generator as setup_load

    with pytest.raises(ConfigError, match="--pose-guard"):
        setup_load(None, procedural=True, pose_guard=True)
    monkeypatch.setattr(pg, "default_prior_path", lambda: tmp_path / "gone.json")
    with pytest.raises(WeightsError, match="gone.json"):
        setup_load(None, procedural=False, pose_guard=True)


def test_geometric_frame_features_subset_equals_the_full_set_columns():
    from livedance.eval.geometric import geometric_frame_features

    pos = np.random.default_rng(1).normal(scale=0.4, size=(12, 24, 3))
    full = geometric_frame_features(pos, 25.0)
    np.testing.assert_array_equal(geometric_frame_features(pos, 25.0, [28, 3, 16]), full[:, [28, 3, 16]])
    assert geometric_frame_features(pos, 25.0, []).shape == (11, 0)
