"""livedance: a real-time music-to-dance performer.

Data flow (one direction, see DESIGN.md / docs/design.md)::

    audio source -> ring buffer -> streaming features -> generator step
        -> motion frames -> output clock -> sinks (VMC, raw OSC, BVH/npz, preview)

Subpackages follow that flow: :mod:`livedance.audio`, :mod:`livedance.features`,
:mod:`livedance.beats`, :mod:`livedance.model`, :mod:`livedance.engine`, :mod:`livedance.live`,
with :mod:`livedance.motion` (skeletons, FK, IK), :mod:`livedance.data` (datasets) and
:mod:`livedance.eval` (metrics) beside them. ``kernels/``, ``bridges/`` and ``calibration/`` at the
repository root install as :mod:`livedance.kernels`, :mod:`livedance.bridges` and
:mod:`livedance.calibration`.
"""

__version__ = "0.1.0"
