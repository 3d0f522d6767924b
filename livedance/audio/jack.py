"""JACK: capture from JACK ports through PortAudio's JACK host API, and small JACK tools.

PortAudio shows each JACK client with ports as one device ("system", "metro", ...). Opening an
input stream registers ports ``<client>:in_0``, ``in_1``... in this process's JACK client (named
"PortAudio" unless taken, see :func:`livedance.audio.portaudio.jack_client_name`) and connects the
device's output ports to them. :class:`JackSource` goes one step further: it opens on a JACK
device and then connects exactly the ports you name (``jack_connect``), so any JACK output port
can feed livedance:

    JackSource(port="metro:120_bpm")                      # one port, mono
    JackSource(port=["mixxx:out_0", "mixxx:out_1"])       # two ports, mixed down to mono
    LiveSource(device="jack:system")                      # the capture ports of the sound card

By hand: ``jack_lsp -c`` lists ports and connections, ``jack_connect SRC DST`` connects (for
example ``jack_connect metro:120_bpm PortAudio:in_0``). The port helpers here call the JACK
command-line tools (Debian package jackd2), which open their own short-lived JACK client.

:class:`JackServer` starts a JACK server on the dummy backend: a real-time clock with no sound
card, used by the tests and handy on a headless machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from livedance.audio import portaudio
from livedance.audio.live import LiveSource
from livedance.errors import AudioError, DeviceNotFoundError

_TOOLS = ("jack_lsp", "jack_connect", "jack_disconnect")


def jack_tools_available() -> bool:
    """True when the JACK command-line tools (jack_lsp, jack_connect, jack_disconnect) are on PATH."""
    return all(shutil.which(t) for t in _TOOLS)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["JACK_NO_START_SERVER"] = "1"  # a query must never spawn a server
    return env


def _run(args: Sequence[str], timeout: float = 5.0) -> subprocess.CompletedProcess:
    if shutil.which(args[0]) is None:
        raise AudioError(f"{args[0]} not found: install the JACK tools (Debian/Ubuntu: apt-get install jackd2)")
    try:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=_env())
    except subprocess.TimeoutExpired:
        raise AudioError(
            f"{' '.join(args)} did not answer within {timeout} s (is the JACK server stuck?)"
        ) from None


def server_running(timeout: float = 3.0) -> bool:
    """True when a JACK server answers (the one JACK_DEFAULT_SERVER names, else "default")."""
    if shutil.which("jack_lsp") is None:
        return False
    try:
        return _run(["jack_lsp"], timeout=timeout).returncode == 0
    except AudioError:
        return False


def _jack_lsp(flag: str) -> dict[str, list[str]]:
    """``jack_lsp <flag>`` parsed: each port (an unindented line) mapped to the indented lines under it
    (its connections for ``-c``, its ``properties: ...`` line for ``-p``), stripped, in jack_lsp's order.

    Raises:
        AudioError: the tool is missing or no JACK server answers.
    """
    res = _run(["jack_lsp", flag])
    if res.returncode != 0:
        raise AudioError(f"no JACK server is running ({(res.stderr or res.stdout).strip()})")
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in res.stdout.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            current = out.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line.strip())
    return out


def list_ports(direction: str | None = None) -> list[str]:
    """JACK audio/MIDI port names, optionally only "output" (sources) or "input" (sinks) ports.

    Raises:
        AudioError: the tools are missing or no JACK server is running.
    """
    ports = _jack_lsp("-p")
    if direction is None:
        return list(ports)

    def has_direction(lines: list[str]) -> bool:
        for line in lines:
            if line.startswith("properties:"):
                return direction in [p.strip() for p in line.split(":", 1)[1].split(",")]
        return False

    return [port for port, lines in ports.items() if has_direction(lines)]


def connections() -> dict[str, list[str]]:
    """Every JACK port mapped to the ports it is connected to.

    Raises:
        AudioError: the tools are missing or no JACK server is running.
    """
    return _jack_lsp("-c")


def connect(source: str, destination: str) -> None:
    """Connect JACK output port ``source`` to input port ``destination`` (no-op if connected).

    Raises:
        AudioError: a port does not exist or JACK refused (the message has jack_connect's words).
    """
    res = _run(["jack_connect", source, destination])
    if res.returncode != 0 and destination not in connections().get(source, []):
        raise AudioError(
            f"cannot connect JACK port {source!r} to {destination!r}: {(res.stderr or res.stdout).strip()}"
        )


def disconnect(source: str, destination: str) -> None:
    """Disconnect two JACK ports (no error if they were not connected)."""
    _run(["jack_disconnect", source, destination])


def port_number(port: str) -> int:
    """The number a JACK port name ends with (``"PortAudio:in_10"`` -> 10), -1 if none: a sort key that
    orders ``in_2`` before ``in_10``."""
    m = re.search(r"(\d+)$", port)
    return int(m.group(1)) if m else -1


def stop_process(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """Terminate a child process and wait for it; kill it if it is still there after ``timeout_s`` seconds.

    Idempotent (a process that already exited is only reaped). Never raises for a process that is gone.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class JackSource(LiveSource):
    """Capture named JACK output ports through PortAudio's JACK host API (a :class:`LiveSource`).

    Args:
        port: a JACK output port ("metro:120_bpm") or a list of them, mixed down to mono. None
            keeps PortAudio's automatic connections of the JACK device (like LiveSource).
        device: the JACK device (client) to open on; None takes the JACK host API's default
            input device ("system" normally). Its ports are disconnected from ours when ``port``
            is given.
        block_size, channels, **kwargs: as for :class:`LiveSource`; channels defaults to the
            number of ports.

    Raises:
        DeviceNotFoundError: no JACK device (no server was running when PortAudio started and a
            rescan finds none), or a named port does not exist (the message lists the outputs).
        AudioError: the JACK tools are missing.

    Each JACK stream runs at the server's sample rate. If the JACK server goes away, the source
    becomes LOST and stays so: PortAudio cannot re-attach to a restarted server in-process.
    """

    def __init__(
        self,
        port: str | Sequence[str] | None = None,
        *,
        device: str | None = None,
        block_size: int = 512,
        channels: int | None = None,
        **kwargs: object,
    ) -> None:
        self._ports = [port] if isinstance(port, str) else list(port or [])
        if self._ports:
            if not jack_tools_available():
                raise AudioError(
                    "JackSource(port=...) needs the JACK tools (Debian/Ubuntu: apt-get install jackd2)"
                )
            outputs = list_ports("output")
            missing = [p for p in self._ports if p not in outputs]
            if missing:
                raise DeviceNotFoundError(
                    f"no JACK output port {', '.join(map(repr, missing))}. JACK output ports: "
                    f"{', '.join(outputs) or 'none'}"
                )
        if channels is None and self._ports:
            channels = len(self._ports)
        self._our_ports: list[str] = []
        try:
            super().__init__(f"jack:{device or ''}", None, block_size, channels, **kwargs)  # type: ignore[arg-type]
        except AudioError as err:
            if not (self._ports and "channels must be" in str(err)):
                raise
            raise AudioError(
                f"{len(self._ports)} JACK ports requested ({', '.join(self._ports)}), but the JACK device "
                f"{device or '(default)'!r} takes fewer inputs ({err}); capture fewer ports, or pass device= a JACK "
                "client with as many inputs"
            ) from None
        if not self.device.is_jack:  # pragma: no cover - resolve_device filters by host API
            raise DeviceNotFoundError(f"{self.device.label()} is not a JACK device")

    @property
    def ports(self) -> list[str]:
        """The JACK output ports this source captures (empty: PortAudio's own connections)."""
        return list(self._ports)

    @property
    def input_ports(self) -> list[str]:
        """This stream's own JACK input ports (``<client>:in_k``), known after start()."""
        return list(self._our_ports)

    def _client_inputs(self, client: str) -> set[str]:
        return {p for p in list_ports("input") if p.startswith(client + ":")}

    def _open_and_start(self) -> None:
        if not self._ports:
            super()._open_and_start()
            return
        client = portaudio.jack_client_name()
        if client is None:
            raise AudioError("PortAudio has no JACK client (no JACK server was running when it started)")
        before = self._client_inputs(client)
        super()._open_and_start()
        try:
            ours = sorted(self._client_inputs(client) - before, key=port_number)
            if len(ours) != self._channels:
                raise AudioError(
                    f"expected {self._channels} new JACK input ports of client {client!r}, found {ours}"
                )
            links = connections()
            for i, mine in enumerate(ours):
                for other in links.get(mine, []):
                    disconnect(other, mine)
                connect(self._ports[i % len(self._ports)], mine)
            self._our_ports = ours
        except Exception:
            stream, self._stream = self._stream, None
            self._gen += 1
            self._dispose(stream, dead=False)
            raise


class JackServer:
    """A JACK server on the dummy backend (a real-time clock, no sound card), for tests and demos.

    Args:
        sample_rate: Hz.
        period: frames per JACK cycle.
        name: server name (-n); None uses the default server name. A named server is reached by
            clients that have JACK_DEFAULT_SERVER=<name> in their environment (see :meth:`env`).
        log_path: where jackd's output goes (default: a file in /tmp).

        timeout_s: seconds to wait for the server to answer ``jack_lsp``.

    Raises:
        AudioError: jackd or jack_lsp is not installed, or the server did not come up within ``timeout_s``
            (jackd is stopped then, as on any other error while waiting).

    Call :meth:`stop` (or use ``with``) to end it; stop() is idempotent and waits for the process.
    """

    def __init__(
        self,
        sample_rate: int = 44100,
        period: int = 512,
        name: str | None = None,
        log_path: str | Path | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        jackd = shutil.which("jackd")
        if jackd is None:
            raise AudioError("jackd not found: install JACK (Debian/Ubuntu: apt-get install jackd2)")
        self.name = name
        self.sample_rate = int(sample_rate)
        self.period = int(period)
        self.log_path = Path(log_path or f"/tmp/livedance-jackd-{name or 'default'}-{os.getpid()}.log")
        args = [jackd, "--no-realtime"]
        if name:
            args += ["-n", name]
        args += ["-d", "dummy", "-r", str(self.sample_rate), "-p", str(self.period)]
        env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
        self._log = open(self.log_path, "w")
        self._proc: subprocess.Popen | None = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        try:
            if self._wait_until_up(float(timeout_s)):
                return
        except BaseException:  # a probe that cannot run, or Ctrl-C: never leave jackd behind
            self.stop()
            raise
        self.stop()
        raise AudioError(f"jackd did not start within {timeout_s} s: {self.log_path.read_text()[-500:]}")

    def _wait_until_up(self, timeout_s: float) -> bool:
        """Poll with ``jack_lsp`` until the server answers (True) or ``timeout_s`` passes or jackd exits (False);
        a hung ``jack_lsp`` is cut off at the time left."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if self._proc.poll() is not None:
                return False
            try:
                res = subprocess.run(["jack_lsp"], capture_output=True, text=True, env={**_env(), **self.env()},
                                     timeout=max(min(5.0, left), 0.1))
            except subprocess.TimeoutExpired:
                continue
            except OSError as err:
                raise AudioError(f"jack_lsp cannot run ({err}): install JACK's tools (Debian/Ubuntu: apt-get "
                                 "install jackd2)") from None
            if res.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def env(self) -> dict[str, str]:
        """Environment entries a client needs to reach this server ({} for the default server)."""
        return {"JACK_DEFAULT_SERVER": self.name} if self.name else {}

    @property
    def pid(self) -> int | None:
        """jackd's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def stop(self) -> None:
        """Terminate jackd and wait for it (kill after 5 s). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc)
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> JackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
