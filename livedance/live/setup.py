"""Building a performance from command-line values: endpoints, sources, sinks, generator, latency.

Kept apart from the typer command (:mod:`livedance.cli.perform_cmd`) so that tests and scripts can
build the same loop without the CLI.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from livedance.atomic import check_output_path
from livedance.errors import ConfigError, LivedanceError

_log = logging.getLogger("livedance.live")
#: Names ending in these are audio files: a missing one is "file does not exist", not an unknown input device.
_AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".m4a", ".aac"})


def parse_endpoint(text: str, option: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (or ``[IPv6]:PORT``, or ``:PORT`` / ``PORT`` for 127.0.0.1) and validate it.

    Args:
        text: the option value.
        option: the option name for messages (``"--vmc"``).

    Returns:
        (host, port).

    Raises:
        ConfigError: one line naming the option and the value: not HOST:PORT, port not 1..65535, or a
            host that is not an address and does not resolve.
    """
    from livedance.bridges.osc_transport import validate_endpoint

    raw = str(text).strip()
    m = re.fullmatch(r"\[([^\]]+)\]:(\w+)", raw) or re.fullmatch(r"([^:]*):(\w+)", raw)
    if m:
        host, port = m.group(1) or "127.0.0.1", m.group(2)
    elif raw.isdigit():
        host, port = "127.0.0.1", raw
    else:
        raise ConfigError(f"{option} {text!r} is invalid; expected HOST:PORT, e.g. 127.0.0.1:39539")
    try:
        return validate_endpoint(host, port, option)
    except ConfigError as err:
        raise ConfigError(f"{option} {text!r}: {err}") from None


def source_kind(source, play: bool) -> str:
    """How the room hears what ``source`` delivers, as :func:`default_audio_delay_ms` takes it.

    Args:
        source: an audio source from :func:`open_source`. play: the file is played aloud (``--play``).

    Returns:
        ``"played"`` for a file played aloud, and for a JACK source tapping a player's output ports (it hears the
        music before the speakers do); ``"silent"`` for a file paced without sound; ``"input"`` otherwise (a device,
        a JACK client's capture ports, a ``*capture*`` port).
    """
    from livedance.audio.file import FileSource
    from livedance.audio.jack import JackSource

    if isinstance(source, FileSource):
        return "played" if play else "silent"
    if isinstance(source, JackSource) and source.ports and not any("capture" in p.lower() for p in source.ports):
        return "played"
    return "input"


def default_audio_delay_ms(source_kind: str) -> tuple[float, str]:
    """How much later than its stream-clock time the audience hears the music, from the calibration user config.

    The stream clock is PortAudio's: a played file's sample is on it when it reaches the DAC, an input's when it
    was captured. What PortAudio does not report (converters, Bluetooth, a PA; ``livedance calibrate``) shifts
    what the room hears: a played file is heard ``output_latency_ms`` after its DAC time; an input device's
    sound was heard ``input_latency_ms`` before its reported capture time (the room and the microphone hear the
    venue's music together). :class:`~livedance.live.performer.PerformConfig` ``audio_delay_s`` takes this.

    Args:
        source_kind: ``"played"`` (a file livedance plays aloud, ``--play``; also a JACK port of a player, e.g.
            ``jack:metro:120_bpm``, which hears the music before the speakers do), ``"input"`` (a device, or a JACK
            capture port) or ``"silent"`` (a file paced without sound: nothing is heard, 0).

    Returns:
        (milliseconds, where it came from): + the config's ``output_latency_ms`` for ``"played"``, - its
        ``input_latency_ms`` for ``"input"``, 0 for ``"silent"`` or without a config file.

    Raises:
        ConfigError: an unknown ``source_kind``, a user config file that exists but is malformed, or a config path
            that cannot be checked (a folder the user may not enter, a name too long).
    """
    if source_kind not in ("played", "input", "silent"):
        raise ConfigError(f"source kind {source_kind!r}: expected played, input or silent")
    if source_kind == "silent":
        return 0.0, "a file paced without sound"
    try:
        from livedance.calibration.user_config import config_exists, config_path, load_user_config
    except ImportError:
        return 0.0, "default (no calibration module)"
    path = config_path()
    if not config_exists(path):
        return 0.0, "default: not calibrated, see `livedance calibrate latency`"
    cfg = load_user_config(path)
    if source_kind == "played":
        return float(cfg.output_latency_ms), f"calibrated output latency, {path}"
    return -float(cfg.input_latency_ms), f"minus the calibrated input latency, {path}"


