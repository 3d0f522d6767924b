"""Generator: teacher-forced training path == functional step path, mask-predict, causal conditioning."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from livedance.errors import ConfigError, DataError
from livedance.model.conditioning import BeatTrack, SongConditioning, beat_state_before, slot_condition
from livedance.model.generator import DanceGenerator, GeneratorConfig, corrupt_codes, hold_codes
from livedance.model.music_encoder import Z_MAX
from livedance.model.maskpredict import (
    cosine_mask_counts,
    gumbel_sample,
    mask_predict,
    remask_least_confident,
    training_mask,
)
from livedance.model.train_generator import slot_inputs
from livedance.data.tang import default_data_root  # ../shared/data, or $LIVEDANCE_DATA

torch.set_num_threads(1)

SMALL = dict(d_model=32, n_layers=2, chunk_layers=1, n_heads=2, codebook_size=16, levels=3, window=4, d_state=4)


def _batch(cfg: GeneratorConfig, B: int = 2, N: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, cfg.codebook_size, (B, N, cfg.n_parts, cfg.levels), generator=g)
    win = torch.randn(B, N, cfg.window, cfg.feat_dim, generator=g)
    cond = torch.randn(B, N, cfg.cond_dim, generator=g)
    return codes, win, cond


def _stream_start(g: DanceGenerator) -> tuple:
    """Step inputs at a stream's start: zero states, nothing pending but BOS, zero noise (greedy):
    (conv_state, ssm_state, h_last, pend_codes, pend_window, pend_cond, pend_kind, gumbel_base, gumbel_res)."""
    cfg, K = g.config, g.config.chunk
    sh = g.state_shapes(1)
    cs, ss, h = (torch.zeros(sh[q]) for q in ("conv_state", "ssm_state", "h_last"))
    pc = torch.zeros(1, K, cfg.n_parts, cfg.levels, dtype=torch.long)
    pw, pd = torch.zeros(1, K, cfg.window, cfg.feat_dim), torch.zeros(1, K, cfg.cond_dim)
    kind = torch.tensor([[0.0] * (K - 1) + [2.0]])
    gb = torch.zeros(1, cfg.mask_iters, K * cfg.n_parts, cfg.codebook_size)
    gr = torch.zeros(1, K, cfg.n_parts, cfg.levels - 1, cfg.codebook_size)
    return cs, ss, h, pc, pw, pd, kind, gb, gr


def test_step_path_equals_teacher_forced_backbone():
    torch.manual_seed(0)
    cfg = GeneratorConfig(**SMALL)
    g = DanceGenerator(cfg).eval()
    codes, win, cond = _batch(cfg, B=1, N=8)
    with torch.no_grad():
        x = g.token_inputs(g.music(win, cond), codes)
        seq = [torch.cat([g.bos[i].expand(1, 1, -1), x[i][:, :-1]], 1) for i in range(cfg.n_parts)]
        H = g.backbone(seq)
        K = cfg.chunk
        cs, ss, h, pc, pw, pd, kind, gb, gr = _stream_start(g)
        for n in range(0, 8, K):
            out_codes, cs, ss, h = g.step(cs, ss, h, pc, pw, pd, kind, win[:, n], cond[:, n:n + K], gb, gr)
            ref = torch.stack([H[i][:, n] for i in range(cfg.n_parts)], 1)
            torch.testing.assert_close(h, ref, atol=1e-5, rtol=1e-4)
            assert out_codes.shape == (1, K, cfg.n_parts, cfg.levels)
            assert int(out_codes.min()) >= 0 and int(out_codes.max()) < cfg.codebook_size
            pc, pw, pd, kind = codes[:, n:n + K], win[:, n:n + K], cond[:, n:n + K], torch.ones(1, K)


def test_training_reduces_loss_on_one_batch():
    torch.manual_seed(0)
    cfg = GeneratorConfig(**SMALL)
    g = DanceGenerator(cfg)
    codes, win, cond = _batch(cfg, B=4, N=12)
    opt = torch.optim.Adam(g.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        out = g(codes, win, cond)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else float(out["loss"].detach())
    assert float(out["loss"].detach()) < 0.7 * first
    assert set(out) == {"loss", "base", "res", "acc"}


def test_corrupt_codes_replaces_whole_tokens_at_the_drawn_rate():
    torch.manual_seed(0)
    codes = torch.randint(0, 512, (64, 200, 2, 4))
    kept = codes.clone()
    out = corrupt_codes(codes, 0.5, 512)
    assert torch.equal(codes, kept)  # input untouched
    changed = (out != codes).any(-1)  # (B, N, P): a token counts as replaced if any level differs
    # mean rate over windows ~ E[U(0, 0.5)] = 0.25 (a random code equals the old one with prob 1/512)
    assert 0.2 < changed.float().mean() < 0.3
    # a replaced token gets new codes at (almost) every level: all levels drawn together
    assert (out != codes)[changed].float().mean() > 0.99
    assert int(out.min()) >= 0 and int(out.max()) < 512
    assert torch.equal(corrupt_codes(codes, 0.0, 512), codes)
    with pytest.raises(ConfigError, match="corruption"):
        corrupt_codes(codes, 1.5, 512)


def test_corruption_changes_the_backbone_input_but_not_the_targets():
    torch.manual_seed(0)
    cfg = GeneratorConfig(**SMALL)
    g = DanceGenerator(cfg)
    codes, win, cond = _batch(cfg, B=8, N=12)
    seen: dict[str, torch.Tensor] = {}
    real_inputs, real_chunk = g.token_inputs, g.chunk_logits

    def spy_inputs(music, c):
        seen["history"] = c
        return real_inputs(music, c)

    def spy_chunk(ctx, music, base, masked):
        seen["targets"] = base
        return real_chunk(ctx, music, base, masked)

    g.token_inputs, g.chunk_logits = spy_inputs, spy_chunk
    g(codes, win, cond)
    assert torch.equal(seen["history"], codes)
    g(codes, win, cond, corrupt=1.0)
    assert (seen["history"] != codes).any(-1).float().mean() > 0.2
    starts_tgt = seen["targets"]  # (B, S, K, P) base codes of the chunks: taken from the clean codes
    assert any(torch.equal(starts_tgt[:, 0, 0], codes[:, s, :, 0]) for s in range(cfg.chunk))


def test_dropout_acts_in_training_only_and_keeps_the_state_dict():
    cfg = GeneratorConfig(**SMALL)
    torch.manual_seed(0)
    plain = DanceGenerator(cfg)
    dropped = DanceGenerator(GeneratorConfig(**SMALL, dropout=0.3))
    assert set(plain.state_dict()) == set(dropped.state_dict())  # dropout adds no tensors
    dropped.load_state_dict(plain.state_dict())
    codes, win, cond = _batch(cfg, B=2, N=10)
    with torch.no_grad():
        plain.eval(), dropped.eval()
        torch.manual_seed(1)
        a = plain(codes, win, cond)["loss"]
        torch.manual_seed(1)
        b = dropped(codes, win, cond)["loss"]
        assert torch.equal(a, b)  # eval mode: identity, the same graph as without dropout
        dropped.train()
        torch.manual_seed(1)
        c = dropped(codes, win, cond)["loss"]
        assert not torch.allclose(a, c)  # training mode: units are dropped
    with pytest.raises(ConfigError, match="dropout"):
        GeneratorConfig(**SMALL, dropout=1.0)


def test_windows_must_exceed_chunk():
    cfg = GeneratorConfig(**SMALL)
    codes, win, cond = _batch(cfg, N=cfg.chunk)
    with pytest.raises(ConfigError, match="chunk"):
        DanceGenerator(cfg)(codes, win, cond)


def test_config_round_trip_and_unknown_field():
    cfg = GeneratorConfig(**SMALL)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        GeneratorConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_cosine_schedule_ends_unmasked_and_fixes_a_position_every_iteration():
    for P in range(1, 17):
        for N in range(1, 17):
            c = cosine_mask_counts(P, N)
            assert len(c) == N and c[-1] == 0 and all(0 <= x < P or (P == 1 and x == 1) for x in c[:-1])
            if N <= P:  # every iteration fixes at least one new position (MaskGIT's clamp)
                assert all(a > b for a, b in zip([P] + c, c)), (P, N, c)
            else:  # more iterations than positions: one position stays masked until the last
                assert all(a >= b for a, b in zip(c, c[1:])) and min(c[:-1], default=1) >= 1, (P, N, c)
    assert cosine_mask_counts(4, 3) == [3, 2, 0]  # the shipped chunk (2 slots x 2 parts, 3 iterations): unchanged
    assert cosine_mask_counts(8, 8) == [7, 6, 5, 4, 3, 2, 1, 0]  # the plain cosine's floor gave 7, 7, 6, 5, 3, 2, 1, 0


def test_remask_never_touches_fixed_positions():
    conf = torch.tensor([[-5.0, -0.1, -3.0, -9.0]])
    known = torch.tensor([[False, False, True, True]])
    m = remask_least_confident(conf, known, 1)
    assert m.tolist() == [[True, False, False, False]]


def test_mask_predict_fixes_codes_once_chosen():
    seen = []

    def logits_fn(codes, masked):
        seen.append((codes.clone(), masked.clone()))
        return torch.randn(1, 4, 8)

    torch.manual_seed(1)
    out = mask_predict(logits_fn, 1, 4, torch.zeros(1, 3, 4, 8), 1.0, 3)
    assert seen[0][1].all()  # starts fully masked
    for (c0, m0), (c1, m1) in zip(seen, seen[1:]):
        fixed = ~m0 & ~m1
        assert (c0[fixed] == c1[fixed]).all()
        assert (m1 <= m0).all()  # masks only shrink
    assert out.shape == (1, 4)


def test_top_k_sampling_stays_among_the_k_most_likely_codes():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 64, generator=g)
    gumbel = -torch.log(-torch.log(torch.rand(200, 64, generator=g).clamp(1e-9, 1 - 1e-9)))
    top5 = torch.topk(logits, 5, dim=-1).indices
    codes, conf = gumbel_sample(logits, gumbel, 1.0, top_k=5)
    assert bool((codes[:, None] == top5).any(-1).all())
    free, _ = gumbel_sample(logits, gumbel, 1.0)
    assert not bool((free[:, None] == top5).any(-1).all())  # without the cut some samples fall outside
    torch.testing.assert_close(conf, torch.log_softmax(logits, -1).gather(-1, codes[:, None])[:, 0])
    assert torch.equal(gumbel_sample(logits, gumbel, 1.0, top_k=1)[0], logits.argmax(-1))
    assert torch.equal(gumbel_sample(logits, gumbel, 1.0, top_k=64)[0], free)
    with pytest.raises(ConfigError, match="top_k"):
        GeneratorConfig(top_k=-1)


def test_min_p_sampling_keeps_only_codes_near_the_mode():
    """min-p keeps code i iff p_i(T) >= min_p * max_j p_j(T); a flat row keeps more codes than a peaked one."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(300, 64, generator=g) * torch.linspace(0.5, 4.0, 300)[:, None]  # flat ... peaked rows
    gumbel = -torch.log(-torch.log(torch.rand(300, 64, generator=g).clamp(1e-9, 1 - 1e-9)))
    T, m = 0.7, 0.2
    p = torch.softmax(logits / T, -1)
    allowed = p >= m * p.amax(-1, keepdim=True)
    codes, conf = gumbel_sample(logits, gumbel, T, min_p=m)
    assert bool(allowed.gather(-1, codes[:, None]).all())
    free, _ = gumbel_sample(logits, gumbel, T)
    assert not bool(allowed.gather(-1, free[:, None]).all())  # without the cut some samples fall outside
    assert allowed[:50].sum() > allowed[-50:].sum()  # the cut adapts to the distribution's spread
    torch.testing.assert_close(conf, torch.log_softmax(logits, -1).gather(-1, codes[:, None])[:, 0])
    assert torch.equal(gumbel_sample(logits, gumbel, T, min_p=0.999)[0], logits.argmax(-1))
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ConfigError, match="min_p"):
            GeneratorConfig(min_p=bad)


