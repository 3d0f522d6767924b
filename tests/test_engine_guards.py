"""LearnedGenerator's guards against bad input and bad output: unusable music input is dropped / replaced and
counted, the heading follows the frame actually emitted, the pose guard never commits a poisoned state, the
counters are per song; the ONNX cache key and the TensorRT plan cache (with a stand-in tensorrt)."""

from __future__ import annotations

import dataclasses
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import roma
import torch

from livedance.engine.base import MotionFrames, MusicContext
from livedance.engine.pose_guard import PoseGuardConfig
from livedance.errors import WeightsError
from livedance.model.representation import pelvis_heading

from engine_fixtures import PoisonBackend, music_contexts, tiny_step_graph

torch.set_num_threads(1)
NAN = float("nan")


@pytest.fixture(scope="module")
def graph_parts():
    return tiny_step_graph()


def _gen(graph_parts, seed=3, **kw):
    from livedance.engine import build_generator

    graph, rep = graph_parts
    return build_generator(graph, rep, "torch", seed=seed, **kw)


def _run(gen, contexts):
    """Concatenated (local_quats, root_translation) of the generator's steps on the contexts."""
    out = [gen.step(c) for c in contexts]
    return np.concatenate([f.local_quats for f in out]), np.concatenate([f.root_translation for f in out])


def _with(contexts, at, **change):
    return [dataclasses.replace(c, **change) if i == at else c for i, c in enumerate(contexts)]


# ---------------------------------------------------------------------------------------------- music input
@pytest.mark.parametrize("bad", [{"confidence": NAN}, {"beat_phase": NAN}, {"bpm": float("inf")}, {"bpm": NAN},
                                 {"confidence": None}],
                         ids=["confidence nan", "phase nan", "bpm inf", "bpm nan", "confidence None"])
def test_a_non_finite_tempo_is_danced_as_no_tempo_and_counted(graph_parts, bad):
    ctxs = list(music_contexts(6))
    want = _run(_gen(graph_parts), _with(ctxs, 2, bpm=0.0, beat_phase=0.0, confidence=0.0))
    g = _gen(graph_parts)
    got = _run(g, _with(ctxs, 2, **bad))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert g.n_bad_inputs == 1 and g.n_state_resets == 0 and g.n_bad_total == 0


def test_non_finite_feature_rows_are_dropped_with_their_times_and_counted(graph_parts):
    ctxs = list(music_contexts(6))
    c = ctxs[2]
    bad_f = c.features.copy()
    bad_f[5, 3] = NAN
    bad_f[9, 0] = np.inf
    bad_t = c.times_s.copy()
    bad_t[11] = NAN  # a frame at no time is dropped too
    keep = np.ones(len(bad_t), bool)
    keep[[5, 9, 11]] = False
    want = _run(_gen(graph_parts), _with(ctxs, 2, features=c.features[keep], times_s=c.times_s[keep]))
    g = _gen(graph_parts)
    got = _run(g, _with(ctxs, 2, features=bad_f, times_s=bad_t))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert g.n_bad_inputs == 1 and g.n_state_resets == 0 and g.n_bad_total == 0
    assert np.isfinite(g._feats).all() and np.isfinite(g._times).all()


@pytest.mark.parametrize("change", [
    lambda c: {"features": c.features[:, :-1]},  # a feature width other than the model's
    lambda c: {"features": c.features.reshape(-1)},  # flat: reshaping it would re-lay out the numbers
    lambda c: {"features": np.concatenate([c.features, c.features], 1).reshape(-1, 180)},  # rows of the wrong width
    lambda c: {"times_s": c.times_s[:-1]},  # one time short
    lambda c: {"features": None},
    lambda c: {"features": [[1.0, 2.0], [3.0]]},  # ragged
], ids=["narrow", "flat", "relaid", "times short", "None", "ragged"])
def test_misshaped_features_never_raise_out_of_the_step_and_are_skipped_and_counted(graph_parts, change):
    ctxs = list(music_contexts(5))
    c = ctxs[1]
    skipped = _with(ctxs, 1, features=np.zeros((0, 180), np.float32), times_s=np.zeros(0))
    ref, g = _gen(graph_parts), _gen(graph_parts)
    _run(ref, skipped[:2])
    _run(g, _with(ctxs, 1, **change(c))[:2])
    np.testing.assert_array_equal(g._feats, ref._feats)  # nothing of it buffered, rows and times still paired
    np.testing.assert_array_equal(g._times, ref._times)
    want, got = _run(ref, skipped[2:]), _run(g, ctxs[2:])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert g.n_bad_inputs == 1


