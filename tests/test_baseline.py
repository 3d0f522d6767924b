"""Bailando-style baseline (livedance.model.baseline_gpt): shapes, causality, step == forward, weights, engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from livedance.engine.base import MotionGenerator, MusicContext
from livedance.errors import ConfigError, WeightsError
from livedance.model.baseline_gpt import BASELINE_CONTEXT, BaselineGPT, load_baseline, load_baseline_graph
from livedance.model.generator import GeneratorConfig

torch.set_num_threads(1)

CTX = 12
F_DIM = 180  # the engines feed FeatureConfig().feature_dim frames


def _cfg(levels: int = 1, **kw) -> GeneratorConfig:
    d = dict(d_model=32, n_layers=2, n_heads=2, codebook_size=16, levels=levels, window=4, chunk=2, feat_dim=F_DIM)
    d.update(kw)
    return GeneratorConfig(**d)


def _model(levels: int = 1, seed: int = 0, context: int = CTX, **kw) -> BaselineGPT:
    torch.manual_seed(seed)
    return BaselineGPT(_cfg(levels, **kw), context=context).eval()


def _inputs(m: BaselineGPT, B: int, N: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c = m.config
    codes = torch.randint(0, c.codebook_size, (B, N, c.n_parts, c.levels), generator=g)
    window = torch.randn(B, N, c.window, c.feat_dim, generator=g)
    cond = torch.randn(B, N, c.cond_dim, generator=g)
    return codes, window, cond


@pytest.mark.parametrize("levels", [1, 3])
def test_forward_shapes_and_loss(levels):
    m = _model(levels)
    codes, window, cond = _inputs(m, 3, CTX)
    lg = m.teacher_forced_logits(codes, window, cond, chunk_offset=1)
    assert lg.shape == (3, CTX, 2, levels, 16)
    out = m(codes, window, cond)
    assert set(out) == {"loss", "acc"} and out["loss"].ndim == 0
    # an untrained model is close to uniform over the codes: cross-entropy ~ log C
    assert abs(float(out["loss"].detach()) - np.log(16)) < 0.5
    out["loss"].backward()
    assert m.heads.weight.grad is not None and torch.isfinite(m.heads.weight.grad).all()
    with pytest.raises(ConfigError):
        m(*_inputs(m, 1, CTX + 1))


def test_training_lowers_the_loss_on_a_fixed_batch():
    m = _model().train()
    batch = _inputs(m, 4, CTX, seed=3)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = m(*batch, chunk_offset=0)["loss"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


@pytest.mark.parametrize("n", [0, 5, 8])
def test_causal_future_music_and_codes_do_not_change_the_past(n):
    m = _model(levels=2)
    codes, window, cond = _inputs(m, 2, CTX, seed=1)
    for off in (0, 1):
        ref = m.teacher_forced_logits(codes, window, cond, chunk_offset=off)
        c2, w2, k2 = codes.clone(), window.clone(), cond.clone()
        c2[:, n:] = torch.randint(0, 16, c2[:, n:].shape)  # codes of slot n and later feed slots > n only
        w2[:, n + 1:] += 5.0 * torch.randn_like(w2[:, n + 1:])
        k2[:, n + 1:] += 5.0 * torch.randn_like(k2[:, n + 1:])
        new = m.teacher_forced_logits(c2, w2, k2, chunk_offset=off)
        torch.testing.assert_close(new[:, : n + 1], ref[:, : n + 1], rtol=0, atol=1e-5)
        assert (new[:, n + 1:] - ref[:, n + 1:]).abs().max() > 1e-3  # the future does see it


def _run_steps(m: BaselineGPT, windows, conds, gb, gr):
    """Feed chunks through step from a stream start; returns (codes (B, S*K, P, V), final states)."""
    c = m.config
    B = windows.shape[0]
    st = {k: torch.zeros(s) for k, s in m.state_shapes(B).items()}
    K = c.chunk
    pend = torch.zeros(B, K, c.n_parts, c.levels, dtype=torch.long)
    kind = torch.zeros(B, K)
    kind[:, -1] = 2.0
    out = []
    for s in range(windows.shape[1]):
        codes, *states = m.step(st["hist"], st["hist_valid"], st["x_last"], pend, torch.zeros(B, K, c.window, c.feat_dim),
                                torch.zeros(B, K, c.cond_dim), kind, windows[:, s], conds[:, s], gb[:, s], gr[:, s])
        st = dict(zip(("hist", "hist_valid", "x_last"), states))
        pend, kind = codes, torch.ones(B, K)
        out.append(codes)
    return torch.cat(out, 1), st


@pytest.mark.parametrize("levels", [1, 2])
def test_step_equals_full_forward(levels):
    """Sampling slot by slot with step gives, at every slot, the code the teacher-forced forward samples with
    the same noise (so the logits agree), as long as the sequence fits the context."""
    m = _model(levels, seed=2)
    c = m.config
    B, S, K, P, C = 2, CTX // 2, c.chunk, c.n_parts, c.codebook_size
    g = torch.Generator().manual_seed(5)
    windows = torch.randn(B, S, c.window, c.feat_dim, generator=g)
    conds = torch.randn(B, S, K, c.cond_dim, generator=g)
    gb = -torch.log(-torch.log(torch.rand(B, S, c.mask_iters, K * P, C, generator=g)))
    gr = -torch.log(-torch.log(torch.rand(B, S, K, P, max(levels - 1, 1), C, generator=g)))
    codes, st = _run_steps(m, windows, conds, gb, gr)
    assert codes.shape == (B, S * K, P, levels) and codes.dtype == torch.long
    with torch.no_grad():
        lg = m.teacher_forced_logits(codes, windows.repeat_interleave(K, 1), conds.reshape(B, S * K, -1), chunk_offset=0)
    noise = torch.cat([gb[:, :, 0].reshape(B, S, K, P, 1, C), gr], dim=4)[..., :levels, :].reshape(B, S * K, P, levels, C)
    again = torch.argmax(torch.log_softmax(lg, -1) / c.temperature + noise, -1)
    assert torch.equal(again, codes)
    assert len(set(codes[..., 0].flatten().tolist())) > 3  # not a degenerate constant sequence


def test_step_slides_past_the_context_and_greedy_is_deterministic():
    m = _model(seed=4)
    c = m.config
    B, S, K, P, C = 1, CTX, c.chunk, c.n_parts, c.codebook_size  # 2 * CTX slots: the window slides
    g = torch.Generator().manual_seed(6)
    windows = torch.randn(B, S, c.window, c.feat_dim, generator=g)
    conds = torch.randn(B, S, K, c.cond_dim, generator=g)
    zb, zr = torch.zeros(B, S, c.mask_iters, K * P, C), torch.zeros(B, S, K, P, 1, C)
    a, st = _run_steps(m, windows, conds, zb, zr)
    b, _ = _run_steps(m, windows, conds, zb, zr)
    assert torch.equal(a, b)
    assert all(torch.isfinite(v).all() for v in st.values()) and bool((st["hist_valid"] == 1).all())


def _tokenizer(levels: int):
    from livedance.model.tokenizer import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    variant = "vq" if levels == 1 else "rvq"
    return Tokenizer(TokenizerConfig(variant=variant, levels=levels, codebook_size=16, latent_dim=8, width=16,
                                     kmeans_init=False)).eval()


def _ship(folder, m: BaselineGPT, tok):
    from livedance.model.representation import Representation
    from livedance.model.train_generator import save_model

    tok.save(folder / "baseline_tokenizer", Representation())
    sha = json.loads((folder / "baseline_tokenizer.json").read_text())["sha256"]
    save_model(m, folder / "baseline", {"model": "baseline", "tokenizer": "baseline_tokenizer", "tokenizer_sha256": sha})


def test_save_load_round_trip_and_motion_generator(tmp_path):
    m = _model(seed=7, context=BASELINE_CONTEXT)  # the loader rebuilds the architecture's fixed context
    with torch.no_grad():
        m.music.set_stats(torch.randn(F_DIM), torch.rand(F_DIM) + 0.5)
    _ship(tmp_path, m, _tokenizer(1))
    graph, rep, doc = load_baseline_graph(tmp_path)
    assert doc["model"] == "baseline" and isinstance(graph.model, BaselineGPT)
    for k, v in m.state_dict().items():
        assert torch.equal(graph.model.state_dict()[k], v), k
    gen = load_baseline(tmp_path, backend="torch", seed=3)
    assert isinstance(gen, MotionGenerator) and gen.frames_per_step == 8 and gen.fps == 25.0
    rng = np.random.default_rng(0)
    t = 2.0
    for _ in range(20):  # 20 steps = 80 slots: past the context
        f = rng.normal(size=(14, F_DIM)).astype(np.float32)
        fr = gen.step(MusicContext(f, t - 0.3 + np.arange(14) / 43.07, 120.0, 0.25, 0.8, t))
        assert fr.local_quats.shape == (8, 55, 4) and np.isfinite(fr.local_quats).all() and fr.n_bad == 0
        t += 0.32


def test_weights_errors(tmp_path):
    from livedance.model.representation import Representation

    m = _model(context=BASELINE_CONTEXT)
    _ship(tmp_path, m, _tokenizer(1))
    load_baseline_graph(tmp_path)
    # config that does not match the tensors
    js = tmp_path / "baseline.json"
    doc = json.loads(js.read_text())
    bad = dict(doc, config=dict(doc["config"], d_model=48))
    js.write_text(json.dumps(bad))
    with pytest.raises(WeightsError, match="do not match"):
        load_baseline_graph(tmp_path)
    # a tokenizer with other levels than the GPT was trained for
    js.write_text(json.dumps(dict(doc, tokenizer_sha256=None)))
    _tokenizer(2).save(tmp_path / "baseline_tokenizer", Representation())
    with pytest.raises(WeightsError, match="levels"):
        load_baseline_graph(tmp_path)
    # not a baseline
    js.write_text(json.dumps(dict(doc, model="livedance")))
    with pytest.raises(WeightsError):
        load_baseline_graph(tmp_path)
    # truncated weights
    js.write_text(json.dumps(doc))
    st = tmp_path / "baseline.safetensors"
    st.write_bytes(st.read_bytes()[:100])
    with pytest.raises(WeightsError):
        load_baseline_graph(tmp_path)
    with pytest.raises(WeightsError):
        load_baseline(tmp_path / "nowhere", backend="torch")


def test_onnx_engine_matches_torch(tmp_path):
    """The baseline's step exports to ONNX (fixed shapes) and samples the same codes as torch eager."""
    from livedance.engine.loader import build_generator

    m = _model(seed=8, context=BASELINE_CONTEXT)
    _ship(tmp_path, m, _tokenizer(1))
    graph, rep, _ = load_baseline_graph(tmp_path)
    a = build_generator(graph, rep, "torch", seed=3)
    b = build_generator(graph, rep, "onnx", tmp_path / "step.onnx", seed=3)
    rng = np.random.default_rng(1)
    t = 2.0
    for _ in range(20):  # 40 slots: past the context
        f = rng.normal(size=(14, F_DIM)).astype(np.float32)
        ctx = MusicContext(f, t - 0.3 + np.arange(14) / 43.07, 100.0, 0.5, 0.9, t)
        fa, fb = a.step(ctx), b.step(ctx)
        assert np.array_equal(a._pend_codes, b._pend_codes)
        np.testing.assert_allclose(fa.local_quats, fb.local_quats, atol=1e-4)
        t += 0.32


