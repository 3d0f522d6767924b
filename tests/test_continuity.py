"""The kinetic-continuity loss on the generator's draws (livedance.model.continuity)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from livedance.errors import ConfigError
from livedance.model.continuity import ContinuityConfig, ContinuityLoss, energy_expenditure


def test_energy_expenditure_is_the_mean_acceleration_magnitude():
    fps, T = 25.0, 50
    t = np.arange(T) / fps
    p = np.zeros((1, T, 2, 3))
    p[0, :, 0, 1] = 0.5 * 9.81 * t ** 2  # joint 0 falls freely: |a| = 9.81 m/s^2 every frame
    p[0, :, 1, 0] = 0.3 * t  # joint 1 glides: no acceleration
    ee = energy_expenditure(torch.tensor(p), fps)
    np.testing.assert_allclose(ee.numpy(), [[9.81, 0.0]], atol=1e-9)
    with pytest.raises(ConfigError, match="3 or more"):
        energy_expenditure(torch.zeros(1, 2, 3, 3), fps)


def test_config_refuses_bad_values():
    for bad in (dict(weight=-1.0), dict(weight=float("nan")), dict(temperature=0.0)):
        with pytest.raises(ConfigError, match="ContinuityConfig"):
            ContinuityConfig(**bad)


@pytest.fixture(scope="module")
def tokenizer():
    from livedance.model.train_generator import load_tokenizer_for_training

    tok, rep, _, _ = load_tokenizer_for_training(None)
    return tok, rep


def test_the_loss_is_zero_on_the_real_codes_and_pulls_a_busier_draw_back(tokenizer):
    tok, rep = tokenizer
    N, C = tok.decoder_context_tokens + 12, tok.config.codebook_size
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, C, (2, N, tok.config.levels), generator=g)
    real = {p: F.one_hot(codes, C).float() for p in tok.config.parts}
    loss = ContinuityLoss(tok, rep)
    same = loss(real, real)
    assert same["loss"].item() == pytest.approx(0.0, abs=1e-10) and same["ee_ratio"].item() == pytest.approx(1.0)
    # a draw that jumps between two codes every slot is busier than a held code: its loss is larger, and the
    # gradient reaches the drawn one-hot vectors (straight-through: the forward pass is one-hot)
    held = torch.zeros_like(codes)
    jumpy = held.clone()
    jumpy[:, 1::2, 0] = 7
    held_oh = {p: F.one_hot(held, C).float() for p in tok.config.parts}
    drawn = {p: F.one_hot(jumpy, C).float().requires_grad_(True) for p in tok.config.parts}
    out = loss(drawn, held_oh)
    assert out["ee_ratio"].item() > 1.5 and out["loss"].item() > 0.05
    out["loss"].backward()
    assert all(d.grad is not None and d.grad.abs().sum() > 0 for d in drawn.values())
    assert not any(p.requires_grad for p in tok.parameters())  # the tokenizer is frozen


def test_training_refuses_a_bad_continuity_weight_before_any_work():
    from livedance.model.train_generator import GeneratorRunConfig, run_training

    with pytest.raises(ConfigError, match="--continuity-weight"):
        run_training(GeneratorRunConfig(continuity_weight=-0.5, progress=False))


def test_the_training_term_lines_up_the_draws_with_the_real_codes_part_by_part(tokenizer):
    """``continuity_term`` (what ``livedance train generator --continuity-weight`` adds) splits the (B, N, P, V, C)
    draws and the (B, N, P, V) real codes along the same part axis: draws equal to the real codes cost nothing,
    and a change in one part alone costs something and sends a gradient to that part's draws."""
    from livedance.model.train_generator import continuity_term

    tok, rep = tokenizer
    parts = tok.config.parts
    N, C = tok.decoder_context_tokens + 12, tok.config.codebook_size
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, C, (2, N, len(parts), tok.config.levels), generator=g)
    loss = ContinuityLoss(tok, rep)
    same = continuity_term(loss, F.one_hot(codes, C).float(), codes, parts)
    assert same["loss"].item() == pytest.approx(0.0, abs=1e-10)
    other = codes.clone()
    other[:, 1::2, -1, 0] = (other[:, 1::2, -1, 0] + 5) % C  # the last part's base codes jump every other slot
    drawn = F.one_hot(other, C).float().requires_grad_(True)
    out = continuity_term(loss, drawn, codes, parts)
    assert out["loss"].item() > 0
    out["loss"].backward()
    assert drawn.grad[:, :, -1].abs().sum() > 0


def test_fixed_batches_repeat_and_drawn_codes_without_a_model_are_the_real_codes():
    """The benchmarks' shared batch drawing: the same seed gives the same windows; no model gives the real codes."""
    from livedance.model.train_generator import ClipTokens, TokenWindowDataset, drawn_codes, fixed_batches

    rng = np.random.default_rng(0)
    clips = [ClipTokens(f"c{k}", rng.integers(0, 8, (1, 20, 2, 3)), np.zeros((5, 4), np.float32),
                        np.zeros((20, 2), np.int64), np.zeros((20, 10), np.float32)) for k in range(3)]
    ds = TokenWindowDataset(clips, tokens=8, hop=4)
    first, again = list(fixed_batches(ds, 3, size=4)), list(fixed_batches(ds, 3, size=4))
    assert len(first) == 3 and all(torch.equal(a["codes"], b["codes"]) for a, b in zip(first, again))
    assert first[0]["codes"].shape == (4, 8, 2, 3)
    oh = drawn_codes(None, first[0], 8, 0.6)
    assert oh.shape == (4, 8, 2, 3, 8) and torch.equal(oh.argmax(-1), first[0]["codes"])
