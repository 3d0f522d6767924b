"""Sampling seeds of an evaluation run: each clip its own (livedance.engine.offline.clip_seed)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from engine_fixtures import tiny_step_graph
from livedance.engine.offline import clip_seed


def test_clip_seed_is_a_deterministic_function_of_the_run_seed_and_the_clip_name():
    names = [f"DANCE_W_{i}" for i in range(40)] + ["DANCE_C_6", "gBR_sBM_cAll_d04_mBR0_ch01"]
    seeds = [clip_seed(0, n) for n in names]
    assert seeds == [clip_seed(0, n) for n in names]  # reproducible
    assert len(set(seeds)) == len(seeds)  # no two clips share their noise
    assert all(0 <= s < 2 ** 63 for s in seeds)
    assert not set(seeds) & {clip_seed(1, n) for n in names}  # another run seed, other draws


@pytest.mark.parametrize("shared", [False, True])
def test_generate_for_clips_samples_each_clip_with_its_own_seed_unless_shared(tmp_path, monkeypatch, shared):
    import soundfile as sf

    import livedance.engine as engine
    import livedance.engine.offline as offline
    from livedance.engine import build_generator

    graph, rep = tiny_step_graph()
    gen = build_generator(graph, rep, "torch", seed=0)
    monkeypatch.setattr(engine, "load_generator", lambda weights=None, **kw: gen)
    seen, real_generate = [], offline.generate_song

    def spy(g, *a, **kw):
        seen.append(a[3])  # generate_song(generator, audio_path, start_s, duration_s, seed)
        return real_generate(g, *a, **kw)

    monkeypatch.setattr(offline, "generate_song", spy)
    song = tmp_path / "song.wav"
    sf.write(song, (0.1 * np.random.default_rng(0).normal(size=22050)).astype(np.float32), 22050)
    clips = [SimpleNamespace(name=n, audio_path=song, audio_offset_s=0.0, num_frames=8, fps=25.0)
             for n in ("DANCE_W_3", "DANCE_C_1")]
    files = offline.generate_for_clips("livedance", clips, tmp_path / "out", seed=7, backend="torch",
                                       shared_seed=shared)
    assert seen == ([7, 7] if shared else [clip_seed(7, "DANCE_W_3"), clip_seed(7, "DANCE_C_1")])
    a, b = (f.positions for f in files)
    # the same song: with a shared seed the two dances are the same draw, with their own seeds they differ
    assert np.array_equal(a, b) == shared
