"""Music-dance retrieval: a SoulNet-style contrastive music-motion model, as an alignment metric.

SoulNet (Li et al., ICCV 2025, "Music-Aligned Holistic 3D Dance Generation via Hierarchical Motion Modeling")
pre-trains a cross-modal retrieval model whose embedding space puts a dance window next to the music it
was danced to, and uses it as a music-dance alignment prior. Here it is the alignment **metric** of
``livedance eval`` (:mod:`livedance.eval.alignment`): BAS only asks whether motion beats sit on music beats,
and on the Tang data a real dance scores the same BAS on a wrong song as on its own (docs/eval.md); the
retrieval model asks whether the dance as a whole (its speed, its accents, its style) belongs to this music.

The model, top to bottom:

* Motion input, per frame at 25 fps (:func:`motion_window_features`): the 24 SMPL-24 joints' velocities in the
  pelvis's heading frame (m/s; the yaw of the hip line removed, so a dancer's facing and travel direction do not
  matter) and the pelvis height above the local floor (m; :func:`~livedance.model.representation.local_floor`, as the
  representation's root height: the Tang floor drifts by up to 45 cm within a take, and a generated dance's floor is
  at 0, so the world height would be a cue that only real dances carry): 73 numbers. Poses themselves are left out: with 26 training dances a pose
  identifies its dance, and a model that reads poses learns the 26 dances by heart (a first trial with poses: train
  R@1 0.89, val R@1 0.05-0.18 among 32, chance 0.03).
* Music input, per frame (:func:`music_window_features`): the rhythm part of the streaming features
  (:class:`~livedance.features.FeatureConfig` layout without the log-mel bands: onset strength, band onsets,
  Danceba's STFT-phase rhythm bank) and the beat tracker's state (sin / cos of the beat phase, log2(bpm / 120),
  confidence). The log-mel bands identify a song (timbre), so they are left out for the same reason.
* Two :class:`WindowEncoder` (a linear layer, three stride-2 temporal convolutions, mean and max pooling, a
  linear projection, L2 normalisation) map a window of W frames (default 100 = 4 s) to a unit vector of E numbers.
* An ensemble of M such pairs (``members``, default 3), each from its own initialisation: the embedding is the M
  unit vectors concatenated and divided by sqrt(M), again a unit vector, whose dot products are the mean of the
  members' cosine similarities. On 26 training dances one model's judgement of a generated dance depends on its
  training seed (docs/eval.md, "Music-dance retrieval"); the mean of three is steadier.
* Training (:mod:`livedance.model.train_retrieval`): the symmetric InfoNCE loss of CLIP (Radford et al. 2021,
  Figure 3's pseudo-code) of each member, with a learnt temperature, averaged over the members; windows of the
  same song (the same dance, or another dance to that song) are not used as each other's negatives.

Inputs are z-normalised with the train split's statistics, kept as buffers, so the safetensors file holds
everything the model needs. The loss's mask is per song, not per dance: AIST++ has several dances to one song.
The architecture and inputs are ours (SoulNet's retrieval model reads other features); what is SoulNet's is the
idea of a pre-trained music-motion embedding as the judge of alignment.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from livedance.errors import ConfigError, DataError

__all__ = [
    "MOTION_DIM",
    "MOTION_FEATURES_VERSION",
    "RETRIEVAL_FORMAT",
    "RetrievalConfig",
    "WindowEncoder",
    "MusicDanceRetrieval",
    "PairedClip",
    "paired_clip",
    "heading_rotations",
    "motion_window_features",
    "music_window_features",
    "music_dim",
]

#: Weights format name checked on load.
RETRIEVAL_FORMAT = "livedance.retrieval"
#: Version of :func:`motion_window_features` the weights were trained on (1: the pelvis's world height, before
#: session 24; 2: its height above the local floor). Weights of another version are refused on load.
MOTION_FEATURES_VERSION = 2
#: Motion features per frame: 24 joint velocities (x, y, z) and the pelvis height.
MOTION_DIM = 24 * 3 + 1
#: Beat-state numbers appended to the music features: sin / cos of the beat phase, log2(bpm / 120), confidence.
_BEAT_DIM = 4


def music_dim() -> int:
    """Music features per frame: the rhythm part of the default feature layout plus the 4 beat-state numbers."""
    from livedance.features import FeatureConfig

    cfg = FeatureConfig()
    return cfg.feature_dim - cfg.n_mels + _BEAT_DIM


@dataclass(frozen=True)
class RetrievalConfig:
    """Shape of :class:`MusicDanceRetrieval`.

    Attributes:
        window: frames per window (at ``fps``); 100 = 4 s at 25 fps. Must be >= 8 (three stride-2 convolutions).
        fps: frame rate of both inputs, frames per second.
        d_model: channels of the encoders' convolutions.
        embed_dim: size of each member's unit embedding (the ensemble's is ``members * embed_dim``).
        members: encoder pairs in the ensemble (>= 1).
        dropout: dropout on the encoders' input projections while training (none at inference).
        motion_dim, music_dim: input features per frame (see the module docstring).
        motion_features: the :data:`MOTION_FEATURES_VERSION` of the motion features (weights without it are 1).

    Raises:
        ConfigError: (on construction) a value out of range; the message names the field.
    """

    window: int = 100
    fps: float = 25.0
    d_model: int = 64
    embed_dim: int = 64
    members: int = 3
    dropout: float = 0.3
    motion_dim: int = MOTION_DIM
    music_dim: int = 0  # 0: music_dim() of the default feature layout
    motion_features: int = MOTION_FEATURES_VERSION

    def __post_init__(self) -> None:
        if self.music_dim == 0:
            object.__setattr__(self, "music_dim", music_dim())
        if self.window < 8:
            raise ConfigError(f"RetrievalConfig.window must be >= 8 frames, got {self.window}")
        if not self.fps > 0:
            raise ConfigError(f"RetrievalConfig.fps must be > 0, got {self.fps}")
        for name in ("d_model", "embed_dim", "members", "motion_dim", "music_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"RetrievalConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"RetrievalConfig.dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the weights' config)."""
        return asdict(self)