def default_travel_scale() -> tuple[float, str]:
    """The VMC travel scale from the user config's avatar hip height, if it has one.

    Returns:
        (scale, where it came from): ``avatar_hip_height_m`` / 0.95 m (the SMPL-X body's pelvis height,
        :data:`~livedance.live.rest.PELVIS_HEIGHT_M`), or 1.0 with a text that starts with "default" when no hip
        height is stored (it says how to store one).
    Raises:
        ConfigError: the user config file exists but is malformed (a hip height outside 0.2..5 m included).
    """
    try:
        from livedance.calibration.user_config import config_path, load_user_config
    except ImportError:
        return 1.0, "default"
    from livedance.live.rest import PELVIS_HEIGHT_M

    path = config_path()
    hip = load_user_config(path).avatar_hip_height_m  # (a missing file: the defaults, no hip height)
    if hip is None:
        return 1.0, "default; `livedance calibrate set --hip-height M` stores your avatar's"
    return hip / PELVIS_HEIGHT_M, f"avatar hip height {hip:g} m in {path}"


def parse_input_channels(text: str | None) -> tuple[int, ...] | None:
    """``--input-channels``: ``"3,4"`` -> ``(3, 4)``; ``"1"`` -> ``(1,)``; None -> None.

    Raises:
        ConfigError: anything but comma-separated whole numbers >= 1, naming the option.
    """
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or not all(re.fullmatch(r"[1-9]\d*", p) for p in parts):
        raise ConfigError(f"--input-channels {text!r}: expected channel numbers from 1, comma-separated, e.g. 3,4")
    return tuple(int(p) for p in parts)


def open_source(spec: str | None, play: bool = False, block_size: int = 512,
                input_channels: tuple[int, ...] | None = None):
    """The audio source that ``livedance perform [SOURCE]`` names.

    Args:
        spec: an audio file path; ``demo`` (the bundled song excerpt); ``jack:<client>:<port>`` (one JACK port, connected by
            :class:`~livedance.audio.jack.JackSource`); ``jack:<client>`` (a JACK client as a device);
            a device index or name; or None (the default input device).
        play: play a file aloud (its blocks are then timed by the output device).
        block_size: samples per block.
        input_channels: an input device's channels to listen to, from 1 (:class:`~livedance.audio.live.LiveSource`);
            None: the first two, averaged.

    Raises:
        AudioError / DeviceNotFoundError: unreadable file or no such device, or no such input channel.
        ConfigError: ``--play`` without a file; ``input_channels`` for a file or a single JACK port.
    """
    if spec is not None and spec.strip().lower() == "demo" and not Path(spec).exists():
        from livedance.assets import demo_song

        spec = str(demo_song())
    if spec is not None and Path(spec).expanduser().is_dir():
        from livedance.errors import AudioError

        raise AudioError(f"audio source {spec} is a folder; expected an audio file, demo, a device or jack:<client>")
    if spec is not None and Path(spec).expanduser().is_file():
        from livedance.audio.file import FileSource

        if input_channels is not None:
            raise ConfigError(f"--input-channels picks channels of an input device; SOURCE {spec} is a file")
        return FileSource(Path(spec).expanduser(), realtime=True, play=play, block_size=block_size)
    if play:
        raise ConfigError(f"--play needs an audio file as SOURCE; {spec!r} is not a file")
    if spec is not None and spec.lower().startswith("jack:"):
        rest = spec[5:]
        if ":" in rest:
            if input_channels is not None:
                raise ConfigError(f"--input-channels picks channels of an input device; SOURCE {spec} is one JACK "
                                  "port (name another port, or jack:<client> with --input-channels)")
            from livedance.audio.jack import JackSource

            return JackSource(port=rest, block_size=block_size)
        from livedance.audio.live import LiveSource

        return LiveSource(device=spec, block_size=block_size, input_channels=input_channels)
    from livedance.audio.live import LiveSource

    if spec is not None and Path(spec).suffix.lower() in _AUDIO_SUFFIXES:  # (spaces and all: "My Song.wav")
        from livedance.errors import AudioError

        raise AudioError(f"audio file {spec} does not exist; expected a readable file, a device or jack:<port>")
    return LiveSource(device=spec, block_size=block_size, input_channels=input_channels)


