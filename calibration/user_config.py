"""The user's calibration file: measured latencies that ``livedance perform`` applies.

Location: ``$LIVEDANCE_CONFIG`` when set (a file path), else ``$XDG_CONFIG_HOME/livedance/config.json``
(``~/.config/livedance/config.json`` when XDG_CONFIG_HOME is unset), as the XDG Base Directory
specification says. The file is JSON, one object:

.. code-block:: json

    {"version": 1, "output_latency_ms": 42.0, "input_latency_ms": 3.5, "tap": {...}, "loopback": {...}}

What the numbers mean. PortAudio reports the latency of its own buffers (``outputBufferDacTime`` and
``inputBufferAdcTime``), and livedance's audio sources already stamp samples with those times. The
user config holds what PortAudio does *not* see, which only a measurement finds:

``output_latency_ms``
    from the time PortAudio reports a sample reaches the DAC until the audience hears it (driver and
    converter buffers, Bluetooth, a PA system; for tap-along also the keyboard's delay). ``perform --play``
    takes it as its default ``--audio-delay-ms``: the music of a played file is heard that much after its DAC
    time, so the dance is sampled that much later and moves land on the beat as heard. (The delay from a frame
    leaving livedance to the avatar showing it is the visual latency, ``perform --latency-ms``, not stored here.)
``input_latency_ms``
    from the time a sound reaches the input until the time PortAudio reports for its samples.
``avatar_hip_height_m``
    the avatar's hip (pelvis) height standing, metres, or null. ``perform`` scales the dancer's travel sent over
    VMC by it over the SMPL-X body's 0.95 m (``--travel-scale``), so a smaller avatar's feet do not slide.

Unknown top-level keys are kept (and written back), so a file that another tool (or a newer livedance of the same
``version``) added keys to still loads; unknown keys inside ``tap``, ``visual_tap`` or ``loopback`` are read past and
not written back (a record is one measurement's fields); a rewrite keeps the file's permissions; a file of a newer ``version`` is refused with a message naming it. A key
with the wrong type, a non-finite number, or a file that is not JSON raises :class:`ConfigError` naming the
file and the key.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from livedance.errors import ConfigError

#: Environment variable naming the config file (overrides the XDG location).
CONFIG_ENV = "LIVEDANCE_CONFIG"
#: Schema version written to the file.
CONFIG_VERSION = 1
#: Largest latency the config accepts, milliseconds (perform's own limit is 2000 ms).
MAX_LATENCY_MS = 2000.0
#: Accepted avatar hip heights, metres (a 20 cm figurine to a 5 m giant).
HIP_HEIGHT_RANGE_M = (0.2, 5.0)


@dataclass
class TapRecord:
    """The outcome of a tap-along run (``livedance calibrate latency --tap``).

    Attributes:
        offset_ms: median of (tap time - nearest beat time) over the kept taps, milliseconds
            (positive: the taps came after the beats as scheduled).
        spread_ms: robust spread of the kept offsets (1.4826 * MAD, a standard deviation for
            Gaussian scatter), milliseconds.
        taps: taps counted, kept: taps used after dropping the first ones and the outliers.
        bpm: click tempo, beats per minute.
        mode: ``"audio"`` (clicks played on an output device) or ``"visual"`` (beats printed on the
            terminal: the offset is then keyboard + display + reaction bias, not audio latency).
        device: the output device's label, or "" in visual mode.
        when: ISO-8601 local time of the measurement.
    """

    offset_ms: float
    spread_ms: float
    taps: int
    kept: int
    bpm: float
    mode: str = "audio"
    device: str = ""
    when: str = ""


@dataclass
class LoopbackRecord:
    """The outcome of a loopback run (``livedance calibrate latency --loopback``).

    Attributes:
        round_trip_ms: output stream position -> input stream position of the click, milliseconds
            (all buffers included).
        reported_ms: PortAudio's reported input + output latency of the same stream, milliseconds.
        extra_ms: round_trip_ms - reported_ms: the latency PortAudio does not report, milliseconds.
        spread_ms: max - min of the per-click round trips, milliseconds.
        clicks: clicks found in the recording.
        sample_rate: Hz.
        output_device, input_device: device labels.
        when: ISO-8601 local time of the measurement.
    """

    round_trip_ms: float
    reported_ms: float
    extra_ms: float
    spread_ms: float
    clicks: int
    sample_rate: int
    output_device: str = ""
    input_device: str = ""
    when: str = ""


@dataclass
class UserConfig:
    """The user's calibration (see the module docstring for the meaning of each latency).

    Attributes:
        output_latency_ms: unreported output latency, milliseconds, in [-MAX, MAX]
            (negative only if a measurement says the sound comes out earlier than reported).
        input_latency_ms: unreported input latency, milliseconds, same range.
        tap: the last audio tap-along result, or None.
        visual_tap: the last visual (printed beats) tap-along result, or None.
        loopback: the last loopback result, or None.
        avatar_hip_height_m: the avatar's standing hip height, metres, in :data:`HIP_HEIGHT_RANGE_M`, or None.
        extra: keys of the file this version does not know; written back unchanged.
    """

    output_latency_ms: float = 0.0
    input_latency_ms: float = 0.0
    tap: TapRecord | None = None
    visual_tap: TapRecord | None = None
    loopback: LoopbackRecord | None = None
    avatar_hip_height_m: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def output_latency_s(self) -> float:
        """``output_latency_ms`` in seconds."""
        return self.output_latency_ms / 1000.0

    @property
    def input_latency_s(self) -> float:
        """``input_latency_ms`` in seconds."""
        return self.input_latency_ms / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the file (version first, then fields, then unknown keys)."""
        out: dict[str, Any] = {"version": CONFIG_VERSION}
        out["output_latency_ms"] = float(self.output_latency_ms)
        out["input_latency_ms"] = float(self.input_latency_ms)
        for name in ("tap", "visual_tap", "loopback"):
            rec = getattr(self, name)
            out[name] = None if rec is None else asdict(rec)
        out["avatar_hip_height_m"] = None if self.avatar_hip_height_m is None else float(self.avatar_hip_height_m)
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out


