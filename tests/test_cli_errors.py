"""Bad input at the command line: one line naming the input and what was expected, exit status 2, never a
traceback, and before any long work (cases from a review of every command with bad input, session 16)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livedance.cli import main

SONG = str(Path(__file__).resolve().parents[1] / "livedance" / "assets" / "armygeddon-excerpt.ogg")


@pytest.fixture
def files(tmp_path):
    t = np.arange(3 * 4000) / 4000
    sf.write(tmp_path / "sr4k.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 4000)
    (tmp_path / "take.bvh").write_text("an earlier take")
    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "out.npz").mkdir()
    (tmp_path / "cm").mkdir()
    rng = np.random.default_rng(0)
    pos = rng.normal(scale=10.0, size=(10, 24, 3)) + [0.0, 90.0, 0.0]
    pos[:, 15] = pos[:, 0] + [0.0, 60.0, 0.0]  # a dance written in centimetres
    np.savez(tmp_path / "cm" / "a.npz", positions=pos.astype(np.float32), fps=np.float64(25),
             audio=np.str_("s.wav"), audio_offset_s=np.float64(0))
    return tmp_path


CASES = [
    (["perform", "demo", "--no-vmc", "--no-controls", "--model", "{tmp}/nosuch"], "nosuch.json"),
    (["perform", "demo", "--no-vmc", "--no-controls", "--procedural", "--model", "x"], "choose one"),
    (["perform", "demo", "--no-vmc", "--no-controls", "--procedural", "--record", "{tmp}/take.bvh"],
     "already exists; pass --overwrite"),
    (["perform", "{tmp}/folder.wav", "--no-vmc", "--no-controls", "--procedural"], "is a folder"),
    (["perform", "{tmp}/My Song.wav", "--no-vmc", "--no-controls", "--procedural"], "My Song.wav does not exist"),
    (["perform", "demo", "--no-vmc", "--no-controls", "--stage-radius", "inf"], "--stage-radius must be a finite"),
    (["perform", "demo", "--no-vmc", "--no-controls", "--intro-s", "inf"], "--intro-s must be a finite"),
    (["perform", "demo", "--no-controls", "--procedural", "--travel-scale", "0"], "--travel-scale"),
    (["beats", "{tmp}/folder.wav"], "is a folder; expected an audio file"),
    (["beats", "{tmp}/sr4k.wav"], "8000"),
    (["generate", SONG, "-o", "{tmp}/g.npz", "--duration", "nan"], "--duration must be a finite number"),
    (["generate", SONG, "-o", "{tmp}/g.npz", "--duration", "inf"], "--duration must be a finite number"),
    (["generate", SONG, "-o", "{tmp}/out.npz", "--duration", "1"], "--output"),
    (["generate", SONG, "-o", "{tmp}/g.npz", "--bvh", "{tmp}/g.xyz"], "expected a .bvh file"),
    (["generate", SONG, "-o", "{tmp}/g.npz", "--seed", "-5"], "--seed"),
    (["generate", SONG, "-o", "{tmp}/g.npz", "--start", "-1"], "--start"),
    (["export", "-o", "{tmp}/e.xyz"], "expected a .onnx file"),
    (["eval", "--models", "bogus"], "unknown model(s)"),
    (["eval", "--models", "baseline", "--pace", "0.5"], "--pace apply to the 'livedance' row"),
    (["eval", "--models", "livedance", "--pace", "0.5", "--no-retrieval"], "has no pace input"),  # the shipped weights
    (["eval", "--shared-seed"], "--shared-seed applies to the --models rows"),
    (["eval", "--pose-guard"], "--pose-guard applies to the --models rows"),
    (["calibrate", "latency", "--tap", "--clicks", "5", "--no-save"], "--clicks applies to --loopback, not to --tap"),
    (["calibrate", "latency", "--loopback", "--bpm", "90", "--beats", "8", "--no-save"],
     "--bpm, --beats apply to --tap, not to --loopback"),
    (["eval", "--models", "livedance", "--style-strength", "2"], "--style-strength 2 applies to a --style"),
    (["generate", SONG, "-o", "{tmp}/g.npz", "--pace", "0.5", "--duration", "1"], "no pace input"),
    (["perform", "demo", "--no-vmc", "--no-controls", "--pace", "0.5", "--duration", "1"], "--pace 0.5"),
    (["calibrate", "set", "--output-ms", "-2500", "--config", "{tmp}/c.json"], "--output-ms"),
    (["calibrate", "latency", "--loopback", "--clicks", "0"], "--clicks"),
    (["train", "generator", "--threads", "0"], "--threads"),
    (["train", "tokenizer", "--steps", "-5"], "--steps"),
    (["train", "baseline", "--minutes", "-1"], "--minutes"),
    (["perform", "demo", "--no-vmc", "--no-controls", "--model", "nosuch"], "expected livedance, baseline or a weights stem"),
    (["perform", "demo", "--no-vmc", "--no-controls", "--device", "2"], "the audio input is the SOURCE argument"),
    (["perform", "demo", "--no-vmc", "--no-controls", "--backend", "torch", "--device", "tpu"], "expected cpu or cuda"),
    (["perform", "demo", "--no-vmc", "--no-controls", "--preview-port", "9000"], "add --preview"),
    (["perform", "demo", "--no-vmc", "--vmc", "1.2.3.4:5", "--no-controls"], "contradict each other"),
    (["perform", "demo", "--no-vmc", "--no-controls", "--control-port", "5000"], "contradict each other"),
    (["calibrate", "set", "--input-ms", "2500", "--config", "{tmp}/c.json"], "--input-ms"),
    (["calibrate", "latency", "--tap", "--visual", "--sample-rate", "1"], "--sample-rate"),
    (["eval", "--split", "nosuch"], "--split 'nosuch': expected train, val, test or all"),
    (["eval", "--reference-split", "nosuch"], "--reference-split 'nosuch'"),
    (["eval", "--motions", "{tmp}/take.bvh", "--no-retrieval"], "is a file; expected a folder"),
    (["eval", "--motions", "{tmp}/cm", "--no-retrieval"], "centimetres? divide by 100"),
    (["data", "split-tang", "--val-frac", "2"], "--val-frac"),
    # outputs and --resume are checked before any data is read (the data root here does not exist)
    (["data", "split-tang", "--out", "/proc/x.json"], "--out /proc/x.json: cannot write in folder /proc"),
    (["train", "style-prior", "--out", "/proc/x"], "--out /proc/x: cannot write in folder /proc"),
    (["train", "pose-prior", "--out", "/proc/x.json"], "--out /proc/x.json: cannot write in folder /proc"),
    (["train", "pose-prior", "--max-mean", "-1"], "--max-mean"),
    (["train", "tokenizer", "--out", "{tmp}/take.bvh"], "is a file; expected a run folder"),
    (["train", "generator", "--resume", "--out", "{tmp}/nores"], "--resume: no checkpoint"),
    (["eval", "--models", "livedance", "--models-out", "{tmp}/take.bvh", "--no-retrieval"],
     "is a file; expected a folder"),
    (["eval", "--models-out", "{tmp}/gen", "--no-retrieval"], "no --models to generate"),
    (["data", "ik-report", "--out-png", "{tmp}/ik.txt"], "expected an image file name"),
    (["data", "ik-report", "--out-md", "/proc/x.md"], "--out-md /proc/x.md: cannot write"),
    (["generate", SONG, "-o", "{tmp}/g.npz", "--backend", "torch", "--device", "bogus"], "expected cpu or cuda"),
    (["generate", SONG, "-o", "{tmp}/g.npz", "--model", "baseline", "--style", "tango"],
     "the styles are a prior on the livedance model's codes"),
    (["calibrate", "latency", "--tap", "--visual", "--config", "/proc/x.json"], "--config /proc/x.json: cannot write"),
]


@pytest.mark.parametrize("argv,needle", CASES, ids=[" ".join(a[:2]) + f" [{i}]" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_clear_line_with_status_2(files, capsys, monkeypatch, argv, needle):
    monkeypatch.setenv("LIVEDANCE_DATA", str(files / "no-data"))  # nothing may get as far as loading data
    code = main([a.replace("{tmp}", str(files)) for a in argv])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    assert needle in err and "Traceback" not in err, err
    assert (files / "take.bvh").read_text() == "an earlier take"
    assert not (files / "g.npz").exists()


def test_a_negative_calibrated_output_latency_is_a_negative_audio_delay(tmp_path, monkeypatch):
    from livedance.errors import ConfigError
    from livedance.live.performer import PerformConfig
    from livedance.live.setup import default_audio_delay_ms

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"version": 1, "output_latency_ms": -5.0}))
    monkeypatch.setenv("LIVEDANCE_CONFIG", str(cfg))
    ms, why = default_audio_delay_ms("played")  # someone who taps ahead of the clicks: shown 5 ms later, not clamped
    assert ms == -5.0 and str(cfg) in why
    PerformConfig(audio_delay_s=ms / 1000).validate()
    with pytest.raises(ConfigError, match="--audio-delay-ms"):
        PerformConfig(audio_delay_s=2.5).validate()


def test_travel_scale_reaches_the_vmc_sender():
    from livedance.live.rest import default_rest_offsets
    from livedance.live.setup import build_sinks

    sinks = build_sinks("127.0.0.1:39999", None, [], False, "vrm0", 60.0, default_rest_offsets(), travel_scale=0.85)
    try:
        assert [s.sender.travel_scale for s in sinks] == [0.85]
    finally:
        for s in sinks:
            s.close()


@pytest.mark.parametrize("extra, expected", [
    ([], {}),
    (["--music-dropout", "0"], {"music_dropout": 0.0}),  # an explicit 0 switches the --init weights' value off
    (["--dropout", "0.1", "--music-dropout", "0.3"], {"dropout": 0.1, "music_dropout": 0.3}),
])
def test_train_generator_passes_dropout_overrides_given_on_the_command_line(monkeypatch, extra, expected):
    import livedance.model.train_generator as tg

    seen = []

    def fake_run_training(cfg):
        seen.append(cfg)
        return {"steps": 0, "elapsed_s": 0.0, "stopped_by": "test"}

    monkeypatch.setattr(tg, "run_training", fake_run_training)
    assert main(["train", "generator", "--init", "livedance/weights/generator", "--no-progress", *extra]) == 0
    assert seen[0].overrides == expected and str(seen[0].init) == "livedance/weights/generator"
