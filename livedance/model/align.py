"""SoulNet's music-dance alignment prior as a training loss of the generator.

SoulNet (Li et al., ICCV 2025, Sec. 3.3-3.4) pre-trains a music-motion retrieval model and uses it while training
its generator as a music-dance **alignment prior**: the generated dance is pushed towards the embedding of the music
it is danced to. Here the retrieval model is :class:`~livedance.model.retrieval.MusicDanceRetrieval` (frozen, the
one ``livedance eval`` reports MM-Dist / R@1 with), and the loss is added to the generator's teacher-forced
cross-entropy by ``livedance train generator --align-weight W``. Per training window (B windows of N token slots):

1. **Draw the dance the model would dance.** Where the generator predicted codes (the masked base-level positions
   of each chunk, and every residual level), a code is drawn from its logits at the sampling temperature T by
   straight-through Gumbel-softmax (Jang et al. 2017, Sec. 2.2; Bengio et al. 2013): the forward pass uses the
   one-hot code of the Gumbel-max draw, the backward pass the gradient of softmax((logits / T + g)). The residual
   levels are drawn level by level, each conditioned on the codes drawn below it (the residual head run again with
   them), as the engine samples them; unmasked base positions and the slots outside the chunks keep the dance's
   own codes.
2. **Decode it.** One-hot codes @ codebooks with the HRVQ hints (:meth:`Tokenizer.dequantize_onehot`), the
   tokenizer's decoder, the representation's decode and forward kinematics to SMPL-24 joints
   (:func:`smpl24_positions_torch`), then the retrieval model's motion features (:func:`motion_features_torch`,
   the torch twin of :func:`~livedance.model.retrieval.motion_window_features`). Everything is differentiable;
   the tokenizer and the retrieval model are frozen.
3. **Score it against the music.** ``windows`` windows of the retrieval model's length (100 frames = 4 s) per
   training window, placed where the decoder has its full context (after the first
   ``tokenizer.decoder_context_tokens`` slots), are embedded (m). The loss is InfoNCE (Oord et al. 2018, Eq. 4)
   of m against its own music window a and a bank of music windows b_j of the other train songs:

       L_align = -log [ exp(s cos(m, a)) / (exp(s cos(m, a)) + sum_j exp(s cos(m, b_j))) ]

   with s the retrieval members' mean learnt scale. The contrastive form asks the dance to be specific to its
   music, not merely close to it: session 17's sampling-time experiment (docs/model.md, "Does the dance change with
   the music?") found that plain similarity made the dances more alike, the contrastive form more varied.

The loss is ours in its details (SoulNet's generator, retrieval model and features differ); what is SoulNet's is the
pre-trained retrieval model as an alignment prior during training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from livedance.errors import ConfigError, DataError

__all__ = [
    "AlignConfig",
    "straight_through_sample",
    "smpl24_positions_torch",
    "motion_features_torch",
    "music_bank",
    "AlignmentLoss",
]


@dataclass(frozen=True)
class AlignConfig:
    """Settings of :class:`AlignmentLoss`.

    Attributes:
        weight: lambda, the loss's weight beside the cross-entropy (0 = off).
        temperature: sampling temperature T of the straight-through draws (the shipped sampling uses 0.6).
        windows: retrieval windows scored per training window.
        bank_hop_s: hop between the music windows of the negative bank, seconds.

    Raises:
        ConfigError: (on construction) a value out of range; the message names the field.
    """

    weight: float = 0.0
    temperature: float = 0.6
    windows: int = 2
    bank_hop_s: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ConfigError(f"AlignConfig.weight must be >= 0, got {self.weight}")
        if not self.temperature > 0:
            raise ConfigError(f"AlignConfig.temperature must be > 0, got {self.temperature}")
        if self.windows < 1:
            raise ConfigError(f"AlignConfig.windows must be >= 1, got {self.windows}")
        if not self.bank_hop_s > 0:
            raise ConfigError(f"AlignConfig.bank_hop_s must be > 0, got {self.bank_hop_s}")


def straight_through_sample(logits: Tensor, temperature: float) -> Tensor:
    """Straight-through Gumbel-softmax draw (Jang et al. 2017, Sec. 2.2).

    Args:
        logits: (..., C) float logits. temperature: T > 0 (the draw is from softmax(logits / T)).
    Returns:
        (..., C) float: exactly one-hot (the Gumbel-max code) in the forward pass; its gradient is that of
        softmax(logits / T + g), g the same Gumbel(0, 1) noise. Uses torch's global RNG.
    """
    g = -torch.log(-torch.log(torch.rand_like(logits).clamp(1e-10, 1.0 - 1e-7)))
    soft = torch.softmax(logits / float(temperature) + g, dim=-1)
    hard = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def smpl24_positions_torch(rep, x: Tensor) -> Tensor:
    """SMPL-24 joint positions of normalised features, differentiable (the torch twin of
    :func:`livedance.data.dataset.smpl24_positions` applied to :meth:`Representation.decode`).

    Args:
        rep: :class:`~livedance.model.representation.Representation`. x: (B, T, D) normalised features.
    Returns:
        (B, T, 24, 3) metres (float32 for float32 features), y up: the 22 SMPL-X body joints by FK, then the left and
        right hand at ``HAND_FRACTION`` of the forearm beyond each wrist along its rest bone axis.
    """
    from livedance.data.dataset import HAND_FRACTION
    from livedance.motion.fk import fk_torch
    from livedance.motion.skeleton import SMPLX_BODY_JOINT_NAMES, SMPLX_BODY_PARENTS

    rot, transl = rep.decode(x)
    off = np.asarray(rep.rest_offsets, np.float32)
    pos, grot = fk_torch(rot, transl, off, SMPLX_BODY_PARENTS, return_global_rotmats=True)
    hands = []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        w = SMPLX_BODY_JOINT_NAMES.index(f"{side}_wrist")
        bone = torch.tensor([sign * HAND_FRACTION * float(np.linalg.norm(off[w])), 0.0, 0.0], dtype=pos.dtype,
                            device=pos.device)
        hands.append(pos[..., w, :] + grot[..., w, :, :] @ bone)
    return torch.cat([pos, torch.stack(hands, dim=-2)], dim=-2)


def motion_features_torch(positions: Tensor, fps: float = 25.0) -> Tensor:
    """The retrieval model's per-frame motion features, differentiable (the torch twin of
    :func:`~livedance.model.retrieval.motion_window_features`; the two agree to float32 rounding, tested).

    Args:
        positions: (B, T, 24, 3) SMPL-24 joints, metres, y up, T >= 2. fps: frames per second.
    Returns:
        (B, T, 73) float32: joint velocities (m/s, central differences, one-sided at the ends as ``np.gradient``)
        turned into the heading frame (the hip line's yaw removed), then the pelvis height above the local floor (m;
        the lowest foot joint's grey opening over +-``floor_window_s``, edges repeated, as
        :func:`~livedance.model.representation.local_floor`).
    Raises:
        DataError: a wrong shape or fewer than 2 frames.
    """
    if positions.ndim != 4 or positions.shape[2:] != (24, 3) or positions.shape[1] < 2:
        raise DataError(f"motion positions: expected (B, T >= 2, 24, 3) SMPL-24 joints, got {tuple(positions.shape)}")
    p = positions
    inner = (p[:, 2:] - p[:, :-2]) / 2.0
    vel = torch.cat([p[:, 1:2] - p[:, :1], inner, p[:, -1:] - p[:, -2:-1]], dim=1) * float(fps)
    from livedance.model.representation import yaw_rotations

    across = p[:, :, 1] - p[:, :, 2]
    heading = yaw_rotations(torch.atan2(across[..., 2], across[..., 0]))  # as heading_rotations: hip line onto +x
    turned = torch.einsum("btij,btkj->btki", heading, vel)
    B, T = p.shape[:2]
    height = p[:, :, 0, 1] - local_floor_torch(p, fps)
    return torch.cat([turned.reshape(B, T, -1), height[..., None]], dim=-1)


def local_floor_torch(positions: Tensor, fps: float = 25.0) -> Tensor:
    """The torch twin of :func:`~livedance.model.representation.local_floor` (scipy's ``grey_opening``, mode
    "nearest": a minimum filter, then a maximum filter, each over 2 h + 1 frames, h = round(floor_window_s * fps)).

    Args:
        positions: (B, T, >=22, 3) joints, metres, y up, SMPL-X body order first. fps: frames per second.
    Returns:
        (B, T) floor heights, metres.
    """
    from livedance.model.representation import CONTACT_JOINTS, RepresentationConfig

    h = max(1, int(round(RepresentationConfig().floor_window_s * float(fps))))
    lowest = positions[:, :, list(CONTACT_JOINTS), 1].amin(dim=-1)[:, None]  # (B, 1, T)

    def pad(x: Tensor) -> Tensor:
        return F.pad(x, (h, h), mode="replicate")

    eroded = -F.max_pool1d(pad(-lowest), 2 * h + 1, stride=1)
    return F.max_pool1d(pad(eroded), 2 * h + 1, stride=1)[:, 0]


def music_bank(retrieval, music: list[np.ndarray], hop: int, songs: list[int] | None = None) -> tuple[Tensor, Tensor]:
    """Embeddings of every music window of the given clips (the negatives of :class:`AlignmentLoss`).

    Args:
        retrieval: :class:`~livedance.model.retrieval.MusicDanceRetrieval` (eval mode).
        music: per clip (T_i, music_dim) float32 music features at the model's fps. hop: frames between windows.
        songs: per clip, the id of its song (clips of one song, e.g. a dance and its mirrored copy, share it);
            default: each clip its own song.
    Returns:
        ``(bank (Nb, M * E) float32 unit embeddings, song (Nb,) int64 song id of each window)``.
    Raises:
        DataError: no clip is as long as one window, or ``songs`` does not name one song per clip.
    """
    W = retrieval.config.window
    songs = list(range(len(music))) if songs is None else [int(k) for k in songs]
    if len(songs) != len(music):
        raise DataError(f"alignment loss: {len(songs)} song ids for {len(music)} clips")
    rows, owner = [], []
    for i, m in enumerate(music):
        for s in range(0, len(m) - W + 1, max(int(hop), 1)):
            rows.append(m[s:s + W])
            owner.append(songs[i])
    if not rows:
        raise DataError(f"alignment loss: no training clip has {W} frames of music for one retrieval window")
    with torch.no_grad():
        x = torch.from_numpy(np.stack(rows).astype(np.float32))
        bank = torch.cat([retrieval.embed_music(x[k:k + 256]) for k in range(0, len(x), 256)])
    return bank, torch.as_tensor(owner, dtype=torch.int64)


class AlignmentLoss(nn.Module):
    """The alignment prior's loss on drawn codes (module docstring, steps 2 and 3).

    Args:
        tokenizer: :class:`~livedance.model.tokenizer.Tokenizer` the codes belong to. rep: its Representation.
        retrieval: :class:`~livedance.model.retrieval.MusicDanceRetrieval` (its ``fps`` must be the
            representation's).
        bank, bank_song: :func:`music_bank` of the training songs. config: :class:`AlignConfig`.

    The tokenizer and the retrieval model are frozen (``requires_grad`` off, eval mode; the module holds them, so
    ``.to(device)`` moves them with the bank); gradients flow only to the codes' one-hot vectors.

    Raises:
        ConfigError: the retrieval model's frame rate is not the representation's.
    """

    def __init__(self, tokenizer, rep, retrieval, bank: Tensor, bank_song: Tensor, config: AlignConfig) -> None:
        super().__init__()
        if abs(float(retrieval.config.fps) - float(rep.config.fps)) > 1e-6:
            raise ConfigError(f"alignment loss: the retrieval model runs at {retrieval.config.fps} fps, the "
                              f"representation at {rep.config.fps} fps")
        self.tokenizer, self.rep, self.retrieval, self.config = tokenizer.eval(), rep, retrieval.eval(), config
        for p in list(tokenizer.parameters()) + list(retrieval.parameters()):
            p.requires_grad_(False)
        self.register_buffer("bank", bank)
        self.register_buffer("bank_song", bank_song)
        self.scale = float(retrieval.logit_scale.exp().clamp(max=100.0).mean())

    def window_starts(self, n_frames: int, generator: torch.Generator | None = None) -> Tensor:
        """Random first frames of ``config.windows`` retrieval windows within frames decoded with full context.

        Args:
            n_frames: frames of the decoded training window. generator: RNG (default torch's global one).
        Raises:
            DataError: the training window is too short for one such retrieval window.
        """
        lo = self.tokenizer.decoder_context_tokens * self.tokenizer.stride
        hi = n_frames - self.retrieval.config.window
        if hi < lo:
            need = (lo + self.retrieval.config.window) / self.rep.config.fps
            raise DataError(f"alignment loss: training windows of {n_frames} frames are too short; it needs "
                            f"{lo + self.retrieval.config.window} frames ({need:.1f} s, --tokens "
                            f"{math.ceil((lo + self.retrieval.config.window) / self.tokenizer.stride)} or more)")
        return torch.randint(lo, hi + 1, (self.config.windows,), generator=generator)

    def forward(self, onehot: dict[str, Tensor], music: Tensor, song: Tensor,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """InfoNCE of the drawn dance against its music.

        Args:
            onehot: part -> (B, N, V, C) float one-hot codes (with straight-through gradients).
            music: (B, stride * N, music_dim) float32 music features of the window's frames.
            song: (B,) int64 song id of each window (the bank's windows of its own song are not negatives).
            generator: RNG for the retrieval windows' places (default torch's global one).
        Returns:
            ``{"loss": scalar, "acc": share of retrieval windows whose own music beats every bank window}``.
        """
        x = self.tokenizer.decode_latents(self.tokenizer.dequantize_onehot(onehot))  # (B, 4N, D)
        feats = motion_features_torch(smpl24_positions_torch(self.rep, x), self.rep.config.fps)
        W = self.retrieval.config.window
        starts = self.window_starts(feats.shape[1], generator)
        m_win = torch.cat([feats[:, s:s + W] for s in starts.tolist()])  # (B * windows, W, 73)
        a_win = torch.cat([music[:, s:s + W] for s in starts.tolist()])
        owner = song.repeat(len(starts))
        zm = self.retrieval.embed_motion(m_win)
        with torch.no_grad():
            za = self.retrieval.embed_music(a_win)
        pos = (zm * za).sum(-1, keepdim=True)
        neg = (zm @ self.bank.T).masked_fill(owner[:, None] == self.bank_song[None, :], float("-inf"))
        logits = self.scale * torch.cat([pos, neg], dim=1)
        loss = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.int64, device=logits.device))
        acc = (logits.argmax(1) == 0).float().mean().detach()
        return {"loss": loss, "acc": acc}