class WindowEncoder(nn.Module):
    """A window of per-frame features to a unit embedding (one modality's tower of a CLIP-style dual encoder,
    Radford et al. 2021, with a temporal-convolution body).

    ``Linear(in, d) -> dropout -> 3 x [Conv1d(d, d, 5, stride 2) -> GELU] -> [mean, max] over time -> Linear(2d, E)
    -> L2 normalise``.

    Args:
        in_dim: features per frame. d_model: convolution channels. embed_dim: E. dropout: on the input projection.
    """

    def __init__(self, in_dim: int, d_model: int, embed_dim: int, dropout: float) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, d_model)
        self.drop = nn.Dropout(dropout)
        self.convs = nn.ModuleList([nn.Conv1d(d_model, d_model, 5, stride=2, padding=2) for _ in range(3)])
        self.out = nn.Linear(2 * d_model, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, W, in_dim) float32 normalised features -> (B, E) float32 unit vectors."""
        h = self.drop(self.inp(x)).transpose(1, 2)
        for conv in self.convs:
            h = F.gelu(conv(h))
        return F.normalize(self.out(torch.cat([h.mean(-1), h.amax(-1)], dim=-1)), dim=-1)


class MusicDanceRetrieval(nn.Module):
    """The contrastive music-dance model, an ensemble of ``config.members`` encoder pairs (see the module docstring).

    Parameters ``motion.<m>.*`` / ``music.<m>.*`` and ``logit_scale`` (M,) are member m's. Buffers ``motion_mean`` / ``motion_std`` (motion_dim,) and ``music_mean`` / ``music_std`` (music_dim,) hold the
    train split's feature statistics (:meth:`set_stats`); the encoders see z-normalised inputs.
    """

    def __init__(self, config: RetrievalConfig | None = None) -> None:
        super().__init__()
        c = self.config = config if config is not None else RetrievalConfig()
        self.motion = nn.ModuleList([WindowEncoder(c.motion_dim, c.d_model, c.embed_dim, c.dropout) for _ in range(c.members)])
        self.music = nn.ModuleList([WindowEncoder(c.music_dim, c.d_model, c.embed_dim, c.dropout) for _ in range(c.members)])
        self.logit_scale = nn.Parameter(torch.full((c.members,), math.log(1.0 / 0.07)))
        for name, dim in (("motion", c.motion_dim), ("music", c.music_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))

    def set_stats(self, motion: np.ndarray, music: np.ndarray) -> None:
        """Store the normalisation statistics (mean, std + 1e-4) of (N, motion_dim) motion and (M, music_dim) music
        frames (any float dtype; N, M >= 1).

        Raises:
            ConfigError: no frames, or a width other than the config's.
        """
        for name, x in (("motion", motion), ("music", music)):
            x = np.asarray(x, np.float64)
            width = getattr(self.config, f"{name}_dim")
            if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != width:
                raise ConfigError(f"retrieval {name} statistics: expected (N >= 1, {width}) frames, got {x.shape}")
            getattr(self, f"{name}_mean").copy_(torch.from_numpy(x.mean(0)).float())
            getattr(self, f"{name}_std").copy_(torch.from_numpy(x.std(0) + 1e-4).float())

    def _members(self, encoders: nn.ModuleList, x: Tensor) -> Tensor:
        return torch.stack([enc(x) for enc in encoders], dim=1)  # (B, M, E), each a unit vector

    def embed_motion(self, motion: Tensor) -> Tensor:
        """(B, W, motion_dim) float32 raw motion features -> (B, M * E) float32 unit embeddings (the members'
        concatenated / sqrt M, so a dot product is the members' mean cosine)."""
        z = self._members(self.motion, (motion - self.motion_mean) / self.motion_std)
        return z.flatten(1) / math.sqrt(z.shape[1])

    def embed_music(self, music: Tensor) -> Tensor:
        """(B, W, music_dim) float32 raw music features -> (B, M * E) float32 unit embeddings (as
        :meth:`embed_motion`)."""
        z = self._members(self.music, (music - self.music_mean) / self.music_std)
        return z.flatten(1) / math.sqrt(z.shape[1])

    def forward(self, motion: Tensor, music: Tensor, clip: Tensor) -> dict[str, Tensor]:
        """Symmetric InfoNCE over a batch of paired windows.

        Args:
            motion: (B, W, motion_dim) float32; music: (B, W, music_dim) float32, row i danced to row i.
            clip: (B,) int64 song index of each pair; pairs with the same index are not negatives of each other
                (another window of the same dance, or another dance to the same song, is not a wrong pairing).

        Returns:
            ``{"loss": the members' mean loss, "acc": share of motion windows whose own music the ensemble scores
            highest}``.
        """
        zm = self._members(self.motion, (motion - self.motion_mean) / self.motion_std)
        za = self._members(self.music, (music - self.music_mean) / self.music_std)
        cos = torch.einsum("ime,jme->mij", zm, za)  # (M, B, B)
        same = (clip[:, None] == clip[None, :]) & ~torch.eye(len(clip), dtype=torch.bool, device=clip.device)
        logits = (self.logit_scale.exp().clamp(max=100.0)[:, None, None] * cos).masked_fill(same, -1e4)
        target = torch.arange(len(clip), device=clip.device).repeat(len(logits))
        flat, flat_t = logits.reshape(-1, len(clip)), logits.transpose(1, 2).reshape(-1, len(clip))
        loss = 0.5 * (F.cross_entropy(flat, target) + F.cross_entropy(flat_t, target))
        mean_cos = cos.mean(0).masked_fill(same, -2.0)
        acc = (mean_cos.argmax(1) == target[:len(clip)]).float().mean().detach()
        return {"loss": loss, "acc": acc}

    def save(self, stem: str | Path, extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
        """Write ``<stem>.safetensors`` and ``<stem>.json`` (format :data:`RETRIEVAL_FORMAT`); returns the two paths.

        Raises:
            OSError: the folder cannot be written.
        """
        from livedance.model.checkpoint import save_weights

        return save_weights(stem, self.state_dict(), RETRIEVAL_FORMAT, self.config.to_dict(), extra)

    @classmethod
    def load(cls, stem: str | Path | None = None) -> tuple["MusicDanceRetrieval", dict[str, Any]]:
        """Load weights (default: the shipped ``livedance/weights/retrieval.*``), in eval mode.

        Args:
            stem: weights stem; a ``.json`` / ``.safetensors`` suffix is accepted (:func:`~livedance.model.checkpoint.weight_paths`).
        Returns:
            ``(model, json_doc)``: the model and its JSON (config, training record, val figures).

        Raises:
            WeightsError: missing, corrupt or mismatched files, or weights made for another feature layout (the
                message names the file and the mismatch).
        """
        from livedance.errors import WeightsError
        from livedance.model.checkpoint import WEIGHTS_DIR, load_state_into, load_weights, weight_paths

        stem = Path(stem) if stem is not None else WEIGHTS_DIR / "retrieval"
        state, doc = load_weights(stem, RETRIEVAL_FORMAT)
        st_path, js_path = weight_paths(stem)
        try:
            config = RetrievalConfig(**{"motion_features": 1, **doc["config"]})  # (absent: weights before version 2)
        except (TypeError, KeyError, ConfigError) as e:
            raise WeightsError(f"{js_path}: bad retrieval config ({e})") from None
        if config.motion_features != MOTION_FEATURES_VERSION:
            raise WeightsError(f"{js_path}: motion features version {config.motion_features}, but today's are "
                               f"{MOTION_FEATURES_VERSION} (the pelvis height above the local floor, not in the world); "
                               "retrain with `livedance train retrieval`")
        for name, want in (("motion_dim", MOTION_DIM), ("music_dim", music_dim())):
            if getattr(config, name) != want:
                raise WeightsError(f"{js_path}: {name} {getattr(config, name)}, but today's features give {want} "
                                   "per frame; retrain with `livedance train retrieval`")
        model = cls(config)
        load_state_into(model, state, st_path)
        return model.eval(), doc


def heading_rotations(positions: np.ndarray) -> np.ndarray:
    """Rotations about y that turn each frame's hip line onto the x axis (the dancer faces +z).

    Args:
        positions: (T, 24, 3) SMPL-24 joint positions, metres, y up (joint 1 left hip, joint 2 right hip).
    Returns:
        (T, 3, 3) float64 rotation matrices R_t with R_t (l_hip - r_hip) along +x (up to its vertical part); a hip
        line with no horizontal part gives the identity.
    Raises:
        DataError: not (T, J >= 3, 3) (SMPL-24 joints expected).
    """
    p = np.asarray(positions, np.float64)
    if p.ndim != 3 or p.shape[1] < 3 or p.shape[2] != 3:
        raise DataError(f"heading rotations: expected (T, 24, 3) joint positions, got {p.shape}")
    across = p[:, 1] - p[:, 2]
    from livedance.model.representation import yaw_rotations_np

    return yaw_rotations_np(np.arctan2(across[:, 2], across[:, 0]))  # minus the hip line's angle from +x about +y


def motion_window_features(positions: np.ndarray, fps: float = 25.0) -> np.ndarray:
    """Per-frame motion features of a dance: joint velocities in the heading frame and the pelvis height above the
    local floor (:data:`MOTION_FEATURES_VERSION` 2).

    Args:
        positions: (T, 24, 3) SMPL-24 joint positions, metres, y up, at ``fps`` (T >= 2).
        fps: frames per second.
    Returns:
        (T, 73) float32: 72 velocities (m/s, central differences, turned by :func:`heading_rotations`), then the
        pelvis height above :func:`~livedance.model.representation.local_floor` at ``fps`` (m).
    Raises:
        DataError: wrong shape, fewer than 2 frames, or non-finite values.
    """
    p = np.asarray(positions, np.float64)
    if p.ndim != 3 or p.shape[1:] != (24, 3) or p.shape[0] < 2:
        raise DataError(f"motion positions: expected (T >= 2, 24, 3) SMPL-24 joints, got {p.shape}")
    if not np.isfinite(p).all():
        raise DataError("motion positions: NaN or inf values")
    from livedance.model.representation import RepresentationConfig, local_floor

    vel = np.gradient(p, axis=0) * float(fps)
    vel = np.einsum("tij,tkj->tki", heading_rotations(p), vel)
    height = p[:, 0, 1] - local_floor(p, RepresentationConfig(fps=float(fps)))
    return np.concatenate([vel.reshape(len(p), -1), height[:, None]], axis=1).astype(np.float32)


def music_window_features(cond: Any, times_s: np.ndarray) -> np.ndarray:
    """Per-frame music features at the given song times.

    Args:
        cond: a song's :class:`~livedance.model.conditioning.SongConditioning` (features from song time 0 and the
            causal beat track).
        times_s: (T,) float64 song times, seconds, ascending (a dance's frame times; may start before 0).
    Returns:
        (T, music_dim()) float32: the rhythm features of the last feature frame at or before each time (the
        log-mel bands dropped; zeros, i.e. silence, before the first frame), then sin / cos of the tracker's beat
        phase extrapolated from its last snapshot to the time (as ``BeatTracker.beat_phase`` does), log2(bpm / 120)
        and its confidence (all four 0 before a tempo is known).
    Raises:
        DataError: the song's analysis does not reach the last time.
    """
    from livedance.features import FeatureConfig
    from livedance.model.conditioning import beat_state_before, check_song_span, feature_index_before, slot_condition

    t = np.asarray(times_s, np.float64)
    if t.size:
        check_song_span(cond, float(t[-1]), "music features")
    idx = feature_index_before(cond.feature_times_s, t)
    mel = FeatureConfig().slices["logmel"]
    rhythm = np.delete(cond.features[np.maximum(idx, 0)], np.arange(mel.start, mel.stop), axis=1)
    rhythm[idx < 0] = 0.0  # before the first feature frame nothing has been heard
    snap_t, bpm, phase, conf = beat_state_before(cond.beats, t)
    # the generator's beat condition of a one-frame slot at the frame's time: sin, cos, log2(bpm / 120), confidence
    beat = slot_condition(bpm, phase, np.where(bpm > 0, conf, 0.0), snap_t, t, stride=1)
    return np.concatenate([rhythm, beat], axis=1).astype(np.float32)


@dataclass
class PairedClip:
    """A dance and its music as per-frame retrieval features (see :mod:`livedance.model.retrieval`).

    Attributes:
        name: the dance. motion: (T, motion_dim) float32. music: (T, music_dim) float32, frame-aligned.
        song: key of the song (pairs with the same key are never each other's negatives: AIST++ has several
            dances to one song); empty = the pair's own song.
    """

    name: str
    motion: np.ndarray
    music: np.ndarray
    song: str = ""

    @property
    def song_key(self) -> str:
        """:attr:`song`, or the dance's name when no song key was given."""
        return self.song or f"dance:{self.name}"


def paired_clip(name: str, positions: np.ndarray, fps: float, audio_path: str | Path, audio_offset_s: float) -> PairedClip:
    """Features of one dance and the music it is paired with, cut at the song's end.

    Args:
        name: shown in errors. positions: (T, 24, 3) SMPL-24 joints, metres, at ``fps`` frames per second.
        audio_path: the song; audio_offset_s: song time of frame 0, seconds (frame f is at offset + f / fps).
    Returns:
        :class:`PairedClip` with the frames up to the song's end (a dance that goes on after its song has no music to
        be paired with there; the analysis covers the whole song, :func:`~livedance.model.conditioning.song_conditioning`).
    Raises:
        DataError: bad positions, or fewer than 2 frames before the song ends (the message gives both times).
        AudioError: missing or unreadable song.
    """
    from livedance.model.conditioning import song_conditioning

    positions = np.asarray(positions)
    times = float(audio_offset_s) + np.arange(len(positions)) / float(fps)
    cond = song_conditioning(audio_path)
    n = int(np.searchsorted(times, cond.duration_s, side="right"))  # a dance beyond its song's end has no music
    if n < 2 and len(positions) >= 2:
        raise DataError(f"{name}: the song {audio_path} ends at {cond.duration_s:.2f} s, the dance starts at "
                        f"{float(audio_offset_s):.2f} s (song time): no music to pair it with")
    try:
        motion = motion_window_features(positions[:n], fps)
        music = music_window_features(cond, times[:n])
    except DataError as e:
        raise DataError(f"{name} (song {audio_path}, {cond.duration_s:.2f} s): {e}") from None
    return PairedClip(name, motion, music, str(Path(audio_path).resolve()))
