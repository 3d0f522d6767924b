"""A test pattern for setting up a receiver before any model runs: a skeleton that sways and waves.

Run ``python -m livedance.bridges.demo vmc --host 127.0.0.1 --port 39539`` (or ``osc`` for raw OSC) and
watch the avatar in Unity/VSeeFace/Warudo/Unreal/TouchDesigner: the hips sway left and right, the
*character's left* arm waves above the head, the head nods once per beat at 120 BPM. If the wrong arm
waves, or it waves downwards, the receiver mirrors or the profile is wrong (see the setup guides).

The skeleton is a generic adult (pelvis 0.93 m high, arms along +-x, 0.17 m hands), in SMPL-X joint
order; its proportions are approximate, not SMPL-X's mean shape.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.spatial.transform import Rotation

from livedance.bridges.frame import NUM_JOINTS, SMPLX_JOINT_NAMES, PoseFrame, joint_index


def demo_rest_offsets() -> np.ndarray:
    """(55, 3) float32 approximate adult rest offsets in metres (T-pose, y up, left at +x, facing +z)."""
    off = {
        "pelvis": (0, 0.93, 0), "spine1": (0, 0.11, -0.01), "spine2": (0, 0.13, 0.01), "spine3": (0, 0.06, 0.01),
        "neck": (0, 0.21, -0.02), "head": (0, 0.09, 0.04), "jaw": (0, -0.02, 0.06),
        "left_eye_smplhf": (0.03, 0.06, 0.09), "right_eye_smplhf": (-0.03, 0.06, 0.09),
    }
    for s, side in ((1, "left"), (-1, "right")):
        off.update({
            f"{side}_hip": (s * 0.06, -0.09, 0), f"{side}_knee": (s * 0.04, -0.38, 0),
            f"{side}_ankle": (0, -0.40, -0.04), f"{side}_foot": (s * 0.02, -0.06, 0.12),
            f"{side}_collar": (s * 0.07, 0.11, -0.02), f"{side}_shoulder": (s * 0.11, 0.03, 0),
            f"{side}_elbow": (s * 0.26, 0, 0), f"{side}_wrist": (s * 0.25, 0, 0),
        })
        for k, (finger, z) in enumerate((("index", 0.025), ("middle", 0.005), ("ring", -0.015), ("pinky", -0.035))):
            off[f"{side}_{finger}1"] = (s * 0.09, 0, z)
            off[f"{side}_{finger}2"] = (s * 0.035, 0, 0)
            off[f"{side}_{finger}3"] = (s * 0.025, 0, 0)
        off[f"{side}_thumb1"] = (s * 0.025, -0.01, 0.03)
        off[f"{side}_thumb2"] = (s * 0.03, 0, 0.03)
        off[f"{side}_thumb3"] = (s * 0.02, 0, 0.02)
    return np.array([off[n] for n in SMPLX_JOINT_NAMES], dtype=np.float32)


def demo_frame(t: float, rest: np.ndarray, bpm: float = 120.0) -> PoseFrame:
    """The test pattern at time ``t``.

    Args:
        t: seconds (perf_counter clock); also the frame's ``t_show_s``.
        rest: (55, 3) rest offsets in metres (:func:`demo_rest_offsets`).
        bpm: tempo of the sway, wave and nod, beats per minute.

    Returns:
        the :class:`PoseFrame` (hips sway +-8 degrees and +-5 cm, left arm waves above the head, right
        arm down, head nods on each beat).
    """
    q = np.tile(np.array([0, 0, 0, 1.0]), (NUM_JOINTS, 1))
    beat = t * bpm / 60.0
    q[0] = Rotation.from_euler("z", 8 * math.sin(math.pi * beat / 2), degrees=True).as_quat()
    # character's left upper arm: raise above the head (about +z, +x -> +y) and wave
    wave = 75 + 20 * math.sin(2 * math.pi * beat / 2)
    q[joint_index("left_shoulder")] = Rotation.from_euler("z", wave, degrees=True).as_quat()
    q[joint_index("right_shoulder")] = Rotation.from_euler("z", 70, degrees=True).as_quat()  # right arm down
    nod = 12 * max(0.0, math.cos(2 * math.pi * beat)) ** 8
    q[joint_index("head")] = Rotation.from_euler("x", nod, degrees=True).as_quat()
    root = rest[0] + np.array([0.05 * math.sin(math.pi * beat / 2), 0, 0])
    return PoseFrame(t_show_s=t, local_quats=q, root_position=root, rest_offsets=rest)


def main(argv: list[str] | None = None) -> int:
    """``python -m livedance.bridges.demo {vmc,osc} [--host H] [--port P] [--profile NAME] [--seconds S]``."""
    import argparse

    from livedance.errors import LivedanceError

    ap = argparse.ArgumentParser(prog="python -m livedance.bridges.demo", description=__doc__.split("\n")[0])
    ap.add_argument("target", choices=["vmc", "osc"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=None, help="default 39539 (vmc) / 7000 (osc)")
    ap.add_argument("--profile", default="vrm0", help="avatar profile for vmc (vrm0, vrm1, mixamo, ue_mannequin, or a .json)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--fps", type=float, default=60.0)
    args = ap.parse_args(argv)
    try:
        if args.target == "vmc":
            from livedance.bridges.vmc import VMCSender

            sender = VMCSender(args.host, 39539 if args.port is None else args.port, profile=args.profile)
        else:
            from livedance.bridges.osc_raw import RawOSCSender

            sender = RawOSCSender(args.host, 7000 if args.port is None else args.port)
    except LivedanceError as err:
        print(f"error: {err}")
        return 2
    rest = demo_rest_offsets()
    period = 1.0 / args.fps
    t0 = time.perf_counter()
    next_t = t0
    with sender:
        while next_t - t0 < args.seconds:
            sender.send(demo_frame(next_t, rest))
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))
        print(f"sent {sender.frames_sent} frames, {sender.stats.datagrams_sent} datagrams, "
              f"{sender.stats.send_errors} send errors")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
