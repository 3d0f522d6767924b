"""Style by codes (livedance.engine.style_prior): the per-style log-ratios, their files, and how the learned
generator adds them to its sampling noise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from livedance.engine.style_prior import StylePrior, default_style_prior
from livedance.errors import ConfigError, WeightsError

from engine_fixtures import music_contexts, tiny_step_graph

torch.set_num_threads(1)
C = 32


def _counts(parts: int = 2, levels: int = 4) -> dict:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 20, size=(parts, levels, C)).astype(float)
    b = rng.integers(0, 20, size=(parts, levels, C)).astype(float)
    a[:, :, 7] = 500.0  # code 7 is the "jive" code
    b[:, :, 7] = 0.0
    return {"jive": a, "slow": b}


def test_log_ratios_shift_the_pooled_code_distribution_onto_each_style():
    counts = _counts()
    prior = StylePrior.from_counts(counts, ("lower", "upper"), alpha=0.5, lineage=("abc",))
    assert prior.styles == ("jive", "slow") and prior.log_ratio.shape == (2, 2, 4, C)
    tot = counts["jive"] + counts["slow"]
    p_all = (tot + 0.5) / (tot + 0.5).sum(-1, keepdims=True)
    for i, s in enumerate(prior.styles):  # p_all * exp(r_s) is exactly the style's smoothed distribution
        p_s = (counts[s] + 0.5) / (counts[s] + 0.5).sum(-1, keepdims=True)
        np.testing.assert_allclose(p_all * np.exp(prior.log_ratio[i]), p_s, rtol=1e-5)
    assert (prior.log_ratio[0, :, :, 7] > 0.25).all() and (prior.log_ratio[1, :, :, 7] < -3).all()
    assert prior.counts == {"jive": int(counts["jive"][0, 0].sum()), "slow": int(counts["slow"][0, 0].sum())}
    np.testing.assert_allclose(prior.bias("JIVE", 2.0), 2.0 * prior.log_ratio[0], rtol=1e-6)
    np.testing.assert_array_equal(prior.bias(1), prior.log_ratio[1])
    with pytest.raises(ConfigError, match="unknown style 'salsa'; expected one of jive, slow"):
        prior.bias("salsa")
    with pytest.raises(ConfigError, match="out of range"):
        prior.bias(2)
    with pytest.raises(ConfigError, match="strength"):
        prior.bias("jive", -1.0)
    with pytest.raises(ConfigError, match="alpha"):
        StylePrior.from_counts(counts, ("lower", "upper"), alpha=0.0)
    with pytest.raises(ConfigError, match="non-negative"):
        StylePrior.from_counts({"x": -np.ones((2, 4, C))}, ("lower", "upper"))


def test_prior_round_trips_and_bad_files_name_themselves(tmp_path):
    prior = StylePrior.from_counts(_counts(), ("lower", "upper"), lineage=("abc", "def"), source={"split": "train"})
    st, js = prior.save(tmp_path / "prior")
    back = StylePrior.load(tmp_path / "prior")
    np.testing.assert_array_equal(back.log_ratio, prior.log_ratio)
    assert back.styles == prior.styles and back.lineage == ("abc", "def") and back.source["split"] == "train"
    back.check_codes("def", "gen.json")
    with pytest.raises(WeightsError, match="gen.json: trained with tokenizer sha256 zzz"):
        back.check_codes("zzz", "gen.json")
    with pytest.raises(WeightsError, match="nowhere.json: style prior file not found"):
        StylePrior.load(tmp_path / "nowhere")
    doc = json.loads(js.read_text())
    doc["styles"] = ["jive"]  # the JSON no longer describes the tensor
    js.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match="prior.safetensors: log_ratio has shape"):
        StylePrior.load(tmp_path / "prior")
    st.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="prior.safetensors: SHA-256 .* does not match"):  # the digest sees it first
        StylePrior.load(tmp_path / "prior")
    del doc["sha256"]
    js.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match="prior.safetensors: cannot read"):
        StylePrior.load(tmp_path / "prior")


def test_shipped_prior_has_the_tang_styles_and_the_shipped_generators_codes():
    from livedance.engine.loader import default_weights

    prior = StylePrior.load(default_style_prior())
    assert prior.styles == ("cha-cha", "rumba", "tango", "waltz") and prior.source["split"] == "train"
    gen_doc = json.loads(default_weights("livedance").with_suffix(".json").read_text())
    prior.check_codes(gen_doc["tokenizer_sha256"], "generator.json")
    base_doc = json.loads(default_weights("baseline").with_suffix(".json").read_text())
    with pytest.raises(WeightsError, match="style prior was measured with"):
        prior.check_codes(base_doc["tokenizer_sha256"], "baseline.json")


# --------------------------------------------------------------------------- the generator
@pytest.fixture(scope="module")
def graph_parts():
    return tiny_step_graph(C, temperature=0.5)


class _Recording:
    """Backend wrapper that records each run's sampling-noise inputs."""

    def __init__(self, backend):
        self.backend, self.noise = backend, []

    def run(self, inputs):
        self.noise.append({n: inputs[n].copy() for n in ("gumbel_base", "gumbel_res")})
        return self.backend.run(inputs)


