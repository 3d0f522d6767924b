"""``livedance perform`` as a user runs it: a file ends on its own, recordings, the calibrated latency."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from livedance.cli import main
from livedance.live.setup import default_audio_delay_ms


@pytest.fixture()
def short_wav(tmp_path):
    sr = 22050
    t = np.arange(int(1.5 * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    p = tmp_path / "short.wav"
    sf.write(p, x.astype(np.float32), sr)
    return p


def test_a_file_source_ends_the_performance_at_its_end(short_wav, tmp_path, capsys):
    out = tmp_path / "take.npz"
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--procedural", "--record", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    z = np.load(out)
    n = z["local_quats"].shape[0]
    assert 60 <= n <= 2.5 * 60  # about the file's 1.5 s at 60 fps
    assert np.isclose(1 / np.median(np.diff(z["t_show_s"])), 60.0, rtol=0.02)
    assert "misses" in err and f"recorded {out}" in " ".join(err.split())
    # the same recording again is refused without --overwrite
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--quiet", "--record", str(out)])
    assert code == 2 and "already exists" in capsys.readouterr().err


def test_bad_options_are_config_errors(short_wav, capsys):
    for args, needle in [
        (["--fps", "0"], "--fps"),
        (["--latency-ms", "-5"], "--latency-ms"),
        (["--duration", "0"], "--duration"),
        (["--profile", "no-such-avatar"], "no-such-avatar"),
        (["--record", "take.mp4"], ".bvh or .npz"),
        (["--intro-s", "-1"], "--intro-s"),
        (["--intro-s", "nan"], "--intro-s"),
        (["--stage-radius", "-1"], "--stage-radius"),
        (["--accent", "0.9"], "--accent"),
        (["--input-channels", "3,x"], "--input-channels '3,x'"),
        (["--input-channels", "3"], "picks channels of an input device"),  # SOURCE is a file
        (["--absent-bones", "UpperChest,Tail"], "['Tail']: not Unity HumanBodyBones names"),
        (["--absent-bones", "Hips"], "Hips cannot be absent"),
        (["--absent-bones", " , "], "--absent-bones"),
        (["--osc-layout", "scalar"], "apply to raw OSC: add --osc HOST:PORT"),
        (["--osc", "127.0.0.1:9", "--osc-layout", "matrix"], "layout 'matrix' is invalid"),
        (["--osc", "127.0.0.1:9", "--osc-joints", "head,tail"], "['tail'] are not SMPL-X joint names"),
        (["--osc", "127.0.0.1:9", "--osc-prefix", "vj"], "prefix 'vj' is invalid"),
    ]:
        code = main(["perform", str(short_wav), "--quiet", "--no-controls", *args])
        err = capsys.readouterr().err
        assert code == 2 and needle in " ".join(err.split()) and "Traceback" not in err, (args, err)


def test_the_audio_delay_defaults_to_the_calibrated_latency_of_the_source_kind(tmp_path, monkeypatch):
    uc = pytest.importorskip("livedance.calibration.user_config", reason="the calibration module is not installed")
    cfg_file = tmp_path / "config.json"
    monkeypatch.setenv("LIVEDANCE_CONFIG", str(cfg_file))
    ms, why = default_audio_delay_ms("played")
    assert ms == 0.0 and "not calibrated" in why
    uc.save_user_config(uc.UserConfig(output_latency_ms=42.5, input_latency_ms=7.0), cfg_file)
    ms, why = default_audio_delay_ms("played")  # a played file is heard after its DAC time
    assert ms == 42.5 and str(cfg_file) in why
    ms, why = default_audio_delay_ms("input")  # the room heard the input before its reported capture time
    assert ms == -7.0 and "input latency" in why
    assert default_audio_delay_ms("silent")[0] == 0.0
    cfg_file.write_text("{not json")
    from livedance.errors import ConfigError

    with pytest.raises(ConfigError):
        default_audio_delay_ms("played")
    with pytest.raises(ConfigError, match="played, input or silent"):
        default_audio_delay_ms("loud")


def test_travel_scale_comes_from_the_stored_hip_height_unless_given(short_wav, tmp_path, monkeypatch, capsys):
    uc = pytest.importorskip("livedance.calibration.user_config", reason="the calibration module is not installed")
    import livedance.live.setup as setup

    cfg_file = tmp_path / "config.json"
    monkeypatch.setenv("LIVEDANCE_CONFIG", str(cfg_file))
    assert setup.default_travel_scale()[0] == 1.0
    uc.save_user_config(uc.UserConfig(avatar_hip_height_m=0.76), cfg_file)
    scale, why = setup.default_travel_scale()
    assert scale == pytest.approx(0.76 / 0.95) and str(cfg_file) in why
    seen = []
    real = setup.build_sinks

    def spy(*args, **kwargs):
        seen.append(kwargs.get("travel_scale"))
        return real(*args, **kwargs)

    monkeypatch.setattr(setup, "build_sinks", spy)
    base = ["perform", str(short_wav), "--vmc", "127.0.0.1:39599", "--no-controls", "--duration", "0.2"]
    assert main(base) == 0
    assert "VMC travel x0.8 (avatar hip height 0.76 m" in " ".join(capsys.readouterr().err.split())
    assert main(base + ["--travel-scale", "1.3"]) == 0
    assert seen == [pytest.approx(0.8), 1.3]


def test_seed_reaches_the_dancer(short_wav, monkeypatch, capsys):
    """``--seed N`` resets the dancer with N before the show (the learned model's sampling seed); a negative seed
    is a usage error."""
    import livedance.live.setup as setup
    from livedance.live.procedural import ProceduralGenerator

    seeds = []

    class Spy(ProceduralGenerator):
        def reset(self, seed: int = 0) -> None:
            seeds.append(seed)
            super().reset(seed)

    monkeypatch.setattr(setup, "load_generator", lambda model, procedural, fps=60.0, **engine: (Spy(), "spy dancer"))
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--quiet", "--seed", "7", "--duration", "0.3"])
    assert code == 0, capsys.readouterr().err
    assert seeds and seeds[-1] == 7  # (the constructor resets with 0 first; nothing resets it after --seed)
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--quiet", "--seed", "-1"])
    assert code == 2 and "--seed" in capsys.readouterr().err


def test_engine_options_reach_the_loader_and_bad_ones_fail_at_start(short_wav, capsys):
    """``--backend torch`` dances on the CPU; an engine that cannot open here (no CUDA, no tensorrt) or that
    contradicts another option is one clear line at start with status 2, never a silent fallback."""
    import torch

    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--quiet", "--backend", "torch",
                 "--duration", "0.5"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0 and "torch on cpu" in err, err
    cases = [
        (["--backend", "tpu"], "expected one of onnx, torch, tensorrt"),
        (["--procedural", "--backend", "torch"], "do not apply with --procedural"),
        (["--device", "cuda"], "apply to --backend torch"),
        (["--backend", "torch", "--cuda-graph"], "needs a CUDA device"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--backend", "torch", "--device", "cuda"], "sees no CUDA device"))
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        cases.append((["--backend", "tensorrt"], "cannot import tensorrt"))
    for args, needle in cases:
        code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--quiet", *args])
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2 and needle in err and "Traceback" not in err, (args, err)


def test_style_is_set_at_start_and_a_style_the_dancer_lacks_fails_at_start(short_wav, tmp_path, capsys):
    """``--style`` reaches the dancer before the show (printed at the end); an unknown one is a usage error naming
    the styles the dancer has, before anything opens."""
    out = tmp_path / "take.npz"
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--procedural", "--style", "bounce",
                 "--record", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0 and "style at the end: bounce" in err, err
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--quiet", "--procedural", "--style", "tango",
                 "--record", str(tmp_path / "never.npz")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "unknown procedural style 'tango'" in err and "groove, bounce, wave" in err, err
    assert not (tmp_path / "never.npz").exists()


def test_style_strength_reaches_a_dancer_with_styles_and_fails_at_start_without(short_wav, monkeypatch, capsys):
    """``--style-strength`` goes with ``--style`` to the learned dancer's ``set_style`` (and shows in the summary);
    a dancer without a strength, or a value outside 0..2, is a usage error at start."""
    import livedance.live.setup as setup
    from livedance.live.procedural import ProceduralGenerator

    calls = []

    class StyledSpy(ProceduralGenerator):  # the learned dancer's style interface, on the cheap procedural dancer
        styles = ("tango", "waltz")
        style = None
        style_strength = 1.0

        def set_style(self, style, strength=None):
            calls.append((style, strength))
            self.style, self.style_strength = style, (self.style_strength if strength is None else strength)

    monkeypatch.setattr(setup, "load_generator", lambda model, procedural, fps=60.0, **engine: (StyledSpy(), "spy"))
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--style", "tango", "--style-strength", "1.5",
                 "--duration", "0.3"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0 and calls == [("tango", 1.5)] and "style at the end: tango x1.5" in err, err
    monkeypatch.undo()
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--quiet", "--procedural",
                 "--style-strength", "0.5"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "has no style strength" in err, err
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--quiet", "--procedural",
                 "--style-strength", "3"])
    assert code == 2 and "--style-strength" in capsys.readouterr().err


def test_overwrite_keeps_the_previous_take_when_the_show_never_starts(short_wav, tmp_path, capsys):
    """--overwrite replaces a take only with a new one: a show that fails before its first frame (here a
    typo in the audio path) leaves the previous BVH and npz as they were."""
    npz, bvh = tmp_path / "take.npz", tmp_path / "take.bvh"
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--quiet", "--procedural",
                 "--record", str(npz), "--record", str(bvh)])
    assert code == 0, capsys.readouterr().err
    before = npz.read_bytes(), bvh.read_bytes()
    code = main(["perform", str(tmp_path / "typo.wav"), "--no-vmc", "--no-controls", "--quiet", "--procedural",
                 "--record", str(npz), "--record", str(bvh), "--overwrite"])
    assert code == 2 and "typo.wav" in capsys.readouterr().err
    assert (npz.read_bytes(), bvh.read_bytes()) == before
    assert not list(tmp_path.glob("*.parts"))  # no chunk folder left behind either
    code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--quiet", "--procedural", "--duration", "0.5",
                 "--record", str(npz), "--record", str(bvh), "--overwrite"])
    assert code == 0 and npz.read_bytes() != before[0] and bvh.read_bytes() != before[1]  # a new take replaces it


def test_the_source_kind_chooses_the_calibrated_delay(tmp_path):
    from livedance.audio.file import FileSource
    from livedance.audio.jack import JackSource
    from livedance.live.setup import source_kind

    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(8000, np.float32), 8000)
    assert source_kind(FileSource(wav, realtime=True), play=True) == "played"
    assert source_kind(FileSource(wav, realtime=True), play=False) == "silent"
    tap, mic = JackSource.__new__(JackSource), JackSource.__new__(JackSource)  # (no JACK server needed)
    tap._ports, mic._ports = ["metro:120_bpm"], ["system:capture_1"]
    assert source_kind(tap, play=False) == "played" and source_kind(mic, play=False) == "input"
    assert source_kind(object(), play=True) == "input"


def test_raw_osc_options_shape_the_stream_a_vj_tool_receives(short_wav, capsys):
    """perform --osc with --osc-layout scalar --osc-prefix --osc-joints --osc-no-rotations: one float per address,
    under the prefix, only the joints asked for, positions only (a TouchDesigner OSC In CHOP's setup)."""
    import socket
    import threading

    from pythonosc.osc_bundle import OscBundle
    from pythonosc.osc_message import OscMessage

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.2)
    port = rx.getsockname()[1]
    addresses: set = set()
    done = threading.Event()

    def collect(content):
        if OscBundle.dgram_is_bundle(content):
            for item in OscBundle(content):
                collect(item.dgram if hasattr(item, "dgram") else item)
        else:
            m = OscMessage(content)
            addresses.add((m.address, len(m.params)))

    def listen():
        while not done.is_set():
            try:
                collect(rx.recv(65536))
            except socket.timeout:
                continue

    th = threading.Thread(target=listen, daemon=True)
    th.start()
    try:
        code = main(["perform", str(short_wav), "--no-vmc", "--no-controls", "--procedural", "--quiet",
                     "--osc", f"127.0.0.1:{port}", "--osc-layout", "scalar", "--osc-prefix", "/vj/dancer1",
                     "--osc-joints", "head,left_wrist", "--osc-no-rotations"])
    finally:
        done.set()
        th.join(2)
        rx.close()
    assert code == 0, capsys.readouterr().err
    joint_addrs = {a for a, _ in addresses if a.endswith(("/x", "/y", "/z", "/w"))}
    assert joint_addrs == {f"/vj/dancer1/{j}/pos/{c}" for j in ("head", "left_wrist") for c in "xyz"}
    assert all(n == 1 for a, n in addresses if a in joint_addrs)
    assert ("/vj/dancer1/beat", 1) in addresses and all(a.startswith("/vj/dancer1/") for a, _ in addresses)
