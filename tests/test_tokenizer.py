"""Tests of livedance.model.tokenizer: shapes, causality, streaming decode, chaining, weights I/O."""

from __future__ import annotations

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