def _codes_per_step(gen, n):
    out = []
    for c in music_contexts(n):
        gen.step(c)
        out.append(gen._pend_codes.copy())  # (1, K, P, V): the step's sampled codes
    return np.concatenate(out)


def test_style_shifts_the_sampler_by_strength_times_log_ratio_over_temperature(graph_parts):
    from livedance.engine import build_generator

    graph, rep = graph_parts
    prior = StylePrior.from_counts(_counts(), ("lower", "upper"), lineage=("abc",))
    plain = build_generator(graph, rep, "torch", seed=3, style_prior=prior)
    styled = build_generator(graph, rep, "torch", seed=3, style_prior=prior)
    plain.backend, styled.backend = _Recording(plain.backend), _Recording(styled.backend)
    styled.set_style("jive", 2.0)
    assert styled.style == "jive" and styled.style_strength == 2.0 and styled.styles == ("jive", "slow")
    for c in music_contexts(2):
        plain.step(c)
        styled.step(c)
    want = 2.0 * prior.log_ratio[0] / 0.5  # (P, V, C): strength * r_s / T
    for a, b in zip(plain.backend.noise, styled.backend.noise):
        d = b["gumbel_base"] - a["gumbel_base"]  # (1, iters, K * P, C), position k * P + p
        for pos in range(d.shape[2]):
            np.testing.assert_allclose(d[0, :, pos], np.broadcast_to(want[pos % 2, 0], d[0, :, pos].shape), atol=1e-5)
        np.testing.assert_allclose(b["gumbel_res"] - a["gumbel_res"],
                                   np.broadcast_to(want[:, 1:], a["gumbel_res"].shape), atol=1e-5)


def test_a_strong_style_takes_the_codes_and_clearing_it_gives_the_plain_dance_back(graph_parts):
    from livedance.engine import build_generator

    graph, rep = graph_parts
    counts = {"jive": np.zeros((2, 4, C)), "slow": np.full((2, 4, C), 1000.0)}
    counts["jive"][:, :, 7] = 1000.0 * C  # a style made of code 7 only, against one that uses every code
    prior = StylePrior.from_counts(counts, ("lower", "upper"), alpha=1e-3, lineage=("abc",))
    ref = _codes_per_step(build_generator(graph, rep, "torch", seed=5), 4)
    assert (ref != 7).mean() > 0.5
    g = build_generator(graph, rep, "torch", seed=5, style_prior=prior)
    g.set_style("jive", 1.0)
    assert (_codes_per_step(g, 4) == 7).all()  # every part, slot and level
    greedy = build_generator(graph, rep, "torch", seed=5, greedy=True, style_prior=prior)
    greedy.set_style(0)  # zero noise: the shift alone still decides
    assert (_codes_per_step(greedy, 2) == 7).all()
    for off in (None, "none", "OFF"):  # cleared (a reset keeps the setting): the same dance as no prior at all
        g.set_style("jive")
        g.set_style(off)
        g.reset(5)
        assert g.style is None
        np.testing.assert_array_equal(_codes_per_step(g, 4), ref)
    g.set_style("jive", 0.0)  # strength 0: no shift
    g.reset(5)
    np.testing.assert_array_equal(_codes_per_step(g, 4), ref)


