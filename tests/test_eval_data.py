"""The metrics on the real Tang 2018 dances (../shared/data): conventions and sanity."""

from __future__ import annotations


import numpy as np
import pytest
from livedance.data.tang import default_data_root  # ../shared/data, or $LIVEDANCE_DATA

DATA = default_data_root()

# Building the clips runs the dataset IK when its cache is cold (tens of seconds).
pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def clips():
    if not (DATA / "dance-tang2018").is_dir():
        pytest.skip(f"real dance data not found at {DATA / 'dance-tang2018'} (see README.md, 'Data')")
    try:
        from livedance.data.dataset import load_split
        from livedance.data.split import split_names
    except ImportError as err:  # pragma: no cover - the dataset module is part of the package
        pytest.skip(f"livedance.data.dataset unavailable: {err}")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    test = load_split("test", data_root=DATA, progress=False, names=split_names("test")[:2])
    train = load_split("train", data_root=DATA, progress=False, names=split_names("train")[:4])
    return test, train


def test_real_dancers_are_upright_and_move(clips):
    from livedance.eval import geometric_features, kinetic_features, protocol_window

    for clip in clips[0] + clips[1]:
        win = protocol_window(clip.positions, clip.fps)
        geo = geometric_features(win, clip.fps)
        # feature 28: trunk (root -> neck) at 70..110 deg to the y axis, i.e. lying down.
        # Real dancers stand: y must be up in the data the metrics read.
        assert geo[28] < 0.05, clip.name
        kin = kinetic_features(win, clip.fps).reshape(24, 3)
        assert kin[0, 0] > kin[0, 1], clip.name  # ballroom: the pelvis travels more than it bobs
        assert 0.01 < kin[:, 0].mean() < 25.0, clip.name  # m^2/s^2: a dancer, not a statue or a glitch


def test_standing_still_scores_far_worse_than_real_dances(clips):
    from livedance.eval import EvalClip, EvalConfig, compute_features, distribution_metrics

    test, train = clips
    cfg = EvalConfig(fps=test[0].fps)
    ref = compute_features([EvalClip.from_clip(c) for c in train], cfg)
    real = compute_features([EvalClip.from_clip(c) for c in test], cfg)
    frozen_clips = [
        EvalClip(c.name, np.repeat(c.positions[:1], c.positions.shape[0], axis=0), c.fps, c.audio_path, 0.0)
        for c in test
    ]
    frozen = compute_features(frozen_clips, cfg)
    m_real, m_frozen = distribution_metrics(real, ref), distribution_metrics(frozen, ref)
    assert m_frozen["FIDk"] > 3 * m_real["FIDk"]
    assert np.all(frozen.kinetic == 0.0) and np.all(frozen.pfc == 0.0)
