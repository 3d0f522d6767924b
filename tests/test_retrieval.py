"""The music-dance retrieval model (livedance.model.retrieval), its training windows and the eval figures
(livedance.eval.alignment): features, loss, weights, MM-Dist / R@1 and the eval table's columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from livedance.errors import ConfigError, DataError, WeightsError
from livedance.eval.alignment import retrieval_figures, window_starts, wrong_song_figures
from livedance.model.conditioning import BeatTrack, SongConditioning
from livedance.model.retrieval import (
    MOTION_DIM,
    MusicDanceRetrieval,
    RetrievalConfig,
    heading_rotations,
    motion_window_features,
    music_dim,
    music_window_features,
)
from livedance.model.train_retrieval import PairedClip, RetrievalWindows

FPS = 25.0


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _dancer(n: int, seed: int, period_s: float = 0.5) -> np.ndarray:
    """(n, 24, 3) joints that sway with the given period and walk a curve over the floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FPS
    base = rng.normal(scale=0.3, size=(24, 3)) + [0.0, 1.0, 0.0]
    base[1], base[2] = [0.1, 0.9, 0.0], [-0.1, 0.9, 0.0]  # the hips: left at +x, right at -x
    amp = rng.uniform(0.02, 0.1, size=(24, 3))
    sway = amp * np.sin(2 * np.pi * t[:, None, None] / period_s + rng.uniform(0, 6, size=(24, 3)))
    heading = 0.3 * t  # the dancer turns slowly
    pos = np.einsum("tij,tkj->tki", np.stack([_yaw(h) for h in heading]), base[None] + sway)
    return pos + np.stack([0.2 * t, 0 * t, 0.1 * t], axis=1)[:, None, :]


def test_heading_rotations_put_the_hip_line_on_x():
    pos = _dancer(60, 0)
    R = heading_rotations(pos)
    across = np.einsum("tij,tj->ti", R, pos[:, 1] - pos[:, 2])
    assert np.abs(across[:, 2]).max() < 1e-9
    assert (across[:, 0] > 0).all()
    assert np.allclose(np.einsum("tij,tkj->tik", R, R), np.eye(3), atol=1e-12)


def test_motion_features_ignore_where_the_dancer_faces_and_stands():
    pos = _dancer(80, 1)
    turned = np.einsum("ij,tkj->tki", _yaw(1.3), pos) + np.array([3.0, 0.0, -2.0])  # same dance, elsewhere on the floor
    a, b = motion_window_features(pos, FPS), motion_window_features(turned, FPS)
    assert a.shape == (80, MOTION_DIM) and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-4
    # but it does see how fast the dancer moves
    fast = motion_window_features(pos[::2], FPS)
    assert np.abs(fast[:, :72]).mean() > 1.5 * np.abs(a[:, :72]).mean()


def test_the_pelvis_height_is_read_above_the_local_floor_in_numpy_and_torch():
    """A floor that drifts up through a take (the Tang captures: up to 45 cm) must not reach the features: only the
    real dances carry it (a generated dance's floor is at 0). The torch twin (the alignment prior's) agrees."""
    from livedance.model.align import motion_features_torch

    pos = _dancer(150, 2)
    drift = pos.copy()
    drift[..., 1] += np.linspace(0.0, 0.4, len(pos))[:, None]  # the whole body, floor and all, rises 40 cm in 6 s
    a, b = motion_window_features(pos, FPS), motion_window_features(drift, FPS)
    # the opening follows a ramp up to its rise over the half window: 0.4 m / 6 s x 0.5 s = 3.3 cm, against 40 cm
    assert np.abs(a[:, 72] - b[:, 72]).max() < 0.04
    assert np.abs(b[:, 72] - drift[:, 0, 1]).max() > 0.3  # the world height would have carried it
    t = motion_features_torch(torch.from_numpy(drift)[None], FPS)[0].numpy()
    np.testing.assert_allclose(t, b, atol=1e-4)


def test_weights_trained_on_the_old_motion_features_are_refused_by_name(tmp_path):
    import json

    model = MusicDanceRetrieval(RetrievalConfig(members=1, d_model=8, embed_dim=8))
    model.save(tmp_path / "r")
    path = tmp_path / "r.json"
    doc = json.loads(path.read_text())
    MusicDanceRetrieval.load(tmp_path / "r")  # today's version loads
    del doc["config"]["motion_features"]  # weights made before version 2
    path.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match=r"r\.json: motion features version 1.*retrain"):
        MusicDanceRetrieval.load(tmp_path / "r")