def test_no_new_features_in_any_empty_shape_is_not_a_bad_input(graph_parts):
    g = _gen(graph_parts)
    for f in (np.zeros((0, 180), np.float32), np.zeros(0, np.float32), []):
        g.step(MusicContext(f, np.zeros(0), 118.0, 0.2, 0.9, 3.0 + 0.32 * g.steps))
    assert g.n_bad_inputs == 0


# ---------------------------------------------------------------------------------------------- heading
class _Record:
    """Wraps a backend, records each run's output frames and poisons the chosen frames of the chosen run."""

    def __init__(self, inner, run=None, rows=slice(0, 0)):
        self.inner, self.bad_run, self.rows, self.n, self.frames = inner, run, rows, 0, []

    def run(self, inputs):
        out = self.inner.run(inputs)
        self.frames.append(out["frames"][0].copy())
        if self.n == self.bad_run:
            out["frames"] = out["frames"].copy()
            out["frames"][0, self.rows] = np.nan
        self.n += 1
        return out


def _headings(q: np.ndarray) -> np.ndarray:
    """(T,) pelvis heading, radians, of (T, 55, 4) local quaternions."""
    return pelvis_heading(roma.unitquat_to_rotmat(torch.from_numpy(q[:, 0].astype(np.float64))).numpy())


def _wrap(a):
    return np.angle(np.exp(1j * np.asarray(a)))


def test_a_bad_frame_mid_step_gives_no_yaw_jump_at_the_next_step(graph_parts):
    """Frames 2-4 of step 3 bad: frames 5-7 were drawn with the step's advanced heading, so step 4 must go on
    from it (it went back to step 3's start heading: a jump of the step's whole yaw)."""
    ctxs = list(music_contexts(7))
    clean = _run(_gen(graph_parts), ctxs)
    g = _gen(graph_parts)
    g.backend = _Record(g.backend, run=3, rows=slice(2, 5))
    bad = _run(g, ctxs)
    assert g.n_bad_total == 3
    d0, d1 = _wrap(np.diff(_headings(clean[0]))), _wrap(np.diff(_headings(bad[0])))
    np.testing.assert_allclose(d1[29:], d0[29:], atol=1e-4)  # from the last good frame of step 3 on
    assert np.abs(d1[31]) <= np.abs(d0).max() + 1e-4


def test_bad_frames_at_the_end_of_a_step_hand_on_the_heading_of_the_frame_they_repeat(graph_parts):
    """Frames 5-7 of step 3 bad: they repeat frame 4 (its pose, heading and position), and step 4 goes on from
    frame 4's heading: the clean run's step 4 turned by minus the heading velocity of frames 5-7."""
    from livedance.model.representation import Representation

    ctxs = list(music_contexts(6))
    g0 = _gen(graph_parts)
    g0.backend = _Record(g0.backend)
    clean = _run(g0, ctxs)
    g = _gen(graph_parts)
    g.backend = _Record(g.backend, run=3, rows=slice(5, 8))
    bad = _run(g, ctxs)
    rep = Representation()
    yaw3 = rep.denormalize(g0.backend.frames[3])[:, rep.root_channels["heading_velocity"]]  # clean step 3, rad/frame
    assert yaw3.shape == (8,)
    np.testing.assert_array_equal(bad[0][29:32], np.broadcast_to(clean[0][28], (3, 55, 4)))
    np.testing.assert_array_equal(bad[1][29:32], np.broadcast_to(clean[1][28], (3, 3)))
    turn = _wrap(_headings(bad[0][32:]) - _headings(clean[0][32:]))  # the same poses from step 4 on
    np.testing.assert_allclose(turn, _wrap(-yaw3[5:].sum()), atol=1e-4)


# ---------------------------------------------------------------------------------------------- pose guard
class _StubGuard:
    def __init__(self, excesses, tries):
        self.cfg = PoseGuardConfig(enabled=True, tries=tries)
        self.script, self.seen, self.committed, self._run = list(excesses), [], [], 0

    def reset(self):
        pass

    def assess(self, local_quats, pelvis):
        self.seen.append(local_quats.copy())
        self._run += 1
        return self.script[(self._run - 1) % len(self.script)], len(self.seen) - 1

    def commit(self, token):
        self.committed.append(token)
        self._run = 0


