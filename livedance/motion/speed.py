"""Speed perturbation of a dance together with its music (a training augmentation).

Ko et al. 2015 ("Audio augmentation for speech recognition", Interspeech, Sec. 2) resample the audio
by a factor r in {0.9, 1.0, 1.1}: tempo and pitch change together, and the model sees each utterance at
three speaking rates. Here the dance is resampled by the same r, so one training clip becomes the same
dance r times as fast to the same song r times as fast. With few dances per style (Tang: 2 cha-chas at
123-125 BPM in the train split) this shows the generator each style at more tempi than the data has
(r = 0.9 / 1.1 adds the cha-chas at about 112-113 and 137-138 BPM).

Frame k of the result (at the clip's own fps) is the original motion at frame k * r: rotations by
geodesic interpolation (slerp), root translation linearly (:func:`livedance.data.dataset.resample_motion`),
joint positions by FK. Song times divide by r: ``audio_offset_s / r``; the clip records r in
``audio_speed`` and :func:`livedance.model.conditioning.song_conditioning` plays the song r times as fast
(read at ``sr / r``, analysed as ``sr``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from livedance.errors import ConfigError

#: Accepted speed factors (the conditioning's limits).
MIN_SPEED, MAX_SPEED = 0.5, 2.0


def check_speed(speed: float) -> float:
    """``speed`` as a float after checking it is a factor in [0.5, 2] (1 = as recorded).

    Raises:
        ConfigError: outside [0.5, 2] or not finite.
    """
    r = float(speed)
    if not (np.isfinite(r) and MIN_SPEED <= r <= MAX_SPEED):
        raise ConfigError(f"speed {speed}: expected a factor in [{MIN_SPEED:g}, {MAX_SPEED:g}] (1 = as recorded)")
    return r


def speed_clip(clip, speed: float):
    """A :class:`~livedance.data.dataset.MotionClip` danced ``speed`` times as fast, to its song played as fast.

    Args:
        clip: the dance (``local_rotmats`` (T, 22, 3, 3), ``root_translation`` (T, 3) metres, at ``clip.fps``).
        speed: factor r in [0.5, 2]; r > 1 is faster (the result has about T / r frames).

    Returns:
        a new clip named ``<name>~x<r>`` with ``audio_speed`` = the clip's own times r, ``audio_offset_s``
        divided by r, (floor((T - 1) / r) + 1, ...) float32 rotations, translation and SMPL-24 positions
        (FK), same fps, skeleton, style, song file and beat-alignment flag. r = 1 returns ``clip`` itself.

    Raises:
        ConfigError: r outside [0.5, 2] or not finite.
    """
    from livedance.data.dataset import resample_motion, smpl24_positions

    r = check_speed(speed)
    if r == 1.0:
        return clip
    T = clip.num_frames
    u = np.minimum(np.arange(int(np.floor((T - 1) / r + 1e-9)) + 1) * r, T - 1)
    rot, trans = resample_motion(clip.local_rotmats, clip.root_translation, u)
    pos = smpl24_positions(rot, trans, clip.rest_offsets)
    return replace(clip, name=f"{clip.name}~x{r:g}", local_rotmats=rot, root_translation=trans, positions=pos,
                   audio_offset_s=clip.audio_offset_s / r, audio_speed=clip.audio_speed * r)
