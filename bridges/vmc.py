"""VMC protocol sender: poses out to Unity (EVMC4U), VSeeFace, Warudo, Unreal (VMC4UE, VMCLiveLink).

Protocol: the VMC protocol, performer -> marionette direction (sh-akira/VirtualMotionCaptureProtocol;
OSC 1.0 over UDP, marionette port 39539). Per frame this sends, in order:

- ``/VMC/Ext/OK i``: 1 (model loaded)
- ``/VMC/Ext/T f``: seconds since the first frame sent (from :attr:`PoseFrame.t_show_s`)
- ``/VMC/Ext/Root/Pos s fff ffff``: ``"root"``, position = the dancer's travel (the pelvis's displacement from
  its rest position, x ``travel_scale``, turned by the root yaw), rotation = the profile's root yaw. This is where
  the VMC protocol carries room-scale movement (EVMC4U's Root Position Synchronize), so it reaches the avatar
  whether or not the receiver applies bone positions
- ``/VMC/Ext/Bone/Pos s fff ffff`` for each of the 55 bones (body, jaw, eyes, all fingers) that the avatar
  has: Unity HumanBodyBones name, *local* position (metres; ``Hips``: the pelvis's rest position, constant),
  *local* rotation (x, y, z, w), Unity left-handed. A bone the profile marks absent (``bone_names``: ``null``)
  is not sent; its rotation is folded into its children (:mod:`livedance.bridges.retarget`)
- ``/VMC/Ext/Blend/Val s f`` for each blend shape of the frame (weight clamped to [0, 1]; NaN/inf -> 0; an
  entry with a non-str name or a non-number weight is skipped and counted in
  :attr:`VMCSender.blendshapes_skipped`), then ``/VMC/Ext/Blend/Apply``

packed into as few bundles as fit under ``max_datagram_bytes`` (4 datagrams per frame at the default
1400 bytes; see :mod:`livedance.bridges.osc_transport` for why). (EVMC4U drops input when more than 30 VMC
frames, counted by their ``/VMC/Ext/T``, arrive within one Unity frame; one frame here carries one T.) Rotations are retargeted onto the avatar's rest pose and bone axes with its
profile (:mod:`livedance.bridges.retarget`) and converted right- to left-handed.

Receivers smooth and some wait for a few frames before they show the model: send continuously at the
output clock's rate (60 fps default), not just on change.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable

import numpy as np
from scipy.spatial.transform import Rotation

from livedance.bridges.frame import PoseFrame, is_weight
from livedance.bridges.humanoid import HUMANOID_BONES
from livedance.bridges.osc_transport import (
    OSCUDPTransport,
    TransportStats,
    osc_float_messages,
    osc_message,
    osc_string,
)
from livedance.bridges.retarget import HumanoidRetargeter, rh_to_unity_position
from livedance.calibration.profiles import AvatarProfile, load_profile
from livedance.errors import ConfigError

VMC_DEFAULT_PORT = 39539
"""The marionette (receiver) port of the VMC protocol."""


class VMCSender:
    """Streams :class:`PoseFrame` s to one VMC receiver.

    Args:
        host: receiver IP address or host name (default loopback).
        port: receiver UDP port (VMC default 39539).
        profile: the avatar's profile: an :class:`AvatarProfile`, a shipped name (``"vrm0"``, ``"vrm1"``,
            ``"mixamo"``, ``"ue_mannequin"``) or a path to a profile JSON.
        max_datagram_bytes: size bound of one UDP datagram (64..65507; default 1400 avoids IP fragmentation).
        travel_scale: factor on the travel sent on the root (> 0; default 1: SMPL-X metres). An avatar smaller
            than the SMPL-X body (about 0.95 m hip height) travels and squats in proportion with
            avatar hip height / SMPL-X hip height, so its feet do not slide.
        logger: where the single "cannot send" warning goes.

    Attributes:
        frames_sent: frames passed to :meth:`send`.
        blendshapes_skipped: blend-shape entries left out because the name was not a str without NUL or the
            weight not a real number.

    Raises:
        ConfigError: invalid host, port, datagram size or profile (at construction, never later); a profile
            that is neither an :class:`AvatarProfile`, a str nor a path.

    Sending never raises for network trouble or bad blend shapes: with no receiver listening the first failure
    logs one warning and the rest are counted in :attr:`stats`; bad blend shapes are counted in
    :attr:`blendshapes_skipped`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = VMC_DEFAULT_PORT,
        profile: AvatarProfile | str = "vrm0",
        *,
        max_datagram_bytes: int = 1400,
        travel_scale: float = 1.0,
        logger: logging.Logger | None = None,
    ) -> None:
        if not isinstance(profile, (AvatarProfile, str, os.PathLike)):
            raise ConfigError(
                f"VMC profile {profile!r} is invalid; expected an AvatarProfile, a shipped profile name "
                "('vrm0', 'vrm1', 'mixamo', 'ue_mannequin') or a path to a profile .json file"
            )
        self.profile = profile if isinstance(profile, AvatarProfile) else load_profile(profile)
        if isinstance(travel_scale, bool) or not isinstance(travel_scale, (int, float)) or not (
                np.isfinite(travel_scale) and travel_scale > 0):
            raise ConfigError(f"VMC travel_scale {travel_scale!r} is invalid; expected a number > 0 (1 = SMPL-X metres)")
        self.travel_scale = float(travel_scale)
        self._retarget = HumanoidRetargeter(self.profile)
        self._root_rot = [float(v) for v in self.profile.root_rotation_unity()]
        # the root yaw as a matrix, applied to Unity vectors with the same numbers (once, not per frame)
        self._root_yaw = Rotation.from_quat(self._root_rot).as_matrix() * self.travel_scale
        self._transport = OSCUDPTransport(
            host, port, max_datagram_bytes=max_datagram_bytes, name="VMC", logger=logger
        )
        self._t0: float | None = None
        self.frames_sent = 0
        self.blendshapes_skipped = 0
        head = osc_string("/VMC/Ext/Bone/Pos") + osc_string(",sfffffff")
        self._sent = self._retarget.sent_joints
        self._bone_prefixes = [head + osc_string(HUMANOID_BONES[j]) for j in self._sent]
        self._ok = osc_message("/VMC/Ext/OK", [1])

    @property
    def host(self) -> str:
        """Receiver host."""
        return self._transport.host

    @property
    def port(self) -> int:
        """Receiver port."""
        return self._transport.port

    @property
    def stats(self) -> TransportStats:
        """Datagrams and bytes sent, send errors (for example ``ECONNREFUSED`` with no receiver)."""
        return self._transport.stats

    def build_messages(self, frame: PoseFrame) -> list[bytes]:
        """The encoded VMC messages of one frame, in send order (see the module docstring).

        Args:
            frame: the pose; ``frame.t_show_s`` (perf_counter seconds) sets ``/VMC/Ext/T`` (float32 seconds
                since the first frame built).

        Returns:
            the encoded OSC messages (bytes, each a multiple of 4 long): OK, T, Root/Pos, one Bone/Pos per
            bone the avatar has, then the blend shapes and Blend/Apply when the frame has any.

        Raises:
            ValueError: only for a value OSC's float32 cannot carry (a travel beyond 3.4e38 m, e.g. from a
                frame mutated after validation); never for blend shapes.
        """
        if self._t0 is None:
            self._t0 = frame.t_show_s
        pos, rot = self._retarget.to_unity(frame)
        travel = self._root_yaw @ rh_to_unity_position(self._retarget.root_travel(frame.rest_offsets, frame.root_position))
        root = osc_message("/VMC/Ext/Root/Pos", ["root", *(float(v) for v in travel), *self._root_rot])
        msgs = [self._ok, osc_message("/VMC/Ext/T", [float(frame.t_show_s - self._t0)]), root]
        msgs.extend(osc_float_messages(self._bone_prefixes, np.concatenate([pos, rot], axis=1)[self._sent]))
        if frame.blendshapes:
            blend, skipped = _blend_messages(frame.blendshapes.items())
            msgs.extend(blend)
            self.blendshapes_skipped += skipped
        return msgs

    def send(self, frame: PoseFrame) -> int:
        """Send one frame (see :meth:`build_messages`); network errors are counted in :attr:`stats`, bad blend
        shapes in :attr:`blendshapes_skipped`.

        Args:
            frame: the pose.

        Returns:
            the number of datagrams the OS accepted (0 when the receiver is gone or after :meth:`close`).

        Raises:
            ValueError: only as :meth:`build_messages` (a value beyond float32); never for network trouble
                or blend shapes.
        """
        sent = self._transport.send_messages(self.build_messages(frame))
        self.frames_sent += 1
        return sent

    def set_logger(self, logger) -> None:
        """Where the transport's one send-error warning goes (:meth:`OSCUDPTransport.set_logger`)."""
        self._transport.set_logger(logger)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._transport.close()

    def __enter__(self) -> "VMCSender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _blend_messages(items: Iterable[tuple[str, float]]) -> tuple[list[bytes], int]:
    """Blend/Val messages (weights clamped to [0, 1], NaN/inf -> 0) and Blend/Apply; entries with a name that is
    not a str without NUL, or a weight that is not a real number, are skipped. Returns (messages, skipped)."""
    out = []
    skipped = 0
    for k, v in items:
        if not isinstance(k, str) or "\0" in k or not (is_weight(v) or _is_nonfinite(v)):
            skipped += 1
            continue
        w = min(max(v, 0.0), 1.0) if is_weight(v) else 0.0
        out.append(osc_message("/VMC/Ext/Blend/Val", [k, float(w)]))
    out.append(osc_message("/VMC/Ext/Blend/Apply", []))
    return out, skipped


def _is_nonfinite(v: object) -> bool:
    """True for a float NaN or +-inf (numpy floats too)."""
    return isinstance(v, float | np.floating) and not math.isfinite(v)