def config_path() -> Path:
    """Where the user config lives: ``$LIVEDANCE_CONFIG``, else ``$XDG_CONFIG_HOME/livedance/config.json``.

    Returns:
        The path (the file may not exist).
    """
    env = os.environ.get(CONFIG_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    # The XDG spec: a relative XDG_CONFIG_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "livedance" / "config.json"


def config_exists(path: Path) -> bool:
    """Whether the config file ``path`` exists.

    Returns:
        True for an existing entry, False when ``path`` or a folder on it does not exist.
    Raises:
        ConfigError: the path cannot be checked (a folder on it that the user may not enter, a name too long);
            the message names the path and the reason.
    """
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        raise ConfigError(f"cannot check the livedance config {path}: {err.strerror or err} (set {CONFIG_ENV} "
                          "to a file you can read, or pass --config)") from None
    return True


def _number(path: Path, key: str, value: Any) -> float:
    from livedance.bridges.frame import is_weight

    if not is_weight(value):  # (an integer too large for a float, which JSON allows, is no finite number either)
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ConfigError(f"{path}: {key} must be a finite number, got {shown}")
    return float(value)


def _latency(path: Path, key: str, value: Any) -> float:
    v = _number(path, key, value)
    if abs(v) > MAX_LATENCY_MS:
        raise ConfigError(f"{path}: {key} = {v:g} ms is outside -{MAX_LATENCY_MS:g}..{MAX_LATENCY_MS:g} ms")
    return v


def hip_height(path: Path | str, key: str, value: Any) -> float | None:
    """An avatar hip height in metres from ``value`` (None stays None).

    Args:
        path, key: name the source in the error message only (a file and its key, or a CLI option).
        value: int or float metres (not a bool), or None.
    Returns:
        the height in metres, or None.
    Raises:
        ConfigError: not a finite number in :data:`HIP_HEIGHT_RANGE_M` (the message names ``path`` and ``key``).
    """
    if value is None:
        return None
    v = _number(Path(path), key, value)
    lo, hi = HIP_HEIGHT_RANGE_M
    if not lo <= v <= hi:
        raise ConfigError(f"{path}: {key} = {v:g} m is outside {lo:g}..{hi:g} m (the avatar's standing hip height)")
    return v


def _record(path: Path, key: str, value: Any, cls: type) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key} must be an object or null, got {type(value).__name__}")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in value:
            if f.default is not MISSING or f.default_factory is not MISSING:
                continue
            raise ConfigError(f"{path}: {key}.{f.name} is missing")
        v = value[f.name]
        if f.type in ("float",):
            v = _number(path, f"{key}.{f.name}", v)
        elif f.type in ("int",):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{path}: {key}.{f.name} must be an integer, got {v!r}")
        elif f.type in ("str",) and not isinstance(v, str):
            raise ConfigError(f"{path}: {key}.{f.name} must be a string, got {v!r}")
        kwargs[f.name] = v
    return cls(**kwargs)


