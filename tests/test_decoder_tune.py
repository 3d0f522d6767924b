"""Tests of livedance.model.decoder_tune: decoder-only fine-tuning keeps the codes, the acceleration terms,
the token-boundary figure, and the loaders' same_codes rule."""

from __future__ import annotations

import json

import pytest
import torch

from livedance.data.tang import default_data_root
from livedance.errors import ConfigError
from livedance.model.checkpoint import WEIGHTS_DIR
from livedance.model.decoder_tune import DecoderOnly, DecoderTuneConfig
from livedance.model.tokenizer import Tokenizer, TokenizerConfig, code_lineage, same_codes
from livedance.model.train_tokenizer import tokenizer_loss

torch.set_num_threads(1)
DATA = default_data_root()


def _feats(B: int, T: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T + 8, 140, generator=g)
    return torch.nn.functional.avg_pool1d(x.transpose(1, 2), 9, stride=1).transpose(1, 2) * 3


def _tok() -> Tokenizer:
    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(codebook_size=32, latent_dim=16, width=32))
    tok.train()
    with torch.no_grad():
        tok(_feats(4, 64, seed=1))  # k-means-initialise the codebooks
    return tok.eval()


def test_decoder_only_trains_the_decoders_and_keeps_every_code():
    tok = _tok()
    x = _feats(8, 32, seed=2)
    codes0 = tok.encode(x)
    frozen = {k: v.clone() for k, v in tok.state_dict().items() if not k.startswith("decoders.")}
    dec0 = {k: v.clone() for k, v in tok.state_dict().items() if k.startswith("decoders.")}
    model = DecoderOnly(tok).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, m = tokenizer_loss(model, x, acc_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(m["acc"])
    assert float(m["acc"]) < first  # the acceleration term is being fitted
    for k, v in tok.state_dict().items():
        if k.startswith("decoders."):
            continue
        assert torch.equal(v, frozen[k]), k  # encoders, codebooks (EMA buffers too) and hints untouched
    assert any(not torch.equal(v, dec0[k]) for k, v in tok.state_dict().items() if k in dec0)
    tok.eval()
    for p, c in tok.encode(x).items():
        assert torch.equal(c, codes0[p])


def test_acceleration_terms_are_l1_of_second_differences():
    x = _feats(2, 16, seed=3)
    bump = torch.zeros_like(x)
    bump[:, 7] = 0.5  # one frame off: second differences +0.5 / -1 / +0.5 around it, per channel

    class Fixed(torch.nn.Module):
        def forward(self, b):
            return {"recon": b + bump, "commit": b.new_zeros(())}

    _, m = tokenizer_loss(Fixed(), x, acc_weight=1.0)
    assert float(m["acc"]) == pytest.approx(2.0 / (x.shape[1] - 2), rel=1e-5)
    _, m0 = tokenizer_loss(Fixed(), x)
    assert "acc" not in m0 and "pos_acc" not in m0


def test_kinetic_term_compares_each_windows_rms_joint_speed():
    """kin = L1 between the reconstruction's and the input's RMS joint speed per window and joint (metres per
    frame): 0 for a perfect reconstruction, and for a time-smoothed one it is the speed the smoothing lost."""
    from livedance.model.train_tokenizer import _rms_speed

    class Rep:  # features 0..65 read as 22 joint positions (the term only needs pose_positions)
        def pose_positions(self, f):
            return f[..., :66].reshape(*f.shape[:-1], 22, 3)

    rep = Rep()
    t = torch.arange(40, dtype=torch.float32)
    p = torch.zeros(1, 40, 2, 3)
    p[0, :, 0, 0] = 0.03 * t  # a joint at 0.03 m per frame
    p[0, :, 1, 1] = 0.05 * torch.sin(t)  # a joint shaking
    rms = _rms_speed(p)
    assert float(rms[0, 0]) == pytest.approx(0.03, rel=1e-4)
    slow = p.clone()
    slow[0, :, 1, 1] = 0.05 * torch.sin(t).cumsum(0) / (t + 1)  # the shake smoothed away
    assert float(_rms_speed(slow)[0, 1]) < 0.5 * float(rms[0, 1])

    x = _feats(2, 16, seed=4)

    class Same(torch.nn.Module):
        def forward(self, b):
            return {"recon": b.clone(), "commit": b.new_zeros(())}

    class Smoothed(torch.nn.Module):
        def forward(self, b):
            y = torch.nn.functional.avg_pool1d(b.transpose(1, 2), 5, stride=1, padding=2, count_include_pad=False)
            return {"recon": y.transpose(1, 2), "commit": b.new_zeros(())}

    _, m = tokenizer_loss(Same(), x, rep=rep, kin_weight=1.0)
    assert float(m["kin"]) < 1e-6
    _, m = tokenizer_loss(Smoothed(), x, rep=rep, kin_weight=1.0)
    py, px = rep.pose_positions(Smoothed()(x)["recon"]), rep.pose_positions(x)
    assert float(m["kin"]) == pytest.approx(float((_rms_speed(py) - _rms_speed(px)).abs().mean()), rel=1e-5)
    assert float(m["kin"]) > 1e-4
    _, m0 = tokenizer_loss(Smoothed(), x, rep=rep)
    assert "kin" not in m0


def test_same_codes_rule():
    doc = {"sha256": "b" * 64, "same_codes_as": ["a" * 64]}
    assert same_codes("b" * 64, doc) and same_codes("a" * 64, doc) and same_codes(None, doc)
    assert not same_codes("c" * 64, doc)
    assert not same_codes("a" * 64, {"sha256": "b" * 64})
    assert not same_codes("a" * 64, {"sha256": "b" * 64, "same_codes_as": "a" * 64 + "x"})  # not a list
    assert code_lineage(doc) == {"a" * 64, "b" * 64} and code_lineage({"same_codes_as": "x"}) == set()
    assert code_lineage({"sha256": "c" * 64, "same_codes_as": ["a" * 64]}) & code_lineage(doc)  # siblings


def test_shipping_a_tokenizer_with_other_codes_is_refused(tmp_path):
    if not (WEIGHTS_DIR / "tokenizer.json").is_file():
        pytest.skip("needs the shipped tokenizer")
    from livedance.model.decoder_tune import run_decoder_tune
    from livedance.model.representation import Representation

    other = _tok()
    other.save(tmp_path / "other", Representation())
    before = (WEIGHTS_DIR / "tokenizer.json").read_text()
    with pytest.raises(ConfigError, match="does not have the codes of the shipped tokenizer"):
        run_decoder_tune(DecoderTuneConfig(source=tmp_path / "other", ship=True, out=tmp_path / "run", progress=False))
    assert (WEIGHTS_DIR / "tokenizer.json").read_text() == before and not (tmp_path / "run").exists()


def test_stall_guard_settings_are_validated():
    from livedance.engine.learned import StallGuard

    for bad in (dict(boost=0.5), dict(growth=0.9), dict(boost=2.0, max_boost=1.5), dict(window_s=0.0)):
        with pytest.raises(ConfigError, match="StallGuard"):
            StallGuard(**bad)


def test_config_is_validated():
    for bad, match in ((dict(model="nope"), "--model"), (dict(window=30), "--window"),
                       (dict(acc_weight=0.0, pos_acc_weight=0.0), "acc-weight"),
                       (dict(kin_weight=-1.0), "kin-weight")):
        with pytest.raises(ConfigError, match=match):
            DecoderTuneConfig(**bad).validate()


def test_a_short_run_on_the_shipped_tokenizer_keeps_its_codes_and_records_them(tmp_path):
    if not (DATA / "dance-tang2018").is_dir() or not (WEIGHTS_DIR / "tokenizer.safetensors").is_file():
        pytest.skip("needs the Tang 2018 data and the shipped tokenizer")
    from livedance.model.decoder_tune import run_decoder_tune

    src, _, src_doc = Tokenizer.load()
    shipped_before = (WEIGHTS_DIR / "tokenizer.safetensors").read_bytes()
    if "decoder_tune" in src_doc:  # the shipped one is tuned already: a run without --from is refused
        with pytest.raises(ConfigError, match="already decoder-tuned"):
            run_decoder_tune(DecoderTuneConfig(steps=3, out=tmp_path / "run", data_root=DATA, progress=False))
    res = run_decoder_tune(DecoderTuneConfig(source=WEIGHTS_DIR / "tokenizer", steps=3, batch_size=4,
                                             out=tmp_path / "run", data_root=DATA, progress=False))
    tuned, _, doc = Tokenizer.load(tmp_path / "run" / "tokenizer")
    assert doc["same_codes_as"][0] == src_doc["sha256"] and doc["sha256"] != src_doc["sha256"]
    assert set(src_doc.get("same_codes_as", [])) <= set(doc["same_codes_as"])  # the lineage is kept
    assert same_codes(src_doc["sha256"], doc)
    for k, v in src.state_dict().items():
        if not k.startswith("decoders."):
            assert torch.equal(v, tuned.state_dict()[k]), k
    rec = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert rec["steps"] == 3 and rec["before"]["acceleration"]["ratio"] > 0 and rec["real"]["ratio"] > 0
    assert res["after"]["all"] > 0 and (WEIGHTS_DIR / "tokenizer.safetensors").read_bytes() == shipped_before


def test_a_run_that_changes_a_frozen_tensor_writes_nothing(tmp_path, monkeypatch):
    """The bit-for-bit check: if anything outside the decoders moved (a bug), the run raises WeightsError
    naming the tensor, and neither the run's tokenizer nor the shipped one is written."""
    if not (DATA / "dance-tang2018").is_dir() or not (WEIGHTS_DIR / "tokenizer.safetensors").is_file():
        pytest.skip("needs the Tang 2018 data and the shipped tokenizer")
    from livedance.errors import WeightsError
    from livedance.model.decoder_tune import run_decoder_tune
    from livedance.model.trainer import Trainer

    fit = Trainer.fit

    def fit_then_touch_a_codebook(self):
        res = fit(self)
        with torch.no_grad():
            frozen = next(p for n, p in self.model.named_parameters() if not n.split(".", 1)[-1].startswith("decoders."))
            frozen.add_(1e-3)  # a frozen tensor moves
        return res

    import shutil

    import livedance.model.checkpoint as checkpoint

    monkeypatch.setattr(Trainer, "fit", fit_then_touch_a_codebook)
    shipped = tmp_path / "weights"  # --ship writes here, never into the package, even if the check broke
    shipped.mkdir()
    for name in ("tokenizer.safetensors", "tokenizer.json", "MODEL_CARD.md"):
        shutil.copy(WEIGHTS_DIR / name, shipped / name)
    monkeypatch.setattr(checkpoint, "WEIGHTS_DIR", shipped)
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    with pytest.raises(WeightsError, match="changed frozen tensors"):
        run_decoder_tune(DecoderTuneConfig(source=WEIGHTS_DIR / "tokenizer", steps=2, batch_size=4, ship=True,
                                           out=tmp_path / "run", data_root=DATA, progress=False))
    assert not (tmp_path / "run" / "tokenizer.safetensors").exists()
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before


def test_the_shipped_tokenizer_has_a_reduced_token_boundary_step():
    """The real dances' boundary / inside acceleration ratio is about 1. The tokenizer as trained had 1.7x the
    real dances' acceleration at the frames around token boundaries (docs/model.md); the shipped one,
    decoder-tuned, must stay near the real dances' level there."""
    if not (DATA / "dance-tang2018").is_dir() or not (WEIGHTS_DIR / "tokenizer.safetensors").is_file():
        pytest.skip("needs the Tang 2018 data and the shipped tokenizer")
    from livedance.data.dataset import load_split
    from livedance.model.decoder_tune import token_boundary_acceleration

    tok, rep, doc = Tokenizer.load()
    clips = load_split("test", data_root=DATA, progress=False)[:2]
    real = token_boundary_acceleration(None, rep, clips)
    got = token_boundary_acceleration(tok, rep, clips)
    assert 0.9 < real["ratio"] < 1.1
    assert got["boundary"] < 1.15 * real["boundary"]  # the tokenizer as trained: 1.7x
