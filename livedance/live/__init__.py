"""livedance.live: the real-time loop behind ``livedance perform`` (see docs/perform.md).

* :class:`Performer` / :class:`PerformConfig`: the loop (feature thread, scheduler, output clock).
* :class:`Listener` / :class:`BeatSnapshot`: source -> streaming features + beat tracker.
* :class:`MotionTimeline`, :func:`slerp`: model frames on the stream clock, sampled by the clock.
* :class:`DeadlineClock`: drift-free fixed-rate ticks.
* :class:`BeatWarp`, :class:`WarpConfig`, :class:`MotionBeatDetector`: beat-synchronous playback warp of the
  learned dancer (its motion beats land on the music's beats).
* :class:`ProceduralGenerator`: the beat-synced procedural dancer (fallback, safe pose, on-beat intro).
* :class:`IntroConfig`, :class:`IntroGate`: the on-beat intro (procedural dancer first, then the learned one).
* :class:`StageConfig`, :class:`StageLeash`: keeps a travelling learned dancer within a radius of the stage centre.
* :class:`ControlState`, :class:`ControlServer`: live OSC controls.
* sinks: :class:`VMCSink`, :class:`RawOSCSink`, :class:`PreviewSink`, :class:`RecorderThread`,
  :func:`make_recorder`, :class:`SinkSet`.
"""

from livedance.live.clock import DeadlineClock
from livedance.live.controls import ControlServer, ControlState
from livedance.live.intro import IntroConfig, IntroGate
from livedance.live.listener import BeatSnapshot, Listener
from livedance.live.performer import PerformConfig, Performer, PerformStats
from livedance.live.procedural import ProceduralConfig, ProceduralGenerator
from livedance.live.rest import default_rest_offsets
from livedance.live.sinks import PreviewSink, RawOSCSink, RecorderThread, SinkSet, VMCSink, make_recorder
from livedance.live.stage import StageConfig, StageLeash
from livedance.live.timeline import MotionTimeline, slerp
from livedance.live.warp import BeatWarp, MotionBeatDetector, WarpConfig

__all__ = [
    "BeatSnapshot", "BeatWarp", "ControlServer", "ControlState", "DeadlineClock", "IntroConfig", "IntroGate", "Listener", "MotionBeatDetector", "MotionTimeline",
    "PerformConfig", "PerformStats", "Performer", "PreviewSink", "ProceduralConfig", "ProceduralGenerator",
    "RawOSCSink", "RecorderThread", "SinkSet", "StageConfig", "StageLeash", "VMCSink", "WarpConfig", "default_rest_offsets", "make_recorder", "slerp",
]
