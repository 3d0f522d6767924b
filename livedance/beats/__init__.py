"""livedance.beats: causal beat and tempo tracking, and tempo from the DJ (Ableton Link).

- :class:`BeatTracker` / :class:`TrackerConfig` (:mod:`livedance.beats.tracker`): live audio in,
  :class:`BeatEvent` out, announced ahead of time; tempo, confidence, beat phase, next beats.
- :class:`LinkBeatGrid` (:mod:`livedance.beats.link`): an Ableton Link session as a beat grid.
- :class:`BeatGrid` and :class:`PreferLink` (:mod:`livedance.beats.grid`): the interface both share,
  and the switch that lets the DJ's Link tempo override the estimate.
- :mod:`livedance.beats.scoring`: causal scoring (announced times, mir_eval F-measure, start-up).
- :mod:`livedance.beats.bank`: the comb-resonator bank behind the optional multi-hypothesis tempo
  selection (``TempoConfig.bank_gamma``).

Heavy or optional imports (aubio, soxr, aalink) happen when the objects are created.
"""

from livedance.beats.grid import BeatEvent, BeatGrid, PreferLink
from livedance.beats.tempo import TempoConfig
from livedance.beats.tracker import BeatTracker, TrackerConfig, track


def __getattr__(name: str):  # lazy: aalink is only needed for Link
    if name == "LinkBeatGrid":
        from livedance.beats.link import LinkBeatGrid

        return LinkBeatGrid
    raise AttributeError(name)


__all__ = ["BeatEvent", "BeatGrid", "BeatTracker", "LinkBeatGrid", "PreferLink", "TempoConfig", "TrackerConfig", "track"]