def test_the_pose_guard_never_commits_a_run_whose_state_is_poisoned(graph_parts):
    stub = _StubGuard([0.0, 1.0], tries=2)  # run 0: within budget but its state is NaN; run 1: over, finite
    g = _gen(graph_parts, pose_guard=stub)
    g.backend = PoisonBackend(g.backend, bad_state={0})
    f = g.step(next(music_contexts(1)))
    assert g.n_state_resets == 0 and stub.committed == [1]
    np.testing.assert_array_equal(f.local_quats, stub.seen[1])
    assert all(np.isfinite(v).all() for v in g._states.values())
    # every run poisoned: the least excess among them is committed and the state is reset
    stub2 = _StubGuard([2.0, 1.0], tries=2)
    g2 = _gen(graph_parts, pose_guard=stub2)
    g2.backend = PoisonBackend(g2.backend, bad_state={0, 1})
    f2 = g2.step(next(music_contexts(1)))
    # the guard counts what was shown, the held pose, not the discarded run's frames (seen[0], seen[1])
    assert g2.n_state_resets == 1 and stub2.committed == [2] and len(stub2.seen) == 3
    np.testing.assert_array_equal(f2.local_quats, stub2.seen[2])


# ---------------------------------------------------------------------------------------------- counters
_COUNTERS = ("n_bad_total", "n_state_resets", "n_bad_inputs", "n_stall_steps", "n_pose_resamples", "n_pose_over",
             "steps")


def test_reset_zeroes_the_counters_so_generate_song_reports_each_songs_own(graph_parts):
    from livedance.data.audio_io import load_audio
    from livedance.engine.offline import generate_song

    g = _gen(graph_parts, pose_guard=_StubGuard([1.0], tries=1))
    inner = g.backend

    class Every3rd:  # a poisoned state on every 3rd run; the contexts' confidence is NaN at steps 1, 4, 7, ...
        n = 0

        def run(self, inputs):
            out = inner.run(inputs)
            Every3rd.n += 1
            if Every3rd.n % 3 == 0:
                out = dict(out)
                k = next(n for n in out if n.endswith("_out"))
                out[k] = out[k] * np.nan
            return out

    g.backend = Every3rd()
    step = g.step
    g.step = lambda ctx: step(dataclasses.replace(ctx, confidence=NAN) if g.steps % 3 == 1 else ctx)
    for c in music_contexts(5):
        g.step(c)
    assert g.n_state_resets > 0 and g.n_bad_inputs > 0 and g.n_pose_over > 0
    g.reset(0)
    assert {n: getattr(g, n) for n in _COUNTERS} == dict.fromkeys(_COUNTERS, 0)
    song = Path(__file__).resolve().parents[1] / "livedance" / "assets" / "armygeddon-excerpt.ogg"
    audio = (load_audio(song, sr=22050, duration_s=3.0)[0], load_audio(song, sr=44100, duration_s=3.0)[0])
    runs = []
    for _ in range(2):
        Every3rd.n = 0
        runs.append(generate_song(g, song, start_s=0.5, duration_s=2.0, seed=1, audio=audio))
    assert runs[0].n_state_resets == runs[1].n_state_resets == g.n_state_resets > 0
    assert runs[0].n_bad_inputs == runs[1].n_bad_inputs == g.n_bad_inputs == 2  # steps 1 and 4 of 7


def test_generate_prints_state_resets_and_bad_inputs_when_there_are_any(graph_parts, monkeypatch, capsys, tmp_path):
    import livedance.engine as engine
    from livedance.cli import main

    song = str(Path(__file__).resolve().parents[1] / "livedance" / "assets" / "armygeddon-excerpt.ogg")
    made = []

    def fake_load_generator(*args, **kwargs):
        g = _gen(graph_parts)
        if made:  # the second command's generator: a poisoned state at run 2, a NaN tempo at step 1
            g.backend = PoisonBackend(g.backend, bad_state={2})
            step = g.step
            g.step = lambda ctx: step(dataclasses.replace(ctx, bpm=NAN) if g.steps == 1 else ctx)
        made.append(g)
        return g

    monkeypatch.setattr(engine, "load_generator", fake_load_generator)
    lines = []
    for name in ("a", "b"):
        assert main(["generate", song, "-o", str(tmp_path / f"{name}.npz"), "--duration", "1"]) == 0
        lines.append(" ".join(capsys.readouterr().out.split()))
    assert "state resets" not in lines[0] and "bad music input" not in lines[0]
    assert "1 state resets" in lines[1] and "1 steps with bad music input" in lines[1], lines[1]