def test_ship_baseline_bakes_the_chosen_temperature(tmp_path):
    from livedance.model.baseline_gpt import ship_baseline
    from livedance.model.train_generator import load_model, save_model

    m = _model(seed=2, context=BASELINE_CONTEXT)
    tok = _tokenizer(1)
    run = tmp_path / "run"
    run.mkdir()
    from livedance.model.representation import Representation

    tok.save(run / "tokenizer", Representation())
    save_model(m, run / "baseline", {"model": "baseline"})
    out = tmp_path / "weights"
    out.mkdir()
    ship_baseline(run / "baseline", run / "tokenizer", weights_dir=out, temperature=0.6)
    shipped, _ = load_model(out / "baseline")
    assert shipped.config.temperature == pytest.approx(0.6) != m.config.temperature
    for k, v in m.state_dict().items():
        assert torch.equal(shipped.state_dict()[k], v), k
    with pytest.raises(ConfigError, match="temperature"):
        ship_baseline(run / "baseline", run / "tokenizer", weights_dir=out, temperature=-1.0)


def test_ship_baseline_keeps_a_tokenizer_with_the_runs_codes_and_refuses_other_codes(tmp_path):
    """Re-shipping a baseline must not undo a decoder fine-tune of its tokenizer (the shipped one has the run's
    codes: kept), and a run trained on other codes than the given tokenizer is refused before anything is written."""
    import json

    from livedance.errors import WeightsError
    from livedance.model.baseline_gpt import ship_baseline
    from livedance.model.representation import Representation
    from livedance.model.train_generator import save_model

    run = tmp_path / "run"
    run.mkdir()
    _tokenizer(1).save(run / "tokenizer", Representation())
    _tokenizer(2).save(run / "other", Representation())
    sha = json.loads((run / "tokenizer.json").read_text())["sha256"]
    save_model(_model(seed=2, context=BASELINE_CONTEXT), run / "baseline", {"model": "baseline", "tokenizer_sha256": sha})
    out = tmp_path / "weights"
    out.mkdir()
    ship_baseline(run / "baseline", run / "tokenizer", weights_dir=out)
    tuned = (out / "baseline_tokenizer.safetensors").read_bytes()
    ship_baseline(run / "baseline", run / "other", weights_dir=out)  # the shipped tokenizer has the run's codes
    assert (out / "baseline_tokenizer.safetensors").read_bytes() == tuned
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(WeightsError, match="other.json"):
        ship_baseline(run / "baseline", run / "other", weights_dir=fresh)
    assert not list(fresh.iterdir())  # refused before anything was written