def test_training_mask_counts():
    torch.manual_seed(0)
    m = training_mask((500,), 4)
    n = m.sum(-1)
    assert int(n.min()) >= 1 and int(n.max()) <= 4
    assert (n == 4).float().mean() > 0.2  # cos schedule favours high mask ratios


def test_slot_condition_extrapolates_the_grid():
    # a 120 bpm grid with a beat at 0.0 s: phase at t is 2 t mod 1
    c = slot_condition(np.array([120.0]), np.array([0.25]), np.array([0.8]), np.array([10.125]), np.array([11.0]))
    ph = 0.25 + (11.0 - 10.125) * 2 + np.arange(4) / 25 * 2
    np.testing.assert_allclose(c[0, 0:8:2], np.sin(2 * np.pi * ph), atol=1e-5)
    np.testing.assert_allclose(c[0, 1:8:2], np.cos(2 * np.pi * ph), atol=1e-5)
    assert c[0, 8] == pytest.approx(0.0) and c[0, 9] == pytest.approx(0.8)
    assert not slot_condition(np.array([0.0]), 0.5, 0.0, 0.0, 1.0)[0, :9].any()  # no tempo: no phase


def test_slot_inputs_only_use_audio_before_lag():
    F = 500
    times = (np.arange(F) + 1) * 512 / 22050
    feats = np.arange(F, dtype=np.float32)[:, None].repeat(3, 1)
    bt = BeatTrack(np.arange(1, 900) * 512 / 44100, np.full(899, 100.0, np.float32),
                   np.zeros(899, np.float32), np.ones(899, np.float32))
    song = SongConditioning(feats, times, bt, F * 512 / 22050)
    slots = np.array([1.0, 2.5, 4.0])
    idx, cond = slot_inputs(song, slots, window=6, lag_s=0.16)
    assert idx.shape == (3, 6) and cond.shape == (3, 10)
    assert (times[idx] <= slots[:, None] - 0.16 + 1e-9).all()
    assert (times[idx[:, -1] + 1] > slots - 0.16).all()  # the newest allowed frame is used
    ref_t, *_ = beat_state_before(bt, slots - 0.16)
    assert (ref_t <= slots - 0.16 + 1e-9).all() and (ref_t > slots - 0.16 - 512 / 44100).all()


