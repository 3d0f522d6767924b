"""Tests of livedance.model.tokenizer: shapes, causality, streaming decode, chaining, weights I/O."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from livedance.errors import DataError, WeightsError
from livedance.model.checkpoint import WEIGHTS_DIR
from livedance.model.representation import Representation
from livedance.model.tokenizer import StreamingDecoder, Tokenizer, TokenizerConfig
from livedance.data.tang import default_data_root  # ../shared/data, or $LIVEDANCE_DATA

torch.set_num_threads(1)
DATA = default_data_root()
SMALL = dict(codebook_size=32, latent_dim=16, width=32)


def _tok(variant: str = "hrvq", seed: int = 0, **kw) -> Tokenizer:
    torch.manual_seed(seed)
    tok = Tokenizer(TokenizerConfig(variant=variant, **{**SMALL, **kw}))
    tok.train()
    with torch.no_grad():  # k-means-initialise the codebooks on smooth random features, then freeze
        tok(_feats(4, 64, seed=seed + 1))
        for hs in tok.hints.values():  # give the chain non-trivial hints (they start at zero)
            for h in hs:
                h.weight.normal_(0, 0.3)
    return tok.eval()


def _feats(B: int, T: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T + 8, 140, generator=g)
    return torch.nn.functional.avg_pool1d(x.transpose(1, 2), 9, stride=1).transpose(1, 2) * 3  # smooth in time


def test_shapes_ranges_and_variants():
    x = _feats(2, 50)
    for variant, V in (("vq", 1), ("rvq", 4), ("hrvq", 4)):
        tok = _tok(variant)
        codes = tok.encode(x)
        assert set(codes) == {"lower", "upper"}
        for c in codes.values():
            assert c.shape == (2, 13, V) and c.dtype == torch.int64  # ceil(50 / 4) tokens
            assert 0 <= int(c.min()) and int(c.max()) < 32
        y = tok.decode(codes)
        assert y.shape == (2, 52, 140)
        assert (len(tok.hints) > 0) == (variant == "hrvq")
    with pytest.raises(DataError, match=r"\(B, T >= 1, 140\)"):
        tok.encode(torch.zeros(2, 10, 100))
    with pytest.raises(DataError, match="parts"):
        tok.decode({"lower": codes["lower"]})
    with pytest.raises(DataError, match="indices"):
        tok.decode({"lower": codes["lower"], "upper": codes["upper"] + 1000})


def test_encoder_and_decoder_are_causal():
    tok = _tok()
    x = _feats(1, 64)
    x2 = x.clone()
    x2[:, 40:] += 5.0  # change frames >= 40 = token 10's frames
    c1, c2 = tok.encode(x), tok.encode(x2)
    for p in c1:
        assert torch.equal(c1[p][:, :10], c2[p][:, :10])
        assert not torch.equal(c1[p][:, 10:], c2[p][:, 10:])
    z = tok.dequantize(c1)
    z2 = {p: v.clone() for p, v in z.items()}
    for p in z2:
        z2[p][:, 9:] += 1.0
    y1, y2 = tok.decode_latents(z), tok.decode_latents(z2)
    assert torch.equal(y1[:, :36], y2[:, :36]) and not torch.allclose(y1[:, 36:40], y2[:, 36:40])


def test_decoder_context_is_exactly_the_receptive_field():
    tok = _tok()
    R = tok.decoder_context_tokens
    assert 4 <= R <= 32
    z = tok.dequantize(tok.encode(_feats(1, 4 * 40)))
    n0 = 30
    y = tok.decode_latents(z)[:, 4 * n0:]
    for back, should_change in ((R + 1, False), (R, True)):
        zp = {p: v.clone() for p, v in z.items()}
        for p in zp:
            zp[p][:, n0 - back] += 3.0
        changed = not torch.allclose(tok.decode_latents(zp)[:, 4 * n0:], y)
        assert changed == should_change, (back, R)


@pytest.mark.parametrize("chunks", [[1] * 30, [3, 7, 0, 1, 12, 7], [30]])
def test_streaming_decode_equals_offline(chunks):
    tok = _tok()
    codes = tok.encode(_feats(2, 120))
    full = tok.decode(codes)
    sd = StreamingDecoder(tok)
    outs, i = [], 0
    for n in chunks:
        out = sd.step({p: c[:, i:i + n] for p, c in codes.items()})
        assert out.shape == (2, 4 * n, 140)
        outs.append(out)
        i += n
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)
    assert all(v.shape[1] <= tok.decoder_context_tokens for v in sd._ctx.values())  # bounded state
    sd.reset()
    torch.testing.assert_close(sd.step({p: c[:, :5] for p, c in codes.items()}), full[:, :20])


def test_chaining_makes_upper_depend_on_lower_codes_only_in_hrvq():
    x = _feats(1, 32)
    for variant, depends in (("rvq", False), ("hrvq", True)):
        tok = _tok(variant)
        codes = tok.encode(x)
        other = dict(codes)
        other["lower"] = (codes["lower"] + 1) % 32
        up = tok._slices["upper"]
        changed = not torch.allclose(tok.decode(codes)[..., up], tok.decode(other)[..., up])
        assert changed == depends, variant


def test_fewer_levels_match_quantizer_dropout_and_refine():
    tok = _tok()
    x = _feats(3, 64)
    z = tok.encode_latents(x)
    codes = tok.encode(x)
    errs = []
    for L in (1, 2, 4):
        zq, _, _ = tok.quantize(z, keep_levels=torch.full((3,), L))  # what training with dropout sees
        dq = tok.dequantize(codes, levels=L)
        for p in zq:
            torch.testing.assert_close(zq[p], dq[p], atol=1e-5, rtol=1e-5)
        errs.append(sum(float((z[p] - dq[p]).pow(2).mean().detach()) for p in z))
    assert errs[0] > errs[1] > errs[2]  # residual levels refine the latent


def test_training_step_reduces_reconstruction_error():
    from livedance.model.train_tokenizer import tokenizer_loss

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(**SMALL))
    x = _feats(8, 32)
    opt = torch.optim.AdamW(tok.parameters(), lr=5e-3)
    first = None
    for _ in range(60):
        loss, m = tokenizer_loss(tok, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(m["recon"])
    assert float(m["recon"]) < 0.85 * first


def _save(tmp_path: Path) -> tuple[Tokenizer, Path]:
    tok = _tok()
    stem = tmp_path / "tok"
    tok.save(stem, Representation(), extra={"metrics": {"x": 1}})
    return tok, stem


def test_save_load_round_trip(tmp_path):
    tok, stem = _save(tmp_path)
    tok2, rep, doc = Tokenizer.load(stem)
    assert doc["metrics"] == {"x": 1} and doc["decoder_context_tokens"] == tok.decoder_context_tokens
    assert rep.dim == 140
    x = _feats(1, 40)
    c = tok.encode(x)
    assert all(torch.equal(c[p], tok2.encode(x)[p]) for p in c)
    torch.testing.assert_close(tok.decode(c), tok2.decode(c))


def test_missing_corrupt_and_mismatched_weights_raise_weights_error(tmp_path):
    _, stem = _save(tmp_path)
    st, js = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    with pytest.raises(WeightsError, match="nothere.json"):
        Tokenizer.load(tmp_path / "nothere")
    # corrupt: flip one byte of the tensors
    data = bytearray(st.read_bytes())
    data[len(data) // 2] ^= 0xFF
    st.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"tok\.safetensors.*SHA-256"):
        Tokenizer.load(stem)
    # truncated, with the digest removed: safetensors itself refuses it
    _, stem = _save(tmp_path)
    doc = json.loads(js.read_text())
    doc.pop("sha256")
    js.write_text(json.dumps(doc))
    st.write_bytes(st.read_bytes()[:1000])
    with pytest.raises(WeightsError, match=r"tok\.safetensors.*(truncated|corrupt)"):
        Tokenizer.load(stem)
    # mismatched config: the JSON says width 48, the tensors are width 32
    _, stem = _save(tmp_path)
    doc = json.loads(js.read_text())
    doc["config"]["width"] = 48
    js.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match=r"tok\.safetensors.*shape mismatch"):
        Tokenizer.load(stem)
    # another model's file
    doc["format"] = "livedance.generator"
    js.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match="format"):
        Tokenizer.load(stem)
    # missing tensors file
    _, stem = _save(tmp_path)
    st.unlink()
    with pytest.raises(WeightsError, match="tok.safetensors: weights file not found"):
        Tokenizer.load(stem)


def test_shipped_weights_load():
    if not (WEIGHTS_DIR / "tokenizer.safetensors").is_file():
        pytest.skip("no shipped tokenizer weights in livedance/weights yet")
    tok, rep, doc = Tokenizer.load()
    assert tok.config.variant == "hrvq" and tok.config.levels == 4 and tok.config.parts == ("lower", "upper")
    assert (WEIGHTS_DIR / "tokenizer.safetensors").stat().st_size < 8e6
    assert {"lower", "upper", "all"} <= set(doc["metrics"]["test"])


def test_shipped_weights_reconstruct_test_split_better_than_the_mean_pose():
    if not (WEIGHTS_DIR / "tokenizer.safetensors").is_file():
        pytest.skip("no shipped tokenizer weights in livedance/weights yet")
    try:
        from livedance.data.dataset import load_split
    except ImportError:
        pytest.skip("livedance.data.dataset is not available yet")
    if not (DATA / "dance-tang2018").is_dir():
        pytest.skip(f"Tang 2018 data not found at {DATA / 'dance-tang2018'}")
    from livedance.model.train_tokenizer import reconstruction_mpjpe

    tok, rep, _ = Tokenizer.load()
    clips = load_split("test", data_root=DATA, progress=False)[:2]
    m = reconstruction_mpjpe(tok, rep, clips)

    class MeanPose(torch.nn.Module):  # baseline: always the train split's mean features
        stride = 4

        def encode(self, x):
            return {"n": x.shape[1]}

        def decode(self, c):
            return torch.zeros(1, c["n"], rep.dim)

        def eval(self):
            return self

    base = reconstruction_mpjpe(MeanPose(), rep, clips)
    assert m["all"] < 0.5 * base["all"]
    assert m["lower"] < 0.6 * base["lower"] and m["upper"] < 0.5 * base["upper"]


# ------------------------------------------------------------------------ quantizer dropout and the codebooks
def _codebook_state(tok: Tokenizer, levels) -> dict[str, torch.Tensor]:
    return {f"{p}.{v}.{k}": b.clone() for p in tok.config.parts for v in levels
            for k, b in tok.quantizers[p][v]._codebook.named_buffers()}


def _ready(seed: int = 0, **kw) -> Tokenizer:
    """A training-mode tokenizer whose codebooks are k-means-initialised (all levels, no dropout)."""
    torch.manual_seed(seed)
    tok = Tokenizer(TokenizerConfig(**{**SMALL, **kw})).train()
    with torch.no_grad():
        tok.quantize(tok.encode_latents(_feats(4, 64, seed=seed + 1)))
    return tok


def test_a_level_dropped_for_every_example_gets_no_ema_update_and_no_commitment():
    import copy

    tok = _ready()
    assert tok.config.dropout_masks_ema  # new runs
    z = {p: v.detach() for p, v in tok.encode_latents(_feats(3, 64, seed=7)).items()}
    legacy = copy.deepcopy(tok)
    legacy.config = dataclasses.replace(tok.config, dropout_masks_ema=False)
    ref = copy.deepcopy(tok)  # level 0 alone, by hand
    with torch.no_grad():
        q_low, _, l_low = ref.quantizers["lower"][0](z["lower"])
        hint = ref.hints["upper"][0](q_low)
        _, _, l_up = ref.quantizers["upper"][0](z["upper"] - hint)
    before = _codebook_state(tok, range(1, 4))
    keep = torch.ones(3, dtype=torch.int64)  # every example keeps level 0 only
    with torch.no_grad():
        zq, codes, commit = tok.quantize(z, keep)
        zq_l, _, commit_l = legacy.quantize(z, keep)
    after = _codebook_state(tok, range(1, 4))
    assert all(torch.equal(before[k], after[k]) for k in before)  # levels 1..3: no EMA, no dead-code replacement
    torch.testing.assert_close(commit, l_low.sum() + l_up.sum())  # commitment of level 0 only
    assert all(bool((codes[p][..., 1:] == -1).all()) and bool((codes[p][..., 0] >= 0).all()) for p in codes)
    for p in zq:  # what the decoder gets is unchanged: level 0 only, both ways
        torch.testing.assert_close(zq[p], zq_l[p])
    # the legacy behaviour (how the shipped tokenizers were trained) fed the dropped levels anyway
    moved = _codebook_state(legacy, range(1, 4))
    assert any(not torch.equal(before[k], moved[k]) for k in before) and float(commit_l) > float(commit)


def test_a_partly_kept_level_learns_only_from_the_examples_that_keep_it():
    import copy

    tok = _ready(dead_code_threshold=0.0)  # no dead-code replacement: no random draws to line up
    z = {p: v.detach() for p, v in tok.encode_latents(_feats(4, 64, seed=9)).items()}
    sub = copy.deepcopy(tok)
    with torch.no_grad():
        _, codes, _ = tok.quantize(z, torch.tensor([1, 4, 4, 4]))  # example 0 drops levels 1..3
        sub.quantize({p: v[1:] for p, v in z.items()})  # only the examples that keep them
    a, b = _codebook_state(tok, range(1, 4)), _codebook_state(sub, range(1, 4))
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-5)
    assert all(bool((codes[p][0, :, 1:] == -1).all()) and bool((codes[p][1:] >= 0).all()) for p in codes)


# golden values of the code before dropout_masks_ema existed (session 19): the legacy path must not change
LEGACY_FORWARD = [(1.93924115592381e-05, 103.48867166833952), (3.746455331565812e-05, 103.59926583745982),
                  (4.6616289182566106e-05, 103.65257032745285)]
LEGACY_EMBED = [-6.723825435852632, 0.470622726603807, 0.013623358545068243, -0.18708585495365482,
                4.921694776043296, 0.38606171302581416, 0.05466303074658185, 0.2631051246313896]


def test_legacy_dropout_trains_exactly_as_before():
    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(**SMALL, dropout_masks_ema=False)).train()
    x = _feats(8, 32, seed=3)
    got = []
    for _ in range(3):  # with autograd on, as in training (the rotation trick runs)
        o = tok(x)
        got.append((float(o["commit"].detach()), float(o["recon"].detach().double().sum())))
    for (c, r), (c0, r0) in zip(got, LEGACY_FORWARD):
        assert c == pytest.approx(c0, rel=1e-5) and r == pytest.approx(r0, rel=1e-6)
    emb = [float(tok.quantizers[p][v]._codebook.embed.double().sum()) for p in tok.config.parts for v in range(4)]
    assert emb == pytest.approx(LEGACY_EMBED, rel=1e-5, abs=1e-6)


def test_shipped_tokenizers_record_legacy_dropout_and_encode_as_before():
    import copy
    import hashlib

    for stem in ("tokenizer", "baseline_tokenizer"):
        if not (WEIGHTS_DIR / f"{stem}.safetensors").is_file():
            pytest.skip(f"no shipped {stem} weights")
        assert "dropout_masks_ema" not in json.loads((WEIGHTS_DIR / f"{stem}.json").read_text())["config"]
        tok, _, _ = Tokenizer.load(WEIGHTS_DIR / stem)
        assert tok.config.dropout_masks_ema is False  # trained before the fix: the recorded config stays true
        assert tok.config.to_dict()["dropout_masks_ema"] is False
    tok, _, _ = Tokenizer.load()
    x = _feats(2, 96, seed=5)
    with torch.no_grad():
        c = tok.encode(x)
        y = tok.decode(c)
    # values from the code before the change
    assert hashlib.sha256(b"".join(c[p].numpy().tobytes() for p in tok.config.parts)).hexdigest() == \
        "152d5cdaa2d05ba5349a245b8a4c93d7ba391ba27791d09ccebd5fa05a3d2d33"
    assert float(y.double().sum()) == pytest.approx(1801.9884093779547, rel=1e-6)
    assert float(y.abs().double().sum()) == pytest.approx(9498.45902568355, rel=1e-6)
    new = copy.deepcopy(tok)
    new.config = dataclasses.replace(tok.config, dropout_masks_ema=True)  # inference does not depend on the flag
    with torch.no_grad():
        c2 = new.encode(x)
        assert all(torch.equal(c[p], c2[p]) for p in c) and torch.equal(new.decode(c2), y)


def test_train_tokenizer_legacy_dropout_flag_and_resume_upgrade():
    from typer.testing import CliRunner

    from livedance.cli import app
    from livedance.model.train_tokenizer import TokenizerRunConfig, _train_command, build_tokenizer, upgrade_run_config

    rep = Representation()
    assert build_tokenizer(TokenizerRunConfig(), rep).config.dropout_masks_ema is True
    legacy = TokenizerRunConfig(legacy_dropout=True)
    assert build_tokenizer(legacy, rep).config.dropout_masks_ema is False
    assert _train_command(legacy).endswith(" --legacy-dropout") and "legacy" not in _train_command(TokenizerRunConfig())
    old = TokenizerConfig(**SMALL).to_dict()
    del old["dropout_masks_ema"]  # a run begun before the field existed resumes as legacy
    assert upgrade_run_config({"tokenizer": old, "window": 64})["tokenizer"]["dropout_masks_ema"] is False
    out = CliRunner().invoke(app, ["train", "tokenizer", "--help"], terminal_width=200)
    assert "--legacy-dropout" in out.output and "session 19" in out.output
