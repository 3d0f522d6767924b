"""livedance.audio: live and file audio sources.

Every source (:class:`LiveSource` for sound cards and USB interfaces, :class:`JackSource` for JACK
ports, :class:`FileSource` for files) implements :class:`AudioSource`: start(), stop(), and
read() returning mono float32 :class:`AudioBlock` s labelled with their absolute sample index and
capture time. The PortAudio callback only copies into a lock-free :class:`RingBuffer`.
sounddevice is imported lazily, so importing this package needs no PortAudio.
"""

from livedance.audio.base import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioBlock,
    AudioSource,
    CaptureClock,
    SourceStatus,
    validate_sample_rate,
)
from livedance.audio.devices import DeviceInfo, list_devices, resolve_device
from livedance.audio.file import FileSource
from livedance.audio.jack import JackServer, JackSource
from livedance.audio.live import LiveSource
from livedance.audio.ring import RingBuffer

__all__ = [
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "AudioBlock",
    "AudioSource",
    "CaptureClock",
    "DeviceInfo",
    "FileSource",
    "JackServer",
    "JackSource",
    "LiveSource",
    "RingBuffer",
    "SourceStatus",
    "list_devices",
    "resolve_device",
    "validate_sample_rate",
]