def test_a_slot_that_has_heard_nothing_gets_the_silent_row_as_the_engine_gives_zeros():
    """Before the first feature frame (t - lag < its time) the engine's buffer is empty and it gives an all-zero
    window; training points those windows at the clip's silent row, which the feature statistics leave out."""
    from livedance.model.train_generator import ClipTokens, feature_stats

    F = 50
    times = 0.023 + np.arange(F) * 512 / 22050
    feats = np.arange(1, F + 1, dtype=np.float32)[:, None].repeat(3, 1)
    bt = BeatTrack(np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32))
    song = SongConditioning(feats, times, bt, 1.2)
    slots = np.array([0.0, 0.16, 0.2, 0.5])  # t - lag: -0.16, 0.0 (before frame 0 at 23 ms), 0.04, 0.34
    idx, _ = slot_inputs(song, slots, window=6, lag_s=0.16)
    assert (idx[:2] == F).all()  # nothing heard: every row of the window is the silent row
    assert (idx[2] == 0).all() and idx[3, -1] == np.searchsorted(times, 0.34, side="right") - 1
    with_silence = np.concatenate([feats, np.zeros((1, 3), np.float32)])
    from types import SimpleNamespace

    from livedance.engine.learned import LearnedGenerator

    engine = SimpleNamespace(config=SimpleNamespace(window=6, feat_dim=3), _feats=feats, _times=times)
    for n, t in enumerate(slots):  # the engine's window at each slot, all frames buffered, is training's
        np.testing.assert_array_equal(LearnedGenerator.window_before(engine, t - 0.16), with_silence[idx[n]])
    clip = ClipTokens("c", np.zeros((1, 4, 2, 4), np.int64), with_silence, idx, np.zeros((4, 10), np.float32),
                      silent_row=F)
    mean, std = feature_stats([clip])
    used = np.unique(idx[idx < F])
    np.testing.assert_allclose(mean.numpy(), feats[used].mean(0), rtol=1e-6)
    np.testing.assert_allclose(std.numpy(), feats[used].std(0), rtol=1e-6)