def load_generator(model: str | None, procedural: bool, fps: float = 60.0, backend: str = "onnx", device: str = "cpu",
                   cuda_graph: bool = False, pose_guard: bool = False):
    """The dance generator: the learned model's engine, or the procedural dancer.

    Args:
        model: path to model weights, or ``"livedance"`` / ``"baseline"`` for the shipped ones (None: the shipped
            livedance model, if any).
        procedural: use the procedural dancer and do not look for a model.
        fps: frame rate of the procedural dancer.
        backend, device, cuda_graph: the learned model's engine (:func:`livedance.engine.load_generator`):
            ``'onnx'`` on the CPU by default; ``'torch'`` with ``device='cuda'`` (and ``cuda_graph``) or
            ``'tensorrt'`` on a GPU host (docs/gpu.md).
        pose_guard: turn on the learned engine's pose guard (:mod:`livedance.engine.pose_guard`; off by default).

    Returns:
        (generator, description). When the shipped model (no ``model`` given) cannot be loaded with the default
        engine the procedural dancer is returned and the description says why (the show goes on; a warning is
        logged). A ``model`` given explicitly (a weights stem, or the name ``livedance`` / ``baseline``) that
        cannot load is an error at start instead.

    Raises:
        ConfigError: an engine choice together with ``procedural``, or an unknown backend.
        LivedanceError: an engine the user chose explicitly (not the default) that cannot be opened, e.g.
            no CUDA device or no tensorrt (:class:`~livedance.errors.DeviceNotFoundError`): said at start,
            rather than dancing with another engine than the one asked for.
    """
    from livedance.live.procedural import ProceduralConfig, ProceduralGenerator

    chosen = backend != "onnx" or device != "cpu" or bool(cuda_graph)
    if chosen and procedural:
        raise ConfigError("--backend / --device / --cuda-graph choose the learned model's engine; "
                          "they do not apply with --procedural")
    if model is not None and procedural:
        raise ConfigError(f"--model {model} and --procedural: choose one (the procedural dancer has no weights)")
    if pose_guard and procedural:
        raise ConfigError("--pose-guard guards the learned model's sampling; it does not apply with --procedural")
    if pose_guard:  # asked for: a missing or malformed prior is an error at start, not a silent procedural show
        from livedance.engine.pose_guard import PosePrior, default_prior_path

        PosePrior.load(default_prior_path())
    if chosen:
        from livedance.engine.backends import check_backend

        check_backend(backend)
        if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
            raise ConfigError(f"--device {device!r}: expected cpu or cuda[:N], the torch device of --backend torch (the "
                              "audio input is the SOURCE argument: `livedance perform 2`; `livedance devices` lists them)")
        if (device != "cpu" or cuda_graph) and backend != "torch":
            given = " / ".join(f for f, on in ((f"--device {device}", device != "cpu"), ("--cuda-graph", cuda_graph))
                               if on)
            raise ConfigError(f"{given} apply to --backend torch, not {backend!r}")
    proc = ProceduralGenerator(ProceduralConfig(fps=fps))
    if procedural:
        return proc, "procedural dancer"
    loader = None
    try:  # the learned engine's loader (docs/model.md)
        from livedance.engine import load_generator as loader  # type: ignore[attr-defined]
    except ImportError:
        loader = None
    if loader is None:
        why = "no learned engine is installed"
        if chosen:
            raise ConfigError(f"--backend {backend}: {why} (the livedance.engine package does not import)")
        if model is not None:
            _log.warning("--model %s: %s; dancing with the procedural dancer", model, why)
        return proc, f"procedural dancer ({why})"
    engine = {"backend": backend, "device": device, "cuda_graph": bool(cuda_graph)} if chosen else {}
    if pose_guard:
        from livedance.engine.pose_guard import PoseGuardConfig

        engine["pose_guard"] = PoseGuardConfig(enabled=True)
    if model in ("livedance", "baseline"):  # a model name, as `generate --model` / `eval --models` take it
        engine["kind"], model = model, None
    elif model is not None:
        from livedance.model.checkpoint import weight_paths

        if not weight_paths(model)[1].exists():
            raise ConfigError(f"--model {model!r}: expected livedance, baseline or a weights stem (STEM.json + "
                              f"STEM.safetensors); {weight_paths(model)[1]} does not exist")
    try:
        gen = loader(model, **engine) if model is not None else loader(**engine)
    except (LivedanceError, OSError, ValueError, RuntimeError, ImportError) as err:
        asked = chosen or model is not None or "kind" in engine
        if asked and isinstance(err, LivedanceError):
            raise
        if asked:  # torch's own messages (an unknown --device, ...): one line at start
            named = model if model is not None else engine.get("kind")
            raise ConfigError(f"{'--model ' + str(named) if named is not None else '--backend ' + backend}: "
                              f"{type(err).__name__}: {err}") from None
        _log.warning("model weights did not load (%s); dancing with the procedural dancer", err)
        return proc, f"procedural dancer (model did not load: {err})"
    where = f", {backend}" + (f" on {device}" if backend == "torch" else "") + (" (CUDA graph)" if cuda_graph else "")
    named = model if model is not None else engine.get("kind", "livedance")
    shipped = " (shipped)" if model is None else ""
    return gen, f"model {named}{shipped}" + (where if chosen else "")