def test_bad_style_requests_leave_the_style_unchanged(graph_parts):
    from livedance.engine import build_generator

    graph, rep = graph_parts
    bare = build_generator(graph, rep, "torch", seed=0)
    assert bare.styles == () and bare.style is None
    with pytest.raises(ConfigError, match="no style prior"):
        bare.set_style("jive")
    bare.set_style(None)  # clearing is always allowed
    g = build_generator(graph, rep, "torch", seed=0,
                        style_prior=StylePrior.from_counts(_counts(), ("lower", "upper"), lineage=("abc",)))
    g.set_style("slow", 1.5)
    for bad, strength in (("salsa", None), (5, None), ("jive", float("nan")), ("jive", -1.0), ("jive", "loud")):
        with pytest.raises(ConfigError):
            g.set_style(bad, strength)
        assert g.style == "slow" and g.style_strength == 1.5
    wrong = build_generator(graph, rep, "torch", seed=0, style_prior=StylePrior.from_counts(
        {"jive": np.ones((3, 4, C))}, ("lower", "upper", "hands"), lineage=("abc",)))  # a prior of other parts
    with pytest.raises(ConfigError, match="do not fit"):
        wrong.set_style("jive")
    assert wrong.style is None


def test_load_generator_applies_a_style_and_refuses_one_it_cannot_have(tmp_path):
    from livedance.engine import load_generator

    gen = load_generator(style="tango", style_strength=0.5)
    assert gen.style == "tango" and gen.style_strength == 0.5 and "waltz" in gen.styles
    with pytest.raises(ConfigError, match="unknown style 'salsa'"):
        load_generator(style="salsa")
    with pytest.raises(ConfigError, match="the styles are a prior on the livedance model's codes"):
        load_generator(kind="baseline", style="tango")  # says which model, not to retrain the shipped prior
    with pytest.raises(WeightsError, match="style prior was measured with"):  # a prior given for the baseline
        load_generator(kind="baseline", style="tango", style_prior=default_style_prior())
    assert load_generator(kind="baseline").styles == ()  # not asked for: the baseline just has no styles
    with pytest.raises(WeightsError, match="nowhere.json"):
        load_generator(style_prior=tmp_path / "nowhere")


def test_dotted_stems_keep_their_name_and_malformed_fields_are_weights_errors(tmp_path):
    prior = StylePrior.from_counts(_counts(), ("lower", "upper"), lineage=("abc",))
    st, js = prior.save(tmp_path / "prior_alpha0.5")
    assert st.name == "prior_alpha0.5.safetensors" and js.name == "prior_alpha0.5.json"
    assert StylePrior.load(tmp_path / "prior_alpha0.5.json").styles == ("jive", "slow")
    doc = json.loads(js.read_text())
    doc["tokenizer_lineage"] = None  # valid JSON, a field of the wrong kind
    js.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match="prior_alpha0.5.json: malformed style prior field"):
        StylePrior.load(tmp_path / "prior_alpha0.5")


def test_a_prior_pair_from_two_runs_is_refused_and_a_json_without_a_digest_still_loads(tmp_path):
    a = StylePrior.from_counts(_counts(), ("lower", "upper"), lineage=("abc",))
    b = StylePrior.from_counts({k: v[::-1].copy() for k, v in _counts().items()}, ("lower", "upper"), lineage=("abc",))
    st, js = a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    (tmp_path / "b.json").replace(js)  # a's tensor with b's JSON: same shapes, other ratios
    with pytest.raises(WeightsError, match=r"a.safetensors: SHA-256 .* does not match .* recorded in a.json"):
        StylePrior.load(tmp_path / "a")
    doc = json.loads(js.read_text())
    del doc["sha256"]  # a file written before the digest was recorded (session 15)
    js.write_text(json.dumps(doc))
    np.testing.assert_array_equal(StylePrior.load(tmp_path / "a").log_ratio, a.log_ratio)