def test_the_chunk_heads_conditions_come_from_the_chunk_start_as_in_the_engine():
    """Slot n+k of a chunk starting at n is extrapolated from the tracker at t_n - lag (all the engine has at
    that step), not from its own t_{n+k} - lag."""
    F = 500
    times = (np.arange(F) + 1) * 512 / 22050
    feats = np.zeros((F, 3), np.float32)
    hops = np.arange(1, 900) * 512 / 44100
    bpm = np.where(hops < 2.9, 100.0, 130.0).astype(np.float32)  # the tracker changes its mind at 2.9 s
    phase = ((hops * bpm / 60.0) % 1.0).astype(np.float32)
    bt = BeatTrack(hops, bpm, phase, np.ones(899, np.float32))
    song = SongConditioning(feats, times, bt, F * 512 / 22050)
    slots = 2.0 + 0.16 * np.arange(12)
    idx, cond, ahead = slot_inputs(song, slots, window=6, lag_s=0.16, chunk=2)
    assert ahead.shape == (12, 2, 10)
    np.testing.assert_array_equal(ahead[:, 0], cond)
    ref_t, b, ph, c = beat_state_before(bt, slots - 0.16)
    np.testing.assert_allclose(ahead[:, 1], slot_condition(b, ph, c, ref_t, slots + 0.16), atol=1e-6)
    changed = (ref_t < 2.9) & (slots + 0.16 - 0.16 >= 2.9)  # slot n+1's own tracker state already saw 130 BPM
    assert changed.any() and not np.allclose(ahead[changed, 1], cond[np.flatnonzero(changed) + 1])


def test_forward_takes_the_chunk_conditions():
    torch.manual_seed(0)
    cfg = GeneratorConfig(d_model=32, n_layers=1, chunk_layers=1, n_heads=2, codebook_size=16, window=4, d_state=4,
                          feat_dim=6)
    m = DanceGenerator(cfg).eval()
    B, N = 2, 10
    codes = torch.randint(0, 16, (B, N, cfg.n_parts, cfg.levels))
    window, cond = torch.randn(B, N, 4, 6), torch.randn(B, N, cfg.cond_dim)
    ahead = torch.stack([cond, torch.randn(B, N, cfg.cond_dim)], dim=2)
    torch.manual_seed(1)
    a = m(codes, window, cond, cond_chunk=ahead)["loss"]
    torch.manual_seed(1)
    b = m(codes, window, cond, cond_chunk=torch.stack([cond, torch.randn(B, N, cfg.cond_dim)], dim=2))["loss"]
    torch.manual_seed(1)
    c = m(codes, window, cond)["loss"]
    assert torch.isfinite(a) and not torch.allclose(a, b) and not torch.allclose(a, c)


DATA = default_data_root()