def build_sinks(
    vmc: str | None,
    osc: str | None,
    record: list[str],
    preview: bool,
    profile,
    fps: float,
    rest_offsets: np.ndarray,
    overwrite: bool = False,
    preview_port: int = 8765,
    travel_scale: float = 1.0,
    osc_options: dict | None = None,
) -> list:
    """The sinks for the given options; validates every endpoint and file before anything opens.

    ``profile`` is the VMC avatar profile: a shipped name, a JSON path or an
    :class:`~livedance.calibration.profiles.AvatarProfile`. ``osc_options`` are
    :class:`~livedance.bridges.osc_raw.RawOSCSender` keywords for the raw OSC sink (``layout``, ``prefix``,
    ``joints``, ``send_rotations``, ``send_positions``).

    Raises:
        ConfigError: a bad endpoint, profile, recording path, or an unavailable preview.
    """
    from livedance.live.sinks import RawOSCSink, RecorderThread, VMCSink, make_recorder

    endpoints = []
    if vmc is not None:
        endpoints.append(("vmc", parse_endpoint(vmc, "--vmc")))
    if osc is not None:
        endpoints.append(("osc", parse_endpoint(osc, "--osc")))
    seen: list[Path] = []  # the checked paths (~ expanded, absolute), in order: the recorders write these
    for path in record:
        p = Path(path).expanduser().resolve()
        if p in seen:
            raise ConfigError(f"--record {path} is given twice")
        seen.append(p)
        if p.suffix.lower() not in (".bvh", ".npz"):
            raise ConfigError(f"--record {path}: unknown recording format {p.suffix or '(none)'!r}; expected .bvh or .npz")
        check_output_path(p, f"--record {path}", overwrite)
    sinks: list = []
    recs: list = []
    try:
        for kind, (host, port) in endpoints:
            sinks.append(VMCSink(host, port, profile, travel_scale) if kind == "vmc"
                         else RawOSCSink(host, port, **(osc_options or {})))
        for p in seen:
            recs.append(make_recorder(p, rest_offsets, fps, overwrite=overwrite))
        if recs:
            # 600 frames (10 s of disk stall at 60 fps) or 30 s' worth at a higher --fps (about 1 KB a frame)
            sinks.append(RecorderThread(recs, max_queue=max(600, int(30 * fps))))
            recs = []
        if preview:
            from livedance.live.sinks import PreviewSink

            sinks.append(PreviewSink(port=preview_port))
    except BaseException:
        for s in sinks + recs:
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass
        raise
    return sinks
