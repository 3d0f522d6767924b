"""Raw OSC for VJ tools (TouchDesigner, Resolume, Max, VDMX): one address per joint quantity plus music state.

Address schema (``<prefix>`` defaults to ``/livedance``; ``<joint>`` is the SMPL-X joint name, e.g.
``pelvis``, ``left_wrist``, ``right_index1``). Right-handed, y up, metres, the character facing +z with
its left side at +x (the internal convention, *not* Unity's):

==============================  =======  =====================================================
address                         types    value
==============================  =======  =====================================================
``<prefix>/t``                  f        seconds since the first frame sent (perf_counter clock)
``<prefix>/<joint>/rot``        ffff     local rotation x, y, z, w (relative to the SMPL-X rest pose), unit (sign: below)
``<prefix>/<joint>/pos``        fff      world position x, y, z in metres (forward kinematics)
``<prefix>/beat``               f        beat phase in [0, 1): 0 on the beat
``<prefix>/bpm``                f        tempo in beats per minute
``<prefix>/energy``             f        loudness/energy in [0, 1]
==============================  =======  =====================================================

A quaternion and its negation are the same rotation. The sign sent keeps each joint's channels continuous: the
first frame has w >= 0, and every later one is the sign nearest the joint's previous frame (a positive dot
product), so a spin through 180 degrees does not make x, y, z, w jump to their negatives, which a Filter or Lag
CHOP downstream would draw as a wild turn.

With ``layout="scalar"`` each component gets its own single-float address instead:
``<prefix>/<joint>/rot/x`` ... ``/rot/w`` and ``<prefix>/<joint>/pos/x`` ... ``/pos/z``.

TouchDesigner's OSC In CHOP names each channel after the message's address; per Derivative's OSC In
CHOP documentation a message with more than one value is split into one channel per value, the address
suffixed with an underscore and a number in argument order (``/livedance/pelvis/rot`` ->
four channels). The docs do not say whether that number starts at 0 or 1 across versions: check one in
your build, or use ``layout="scalar"``, where every address carries one float and the channel name is
exactly the address (``/livedance/pelvis/rot/x``). See ``bridges/touchdesigner.md``.

Transport and errors are those of :class:`~livedance.bridges.osc_transport.OSCUDPTransport`: bundles of
at most ``max_datagram_bytes``, a :class:`~livedance.errors.ConfigError` for a bad host, port, prefix
or joint name at construction, one warning and a counter (never an exception) when no one listens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from livedance.bridges.fk import forward_kinematics
from livedance.bridges.frame import SMPLX_JOINT_NAMES, SMPLX_PARENTS, PoseFrame, is_weight
from livedance.bridges.osc_transport import (
    OSCUDPTransport,
    TransportStats,
    osc_float_messages,
    osc_message,
    osc_string,
)
from livedance.errors import ConfigError

_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9_\-.]+)+$")


@dataclass(frozen=True)
class MusicState:
    """What the listener knows about the music at a frame's show time.

    Attributes:
        beat_phase: position within the current beat in [0, 1) (0 = on the beat).
        bpm: tempo in beats per minute.
        energy: loudness/energy in [0, 1].
    """

    beat_phase: float
    bpm: float
    energy: float = 0.0


class RawOSCSender:
    """Streams joint rotations/positions and the music state as plain OSC (see the module schema).

    Args:
        host: receiver IP address or host name.
        port: receiver UDP port (TouchDesigner has no fixed default; 7000 is common).
        prefix: address prefix, ``/`` plus path segments of letters, digits, ``_ - .``.
        joints: SMPL-X joint names to send, a list or tuple of str (default: all 55); a bare str is rejected.
        send_rotations: send ``/<joint>/rot``.
        send_positions: send ``/<joint>/pos`` (costs one FK per frame).
        layout: ``"vector"`` (one multi-float message per quantity) or ``"scalar"`` (one float per address).
        max_datagram_bytes: UDP datagram bound (64..65507).
        logger: where the single "cannot send" warning goes.

    Raises:
        ConfigError: bad host, port, prefix, joint name or layout; ``joints`` a str or not a sequence.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7000,
        *,
        prefix: str = "/livedance",
        joints: Sequence[str] | None = None,
        send_rotations: bool = True,
        send_positions: bool = True,
        layout: str = "vector",
        max_datagram_bytes: int = 1400,
        logger: logging.Logger | None = None,
    ) -> None:
        names = self.check_options(prefix=prefix, joints=joints, layout=layout)
        self.prefix = prefix
        self.layout = layout
        self.joints = tuple(names)
        self._idx = [SMPLX_JOINT_NAMES.index(n) for n in names]
        self.send_rotations = bool(send_rotations)
        self.send_positions = bool(send_positions)
        self._transport = OSCUDPTransport(
            host, port, max_datagram_bytes=max_datagram_bytes, name="raw OSC", logger=logger
        )
        self._t0: float | None = None
        # (J, 4) the rotations sent last, whose signs set the next frame's; identity rows at first, so the first
        # frame gets w >= 0 by the same rule
        self._last_q = np.tile(np.array([0.0, 0.0, 0.0, 1.0]), (len(self._idx), 1))
        self.frames_sent = 0
        self._prefixes = {
            (kind, comps): self._layout_prefixes(kind, comps) for kind, comps in (("rot", "xyzw"), ("pos", "xyz"))
        }

    @staticmethod
    def check_options(prefix: str = "/livedance", joints: Sequence[str] | None = None, layout: str = "vector") -> list[str]:
        """Validate the stream's options without opening a socket (a CLI checks them before loading a model).

        Returns:
            the joint names to send, in order (all 55 SMPL-X joints when ``joints`` is None).
        Raises:
            ConfigError: a bad prefix, layout or joint name, or ``joints`` a str or not a sequence (the message
                names the value and what is expected).
        """
        if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
            raise ConfigError(
                f"raw OSC prefix {prefix!r} is invalid; expected '/' followed by path segments of letters, "
                "digits, '_', '-' or '.', e.g. '/livedance'"
            )
        if layout not in ("vector", "scalar"):
            raise ConfigError(f"raw OSC layout {layout!r} is invalid; expected 'vector' or 'scalar'")
        if isinstance(joints, (str, bytes)) or not (joints is None or isinstance(joints, Iterable)):
            raise ConfigError(
                f"raw OSC joints {joints!r} is invalid; expected a list of SMPL-X joint names like ['pelvis']"
            )
        names = list(SMPLX_JOINT_NAMES) if joints is None else list(joints)
        unknown = [n for n in names if n not in SMPLX_JOINT_NAMES]
        if unknown:
            raise ConfigError(f"raw OSC joints {unknown} are not SMPL-X joint names; expected names like 'pelvis'")
        return names  # (an empty list is allowed: the music state alone)

    def _layout_prefixes(self, kind: str, comps: str) -> list[bytes]:
        """Encoded address + type tags for every (joint[, component]) message of one quantity."""
        if self.layout == "vector":
            tags = osc_string("," + "f" * len(comps))
            return [osc_string(f"{self.prefix}/{n}/{kind}") + tags for n in self.joints]
        tag = osc_string(",f")
        return [osc_string(f"{self.prefix}/{n}/{kind}/{c}") + tag for n in self.joints for c in comps]

    @property
    def stats(self) -> TransportStats:
        """Datagrams and bytes sent, send errors."""
        return self._transport.stats

    def build_messages(self, frame: PoseFrame | None, music: MusicState | None = None) -> list[bytes]:
        """The encoded messages for one frame and/or music state (either may be ``None``).

        Args:
            frame: the pose: ``<prefix>/t`` (float32 seconds since the first frame built, from
                ``t_show_s`` on the perf_counter clock), ``/rot`` (unit quaternions x, y, z, w, normalised here,
                with the sign nearest each joint's previous frame: the module's continuity rule) and ``/pos`` (metres, FK) of the chosen joints.
            music: ``<prefix>/beat`` (beat phase in [0, 1), 0 on the beat), ``/bpm`` (beats per minute) and
                ``/energy`` (loudness in [0, 1]); a value that is not a finite number is left out.

        Returns:
            the encoded OSC messages (bytes), in the order of the module's schema table.

        Raises:
            ValueError: only for a value OSC's float32 cannot carry (beyond 3.4e38, e.g. a frame mutated
                after validation).
        """
        msgs: list[bytes] = []
        p = self.prefix
        if frame is not None:
            if self._t0 is None:
                self._t0 = frame.t_show_s
            msgs.append(osc_message(f"{p}/t", [float(frame.t_show_s - self._t0)]))
            if self.send_rotations:
                q = frame.local_quats[self._idx].astype(np.float64)
                q /= np.linalg.norm(q, axis=1, keepdims=True)  # PoseFrame rules out zero rows
                # each joint's sign nearest its last one: continuous channels through a 180-degree turn
                q[(q * self._last_q).sum(axis=1) < 0] *= -1.0
                self._last_q = q  # (a fresh array: astype copied it, and nothing below writes to it)
                msgs.extend(self._quantity("rot", "xyzw", q))
            if self.send_positions:
                _, positions = forward_kinematics(
                    frame.local_quats, frame.rest_offsets, frame.root_position, SMPLX_PARENTS
                )
                msgs.extend(self._quantity("pos", "xyz", positions[self._idx]))
        if music is not None:
            for name, value in (("beat", music.beat_phase), ("bpm", music.bpm), ("energy", music.energy)):
                if is_weight(value):
                    msgs.append(osc_message(f"{p}/{name}", [float(value)]))
        return msgs

    def _quantity(self, kind: str, comps: str, values: np.ndarray) -> list[bytes]:
        prefixes = self._prefixes[(kind, comps)]
        if self.layout == "scalar":
            values = values.reshape(-1, 1)
        return osc_float_messages(prefixes, values)

    def send(self, frame: PoseFrame | None, music: MusicState | None = None) -> int:
        """Send one frame and/or music state (see :meth:`build_messages` for the values and units); network
        errors are counted in :attr:`stats`, never raised.

        Args:
            frame: the pose, or ``None`` for the music state alone.
            music: beat phase [0, 1), tempo (bpm), energy [0, 1], or ``None``.

        Returns:
            the number of datagrams the OS accepted (0 after :meth:`close`).

        Raises:
            ValueError: only as :meth:`build_messages` (a value beyond float32); never for network trouble.
        """
        sent = self._transport.send_messages(self.build_messages(frame, music))
        self.frames_sent += 1
        return sent

    def set_logger(self, logger) -> None:
        """Where the transport's one send-error warning goes (:meth:`OSCUDPTransport.set_logger`)."""
        self._transport.set_logger(logger)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._transport.close()

    def __enter__(self) -> "RawOSCSender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