def test_a_broken_prior_only_matters_when_a_style_is_asked_for(tmp_path):
    from livedance.engine.loader import load_style_prior

    (tmp_path / "p.json").write_text("{not json")
    (tmp_path / "p.safetensors").write_bytes(b"")
    doc = {"tokenizer_sha256": "abc"}
    assert load_style_prior(doc, "gen.json", tmp_path / "p") is None
    with pytest.raises(WeightsError, match="p.json: not a style prior JSON"):
        load_style_prior(doc, "gen.json", tmp_path / "p", required=True)


def test_eval_label_styles_set_each_clips_own_style_before_its_dance(graph_parts, tmp_path, monkeypatch):
    """``livedance eval --style label`` (generate_for_clips(style="label")): each clip is danced in its own labelled
    style at the given strength, set before that clip's first step."""
    from types import SimpleNamespace

    import soundfile as sf

    import livedance.engine as engine
    import livedance.engine.offline as offline
    import livedance.engine.style_prior as style_prior
    from livedance.engine import build_generator

    graph, rep = graph_parts
    names = ("cha-cha", "rumba", "tango", "waltz")
    prior = StylePrior.from_counts({s: np.ones((2, 4, C)) + i for i, s in enumerate(names)}, ("lower", "upper"),
                                   lineage=("abc",))
    gen = build_generator(graph, rep, "torch", seed=0, style_prior=prior)
    loaded = {}

    def fake_load(weights=None, **kw):
        loaded.update(kw)
        return gen

    monkeypatch.setattr(engine, "load_generator", fake_load)
    monkeypatch.setattr(style_prior, "default_style_prior", lambda: prior)
    seen = []
    real_generate = offline.generate_song

    def spy(g, *a, **kw):
        seen.append((g.style, g.style_strength))
        return real_generate(g, *a, **kw)

    monkeypatch.setattr(offline, "generate_song", spy)
    song = tmp_path / "song.wav"
    sf.write(song, (0.1 * np.random.default_rng(0).normal(size=22050)).astype(np.float32), 22050)
    clips = [SimpleNamespace(name=n, audio_path=song, audio_offset_s=0.0, num_frames=8, fps=25.0)
             for n in ("DANCE_W_3", "DANCE_C_1", "DANCE_T_2")]
    files = offline.generate_for_clips("livedance", clips, tmp_path / "out", seed=0, backend="torch", style="label",
                                       style_strength=0.5)
    assert seen == [("waltz", 0.5), ("cha-cha", 0.5), ("tango", 0.5)]
    assert loaded["style"] is None and loaded["style_strength"] == 0.5  # set per clip, not once for all
    assert len(files) == 3 and (tmp_path / "out" / "livedance" / "DANCE_C_1.npz").exists()


def test_a_strength_beyond_the_cap_is_refused_before_it_can_overflow_the_noise(graph_parts):
    from livedance.engine import build_generator
    from livedance.engine.style_prior import MAX_STRENGTH

    graph, rep = graph_parts
    prior = StylePrior.from_counts(_counts(), ("lower", "upper"), lineage=("abc",))
    assert np.isfinite(prior.bias("jive", MAX_STRENGTH)).all()
    with pytest.raises(ConfigError, match=r"strength must be a number in \[0, 100\], got 1e\+39"):
        prior.bias("jive", 1e39)  # float32 overflow to +-inf before the cap
    g = build_generator(graph, rep, "torch", seed=0, style_prior=prior)
    g.set_style("slow", 2.0)
    for strength in (MAX_STRENGTH + 1, 1e39):
        with pytest.raises(ConfigError, match=r"\[0, 100\]"):
            g.set_style("jive", strength)
        assert g.style == "slow" and g.style_strength == 2.0
    g.set_style("jive", MAX_STRENGTH)
    assert all(np.isfinite(v).all() for v in g._style_noise.values())