@pytest.mark.parametrize("bad, what", [
    (np.zeros((10, 22, 3)), "expected"), (np.zeros((1, 24, 3)), "expected"), (np.full((5, 24, 3), np.nan), "NaN"),
])
def test_motion_features_name_bad_input(bad, what):
    with pytest.raises(DataError, match=what):
        motion_window_features(bad, FPS)


def _conditioning(seconds: float, bpm: float, known_from_s: float = 1.0) -> SongConditioning:
    from livedance.features import FeatureConfig

    cfg = FeatureConfig()
    ft = (np.arange(int(seconds * cfg.sr / cfg.hop)) + 1) * cfg.hop / cfg.sr
    feats = np.arange(len(ft) * cfg.feature_dim, dtype=np.float32).reshape(len(ft), cfg.feature_dim)
    bt = np.arange(int(seconds * 44100 / 512)) * 512 / 44100 + 512 / 44100
    known = bt >= known_from_s
    beats = BeatTrack(bt, np.where(known, bpm, 0.0).astype(np.float32),
                      ((bt * bpm / 60.0) % 1.0).astype(np.float32), known.astype(np.float32) * 0.8)
    return SongConditioning(feats, ft, beats, seconds)


def test_music_features_drop_the_log_mel_and_add_the_beat_state():
    from livedance.features import FeatureConfig

    cfg = FeatureConfig()
    cond = _conditioning(6.0, 120.0)
    t = np.array([0.5, 2.0, 2.01])
    f = music_window_features(cond, t)
    assert f.shape == (3, music_dim()) and music_dim() == cfg.feature_dim - cfg.n_mels + 4
    i = np.searchsorted(cond.feature_times_s, 2.0 + 1e-9, side="right") - 1
    assert np.array_equal(f[1, :-4], cond.features[i, cfg.n_mels:])  # the rhythm features of the last frame <= t
    assert np.all(f[0, -4:] == 0.0)  # no tempo known yet: no beat state
    assert f[1, -2] == pytest.approx(0.0) and f[1, -1] == pytest.approx(0.8)  # log2(120 / 120), confidence
    assert np.hypot(f[1, -4], f[1, -3]) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(DataError, match="covers 6.00 s"):
        music_window_features(cond, np.array([7.0]))


def test_same_dance_windows_are_not_negatives():
    torch.manual_seed(0)
    model = MusicDanceRetrieval(RetrievalConfig(window=16, d_model=8, embed_dim=8, dropout=0.0))
    motion, music = torch.randn(4, 16, MOTION_DIM), torch.randn(4, 16, music_dim())
    one_dance = model(motion, music, torch.zeros(4, dtype=torch.long))
    assert one_dance["loss"].item() == pytest.approx(0.0, abs=1e-5)  # only the pair itself is left to choose
    four = model(motion, music, torch.arange(4))
    assert four["loss"].item() > 0.1


def _synthetic_pairs(tempi=(80.0, 100.0, 130.0, 160.0), seconds=12.0):
    """Dancers who sway on the beat of their song; the music is the beat state (plus noise channels)."""
    rng = np.random.default_rng(0)
    pairs = []
    n = int(seconds * FPS)
    for k, bpm in enumerate(tempi):
        motion = motion_window_features(_dancer(n, k, period_s=60.0 / bpm), FPS)
        t = np.arange(n) / FPS
        music = rng.normal(scale=0.1, size=(n, music_dim())).astype(np.float32)
        ph = 2 * np.pi * t * bpm / 60.0
        music[:, -4:] = np.stack([np.sin(ph), np.cos(ph), np.full(n, np.log2(bpm / 120.0)), np.full(n, 0.8)], 1)
        pairs.append(PairedClip(f"dance{k}", motion, music))
    return pairs


def test_training_separates_own_song_from_wrong_song():
    pairs = _synthetic_pairs()
    cfg = RetrievalConfig(window=50, d_model=16, embed_dim=16, dropout=0.0)
    ds = RetrievalWindows(pairs, cfg.window, hop=5)
    assert len(ds) == 4 * len(window_starts(300, 50, 5))
    torch.manual_seed(0)
    model = MusicDanceRetrieval(cfg)
    model.set_stats(np.concatenate([p.motion for p in pairs]), np.concatenate([p.music for p in pairs]))
    untrained = wrong_song_figures(model.eval(), pairs, seconds=12.0, hop_s=0.4)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(150):
        batch = torch.utils.data.default_collate([ds[int(i)] for i in torch.randint(len(ds), (16,), generator=gen)])
        loss = model(batch["motion"], batch["music"], batch["clip"])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    fig = wrong_song_figures(model.eval(), pairs, seconds=12.0, hop_s=0.4)
    assert fig["own"]["R@1"] > 0.8 > fig["wrong"]["R@1"] + 0.4
    assert fig["own"]["MM-Dist"] < fig["wrong"]["MM-Dist"] - 0.3
    assert fig["own"]["R@1"] > untrained["own"]["R@1"] + 0.3


