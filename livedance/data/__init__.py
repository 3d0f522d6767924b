"""livedance.data: datasets and their loaders.

- :mod:`livedance.data.audio_io`: audio file reading and resampling.
- :mod:`livedance.data.tang`: raw loader of the Tang 2018 DANCE data (markers in metres).
- :mod:`livedance.data.tang_ik`: DANCE markers -> SMPL-X body rotations.
- :mod:`livedance.data.tang_align`: the motion-rate / song-offset study (``tang_alignment.json``).
- :mod:`livedance.data.split`: the train/val/test split (``tang_split.json``).
- :mod:`livedance.data.dataset`: :class:`MotionClip` and ``load_split`` (cached, on the song clock).
- :mod:`livedance.data.aistpp`: AIST++ motions, splits and music ids (safe pickle reading).

See docs/data.md.
"""