def parse_user_config(data: Any, path: Path) -> UserConfig:
    """Build a :class:`UserConfig` from the decoded JSON ``data`` of ``path`` (named in errors).

    Raises:
        ConfigError: ``data`` is not an object, a known key has the wrong type or range, or the
            file's version is newer than this livedance understands.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    version = data.get("version", CONFIG_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{path}: version must be a positive integer, got {version!r}")
    if version > CONFIG_VERSION:
        raise ConfigError(
            f"{path}: config version {version} is newer than this livedance understands ({CONFIG_VERSION}); "
            "upgrade livedance or delete the file"
        )
    known = {"version", "output_latency_ms", "input_latency_ms", "tap", "visual_tap", "loopback", "avatar_hip_height_m"}
    return UserConfig(
        output_latency_ms=_latency(path, "output_latency_ms", data.get("output_latency_ms", 0.0)),
        input_latency_ms=_latency(path, "input_latency_ms", data.get("input_latency_ms", 0.0)),
        tap=_record(path, "tap", data.get("tap"), TapRecord),
        visual_tap=_record(path, "visual_tap", data.get("visual_tap"), TapRecord),
        loopback=_record(path, "loopback", data.get("loopback"), LoopbackRecord),
        avatar_hip_height_m=hip_height(path, "avatar_hip_height_m", data.get("avatar_hip_height_m")),
        extra={k: v for k, v in data.items() if k not in known},
    )


def load_user_config(path: str | Path | None = None) -> UserConfig:
    """Read the user config; a missing file gives the defaults (all latencies 0).

    Args:
        path: the file; None takes :func:`config_path` (``$LIVEDANCE_CONFIG`` or the XDG location).

    Returns:
        The :class:`UserConfig`.

    Raises:
        ConfigError: the file cannot be read, is not valid JSON, or holds a bad value (the message
            names the file and the key).
    """
    p = Path(path).expanduser() if path is not None else config_path()
    if not config_exists(p):
        return UserConfig()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the livedance config {p}: {err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{p} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); fix it or delete it "
            "and calibrate again (livedance calibrate latency)"
        ) from None
    except ValueError as err:  # e.g. an integer beyond Python's 4300-digit limit
        raise ConfigError(f"{p}: cannot read it as JSON ({err}); fix it or delete it and calibrate again") from None
    return parse_user_config(data, p)


def save_user_config(config: UserConfig, path: str | Path | None = None) -> Path:
    """Write ``config`` as JSON (atomically: a temporary file renamed over the old one).

    Args:
        config: what to write.
        path: the file; None takes :func:`config_path`. Missing folders are created.

    Returns:
        The path written.

    Raises:
        ConfigError: a latency is out of range, or the file cannot be written.
    """
    p = Path(path).expanduser() if path is not None else config_path()
    try:
        p = p.resolve()  # a symlink's target is written (a dotfile manager's link stays a link)
    except (OSError, RuntimeError) as err:  # a symlink loop
        raise ConfigError(f"config file {p}: cannot resolve it ({err})") from None
    data = config.to_dict()
    parse_user_config(data, p)  # refuse to write what could not be read back
    from livedance.atomic import atomic_target

    try:
        with atomic_target(p) as tmp:  # fsync'ed, keeps the file's permissions; a crash leaves the old file
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot write the livedance config {p}: {err.strerror or err} (in {p.parent})") from None
    return p


__all__ = [
    "CONFIG_ENV",
    "CONFIG_VERSION",
    "LoopbackRecord",
    "TapRecord",
    "UserConfig",
    "config_exists",
    "config_path",
    "load_user_config",
    "parse_user_config",
    "save_user_config",
]