class _OracleModel:
    """Embeds every window of dance / song k as the unit vector e_k (a perfect retrieval model)."""

    config = RetrievalConfig(window=10, d_model=4, embed_dim=4, dropout=0.0)

    def embed_motion(self, x):
        return torch.nn.functional.one_hot(x[:, 0, 0].long(), 4).float()

    def embed_music(self, x):
        return torch.nn.functional.one_hot(x[:, 0, 0].long(), 4).float()


def _tagged(k_motion: int, k_music: int, n: int = 40) -> PairedClip:
    return PairedClip(f"{k_motion}", np.full((n, MOTION_DIM), k_motion, np.float32), np.full((n, 3), k_music, np.float32))


def test_figures_of_a_perfect_model_and_of_swapped_music():
    own = [_tagged(k, k) for k in range(4)]
    fig = retrieval_figures(_OracleModel(), own, seconds=2.0, hop_s=0.2, pool=8)
    assert fig["R@1"] == 1.0 and fig["MM-Dist"] == pytest.approx(0.0)
    assert fig["windows"] == 4 * len(window_starts(40, 10, 5, 50))
    wrong = [_tagged(k, (k + 1) % 4) for k in range(4)]
    bad = retrieval_figures(_OracleModel(), wrong, songs=[(k + 1) % 4 for k in range(4)], seconds=2.0, hop_s=0.2, pool=8)
    assert bad["MM-Dist"] == pytest.approx(np.sqrt(2.0))
    assert bad["R@1"] == 0.0  # every negative scores at least the paired music's 0 (ties count against the query)
    # pairs that share a song key are never each other's negatives: two dances to song 0
    shared = [_tagged(0, 0), _tagged(0, 0), _tagged(1, 1)]
    assert retrieval_figures(_OracleModel(), shared, songs=["a", "a", "b"], seconds=2.0, hop_s=0.2, pool=8)["R@1"] == 1.0
    one_song = retrieval_figures(_OracleModel(), shared[:2], songs=["a", "a"], seconds=2.0, hop_s=0.2, pool=8)
    assert np.isnan(one_song["R@1"]) and one_song["MM-Dist"] == pytest.approx(0.0)  # no negatives: no R@1
    few = retrieval_figures(_OracleModel(), own[:2], seconds=2.0, hop_s=0.2)  # 7 windows of the other song < 31
    assert np.isnan(few["R@1"]) and few["clips"] == 2
    assert retrieval_figures(_OracleModel(), own + [_tagged(0, 0, 5)], songs=[0, 1, 2, 3, 9], seconds=2.0,
                             hop_s=0.2, pool=8)["clips"] == 4  # a dance shorter than a window is left out, and counted
    with pytest.raises(DataError, match="window"):
        retrieval_figures(_OracleModel(), [_tagged(0, 0, 5), _tagged(1, 1, 5)])


def test_window_starts():
    assert window_starts(100, 100, 25).tolist() == [0]
    assert window_starts(99, 100, 25).size == 0
    assert window_starts(600, 100, 25, 500).tolist() == list(range(0, 401, 25))


def test_windows_need_a_long_enough_dance():
    with pytest.raises(ConfigError, match="at least 100 frames"):
        RetrievalWindows([_tagged(0, 0, 50)], 100, 5)