def test_beat_track_phase_matches_the_live_tracker():
    from livedance.beats.tracker import BeatTracker, TrackerConfig
    from livedance.model.conditioning import track_song

    sr = 44100
    t = np.arange(int(8 * sr)) / sr
    clicks = np.zeros_like(t, dtype=np.float32)
    for b in np.arange(0.25, 8, 0.5):
        i = int(b * sr)
        clicks[i:i + 400] = np.sin(2 * np.pi * 1000 * t[:400]) * np.hanning(400)
    track = track_song(clicks)
    tr = BeatTracker(TrackerConfig(sample_rate=sr))
    tr.push(clicks[: int(6 * sr) // 512 * 512])
    s = tr.time_s
    ref_t, bpm, phase, conf = beat_state_before(track, s)
    assert ref_t == pytest.approx(s) and bpm == pytest.approx(tr.bpm, rel=1e-5)
    target = s + 0.4
    c = slot_condition(bpm, phase, conf, ref_t, target)
    assert c[0] == pytest.approx(np.sin(2 * np.pi * tr.beat_phase(target)), abs=1e-4)


def test_ship_generator_bakes_temperature_and_writes_the_card(tmp_path):
    import json

    from livedance.errors import DataError
    from livedance.model.train_generator import load_model, save_model, ship_generator

    torch.manual_seed(0)
    g = DanceGenerator(GeneratorConfig(**SMALL)).eval()
    run = tmp_path / "run" / "generator"
    save_model(g, run, {"model": "livedance", "training": {"command": "livedance train generator --minutes 1",
                                                           "steps": 7, "elapsed_s": 60.0}})
    row = {"label": "livedance (generated), T=0.9", "FIDk": 50.0, "FIDg": 30.0, "Divk": 8.0, "Divg": 6.0,
           "BAS": 0.2, "PFC": 0.5}
    sel = tmp_path / "val.json"
    sel.write_text(json.dumps({"split": "val", "seed": 0, "sampling_seeds": "per-clip",
                               "rows": [{"label": "ground truth"}, row]}))
    tests = []
    for seed, fid_k in ((0, 40.0), (1, 60.0)):  # two seeds: the card shows their mean, 50
        t = tmp_path / f"test{seed}.json"
        t.write_text(json.dumps({"split": "test", "reference_split": "train", "fps": 25.0, "seconds": 20.0, "seed": seed,
                                 "sampling_seeds": "per-clip", "rows": [dict(row, label="ground truth"), dict(row, label="baseline (generated)", FIDk=fid_k)]}))
        tests.append(t)
    out = tmp_path / "weights"
    ship_generator(run, 0.9, tests, [sel], weights_dir=out, residual_temperature=0.0, top_k=20, min_p=0.1)
    shipped, doc = load_model(out / "generator")
    assert shipped.config.top_k == 20 and g.config.top_k == 0
    assert shipped.config.min_p == pytest.approx(0.1) and g.config.min_p == 0.0
    assert shipped.config.temperature == pytest.approx(0.9) and g.config.temperature != pytest.approx(0.9)
    assert shipped.config.residual_temperature == 0.0 and g.config.residual_temperature is None
    for k, v in g.state_dict().items():
        assert torch.equal(v, shipped.state_dict()[k])
    assert "val split" in doc["inference_note"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Generator" in card and "livedance train generator --minutes 1" in card and "residual levels argmax" in card
    assert "top-k 20, min-p 0.1" in card
    assert "| livedance (generated), T=0.9 | 50.00 |" in card and "| 1 (0) |" in card
    assert "| baseline (generated) | 50.00 | 30.00 |" in card and "| 2 (0, 1) |" in card
    with pytest.raises(ConfigError, match="temperature"):
        ship_generator(run, 0.0, weights_dir=out)
    with pytest.raises(DataError, match="missing.json"):
        ship_generator(run, 1.0, [tmp_path / "missing.json"], weights_dir=out)
    with pytest.raises(ConfigError, match="test-split run: sampling settings are chosen on val"):
        ship_generator(run, 0.9, tests, [tests[0]], weights_dir=out)
    with pytest.raises(ConfigError, match="give files of one protocol"):
        ship_generator(run, 0.9, [*tests, sel], [sel], weights_dir=out)


def _chunk_inputs(model: DanceGenerator, seed: int = 0):
    """Zero state, a BOS pending slot and one chunk's music: the inputs of the model's first :meth:`step`."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    sh = model.state_shapes(1)
    K = cfg.chunk
    return dict(
        conv_state=torch.zeros(sh["conv_state"]), ssm_state=torch.zeros(sh["ssm_state"]),
        h_last=torch.zeros(sh["h_last"]),
        pend_codes=torch.zeros(1, K, cfg.n_parts, cfg.levels, dtype=torch.long),
        pend_window=torch.zeros(1, K, cfg.window, cfg.feat_dim), pend_cond=torch.zeros(1, K, cfg.cond_dim),
        pend_kind=torch.tensor([[0.0] * (K - 1) + [2.0]]),
        window=torch.randn(1, cfg.window, cfg.feat_dim, generator=g), cond=torch.randn(1, K, cfg.cond_dim, generator=g),
        gumbel_base=torch.zeros(1, cfg.mask_iters, K * cfg.n_parts, cfg.codebook_size),
        gumbel_res=torch.zeros(1, K, cfg.n_parts, cfg.levels - 1, cfg.codebook_size),
    )


def test_guidance_needs_music_dropout_and_a_valid_scale():
    with pytest.raises(ConfigError, match="music_dropout"):
        GeneratorConfig(**SMALL, guidance=2.0)
    for bad in (-0.5, float("nan")):
        with pytest.raises(ConfigError, match="guidance"):
            GeneratorConfig(**SMALL, music_dropout=0.1, guidance=bad)
    with pytest.raises(ConfigError, match="music_dropout"):
        GeneratorConfig(**SMALL, music_dropout=1.0)
    assert "null_music" not in DanceGenerator(GeneratorConfig(**SMALL)).state_dict()  # shipped weights still load
    assert DanceGenerator(GeneratorConfig(**SMALL, music_dropout=0.1)).null_music.shape == (SMALL["d_model"],)


def test_music_dropout_replaces_the_heads_music_in_training_only():
    """In training, a share music_dropout of the chunks gets ``null_music`` as the heads' music (chunk head and
    residual head); in eval mode the heads always get the chunk's own music."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(**SMALL, music_dropout=0.5)
    g = DanceGenerator(cfg)
    codes, win, cond = _batch(cfg, B=16, N=10)
    seen = {}
    chunk_logits, residual_logits = g.chunk_logits, g.residual_logits

    def spy(name, fn):
        def wrapped(ctx, music, *a):
            seen[name] = music.detach().clone()
            return fn(ctx, music, *a)
        return wrapped

    g.chunk_logits, g.residual_logits = spy("chunk", chunk_logits), spy("res", residual_logits)
    null = g.null_music.detach()
    for training in (True, False):
        g.train(training)
        g(codes, win, cond)
        is_null = (seen["chunk"] == null).all(-1).all(-1)  # (B, S) chunks whose music was dropped
        assert torch.equal(seen["res"], seen["chunk"])
        if training:
            assert 0.2 < float(is_null.float().mean()) < 0.8  # about half of 16 x 4 chunks
        else:
            assert not bool(is_null.any())


def test_guidance_mixes_the_log_probabilities_with_and_without_music():
    """w = 1 is plain sampling; w = 0 samples the null-music prior (the chunk's window no longer matters for the
    base level); the guided logits equal log p_null + w (log p_music - log p_null)."""
    from dataclasses import replace

    torch.manual_seed(0)
    cfg = GeneratorConfig(**SMALL, music_dropout=0.1)
    g = DanceGenerator(cfg).eval()
    inp = _chunk_inputs(g)
    with torch.no_grad():
        plain = g.step(**inp)[0]
        g.config = replace(cfg, guidance=1.0)
        assert torch.equal(g.step(**inp)[0], plain)
        g.config = replace(cfg, guidance=0.0)
        bases = {int(i): g.step(**{**inp, "window": inp["window"] + 3.0 * i})[0][..., 0] for i in range(3)}
        assert torch.equal(bases[0], bases[1]) and torch.equal(bases[0], bases[2])
        g.config = cfg
        plain_bases = {i: g.step(**{**inp, "window": inp["window"] + 3.0 * i})[0][..., 0] for i in range(3)}
        assert not all(torch.equal(plain_bases[0], plain_bases[i]) for i in (1, 2))
        # the formula: the logits the mask-predict loop samples from, first iteration (everything masked)
        import livedance.model.generator as G

        seen = []
        real = G.mask_predict

        def spy(logits_fn, *a, **kw):
            n = a[1]
            seen.append(logits_fn(torch.zeros(1, n, dtype=torch.long), torch.ones(1, n, dtype=torch.bool)))
            return real(logits_fn, *a, **kw)

        w = 2.5
        g.config = replace(cfg, guidance=w)
        G.mask_predict = spy
        try:
            g.step(**inp)
        finally:
            G.mask_predict = real
        K, P = cfg.chunk, cfg.n_parts
        win = inp["window"]
        mk = g.music(win.unsqueeze(1).expand(1, K, *win.shape[1:]), inp["cond"])
        h = g.step(**inp)[3]  # h_last after the BOS commit
        base = torch.zeros(1, K, P, dtype=torch.long)
        masked = torch.ones(1, K, P, dtype=torch.bool)
        lc = torch.log_softmax(g.chunk_logits(h, mk, base, masked), -1)
        lu = torch.log_softmax(g.chunk_logits(h, g.null_music.expand_as(mk), base, masked), -1)
        assert float((lc - lu).abs().max()) > 1e-3
        torch.testing.assert_close(seen[0], (lu + w * (lc - lu)).reshape(1, K * P, -1), atol=1e-5, rtol=1e-5)

def test_selection_rows_of_different_weights_stay_apart():
    """The card's selection table averages a row over seeds only within one ``--weights`` run: two runs at the same
    sampling settings give two rows (named by their weights), two seeds of one run give one."""
    from livedance.model.train_generator import _mean_rows

    def doc(seed, weights, fid, seeds="per-clip"):
        cmd = "livedance eval --split val --models livedance" + (f" --weights {weights}" if weights else "")
        d = {"seed": seed, "command": cmd, "rows": [{"label": "livedance (generated), T=0.6", "FIDk": fid}]}
        if seeds is not None:
            d["sampling_seeds"] = seeds
        return d

    rows = _mean_rows([doc(0, "runs/a/generator", 10.0), doc(1, "runs/a/generator", 20.0), doc(0, "runs/b/generator", 90.0),
                       doc(0, None, 50.0), doc(1, None, 70.0, seeds=None), doc(2, None, 80.0, seeds="shared")],
                      lambda label: "livedance" in label)
    by = {r["label"]: r for r in rows}
    # a JSON written before per-clip seeds (no sampling_seeds) and one with --shared-seed form their own row
    assert by["livedance (generated), T=0.6, shared seed"]["FIDk"] == pytest.approx(75.0)
    assert by["livedance (generated), T=0.6, weights runs/a/generator"]["FIDk"] == pytest.approx(15.0)
    assert by["livedance (generated), T=0.6, weights runs/a/generator"]["seeds"] == [0, 1]
    assert by["livedance (generated), T=0.6, weights runs/b/generator"]["FIDk"] == pytest.approx(90.0)
    assert by["livedance (generated), T=0.6"]["FIDk"] == pytest.approx(50.0)


def test_style_balance_repeats_the_rarer_styles_windows_evenly():
    from livedance.model.train_generator import clip_style, style_balanced_index

    styles = ["waltz", "cha-cha", "waltz"]
    index = [(0, 0, s) for s in range(40)] + [(1, 0, s) for s in range(10)] + [(2, 0, s) for s in range(24)]
    assert style_balanced_index(index, styles, 0.0) == index
    full = style_balanced_index(index, styles, 1.0)  # 64 waltz windows, 10 cha-cha: both drawn 64 times
    counts = {st: sum(styles[w[0]] == st for w in full) for st in ("waltz", "cha-cha")}
    assert counts == {"waltz": 64, "cha-cha": 64}
    assert sorted(w for w in full if w[0] != 1) == sorted(w for w in index if w[0] != 1)  # the largest is kept as is
    reps = [sum(w == (1, 0, s) for w in full) for s in range(10)]
    assert min(reps) >= 6 and max(reps) <= 7  # 64 / 10: every cha-cha window 6 or 7 times, none left out
    half = style_balanced_index(index, styles, 0.5)
    assert sum(styles[w[0]] == "cha-cha" for w in half) == round(10 * (64 / 10) ** 0.5)
    with pytest.raises(ConfigError, match="style balance"):
        style_balanced_index(index, styles, 1.5)
    assert clip_style("DANCE_C_4~mirror") == "cha-cha" and clip_style("DANCE_W_31") == "waltz"
    assert clip_style("gBR_sBM_cAll_d04_mBR0_ch01") == "gBR"
    with pytest.raises(DataError, match="DANCE_"):
        clip_style("my_dance")


def test_window_dataset_draws_the_styles_as_balanced():
    from livedance.model.train_generator import ClipTokens, TokenWindowDataset

    def clip(name, n):
        return ClipTokens(name, np.zeros((1, n, 2, 4), np.int64), np.zeros((10, 3), np.float32),
                          np.zeros((n, 2), np.int64), np.zeros((n, 10), np.float32))

    clips = [clip("DANCE_W_1", 8 + 8 * 11), clip("DANCE_C_1", 8 + 8 * 2)]  # 12 waltz windows, 3 cha-cha
    assert len(TokenWindowDataset(clips, tokens=8, hop=8)) == 15
    ds = TokenWindowDataset(clips, tokens=8, hop=8, style_balance=1.0)
    assert len(ds) == 24 and sum(i == 1 for i, _, _ in ds.index) == 12
    assert ds[23]["codes"].shape == (8, 2, 4)


def test_muted_timbre_leaves_the_encoder_deaf_to_the_log_mel_only():
    from livedance.features import FeatureConfig
    from livedance.model.music_encoder import MusicEncoder
    from livedance.model.train_generator import mute_timbre

    torch.manual_seed(0)
    fc = FeatureConfig()
    enc = MusicEncoder(fc.feature_dim, 10, 32, window=4, n_heads=2).eval()
    enc.set_stats(torch.zeros(fc.feature_dim), mute_timbre(torch.ones(fc.feature_dim)))
    win, cond = torch.randn(2, 4, fc.feature_dim), torch.randn(2, 10)
    other_mel = win.clone()
    other_mel[..., fc.slices["logmel"]] += 30.0  # a much louder, brighter song
    other_onset = win.clone()
    other_onset[..., fc.slices["onset"]] += 3.0
    with torch.no_grad():
        base, mel, onset = enc(win, cond), enc(other_mel, cond), enc(other_onset, cond)
    torch.testing.assert_close(mel, base, atol=1e-4, rtol=0)
    assert (onset - base).abs().max() > 1e-2


def test_timbre_muted_reads_the_statistics():
    from livedance.model.train_generator import mute_timbre, timbre_muted

    std = torch.rand(180) + 0.5
    assert not timbre_muted(std) and timbre_muted(mute_timbre(std))
    assert timbre_muted(mute_timbre(mute_timbre(std)))  # muting twice changes nothing
    torch.testing.assert_close(mute_timbre(mute_timbre(std)), mute_timbre(std))


@pytest.mark.parametrize("offset", [0, 1])
def test_committed_tokens_get_the_conditions_the_engine_commits_them_with(offset):
    """Teacher forcing with committed_conditions == the step path fed each chunk's own predicted conditions."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(**SMALL)
    g = DanceGenerator(cfg).eval()
    K = cfg.chunk
    assert K == 2
    N = 9
    codes, win, cond = _batch(cfg, B=1, N=N)
    ahead = torch.stack([cond, torch.randn(1, N, cfg.cond_dim)], dim=2)  # slot n+1 as predicted at n: not cond[n+1]
    used = DanceGenerator.committed_conditions(cond, ahead, offset)
    for j in range(N):  # by hand: a slot at position k > 0 of a chunk started in the window takes that chunk's row
        k = (j - offset) % K
        want = ahead[:, j - k, k] if j - k >= 0 else cond[:, j]
        torch.testing.assert_close(used[:, j], want)
    assert torch.equal(DanceGenerator.committed_conditions(cond, None, offset), cond)
    with torch.no_grad():
        x = g.token_inputs(g.music(win, used), codes)
        seq = [torch.cat([g.bos[i].expand(1, 1, -1), x[i][:, :-1]], 1) for i in range(cfg.n_parts)]
        H = g.backbone(seq)
        # the engine's stream starts at the window's first chunk start; before it, the slots were committed singly
        cs, ss, h, pc, pw, pd, kind, gb, gr = _stream_start(g)
        if offset:  # slot 0 alone (its chunk began before the window): committed with its own condition
            _, cs, ss, h = g.step(cs, ss, h, pc, pw, pd, kind, win[:, 0], ahead[:, 0], gb, gr)
            pc = torch.cat([codes[:, :1], codes[:, :1]], 1)
            pw, pd = torch.cat([win[:, :1], win[:, :1]], 1), torch.cat([cond[:, :1], cond[:, :1]], 1)
            kind = torch.tensor([[0.0, 1.0]])
        for n in range(offset, N - K + 1, K):
            _, cs, ss, h = g.step(cs, ss, h, pc, pw, pd, kind, win[:, n], ahead[:, n], gb, gr)
            ref = torch.stack([H[i][:, n] for i in range(cfg.n_parts)], 1)
            torch.testing.assert_close(h, ref, atol=1e-5, rtol=1e-4)
            pc, pw, pd, kind = codes[:, n:n + K], win[:, n:n + K], ahead[:, n], torch.ones(1, K)


def test_forward_commits_the_tokens_with_the_chunk_conditions():
    torch.manual_seed(0)
    cfg = GeneratorConfig(**SMALL)
    g = DanceGenerator(cfg)
    codes, win, cond = _batch(cfg, B=2, N=10)
    ahead = torch.stack([cond, torch.randn(2, 10, cfg.cond_dim)], dim=2)
    seen = []
    music = g.music.forward
    g.music.forward = lambda w, c: (seen.append(c), music(w, c))[1]
    for seed in range(4):  # both chunk offsets
        torch.manual_seed(seed)
        offset = int(torch.randint(0, cfg.chunk, ()))
        torch.manual_seed(seed)
        seen.clear()
        g(codes, win, cond, cond_chunk=ahead)
        torch.testing.assert_close(seen[0], DanceGenerator.committed_conditions(cond, ahead, offset))
        assert not torch.allclose(seen[0], cond)


def test_absurd_music_and_a_non_finite_bos_slot_leave_the_step_finite():
    torch.manual_seed(0)
    cfg = GeneratorConfig(**SMALL)
    g = DanceGenerator(cfg).eval()
    K, P = cfg.chunk, cfg.n_parts
    cs, ss, h, pc, pw, pd, kind, _, _ = _stream_start(g)
    pw[:, -1] = float("nan")  # the BOS slot's window: not used, and must not leak into the fresh state
    gb = torch.randn(1, cfg.mask_iters, K * P, cfg.codebook_size)  # sampling noise: NaN logits would give code 0
    gr = torch.randn(1, K, P, cfg.levels - 1, cfg.codebook_size)
    loud = torch.full((1, cfg.window, cfg.feat_dim), 1e30)  # finite, absurd: clamped to Z_MAX sigmas
    with torch.no_grad():
        codes, cs2, ss2, h2 = g.step(cs, ss, h, pc, pw, pd, kind, loud, torch.zeros(1, K, cfg.cond_dim), gb, gr)
        assert all(torch.isfinite(t).all() for t in (cs2, ss2, h2))
        z = g.music.feat_mean + Z_MAX * g.music.feat_std  # the clamp's edge gives the same codes
        same, *_ = g.step(cs, ss, h, pc, pw, pd, kind, z.expand_as(loud).clone(), torch.zeros(1, K, cfg.cond_dim), gb, gr)
    assert torch.equal(codes, same) and codes.any()


def test_hold_codes_freezes_one_run_per_chosen_window_and_forward_keeps_real_targets():
    torch.manual_seed(0)
    codes = torch.randint(0, 512, (64, 40, 2, 4))
    kept = codes.clone()
    out = hold_codes(codes, 1.0, max_len=12)
    assert torch.equal(codes, kept) and torch.equal(hold_codes(codes, 0.0), codes)
    for b in range(64):  # exactly one run: slots s+1 .. s+L-1 equal slot s, 2 <= L <= 12; nothing else changed
        changed = (out[b] != codes[b]).flatten(1).any(1).nonzero().flatten()
        assert 1 <= len(changed) <= 11
        s, e = int(changed[0]) - 1, int(changed[-1])
        assert torch.equal(out[b, s:e + 1], codes[b, s].expand(e + 1 - s, 2, 4))
    longest = max(int((hold_codes(codes, 1.0, max_len=32)[b] != codes[b]).flatten(1).any(1).sum()) for b in range(64))
    assert 11 < longest <= 31  # --hold-slots 32: runs past the default 12
    half = sum(bool((hold_codes(codes, 0.5)[b] != codes[b]).any()) for b in range(64))
    assert 16 < half < 48
    with pytest.raises(ConfigError, match="hold"):
        hold_codes(codes, 1.5)
    cfg = GeneratorConfig(**SMALL)
    g = DanceGenerator(cfg)
    c, win, cond = _batch(cfg, B=2, N=12)
    torch.manual_seed(3)
    a = g(c, win, cond)["loss"]
    torch.manual_seed(3)
    b = g(c, win, cond, hold=1.0)["loss"]
    assert torch.isfinite(b) and not torch.allclose(a, b)  # forward takes the option (its history is held)
