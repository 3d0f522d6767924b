"""Engines: torch eager vs ONNX Runtime parity, NaN handling, weights errors, TensorRT honesty, offline path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine_fixtures import PoisonBackend

from livedance.engine.base import MotionGenerator, MusicContext
from livedance.errors import ConfigError, DeviceNotFoundError, WeightsError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from livedance.engine.step_graph import StepGraph
    from livedance.model.generator import DanceGenerator, GeneratorConfig
    from livedance.model.representation import Representation
    from livedance.model.tokenizer import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(codebook_size=32, latent_dim=16, width=32, kmeans_init=False)).eval()
    cfg = GeneratorConfig(d_model=32, n_layers=2, chunk_layers=1, n_heads=2, codebook_size=32, window=4, d_state=4)
    gen = DanceGenerator(cfg).eval()
    graph = StepGraph(gen, tok).eval()
    return {"graph": graph, "rep": Representation(), "tok": tok, "gen": gen, "dir": tmp_path_factory.mktemp("engine")}


def _contexts(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = 3.0
    for _ in range(n):
        f = rng.normal(size=(int(rng.integers(10, 17)), 180)).astype(np.float32)
        yield MusicContext(f, t - 0.2 + np.arange(f.shape[0]) / 43.07, 118.0, float(rng.random()), 0.9, t)
        t += 0.32


def test_torch_and_onnx_agree_over_a_song(parts):
    from livedance.engine import build_generator

    onnx_path = parts["dir"] / "step.onnx"
    a = build_generator(parts["graph"], parts["rep"], "torch", seed=7)
    b = build_generator(parts["graph"], parts["rep"], "onnx", onnx_path, seed=7)
    assert onnx_path.is_file()
    assert isinstance(a, MotionGenerator) and isinstance(b, MotionGenerator)
    worst = 0.0
    for ctx in _contexts(40):  # 40 steps = 12.8 s of motion
        fa, fb = a.step(ctx), b.step(ctx)
        assert len(fa) == a.frames_per_step == 8 and fa.local_quats.shape == (8, 55, 4)
        assert (a._pend_codes == b._pend_codes).all()
        worst = max(worst, float(np.abs(fa.local_quats - fb.local_quats).max()),
                    float(np.abs(fa.root_translation - fb.root_translation).max()))
    assert worst < 1e-4


def test_same_seed_same_dance_other_seed_other_dance(parts):
    from livedance.engine import build_generator

    g = build_generator(parts["graph"], parts["rep"], "torch", seed=1)
    runs = []
    for seed in (1, 1, 2):
        g.reset(seed)
        runs.append(np.concatenate([g.step(c).local_quats for c in _contexts(5)]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.abs(runs[0] - runs[2]).max() > 1e-3


def test_nan_frames_become_the_last_good_pose_and_are_counted(parts):
    from livedance.engine import build_generator

    g = build_generator(parts["graph"], parts["rep"], "torch", seed=0)
    g.backend = PoisonBackend(g.backend, bad_frames={2}, bad_state={4})
    frames = [g.step(c) for c in _contexts(7)]
    # step 4's state went non-finite: its own frames came from it, so they are replaced by the last good pose
    assert [f.n_bad for f in frames] == [0, 0, 3, 0, 8, 0, 0]
    assert g.n_bad_total == 11 and g.n_state_resets == 1
    f2 = frames[2]
    assert np.isfinite(f2.local_quats).all() and np.isfinite(f2.root_translation).all()
    np.testing.assert_array_equal(f2.local_quats[2], f2.local_quats[1])
    np.testing.assert_array_equal(f2.local_quats[4], f2.local_quats[1])
    for k in range(8):
        np.testing.assert_array_equal(frames[4].local_quats[k], frames[3].local_quats[-1])
    assert all(np.isfinite(f.local_quats).all() for f in frames[4:])  # recovered after the state reset
    assert not np.array_equal(frames[5].local_quats[0], frames[3].local_quats[-1])  # and dancing again


def test_bad_step_times_and_out_of_range_tempo_are_bad_inputs_not_errors(parts):
    from livedance.engine import build_generator

    g = build_generator(parts["graph"], parts["rep"], "torch", seed=0)
    ctx = list(_contexts(4))
    g.step(ctx[0])
    for bad in (MusicContext(ctx[1].features, ctx[1].times_s, 118.0, 0.5, 0.9, float("nan")),
                MusicContext(ctx[2].features, ctx[2].times_s, 118.0, 0.5, 0.9, None),
                MusicContext(ctx[3].features, ctx[3].times_s, 118.0, 0.5, 1e39, ctx[3].t_first_frame_s)):
        f = g.step(bad)
        assert np.isfinite(f.local_quats).all() and np.isfinite(f.t0_s)
    assert g.n_bad_inputs == 3 and g.n_state_resets == 0


def test_nan_in_the_first_frame_gives_the_rest_pose(parts):
    from livedance.engine import build_generator

    g = build_generator(parts["graph"], parts["rep"], "torch", seed=0)

    class First:
        def __init__(self, inner):
            self.inner = inner

        def run(self, inputs):
            out = self.inner.run(inputs)
            out["frames"] = np.full_like(out["frames"], np.inf)
            return out

    g.backend = First(g.backend)
    f = g.step(next(_contexts(1)))
    assert f.n_bad == 8
    np.testing.assert_array_equal(f.local_quats[..., 3], 1.0)
    np.testing.assert_array_equal(f.root_translation, 0.0)


def test_weights_errors_name_the_file(parts, tmp_path):
    from livedance.model.train_generator import load_model, save_model

    stem = tmp_path / "gen"
    save_model(parts["gen"], stem, {"model": "livedance", "tokenizer_sha256": "x"})
    model, doc = load_model(stem)
    assert doc["model"] == "livedance"
    with pytest.raises(WeightsError, match="nothing-here.json"):
        load_model(tmp_path / "nothing-here")
    blob = stem.with_suffix(".safetensors").read_bytes()
    stem.with_suffix(".safetensors").write_bytes(blob[:-10] + b"0123456789")
    with pytest.raises(WeightsError, match="gen.safetensors.*SHA-256"):
        load_model(stem)
    # config that does not match the tensors
    save_model(parts["gen"], stem, {"model": "livedance"})
    doc = json.loads(stem.with_suffix(".json").read_text())
    doc["config"]["d_model"] = 48
    stem.with_suffix(".json").write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match="gen.safetensors.*(missing|shape mismatch)"):
        load_model(stem)


def test_onnx_backend_missing_file(tmp_path):
    from livedance.engine.backends import OnnxBackend

    with pytest.raises(WeightsError, match="not found"):
        OnnxBackend(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(WeightsError, match="bad.onnx"):
        OnnxBackend(bad)


def test_tensorrt_backend_is_honest_without_tensorrt(tmp_path):
    from livedance.engine.backends import TensorRTBackend

    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(DeviceNotFoundError, match="tensorrt"):
            TensorRTBackend(tmp_path / "step.onnx")
    else:  # pragma: no cover - only on GPU hosts
        pytest.skip("tensorrt is installed: the TensorRT backend is exercised on GPU hosts (docs/gpu.md)")


def test_warm_up_runs_the_backend_and_leaves_the_dance_unchanged(parts):
    """build_generator warms the backend up (one run on zero inputs); the state is untouched, so the dance
    equals that of a generator that was never warmed up."""
    from livedance.engine import build_generator
    from livedance.engine.backends import TorchBackend
    from livedance.engine.learned import LearnedGenerator

    runs = []

    class Counting(TorchBackend):
        def run(self, inputs):
            runs.append(inputs)
            return super().run(inputs)

    def make():
        return LearnedGenerator(Counting(parts["graph"]), parts["graph"].input_shapes(1), parts["graph"].config,
                                parts["rep"], seed=5)

    cold = make()  # never warmed up
    assert not runs and cold.steps == 0
    warmed = make()
    warmed.warm_up(2)
    assert len(runs) == 2 and all(not v.any() for v in runs[0].values()) and warmed.steps == 0
    built = build_generator(parts["graph"], parts["rep"], "torch", seed=5)  # warmed up inside
    assert built.steps == 0 and all(not v.any() for v in built._states.values())
    for ctx in _contexts(5):
        a, b, c = cold.step(ctx), warmed.step(ctx), built.step(ctx)
        assert np.array_equal(a.local_quats, b.local_quats) and np.array_equal(a.local_quats, c.local_quats)


def test_cuda_graph_needs_a_cuda_device(parts):
    from livedance.engine import build_generator
    from livedance.errors import ConfigError

    with pytest.raises(ConfigError, match="cuda_graph=True needs a CUDA device"):
        build_generator(parts["graph"], parts["rep"], "torch", seed=0, cuda_graph=True)
    with pytest.raises(ConfigError, match="apply to the torch backend"):  # not silently ignored
        build_generator(parts["graph"], parts["rep"], "onnx", parts["dir"] / "step.onnx", cuda_graph=True)


def test_torch_backend_sets_cudnn_tf32_only_within_its_own_calls_and_only_on_cuda(parts):
    # TF32 convolutions moved the CUDA step 1.8e-4 from the CPU's in 20 steps on an H100 (docs/gpu.md, runs 3-5)
    from livedance.engine.backends import TorchBackend

    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    try:
        conv.fp32_precision = "tf32"  # a user on torch's per-operator API (reading the legacy flag would now raise)
        cpu, seen_in_call = TorchBackend(parts["graph"]), []
        graph = cpu.graph

        def spy(*args):
            seen_in_call.append(conv.fp32_precision)
            return graph(*args)

        cpu.graph = spy
        zeros = {n: v.numpy() for n, v in parts["graph"].zero_inputs(1).items()}
        assert np.isfinite(cpu.run(zeros)["frames"]).all()
        assert seen_in_call == ["tf32"] and conv.fp32_precision == "tf32"  # CPU calls leave the flags alone
        strict, loose = TorchBackend(parts["graph"]), TorchBackend(parts["graph"], allow_tf32=True)
        strict.device = loose.device = "cuda:0"  # the flag logic alone, without a CUDA device
        seen = []
        with strict._cudnn():
            seen.append(conv.fp32_precision)
        with loose._cudnn():
            seen.append(conv.fp32_precision)
        assert seen == ["ieee", "tf32"] and conv.fp32_precision == "tf32"  # set per call, then restored
        with pytest.raises(ValueError), strict._cudnn():
            raise ValueError("a failing step")
        assert conv.fp32_precision == "tf32"  # restored when the call fails too
    finally:
        conv.fp32_precision = before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (docs/gpu.md has the H100 run)")
def test_cuda_graph_replay_equals_cpu_eager_over_a_song(parts):  # pragma: no cover - GPU hosts only
    import copy

    from livedance.engine import build_generator

    a = build_generator(parts["graph"], parts["rep"], "torch", seed=3)
    b = build_generator(copy.deepcopy(parts["graph"]), parts["rep"], "torch", seed=3, device="cuda", cuda_graph=True)
    for ctx in _contexts(20):
        fa, fb = a.step(ctx), b.step(ctx)
        assert (a._pend_codes == b._pend_codes).all()
        assert np.abs(fa.local_quats - fb.local_quats).max() < 1e-4


def test_offline_generation_through_the_step_path(parts):
    from livedance.data.audio_io import load_audio
    from livedance.engine import build_generator
    from livedance.engine.offline import generate_song, motion_positions

    song = Path(__file__).resolve().parents[1] / "livedance" / "assets" / "armygeddon-excerpt.ogg"
    a22, _ = load_audio(song, sr=22050, duration_s=4.0)
    a44, _ = load_audio(song, sr=44100, duration_s=4.0)
    g = build_generator(parts["graph"], parts["rep"], "torch", seed=0)
    m1 = generate_song(g, song, start_s=1.0, duration_s=2.5, seed=3, audio=(a22, a44))
    m2 = generate_song(g, song, start_s=1.0, duration_s=2.5, seed=3, audio=(a22, a44))
    assert m1.local_quats.shape == (round(2.5 * 25), 55, 4) and m1.audio_offset_s == 1.0
    np.testing.assert_array_equal(m1.local_quats, m2.local_quats)
    pos = motion_positions(m1, parts["rep"].rest_offsets)
    assert pos.shape == (62, 24, 3) and np.isfinite(pos).all()


def test_offline_lookahead_gives_the_live_schedules_dance(parts):
    """Hearing ahead in blocks (the offline default) must hand every step the context the live loop's
    interleaving (lookahead 1) would: the same dance to the bit, also with a partial last block."""
    from livedance.data.audio_io import load_audio
    from livedance.engine import build_generator
    from livedance.engine.offline import generate_song

    song = Path(__file__).resolve().parents[1] / "livedance" / "assets" / "armygeddon-excerpt.ogg"
    audio = (load_audio(song, sr=22050, duration_s=6.0)[0], load_audio(song, sr=44100, duration_s=6.0)[0])
    g = build_generator(parts["graph"], parts["rep"], "torch", seed=0)
    seen = {}
    step = g.step

    def spy(ctx):
        seen.setdefault(spy.key, []).append((ctx.t_first_frame_s, ctx.bpm, ctx.beat_phase, ctx.confidence,
                                             ctx.features.copy()))
        return step(ctx)

    g.step = spy
    runs = {}
    for la in (1, 3, 32):
        spy.key = la
        runs[la] = generate_song(g, song, start_s=0.7, duration_s=4.3, seed=5, audio=audio, lookahead_steps=la)
    assert len(seen[1]) == 14 and runs[1].local_quats.shape == (round(4.3 * 25), 55, 4)
    for la in (3, 32):
        np.testing.assert_array_equal(runs[la].local_quats, runs[1].local_quats)
        np.testing.assert_array_equal(runs[la].root_translation, runs[1].root_translation)
        for a, b in zip(seen[1], seen[la], strict=True):
            assert a[:4] == b[:4]
            np.testing.assert_array_equal(a[4], b[4])
    with pytest.raises(ConfigError, match="lookahead_steps"):
        generate_song(g, song, audio=audio, lookahead_steps=0)


def test_offline_generation_refuses_a_step_of_the_wrong_length(parts):
    import dataclasses

    from livedance.engine import build_generator
    from livedance.engine.offline import generate_song

    song = Path(__file__).resolve().parents[1] / "livedance" / "assets" / "armygeddon-excerpt.ogg"
    g = build_generator(parts["graph"], parts["rep"], "torch", seed=0)
    step = g.step
    g.step = lambda ctx: dataclasses.replace(f := step(ctx), local_quats=f.local_quats[:-1],
                                             root_translation=f.root_translation[:-1])
    with pytest.raises(ConfigError, match="returned 7 frames.*frames_per_step is 8"):
        generate_song(g, song, duration_s=1.0)


def test_load_generator_refuses_missing_and_mismatched_weights(parts, tmp_path):
    from livedance.engine import load_generator, load_step_graph
    from livedance.model.train_generator import save_model

    with pytest.raises(WeightsError, match="no-such-generator.json"):
        load_generator(tmp_path / "no-such-generator", backend="torch")
    tok_stem = tmp_path / "tok"
    parts["tok"].save(tok_stem, parts["rep"])
    gen_stem = tmp_path / "gen"
    save_model(parts["gen"], gen_stem, {"model": "livedance", "tokenizer_sha256": "0" * 64})
    with pytest.raises(WeightsError, match="gen.json.*trained with tokenizer sha256 000000000000"):
        load_step_graph(gen_stem, tokenizer=tok_stem)
    sha = json.loads(tok_stem.with_suffix(".json").read_text())["sha256"]
    save_model(parts["gen"], gen_stem, {"model": "livedance", "tokenizer_sha256": sha})
    graph, rep, doc = load_step_graph(gen_stem, tokenizer=tok_stem)
    assert doc["tokenizer_sha256"] == sha and graph.context_tokens == parts["tok"].decoder_context_tokens
    # a decoder-tuned tokenizer (other decoder weights) is accepted when it lists the generator's tokenizer
    # in same_codes_as, refused when it does not
    import copy

    tuned = copy.deepcopy(parts["tok"])
    with torch.no_grad():
        next(tuned.decoders.parameters()).add_(0.01)
    tuned.save(tok_stem, parts["rep"], extra={"same_codes_as": [sha]})
    assert json.loads(tok_stem.with_suffix(".json").read_text())["sha256"] != sha
    load_step_graph(gen_stem, tokenizer=tok_stem)
    tuned.save(tok_stem, parts["rep"], extra={"same_codes_as": ["1" * 64]})
    with pytest.raises(WeightsError, match="same_codes_as"):
        load_step_graph(gen_stem, tokenizer=tok_stem)


def test_frames_carry_the_pelvis_world_position(parts):
    """MotionFrames.root_translation is the pelvis world position (engine/base.py), not the FK
    displacement from the rest pelvis: its height is the decoded pelvis height above the floor whatever
    the skeleton, and x/z include the rest pelvis offset. (A displacement would put the pelvis of a
    1.7 m avatar on the floor in the live loop's sinks.)"""
    from livedance.engine import build_generator
    from livedance.model.representation import Representation

    rest = np.zeros((22, 3), np.float32)
    rest[0] = [0.01, 0.93, -0.02]
    rep0, rep1 = parts["rep"], Representation(rest_offsets=rest)
    a = build_generator(parts["graph"], rep0, "torch", seed=3)
    b = build_generator(parts["graph"], rep1, "torch", seed=3)
    for ctx in _contexts(3):
        fa, fb = a.step(ctx), b.step(ctx)
        np.testing.assert_allclose(fb.root_translation - fa.root_translation,
                                   np.tile([rest[0, 0], 0.0, rest[0, 2]], (8, 1)), atol=1e-5)


def test_residual_temperature_scales_only_the_residual_noise(parts):
    from dataclasses import replace

    from livedance.engine import build_generator
    from livedance.errors import ConfigError

    seen = {}

    class _Spy:
        def __init__(self, inner):
            self.inner = inner

        def run(self, inputs):
            seen.setdefault("runs", []).append({k: np.array(inputs[k]) for k in ("gumbel_base", "gumbel_res")})
            return self.inner.run(inputs)

    g = build_generator(parts["graph"], parts["rep"], "torch", seed=5)
    g.backend = _Spy(g.backend)
    base_cfg = g.config
    draws = {}
    for rt in (None, 2.0 * base_cfg.temperature, 0.0):
        seen.clear()
        g.config = replace(base_cfg, residual_temperature=rt)
        g.reset(5)
        for c in _contexts(3):
            g.step(c)
        draws[rt] = seen["runs"]
    g.config = base_cfg
    plain, doubled, argmax = draws[None], draws[2.0 * base_cfg.temperature], draws[0.0]
    for a, b, z in zip(plain, doubled, argmax):
        np.testing.assert_array_equal(a["gumbel_base"], b["gumbel_base"])  # the base level is untouched
        np.testing.assert_allclose(b["gumbel_res"], 2.0 * a["gumbel_res"], rtol=1e-6)
        assert np.all(z["gumbel_res"] == 0.0) and np.abs(z["gumbel_base"]).max() > 0
    with pytest.raises(ConfigError, match="residual_temperature"):
        replace(base_cfg, residual_temperature=-1.0)


def test_stall_guard_boosts_the_noise_only_while_music_plays_and_the_dance_stands_still(parts):
    from livedance.engine import build_generator
    from livedance.engine.learned import StallGuard

    class _Still:
        """Wraps a backend: real codes and states, but every decoded frame is the same (a frozen dancer)."""

        def __init__(self, inner, log):
            self.inner, self.log = inner, log

        def run(self, inputs):
            self.log.append(np.array(inputs["gumbel_base"]))
            out = dict(self.inner.run(inputs))
            out["frames"] = np.zeros_like(out["frames"])
            return out

    def run(guard: StallGuard, confidence: float) -> list:
        log: list = []
        g = build_generator(parts["graph"], parts["rep"], "torch", seed=4)
        g.stall_guard = guard
        g.backend = _Still(g.backend, log)
        g.reset(4)
        for c in _contexts(12):  # 12 steps = 3.84 s of a still dance
            g.step(MusicContext(c.features, c.times_s, c.bpm, c.beat_phase, confidence, c.t_first_frame_s))
        return log, g.n_stall_steps

    off, n_off = run(StallGuard(enabled=False), 0.9)
    on, n_on = run(StallGuard(boost=1.5, growth=1.0, window_s=2.0), 0.9)
    quiet, n_quiet = run(StallGuard(boost=1.5, window_s=2.0), 0.0)  # the tracker hears no music
    ratios = [float(np.abs(b).sum() / np.abs(a).sum()) for a, b in zip(off, on)]
    first = next(i for i, r in enumerate(ratios) if r > 1.01)
    assert 5 <= first <= 8  # 2 s of still frames (50 at 25 fps) are needed first: after step 7 (56 frames)
    np.testing.assert_allclose(ratios[first:], 1.5, rtol=1e-5)
    assert n_on == len(ratios) - first + 1 and n_off == 0 and n_quiet == 0  # the last decision boosts step 13
    # the default guard grows the boost by `growth` per further stalled step, up to max_boost
    grow, _ = run(StallGuard(boost=1.5, growth=2.0, max_boost=4.0, window_s=2.0), 0.9)
    ratios = [float(np.abs(b).sum() / np.abs(a).sum()) for a, b in zip(off, grow)]
    np.testing.assert_allclose(ratios[first:first + 4], [1.5, 3.0, 4.0, 4.0], rtol=1e-5)
    for a, b in zip(off, quiet):
        np.testing.assert_array_equal(a, b)


def test_onnx_cache_key_changes_with_any_config_field_or_tensor(parts):
    """The exported graph is cached per graph_key: a config change (mask iterations change the graph's
    input shapes) or a changed tensor must never reuse a stale ONNX file."""
    from dataclasses import replace

    from livedance.engine.loader import graph_key
    from livedance.engine.step_graph import StepGraph
    from livedance.model.generator import DanceGenerator

    g = parts["graph"]
    key = graph_key(g)
    assert key == graph_key(g)  # deterministic
    other_iters = DanceGenerator(replace(parts["gen"].config, mask_iters=parts["gen"].config.mask_iters + 1))
    other_iters.load_state_dict(parts["gen"].state_dict())
    assert graph_key(StepGraph(other_iters, parts["tok"]).eval()) != key
    other_t = DanceGenerator(replace(parts["gen"].config, temperature=0.5))
    other_t.load_state_dict(parts["gen"].state_dict())
    assert graph_key(StepGraph(other_t, parts["tok"]).eval()) != key
    # training-only settings do not shape the graph: the same key (no needless re-export)
    for train_only in ({"dropout": 0.1}, {"music_dropout": 0.2}):
        same = DanceGenerator(replace(parts["gen"].config, **train_only))
        same.load_state_dict(parts["gen"].state_dict(), strict=False)
        if "music_dropout" in train_only:
            del same.null_music  # its null vector is a tensor of the graph; without it the graph is the same
        assert graph_key(StepGraph(same, parts["tok"]).eval()) == key
    changed = DanceGenerator(parts["gen"].config)
    state = {k: v.clone() for k, v in parts["gen"].state_dict().items()}
    state["bos"][0, 0] += 1.0
    changed.load_state_dict(state)
    assert graph_key(StepGraph(changed, parts["tok"]).eval()) != key


@pytest.mark.parametrize("cut", [{"top_k": 3}, {"min_p": 0.3}], ids=["top_k", "min_p"])
def test_truncated_sampling_graph_exports_and_agrees_with_torch(parts, cut):
    """top_k (TopK + ReduceMin) and min_p (ReduceMax) are baked into the exported graph: ONNX Runtime loads
    it and samples the same codes as torch (test_generator checks the cuts themselves); the cache key
    tells the graphs apart."""
    from dataclasses import replace

    from livedance.engine import build_generator
    from livedance.engine.loader import graph_key
    from livedance.engine.step_graph import StepGraph
    from livedance.model.generator import DanceGenerator

    gen = DanceGenerator(replace(parts["gen"].config, **cut)).eval()
    gen.load_state_dict(parts["gen"].state_dict())
    graph = StepGraph(gen, parts["tok"]).eval()
    assert graph_key(graph) != graph_key(parts["graph"])
    onnx_path = parts["dir"] / f"step-{next(iter(cut))}.onnx"
    a = build_generator(graph, parts["rep"], "torch", seed=3)
    b = build_generator(graph, parts["rep"], "onnx", onnx_path, seed=3)
    for ctx in _contexts(12):
        fa, fb = a.step(ctx), b.step(ctx)
        assert (a._pend_codes == b._pend_codes).all()
        assert float(np.abs(fa.local_quats - fb.local_quats).max()) < 1e-4


def test_guided_graph_exports_and_agrees_with_torch(parts):
    """Classifier-free guidance (the chunk head run with and without the music in one batched call, mixed in
    log-probability) is baked into the exported graph: ONNX Runtime samples the same codes as torch."""
    from dataclasses import replace

    from livedance.engine import build_generator
    from livedance.engine.loader import graph_key
    from livedance.engine.step_graph import StepGraph
    from livedance.model.generator import DanceGenerator

    gen = DanceGenerator(replace(parts["gen"].config, music_dropout=0.1, guidance=2.5)).eval()
    missing, unexpected = gen.load_state_dict(parts["gen"].state_dict(), strict=False)
    assert missing == ["null_music"] and not unexpected
    graph = StepGraph(gen, parts["tok"]).eval()
    assert graph_key(graph) != graph_key(parts["graph"])
    a = build_generator(graph, parts["rep"], "torch", seed=3)
    b = build_generator(graph, parts["rep"], "onnx", parts["dir"] / "step-guided.onnx", seed=3)
    for ctx in _contexts(12):
        fa, fb = a.step(ctx), b.step(ctx)
        assert (a._pend_codes == b._pend_codes).all()
        assert float(np.abs(fa.local_quats - fb.local_quats).max()) < 1e-4


def test_a_cached_graph_that_does_not_load_is_exported_again(parts, tmp_path):
    from livedance.engine import build_generator

    bad = tmp_path / "cached.onnx"
    bad.write_bytes(b"not an onnx file")  # e.g. a truncated cache entry
    gen = build_generator(parts["graph"], parts["rep"], "onnx", bad, seed=0)
    assert len(gen.step(next(_contexts(1)))) == 8
    assert bad.stat().st_size > 1000


def test_step_graph_dequantize_is_the_tokenizers():
    """The exported graph has its own copy of the HRVQ level chaining (F.embedding traces to ONNX Gather); it must
    give the tokenizer's latents, hints included (the shipped tokenizer's hints are non-zero)."""
    from livedance.engine.step_graph import StepGraph
    from livedance.model.generator import DanceGenerator, GeneratorConfig
    from livedance.model.tokenizer import Tokenizer

    tok, _, _ = Tokenizer.load(None)
    cfg = GeneratorConfig(d_model=32, n_layers=1, chunk_layers=1, n_heads=2, codebook_size=tok.config.codebook_size,
                          levels=tok.config.levels, window=4, d_state=4)
    graph = StepGraph(DanceGenerator(cfg).eval(), tok).eval()
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, tok.config.codebook_size, (2, 3, len(tok.config.parts), tok.config.levels), generator=g)
    with torch.no_grad():
        got = graph.dequantize(codes)  # (B, P, K, d)
        want = tok.dequantize({p: codes[:, :, i] for i, p in enumerate(tok.config.parts)})
    assert any(float(h.weight.detach().abs().max()) > 0 for hs in tok.hints.values() for h in hs)
    for i, p in enumerate(tok.config.parts):
        torch.testing.assert_close(got[:, i], want[p], atol=1e-6, rtol=0)