def test_weights_round_trip_and_corruption(tmp_path):
    torch.manual_seed(1)
    model = MusicDanceRetrieval(RetrievalConfig(window=20, d_model=8, embed_dim=8)).eval()
    model.set_stats(np.random.default_rng(0).normal(size=(50, MOTION_DIM)), np.ones((50, music_dim())))
    st, js = model.save(tmp_path / "r", {"val": {}})
    again, doc = MusicDanceRetrieval.load(tmp_path / "r")
    x = torch.randn(2, 20, MOTION_DIM)
    assert torch.equal(model.embed_motion(x), again.embed_motion(x))
    assert doc["config"]["window"] == 20 and not again.training
    st.write_bytes(st.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(WeightsError, match="r.safetensors"):
        MusicDanceRetrieval.load(tmp_path / "r")
    with pytest.raises(WeightsError, match="not found"):
        MusicDanceRetrieval.load(tmp_path / "missing")
    # a dotted run name is part of the stem, not a suffix (every weights file goes through the same helper)
    st, js = model.save(tmp_path / "run-T0.6" / "retrieval-s0.5")
    assert (st.name, js.name) == ("retrieval-s0.5.safetensors", "retrieval-s0.5.json")
    assert torch.equal(MusicDanceRetrieval.load(tmp_path / "run-T0.6" / "retrieval-s0.5.json")[0].embed_motion(x),
                       model.embed_motion(x))


def test_shipped_retrieval_weights_embed_todays_features():
    from livedance.model.checkpoint import WEIGHTS_DIR

    model, doc = MusicDanceRetrieval.load()
    assert model.config.music_dim == music_dim() and model.config.motion_dim == MOTION_DIM
    z = model.embed_music(torch.randn(3, model.config.window, music_dim()))
    assert z.shape == (3, model.config.members * model.config.embed_dim)
    assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    assert "Retrieval model" in (WEIGHTS_DIR / "MODEL_CARD.md").read_text()


def test_weights_for_another_feature_layout_are_refused(tmp_path):
    model = MusicDanceRetrieval(RetrievalConfig(window=20, d_model=8, embed_dim=8, music_dim=50))
    model.save(tmp_path / "old")
    with pytest.raises(WeightsError, match="old.json: music_dim 50, but today's features give"):
        MusicDanceRetrieval.load(tmp_path / "old")


def test_ensemble_embedding_is_the_members_mean_cosine():
    torch.manual_seed(0)
    model = MusicDanceRetrieval(RetrievalConfig(window=16, d_model=8, embed_dim=8, members=3)).eval()
    motion, music = torch.randn(5, 16, MOTION_DIM), torch.randn(5, 16, music_dim())
    zm, za = model.embed_motion(motion), model.embed_music(music)
    assert torch.allclose(zm.norm(dim=1), torch.ones(5), atol=1e-6)
    per_member = [(enc_m(motion) * enc_a(music)).sum(-1) for enc_m, enc_a in zip(model.motion, model.music)]
    assert torch.allclose((zm * za).sum(-1), torch.stack(per_member).mean(0), atol=1e-6)
    out = model(motion, music, torch.arange(5))
    best = (zm @ za.T).argmax(1)
    assert out["acc"].item() == pytest.approx((best == torch.arange(5)).float().mean().item())


def test_velocities_are_metres_per_second_at_any_frame_rate():
    n, v = 100, np.array([0.5, 0.0, -0.25])  # every joint moves at a constant 0.56 m/s
    pos = np.repeat(np.random.default_rng(0).normal(size=(1, 24, 3)), n, axis=0)
    pos[:, 1], pos[:, 2] = [0.1, 0.9, 0.0], [-0.1, 0.9, 0.0]  # hips along +x: the heading frame is the world frame
    pos = pos + v * (np.arange(n) / FPS)[:, None, None]
    f = motion_window_features(pos, FPS)
    assert np.allclose(f[:, :72].reshape(n, 24, 3), v, atol=1e-9)
    at50 = (pos[:, None] + v * np.array([0.0, 0.02])[None, :, None, None]).reshape(2 * n, 24, 3)  # the same dance, 50 fps
    assert np.allclose(motion_window_features(at50, 50.0)[:, :72].reshape(-1, 24, 3), v, atol=1e-9)
    assert not np.allclose(motion_window_features(at50, FPS)[:, :72].reshape(-1, 24, 3), v, atol=1e-3)


def test_paired_clip_takes_the_music_at_the_dances_song_times(tmp_path, monkeypatch):
    import soundfile as sf

    from livedance.model.conditioning import song_conditioning
    from livedance.model.train_retrieval import paired_clip

    monkeypatch.setenv("LIVEDANCE_CACHE", str(tmp_path / "cache"))
    sr, seconds = 22050, 6.0
    t = np.arange(int(sr * seconds)) / sr
    song = tmp_path / "clicks.wav"
    sf.write(song, (0.5 * np.sin(2 * np.pi * 440 * t) * (np.mod(t, 0.5) < 0.03)).astype(np.float32), sr)
    dance = _dancer(200, 3)  # 8 s at 25 fps, from song time 1.5 s: the song ends after 4.5 s of it
    p = paired_clip("d", dance, FPS, song, 1.5)
    cond = song_conditioning(song)
    n = int(np.searchsorted(1.5 + np.arange(200) / FPS, cond.duration_s, side="right"))
    assert len(p.motion) == len(p.music) == n < 200
    assert np.array_equal(p.music, music_window_features(cond, 1.5 + np.arange(n) / FPS))
    assert np.array_equal(p.motion, motion_window_features(dance[:n], FPS))
    with pytest.raises(DataError, match="ends at 6.00 s, the dance starts at 7.00 s"):
        paired_clip("late", dance, FPS, song, 7.0)