# ---------------------------------------------------------------------------------------------- ONNX cache key
def test_the_onnx_cache_key_changes_with_the_graph_format_the_versions_and_the_opset(graph_parts, monkeypatch):
    import livedance
    from livedance.engine import step_graph
    from livedance.engine.backends import ONNX_OPSET
    from livedance.engine.loader import graph_key

    graph, _ = graph_parts
    key = graph_key(graph)
    assert key == graph_key(graph, opset=ONNX_OPSET)
    keys = {key, graph_key(graph, opset=ONNX_OPSET + 1)}
    for obj, name, value in ((step_graph, "GRAPH_FORMAT", step_graph.GRAPH_FORMAT + 1),
                             (livedance, "__version__", livedance.__version__ + ".post1"),
                             (torch, "__version__", str(torch.__version__) + "+other")):
        with monkeypatch.context() as m:
            m.setattr(obj, name, value)
            keys.add(graph_key(graph))
        assert graph_key(graph) == key  # back to the original
    assert len(keys) == 5


# ---------------------------------------------------------------------------------------------- TensorRT plan
def test_plan_file_names_the_tensorrt_version_and_the_precision(tmp_path):
    from livedance.engine.backends import plan_path

    onnx = tmp_path / "livedance-abc.onnx"
    assert plan_path(onnx, False, "10.3.0").name == "livedance-abc.trt10.3.0.fp32.plan"
    assert plan_path(onnx, True, "10.3.0").name == "livedance-abc.trt10.3.0.fp16.plan"
    assert plan_path(onnx, True, "10.3.0").parent == tmp_path
    assert len({plan_path(onnx, f, v) for f in (False, True) for v in ("8.6.1", "10.3.0")}) == 4
    assert "/" not in plan_path(onnx, False, "1/2 x").name


def _fake_tensorrt(deserializes):
    """A stand-in ``tensorrt`` module: builds b"PLAN"; ``deserializes(data)`` says which bytes load."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    trt.built, trt.flags = [], []

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    class Engine:
        num_io_tensors = 0

        def create_execution_context(self):
            return object()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine() if deserializes(bytes(data)) else None

    class Config:
        def set_flag(self, flag):
            trt.flags.append(flag)

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return object()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            trt.built.append(1)
            return b"PLAN"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse(self, data):
            return True

    trt.Logger, trt.Runtime, trt.Builder, trt.OnnxParser = Logger, Runtime, Builder, OnnxParser
    trt.BuilderFlag = types.SimpleNamespace(FP16="fp16")
    return trt


def test_a_cached_plan_that_does_not_deserialize_is_rebuilt_once_then_refused_by_name(tmp_path, monkeypatch):
    """Not a TensorRT run (no TensorRT here): a stand-in module checks the cache logic around it."""
    from livedance.engine.backends import TensorRTBackend, plan_path

    onnx = tmp_path / "step.onnx"
    onnx.write_bytes(b"onnx")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "Stream", lambda: "stream")
    # a stale cached plan (another build) is rebuilt once, written atomically, and used
    trt = _fake_tensorrt(lambda data: data == b"PLAN")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    plan = plan_path(onnx, True, "10.3.0")
    plan.write_bytes(b"stale")
    TensorRTBackend(onnx, fp16=True)
    assert plan.read_bytes() == b"PLAN" and trt.built == [1] and trt.flags == ["fp16"]
    TensorRTBackend(onnx, fp16=True)  # now the cache is used
    assert trt.built == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["step.onnx", plan.name])  # no temporary left
    # a plan that does not deserialize even when freshly built: a WeightsError naming the plan, never AttributeError
    trt2 = _fake_tensorrt(lambda data: False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt2)
    with pytest.raises(WeightsError, match=f"{plan_path(onnx, False, '10.3.0').name}.*delete"):
        TensorRTBackend(onnx)
    assert trt2.built == [1]


def test_motion_frames_protocol_still_holds_after_a_bad_input(graph_parts):
    g = _gen(graph_parts)
    f = g.step(MusicContext(None, None, NAN, NAN, NAN, 3.0))
    assert isinstance(f, MotionFrames) and len(f) == g.frames_per_step and np.isfinite(f.local_quats).all()
    assert g.n_bad_inputs == 1
