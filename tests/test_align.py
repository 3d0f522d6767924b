"""Tests of livedance.model.align: SoulNet's alignment prior as a generator training loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from livedance.data.dataset import smpl24_positions
from livedance.errors import ConfigError, DataError
from livedance.model.align import (
    AlignConfig,
    AlignmentLoss,
    motion_features_torch,
    music_bank,
    smpl24_positions_torch,
    straight_through_sample,
)
from livedance.model.generator import DanceGenerator, GeneratorConfig
from livedance.model.retrieval import MusicDanceRetrieval, RetrievalConfig, motion_window_features, music_dim
from livedance.model.tokenizer import Tokenizer
from livedance.model.train_generator import ClipTokens, GeneratorRunConfig, TokenWindowDataset, run_training

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shipped():
    tok, rep, _ = Tokenizer.load(None)
    return tok, rep


def _codes(tok, B: int, N: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {p: torch.randint(0, tok.config.codebook_size, (B, N, tok.config.levels), generator=g) for p in tok.config.parts}


def test_onehot_dequantize_is_dequantize_and_linear(shipped):
    tok, _ = shipped
    C = tok.config.codebook_size
    a, b = _codes(tok, 2, 6, seed=0), _codes(tok, 2, 6, seed=1)
    oh = lambda c: {p: F.one_hot(v, C).float() for p, v in c.items()}  # noqa: E731
    with torch.no_grad():
        za, zb = tok.dequantize(a), tok.dequantize(b)
        zoh = tok.dequantize_onehot(oh(a))
        mix = tok.dequantize_onehot({p: 0.25 * oh(a)[p] + 0.75 * oh(b)[p] for p in a})
    for p in tok.config.parts:
        torch.testing.assert_close(zoh[p], za[p], atol=1e-6, rtol=0)
        # weights summing to 1 give the same mix of latents (codebooks and the HRVQ hints are affine)
        torch.testing.assert_close(mix[p], 0.25 * za[p] + 0.75 * zb[p], atol=1e-5, rtol=1e-5)


def test_torch_joints_and_motion_features_match_the_numpy_metric_path(shipped):
    tok, rep = shipped
    with torch.no_grad():
        x = tok.decode(_codes(tok, 1, 12, seed=2))
        pos_t = smpl24_positions_torch(rep, x)
        feat_t = motion_features_torch(pos_t)
    rot, transl = rep.decode(x[0].numpy())
    pos_n = smpl24_positions(rot, transl, rep.rest_offsets)
    np.testing.assert_allclose(pos_t[0].numpy(), pos_n, atol=2e-6)
    feat_n = motion_window_features(pos_n)
    assert np.abs(feat_n).max() > 0.1  # a dance that moves
    np.testing.assert_allclose(feat_t[0].numpy(), feat_n, atol=1e-4)


def test_straight_through_draws_are_one_hot_at_the_softmax_rates_with_the_softmax_gradient():
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0]).repeat(20000, 1).requires_grad_(True)
    torch.manual_seed(0)
    y = straight_through_sample(logits, 0.5)
    assert torch.equal(y.detach().sum(-1), torch.ones(20000))
    assert set(y.detach().unique().tolist()) <= {0.0, 1.0}
    np.testing.assert_allclose(y.detach().mean(0).numpy(), torch.softmax(logits[0] / 0.5, -1).detach().numpy(),
                               atol=0.015)
    (y * w).sum().backward()
    # the backward pass is exactly that of softmax(logits / T + g) with the same Gumbel noise g
    ref_logits = logits.detach().clone().requires_grad_(True)
    torch.manual_seed(0)
    g = -torch.log(-torch.log(torch.rand_like(ref_logits).clamp(1e-10, 1.0 - 1e-7)))
    (torch.softmax(ref_logits / 0.5 + g, -1) * w).sum().backward()
    assert logits.grad.abs().sum() > 0
    torch.testing.assert_close(logits.grad, ref_logits.grad)
    # ... and its argmax is the forward's one-hot code
    assert torch.equal(y.detach().argmax(-1), (ref_logits.detach() / 0.5 + g).argmax(-1))


SMALL = dict(d_model=32, n_layers=2, chunk_layers=1, n_heads=2, codebook_size=16, levels=3, window=4, d_state=4)


def test_generator_draws_its_chunks_and_keeps_the_rest_of_the_window():
    torch.manual_seed(0)
    cfg = GeneratorConfig(**SMALL)
    g = DanceGenerator(cfg)
    B, N, C = 3, 11, cfg.codebook_size
    codes = torch.randint(0, C, (B, N, cfg.n_parts, cfg.levels))
    win, cond = torch.randn(B, N, cfg.window, cfg.feat_dim), torch.randn(B, N, cfg.cond_dim)
    out = g(codes, win, cond, draw_temperature=1.0)
    assert set(g(codes, win, cond)) == {"loss", "base", "res", "acc"}  # nothing drawn unless asked
    drawn = out["drawn"]
    assert drawn.shape == (B, N, cfg.n_parts, cfg.levels, C)
    assert torch.equal(drawn.detach().sum(-1), torch.ones(B, N, cfg.n_parts, cfg.levels))
    hard = drawn.detach().argmax(-1)
    changed = (hard != codes).any(-1).any(-1)  # (B, N): some code of the slot drawn differently
    # chunks of K = 2 slots from an offset in {0, 1} cover 10 of the 11 slots: the first or the last keeps its codes,
    # every covered slot has drawn residual codes (random weights: the window's own codes are not redrawn)
    assert cfg.chunk == 2
    assert changed.sum(1).tolist() == [N - 1] * B
    assert not (changed[:, 0] & changed[:, -1]).any()
    (drawn * torch.randn_like(drawn)).sum().backward()
    assert g.base_head[0].weight.grad.abs().sum() > 0 and g.res_mlp[0][0][0].weight.grad is not None


def _retrieval(window: int = 16) -> MusicDanceRetrieval:
    torch.manual_seed(0)
    return MusicDanceRetrieval(RetrievalConfig(window=window, d_model=8, embed_dim=8, members=2)).eval()


def test_alignment_loss_contrasts_with_other_songs_only(shipped):
    tok, rep = shipped
    retr = _retrieval()
    lo = tok.decoder_context_tokens * tok.stride
    N = (lo + retr.config.window) // tok.stride  # exactly one place for the retrieval window
    music = torch.randn(1, N * tok.stride, music_dim())
    start = lo
    own = music[0, start:start + retr.config.window].numpy()
    onehot = {p: F.one_hot(c, tok.config.codebook_size).float().requires_grad_(True)
              for p, c in _codes(tok, 1, N, seed=3).items()}
    clip = torch.tensor([0])
    # a bank of the same song's windows only: no negatives, nothing to contrast
    bank, owner = music_bank(retr, [own], hop=1)
    loss = AlignmentLoss(tok, rep, retr, bank, owner, AlignConfig(weight=1.0, windows=1))
    assert float(loss(onehot, music, clip)["loss"].detach()) == pytest.approx(0.0, abs=1e-6)
    # a second clip of the same song (a mirrored or faster copy of the dance) is no negative either
    bank, owner = music_bank(retr, [own, own], hop=1, songs=[0, 0])
    loss = AlignmentLoss(tok, rep, retr, bank, owner, AlignConfig(weight=1.0, windows=1))
    assert float(loss(onehot, music, clip)["loss"].detach()) == pytest.approx(0.0, abs=1e-6)
    # the same music window under another song's name: a negative exactly as close as the positive -> log 2
    bank, owner = music_bank(retr, [own, own], hop=1)
    loss = AlignmentLoss(tok, rep, retr, bank, owner, AlignConfig(weight=1.0, windows=1))
    out = loss(onehot, music, clip)
    assert float(out["loss"].detach()) == pytest.approx(math.log(2.0), abs=1e-5)
    # a far negative: the loss falls below log 2 and its gradient reaches the codes
    bank, owner = music_bank(retr, [own, -5.0 * own], hop=1)
    out = AlignmentLoss(tok, rep, retr, bank, owner, AlignConfig(weight=1.0, windows=1))(onehot, music, clip)
    out["loss"].backward()
    assert all(float(onehot[p].grad.abs().sum()) > 0 for p in onehot)
    # the tokenizer and the judge are not trained by it
    assert all(p.grad is None for p in list(tok.parameters()) + list(retr.parameters()))


def test_alignment_loss_names_too_short_windows(shipped):
    tok, rep = shipped
    retr = _retrieval(window=100)
    bank, owner = music_bank(retr, [np.zeros((120, music_dim()), np.float32)], hop=25)
    loss = AlignmentLoss(tok, rep, retr, bank, owner, AlignConfig(weight=1.0))
    with pytest.raises(DataError, match="--tokens 42"):
        loss.window_starts(32 * tok.stride)


def test_window_dataset_hands_out_the_windows_own_music_frames_and_song():
    N, P, V, stride = 20, 2, 4, 4
    music = np.arange(N * stride, dtype=np.float32)[:, None].repeat(3, 1)

    def clip(song: str) -> ClipTokens:
        return ClipTokens("X", np.zeros((1, N, P, V), np.int64), np.zeros((5, 7), np.float32),
                          np.zeros((N, 2), np.int64), np.zeros((N, 10), np.float32), music, song)

    ds = TokenWindowDataset([clip("b.wav"), clip("a.wav"), clip("b.wav")], tokens=8, hop=4)
    assert ds.song_ids[0] == ds.song_ids[2] != ds.song_ids[1]  # a dance's copies share its song
    for k in range(len(ds)):
        i, _, s = ds.index[k]
        item = ds[k]
        assert item["music"].shape == (8 * stride, 3)
        assert float(item["music"][0, 0]) == s * stride and int(item["song"]) == ds.song_ids[i]


def test_bad_alignment_settings_and_foreign_init_weights_are_refused():
    with pytest.raises(ConfigError, match="temperature"):
        AlignConfig(weight=1.0, temperature=0.0)
    with pytest.raises(ConfigError, match="--align-weight"):
        run_training(GeneratorRunConfig(align_weight=-1.0, progress=False))
    from livedance.model.checkpoint import WEIGHTS_DIR

    with pytest.raises(ConfigError, match="baseline"):
        run_training(GeneratorRunConfig(init=WEIGHTS_DIR / "baseline", progress=False))


def test_eval_knows_a_generator_trained_against_its_judge():
    from livedance.eval.alignment import trained_against

    judge = {"sha256": "ab" * 32}
    assert trained_against({"training": {"align_weight": 0.5, "align_retrieval_sha256": "ab" * 32}}, judge)
    assert not trained_against({"training": {"align_weight": 0.5, "align_retrieval_sha256": "cd" * 32}}, judge)
    assert not trained_against({"training": {"align_weight": 0.0, "align_retrieval_sha256": None}}, judge)
    assert not trained_against({}, judge)  # weights from before the alignment loss
    assert not trained_against({"training": {"align_retrieval_sha256": "ab" * 32}}, {})


def test_draws_hear_the_music_where_music_dropout_gave_the_heads_the_null_vector():
    torch.manual_seed(0)
    cfg = GeneratorConfig(**{**SMALL, "music_dropout": 0.9})
    g = DanceGenerator(cfg).train()
    B, N = 4, 11
    codes = torch.randint(0, cfg.codebook_size, (B, N, cfg.n_parts, cfg.levels))
    win, cond = torch.randn(B, N, cfg.window, cfg.feat_dim), torch.randn(B, N, cfg.cond_dim)
    seen, real_draw = [], g.draw_chunk_codes

    def spy(ctx, music, *args):
        seen.append(music.detach())
        return real_draw(ctx, music, *args)

    g.draw_chunk_codes = spy
    g(codes, win, cond, draw_temperature=1.0)
    null = g.null_music.detach()
    # with a 0.9 dropout most chunks' heads got the null vector; the draws got the music of every chunk
    assert not torch.isclose(seen[0], null.expand_as(seen[0])).all(-1).any()
