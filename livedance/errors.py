"""User-facing errors.

Every error that bad input can cause is a :class:`LivedanceError`. Its message names the input (a
file, a folder, a device, a port) and says what was expected, so the CLI can print it without a
traceback and exit with status 2.
"""


class LivedanceError(Exception):
    """Base class of errors caused by the user's input or environment, not by a bug."""


class DataError(LivedanceError):
    """A dataset folder or file is missing, malformed, truncated or holds NaN/inf."""


class AudioError(LivedanceError):
    """An audio file or device cannot be read, is empty, too short, or has an unusable format."""


class DeviceNotFoundError(AudioError):
    """An audio device name or index matches no device; the message lists the devices."""


class WeightsError(LivedanceError):
    """Model weights are missing, corrupt or do not match their config."""


class ConfigError(LivedanceError):
    """A command-line option or config value is invalid (for example a bad host or port)."""
