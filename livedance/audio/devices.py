"""Audio device listing and selection (PortAudio through sounddevice).

A device is chosen by a *spec*:

* ``None``: the default input (or output) device;
* an int, or a string of digits: the PortAudio device index (as ``livedance devices`` lists it);
* a name: case-insensitive; an exact name wins, else the first device whose name contains it;
* ``"<hostapi>:<name>"`` with hostapi one of jack, alsa, oss, pulse, coreaudio, wasapi, mme,
  directsound, asio, wdm-ks: the same, among that host API's devices only. ``"jack:"`` alone is
  the JACK host API's default device (normally the ``system`` client). PortAudio's JACK host API
  shows each JACK *client* with ports as one device (``system``, ``metro``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from livedance.audio.portaudio import import_sounddevice
from livedance.errors import DeviceNotFoundError

Kind = Literal["input", "output"]

#: Host API prefixes accepted in a device spec, mapped to a substring of PortAudio's host API name.
HOSTAPI_PREFIXES: dict[str, str] = {
    "jack": "jack",
    "alsa": "alsa",
    "oss": "oss",
    "pulse": "pulse",
    "coreaudio": "core audio",
    "wasapi": "wasapi",
    "mme": "mme",
    "directsound": "directsound",
    "asio": "asio",
    "wdm-ks": "wdm-ks",
}


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device.

    Attributes:
        index: PortAudio device index (valid until the next rescan).
        name: device name (for JACK: the JACK client name).
        hostapi: host API name, e.g. "ALSA", "JACK Audio Connection Kit".
        max_input_channels, max_output_channels: channel counts.
        default_samplerate: Hz (float, as PortAudio reports it).
        default_input, default_output: whether it is the default device of its host API.
    """

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    default_input: bool = False
    default_output: bool = False

    @property
    def is_jack(self) -> bool:
        """True for a device of PortAudio's JACK host API."""
        return "jack" in self.hostapi.lower()

    def channels(self, kind: Kind) -> int:
        """max_input_channels for "input", max_output_channels for "output"."""
        return self.max_input_channels if kind == "input" else self.max_output_channels

    def label(self) -> str:
        """One line for messages: ``[3] system (JACK Audio Connection Kit, 2 in / 2 out, 44100 Hz)``."""
        return (
            f"[{self.index}] {self.name} ({self.hostapi}, {self.max_input_channels} in / "
            f"{self.max_output_channels} out, {self.default_samplerate:g} Hz)"
        )

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return asdict(self)


DeviceLister = Callable[[], Sequence[DeviceInfo]]


def list_devices() -> list[DeviceInfo]:
    """All devices PortAudio sees now (see :func:`livedance.audio.portaudio.rescan` for new ones).

    Raises:
        AudioError: PortAudio is not installed.
    """
    sd = import_sounddevice()
    apis = sd.query_hostapis()
    out = []
    for d in sd.query_devices():
        api = apis[d["hostapi"]]
        out.append(
            DeviceInfo(
                index=int(d["index"]),
                name=str(d["name"]),
                hostapi=str(api["name"]),
                max_input_channels=int(d["max_input_channels"]),
                max_output_channels=int(d["max_output_channels"]),
                default_samplerate=float(d["default_samplerate"]),
                default_input=api["default_input_device"] == d["index"],
                default_output=api["default_output_device"] == d["index"],
            )
        )
    return out


def describe_devices(devices: Sequence[DeviceInfo], kind: Kind) -> str:
    """The devices of ``kind`` as a '; '-separated list of labels (or a hint when there are none)."""
    usable = [d for d in devices if d.channels(kind) > 0]
    if not usable:
        return (
            f"no {kind} devices at all (no sound card, and no JACK server was running when "
            "PortAudio started; for a clock without a sound card run: "
            "JACK_NO_AUDIO_RESERVATION=1 jackd --no-realtime -d dummy -r 44100 -p 512 &)"
        )
    return "; ".join(d.label() for d in usable)


def _split_hostapi(spec: str) -> tuple[str | None, str]:
    head, sep, tail = spec.partition(":")
    if sep and head.strip().lower() in HOSTAPI_PREFIXES:
        return HOSTAPI_PREFIXES[head.strip().lower()], tail.strip()
    return None, spec.strip()


def _default_index(kind: Kind) -> int:
    try:
        sd = import_sounddevice()
        idx = sd.default.device[0 if kind == "input" else 1]
        return int(idx) if idx is not None else -1
    except Exception:
        return -1


def resolve_device(
    spec: int | str | None,
    kind: Kind = "input",
    devices: Sequence[DeviceInfo] | None = None,
) -> DeviceInfo:
    """Find the device that ``spec`` names (see the module docstring for the syntax).

    Args:
        spec: None, an index, a name, or "<hostapi>:<name>".
        kind: "input" (needs input channels) or "output".
        devices: the device list to search; None asks PortAudio (:func:`list_devices`).

    Returns:
        The matching :class:`DeviceInfo`.

    Raises:
        DeviceNotFoundError: nothing matches; the message lists the available ``kind`` devices.
    """
    devs = list(list_devices() if devices is None else devices)
    usable = [d for d in devs if d.channels(kind) > 0]

    def fail(what: str) -> DeviceNotFoundError:
        return DeviceNotFoundError(f"{what}. Available {kind} devices: {describe_devices(devs, kind)}")

    if spec is None:
        idx = _default_index(kind) if devices is None else -1
        for d in usable:
            if d.index == idx:
                return d
        flagged = [d for d in usable if (d.default_input if kind == "input" else d.default_output)]
        if flagged or usable:
            return (flagged or usable)[0]
        raise fail(f"no default {kind} device")
    if isinstance(spec, bool):
        raise fail(f"{kind} device {spec!r} is neither an index nor a name")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        idx = int(spec)
        for d in devs:
            if d.index == idx:
                if d.channels(kind) > 0:
                    return d
                raise fail(f"device {d.label()} has no {kind} channels")
        raise fail(f"no {kind} device with index {idx}")
    api, name = _split_hostapi(str(spec))
    pool = [d for d in usable if api is None or api in d.hostapi.lower()]
    if api is not None and not name:
        flagged = [d for d in pool if (d.default_input if kind == "input" else d.default_output)]
        if flagged or pool:
            return (flagged or pool)[0]
        raise fail(f"no {kind} device on host API {api!r} (spec {spec!r})")
    key = name.casefold()
    exact = [d for d in pool if d.name.casefold() == key]
    if exact:
        return exact[0]
    partial = [d for d in pool if key in d.name.casefold()]
    if partial:
        return partial[0]
    raise fail(f"no {kind} device matches {spec!r}")
