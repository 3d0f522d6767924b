"""Training of the dance generator on the Tang 2018 train split (weights I/O shared with the baseline).

Data (:func:`prepare_clips`): per train clip, the tokenizer codes of its motion (the representation is
heading-invariant, so no heading augmentation is needed), and per token slot n (first frame at song time ``t_n = audio_offset_s + 4 n / 25``):

* the indices of the W audio feature frames ending at the last frame with time <= ``t_n - lag_s``
  (frames before the song's first are replaced by frame 0, as the engine does at a stream's start; a slot with
  no frame at or before ``t_n - lag_s`` gets an all-zero window, as the engine's empty buffer does);
* the beat condition from the CAUSAL :class:`~livedance.beats.BeatTracker` run over the song, in its
  state at the last hop ending at or before ``t_n - lag_s``, extrapolated to the slot's frames
  (:func:`livedance.model.conditioning.slot_condition`);
* the chunk head's conditions of a chunk starting at slot n: slots n .. n+K-1 all extrapolated from the
  tracker state at ``t_n - lag_s`` (``cond_chunk``), as the engine computes them at the chunk's step (before
  session 21, slot n+k used its own ``t_{n+k} - lag_s``: beat information the engine does not have yet).

:class:`TokenWindowDataset` cuts windows of ``tokens`` consecutive slots (hop ``hop`` slots). The loop
is the shared :class:`livedance.model.trainer.Trainer` (AdamW, cosine LR over max(step, time)
progress, resumable safetensors checkpoints, DDP).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from livedance.errors import ConfigError, DataError, WeightsError
from livedance.model.conditioning import (
    beat_state_before,
    feature_index_before,
    slot_condition,
    song_conditioning,
)

__all__ = [
    "ClipTokens",
    "prepare_clips",
    "continuity_term",
    "drawn_codes",
    "fixed_batches",
    "slot_inputs",
    "TokenWindowDataset",
    "clip_style",
    "style_balanced_index",
    "GeneratorRunConfig",
    "load_tokenizer_for_training",
    "run_training",
]


@dataclass
class ClipTokens:
    """One training clip as generator inputs.

    Attributes:
        name: sequence name.
        codes: (1, N, P, V) int64 codes.
        features: (F, feat_dim) float32 audio features of the song from song time 0 (from :func:`prepare_clips`:
            F + 1 rows, the last the silent row, :attr:`silent_row`).
        window_index: (N, W) int64 rows of ``features`` feeding each slot.
        cond: (N, cond_dim) float32 beat conditions of the slots.
        music: (stride * N, music_dim) float32 retrieval-model music features of the slots' frames
            (:func:`~livedance.model.retrieval.music_window_features`), for the alignment loss; None without it.
        song: the clip's song (its audio path): a mirrored or speed-perturbed copy of a dance shares it, and the
            alignment loss never uses a window's own song as its negative. None: the clip's name stands for it.
        pace: (N,) float32 pace codes of the slots (:func:`livedance.model.pace.slot_pace_codes`; also the last
            column of ``cond``), or None when the generator has no pace input.
        cond_chunk: (N, K, cond_dim) float32: the chunk head's conditions of a chunk starting at slot n (all K
            slots from the tracker state at ``t_n - lag``, as the engine has them); None: ``cond`` is used.
        silent_row: index of an all-zero row appended to ``features`` (the window of a slot that has heard no
            feature frame yet, :func:`slot_inputs`); :func:`feature_stats` leaves it out. None: no such row.
    """

    name: str
    codes: np.ndarray
    features: np.ndarray
    window_index: np.ndarray
    cond: np.ndarray
    music: np.ndarray | None = None
    song: str | None = None
    pace: np.ndarray | None = None
    cond_chunk: np.ndarray | None = None
    silent_row: int | None = None


def slot_inputs(song, slot_times_s: np.ndarray, window: int, lag_s: float, fps: float = 25.0, stride: int = 4,
                chunk: int | None = None):
    """Window indices and beat conditions for slots starting at ``slot_times_s`` (song seconds).

    Args:
        song: :class:`~livedance.model.conditioning.SongConditioning`.
        slot_times_s: (N,) float64 times of the slots' first frames.
        window: W. lag_s: audio lag, seconds.
        fps, stride: frames per second and per token.
        chunk: K; when given, also the chunk head's conditions (see the returns).
    Returns:
        ``(window_index (N, W) int64, cond (N, 10) float32)``, and with ``chunk`` a third item
        ``cond_chunk (N, K, 10) float32``: for a chunk starting at slot n, slots n .. n+K-1 extrapolated from
        the tracker state at ``t_n - lag_s`` (what the engine computes at that step; ``cond_chunk[:, 0] == cond``).
        A window reaching before the song's first frame repeats frame 0; the window of a slot with no frame at
        or before ``t - lag_s`` is all index F = ``song.features.shape[0]``, one past the song's frames: the
        caller's silent (all-zero) row, which the engine gives while its feature buffer is empty
        (:meth:`livedance.engine.learned.LearnedGenerator.window_before`; :func:`prepare_clips` appends that row).
    """
    last = feature_index_before(song.feature_times_s, slot_times_s - lag_s)
    F = song.features.shape[0]
    idx = np.clip(last[:, None] + np.arange(-window + 1, 1)[None, :], 0, max(F - 1, 0))
    idx[last < 0] = F  # nothing heard yet: the silent row
    ref_t, bpm, phase, conf = beat_state_before(song.beats, slot_times_s - lag_s)
    cond = slot_condition(bpm, phase, conf, ref_t, slot_times_s, fps, stride)
    if chunk is None:
        return idx.astype(np.int64), cond
    ahead = np.stack([cond] + [slot_condition(bpm, phase, conf, ref_t, slot_times_s + k * stride / fps, fps, stride)
                               for k in range(1, int(chunk))], axis=1).astype(np.float32)
    return idx.astype(np.int64), cond, ahead


def prepare_clips(clips: Sequence[Any], tokenizer, rep, window: int, lag_s: float,
                  align_music: bool = False, pace: bool = False, chunk: int | None = None) -> list[ClipTokens]:
    """Tokenize clips and compute their causal music inputs (see the module docstring).

    Args:
        clips: :class:`~livedance.data.dataset.MotionClip` list.
        tokenizer: :class:`~livedance.model.tokenizer.Tokenizer` (eval mode). rep: its Representation.
        window: W. lag_s: audio lag, seconds.
        align_music: also compute each clip's retrieval-model music features (``ClipTokens.music``).
        pace: also give each slot the real dance's pace code (``ClipTokens.pace``), appended to ``cond`` as its last
            column (the generator's pace input, :mod:`livedance.model.pace`).
        chunk: the generator's K: also compute ``ClipTokens.cond_chunk`` (the chunk head's conditions as the engine
            has them); None (the baseline, one slot per step) leaves it None.
    Returns:
        list of :class:`ClipTokens`.
    Raises:
        DataError / AudioError: missing songs or clips too short for one token.
    """
    from livedance.model.train_tokenizer import clip_raw_features

    out = []
    raws = clip_raw_features(clips, rep.config)
    for clip, raw in zip(clips, raws):
        song = song_conditioning(clip.audio_path, duration_s=clip.audio_offset_s + clip.num_frames / clip.fps + 1.0,
                                 speed=clip.audio_speed)
        x = rep.normalize(torch.from_numpy(np.ascontiguousarray(raw, np.float32)))
        with torch.no_grad():
            codes = tokenizer.encode(x[None])
        c = torch.stack([codes[p] for p in tokenizer.config.parts], dim=2).numpy()  # (1, N, P, V)
        N = c.shape[1]
        t = clip.audio_offset_s + np.arange(N) * tokenizer.stride / clip.fps
        got = slot_inputs(song, t, window, lag_s, clip.fps, tokenizer.stride, chunk)
        idx, cond = got[0], got[1]
        cond_chunk = got[2] if chunk is not None else None
        codes_pace = None
        if pace:
            from livedance.model.pace import slot_pace_codes

            codes_pace = slot_pace_codes(clip.positions, clip.fps, tokenizer.stride, N)
            cond = np.concatenate([cond, codes_pace[:, None]], axis=1).astype(np.float32)
            if cond_chunk is not None:  # the engine gives one pace to all K slots of a step: slot n's
                col = np.broadcast_to(codes_pace[:, None, None], cond_chunk.shape[:2] + (1,))
                cond_chunk = np.concatenate([cond_chunk, col], axis=2).astype(np.float32)
        music = None
        if align_music:
            from livedance.model.retrieval import music_window_features

            from livedance.model.conditioning import check_song_span

            check_song_span(song, clip.audio_offset_s + (clip.num_frames - 1) / clip.fps, f"{clip.name}: music features")
            # only the last token's padding frames may run past the song's end: they hear its last moment
            t_f = np.minimum(clip.audio_offset_s + np.arange(N * tokenizer.stride) / clip.fps, song.duration_s)
            music = music_window_features(song, t_f)
        F = song.features.shape[0]
        feats = np.concatenate([song.features, np.zeros((1, song.features.shape[1]))]).astype(np.float32)
        out.append(ClipTokens(clip.name, c.astype(np.int64), feats, idx, cond, music, str(clip.audio_path),
                              codes_pace, cond_chunk, silent_row=F))
    return out


def clip_style(name: str) -> str:
    """The dance style of a training clip, from its name.

    Tang names ``DANCE_<C|R|T|W>_<n>`` give ``cha-cha`` / ``rumba`` / ``tango`` / ``waltz``
    (:func:`livedance.data.tang.style_of`); AIST++ names ``g<genre>_s..._d..._m..._ch..`` give the genre
    code (``gBR`` ..., :func:`livedance.data.aistpp.genre`); a ``~mirror`` / ``~x<speed>`` suffix
    (:func:`livedance.motion.mirror.mirror_clip`, :func:`livedance.motion.speed.speed_clip`) is ignored.

    Raises:
        DataError: a name of neither form (the AIST++ reader's message for a name starting with ``g``, else
            the Tang reader's).
    """
    from livedance.data.aistpp import genre
    from livedance.data.tang import style_of

    base = name.split("~", 1)[0]
    return genre(base) if base.startswith("g") else style_of(base)


def style_balanced_index(index: Sequence[tuple], styles: Sequence[str], balance: float) -> list[tuple]:
    """Repeat the training windows of the rarer styles ("temperature" sampling of multilingual NMT).

    With n_s windows of style s and balance b in [0, 1], style s is drawn in proportion to n_s^(1 - b):
    b = 0 keeps the data's own shares, b = 1 draws every style equally often (Arivazhagan et al. 2019,
    "Massively multilingual NMT", Sec. 4.2, p_s ~ n_s^(1/T) with 1/T = 1 - b). It is realised without a
    weighted sampler (so the shared :class:`~livedance.model.trainer.Trainer`'s shuffling, resume and DDP
    stay as they are): style s keeps round(n_s (n_max / n_s)^b) windows, its own n_s windows each
    repeated as evenly as that count allows, in order.

    Args:
        index: the dataset's windows, each a tuple whose first item is the clip index.
        styles: style of each clip (indexed by the tuples' first item).
        balance: b in [0, 1].
    Returns:
        the new window list (a superset of ``index`` with repeats; ``index`` itself for b = 0).
    Raises:
        ConfigError: b outside [0, 1].
    """
    if not 0.0 <= balance <= 1.0:
        raise ConfigError(f"style balance {balance}: expected a value in [0, 1] (0 = the data's shares, "
                          "1 = every style equally often)")
    if balance == 0.0 or not index:
        return list(index)
    by_style: dict[str, list[tuple]] = {}
    for w in index:
        by_style.setdefault(styles[w[0]], []).append(w)
    n_max = max(len(v) for v in by_style.values())
    out: list[tuple] = []
    for style in sorted(by_style):
        ws = by_style[style]
        m = int(round(len(ws) * (n_max / len(ws)) ** balance))
        out.extend(ws[k * len(ws) // m] for k in range(m))
    return out


class TokenWindowDataset(torch.utils.data.Dataset):
    """Windows of ``tokens`` consecutive slots over all clips.

    Items: dict ``codes`` (N, P, V) int64, ``window`` (N, W, feat_dim) float32, ``cond`` (N, 10) float32; for clips
    with ``music`` (the alignment loss) also ``music`` (stride * N, music_dim) float32, the window's frames, and
    ``song`` () int64, an id shared by the clips of one song (:attr:`song_ids`).
    With ``style_balance`` b > 0 the windows of rarer dance styles are repeated
    (:func:`style_balanced_index`; the style comes from the clip's name, :func:`clip_style`).

    Raises:
        DataError: no clip has ``tokens`` slots, or (b > 0) a clip name without a style.
        ConfigError: b outside [0, 1].
    """

    def __init__(self, clips: Sequence[ClipTokens], tokens: int = 96, hop: int = 8, style_balance: float = 0.0):
        self.clips = clips
        self.tokens = int(tokens)
        self.feats = [torch.from_numpy(c.features) for c in clips]
        keys = [c.song or f"clip:{c.name}" for c in clips]
        songs = sorted(set(keys))
        self.song_ids = [songs.index(k) for k in keys]  # clips of one song share an id
        self.index = [(i, h, s) for i, c in enumerate(clips) for h in range(c.codes.shape[0])
                      for s in range(0, c.codes.shape[1] - self.tokens + 1, hop)]
        if not self.index:
            raise DataError(f"generator training: no clip has {tokens} token slots ({tokens * 0.16:.1f} s)")
        if style_balance:
            self.index = style_balanced_index(self.index, [clip_style(c.name) for c in clips], style_balance)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        i, h, s = self.index[k]
        c = self.clips[i]
        sl = slice(s, s + self.tokens)
        item = {
            "codes": torch.from_numpy(c.codes[h, sl]),
            "window": self.feats[i][torch.from_numpy(c.window_index[sl])],
            "cond": torch.from_numpy(c.cond[sl]),
        }
        if c.cond_chunk is not None:
            item["cond_chunk"] = torch.from_numpy(c.cond_chunk[sl])
        if c.music is not None:  # the alignment loss's music and song (its own song is no negative)
            stride = c.music.shape[0] // c.codes.shape[1]
            item["music"] = torch.from_numpy(c.music[s * stride:(s + self.tokens) * stride])
            item["song"] = torch.tensor(self.song_ids[i], dtype=torch.int64)
        return item


def feature_stats(clips: Sequence[ClipTokens]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean / std of the audio feature rows used by the clips: ((feat_dim,), (feat_dim,)) float32.

    A clip's silent row (:attr:`ClipTokens.silent_row`, the window before any audio) is not music and is left out.
    """
    rows = np.concatenate([c.features[np.setdiff1d(np.unique(c.window_index), [] if c.silent_row is None
                                                   else [c.silent_row])] for c in clips], axis=0).astype(np.float64)
    return torch.from_numpy(rows.mean(0).astype(np.float32)), torch.from_numpy(rows.std(0).astype(np.float32))


#: The normalisation scale given to muted feature channels (``--no-timbre``): they reach the encoder as ~1e-5.
MUTED_STD = 1e6


def mute_timbre(std: torch.Tensor) -> torch.Tensor:
    """The feature std with the log-mel (timbre) channels muted: (feat_dim,) float32 -> a copy, those channels
    :data:`MUTED_STD`.

    The music encoder normalises its input by these statistics, which the weights carry as buffers, so a generator
    trained this way never hears the log-mel bands, in training or in the engine, with no change to the model or its
    exported graph. It hears the onsets, the rhythm bank and the beat condition. With 26 training songs the
    log-mel bands tell the songs apart (the reason the retrieval model leaves them out,
    :mod:`livedance.model.retrieval`).
    """
    from livedance.features import FeatureConfig

    out = std.clone()
    out[FeatureConfig().slices["logmel"]] = MUTED_STD
    return out


def timbre_muted(std: torch.Tensor) -> bool:
    """Whether a music encoder's (feat_dim,) feature std has the log-mel channels muted (:func:`mute_timbre`)."""
    from livedance.features import FeatureConfig

    return bool((std[FeatureConfig().slices["logmel"]] >= MUTED_STD).all())


@dataclass
class GeneratorRunConfig:
    """Settings of ``livedance train generator``.

    Attributes:
        model: ``'livedance'`` (the only value accepted by :func:`run_training`).
        steps, minutes, seed, batch_size, lr: optimisation (see :class:`~livedance.model.trainer.TrainConfig`).
        tokens: slots per training window (64 = 10.2 s, the CLI default that every shipped run used). hop: slots
            between windows.
        out: run folder. resume: continue from ``<out>/checkpoint``.
        tokenizer: tokenizer weights stem (None: the shipped one).
        ship: also write ``livedance/weights/<generator|baseline>.*``.
        data_root: folder holding ``dance-tang2018/``.
        progress: progress bar.
        mirror: also train on every train dance mirrored left/right (:mod:`livedance.motion.mirror`),
            with the same music: twice the dances, against memorising the 26 Tang train clips.
        corrupt: upper bound of the history token-corruption rate (T2M-GPT; see
            :meth:`~livedance.model.generator.DanceGenerator.forward`), in [0, 1]; 0 disables it.
        speeds: extra copies of every train dance danced (and its song played) r times as fast, one per r
            (:func:`livedance.motion.speed.speed_clip`, the speed perturbation of Ko et al. 2015); empty = none.
        style_balance: b in [0, 1]: draw the dance styles in proportion to n_s^(1 - b) instead of their
            window counts n_s (:func:`style_balanced_index`); 0 keeps the data's shares.
        align_weight: weight of SoulNet's alignment prior (:mod:`livedance.model.align`) beside the
            cross-entropy; 0 (default) trains without it. align_temperature: its draws' sampling temperature.
        retrieval: the alignment loss's retrieval weights stem (None: the shipped ``livedance/weights/retrieval``).
        continuity_weight: weight of the kinetic-continuity loss on the model's draws (:mod:`livedance.model.continuity`)
            beside the cross-entropy; 0 (default) trains without it. Its draws use ``align_temperature``.
        init: start from these generator weights (a fine-tune: their config, with ``overrides`` applied, and
            their music statistics); None trains from scratch.
        timbre: False mutes the log-mel bands of the music input (:func:`mute_timbre`).
        pace: give the generator the dancer's pace as an input (:mod:`livedance.model.pace`); its prior comes from the
            train dances (``--init`` weights without a pace input get one whose weights start at zero, :func:`widen_for_pace`).
        hold: the share of training windows whose history holds one run of tokens
            (:func:`~livedance.model.generator.hold_codes`); 0 = off. hold_slots: the longest run, slots (2-64).
        ema_decay: average the weights over training with this decay (:attr:`TrainConfig.ema_decay`; 0 = off). The
            average is written (and shipped) as the run's weights, the last step's as ``<out>/<name>-last``.
        overrides: GeneratorConfig fields to change (e.g. ``{"d_model": 96}``).
    """

    model: str = "livedance"
    steps: int = 4000
    minutes: float | None = None
    seed: int = 0
    batch_size: int = 16
    lr: float = 1e-3
    tokens: int = 64
    hop: int = 8
    out: Path = Path("runs/generator")
    resume: bool = False
    tokenizer: Path | None = None
    ship: bool = False
    data_root: Path | None = None
    progress: bool = True
    corrupt: float = 0.0
    mirror: bool = False
    style_balance: float = 0.0
    speeds: tuple[float, ...] = ()
    align_weight: float = 0.0
    align_temperature: float = 0.6
    retrieval: Path | None = None
    continuity_weight: float = 0.0
    init: Path | None = None
    timbre: bool = True
    pace: bool = False
    ema_decay: float = 0.0
    hold: float = 0.0
    hold_slots: int = 12
    overrides: dict = field(default_factory=dict)


def load_tokenizer_for_training(stem: Path | None):
    """The tokenizer (and its representation and sha256) the generator is trained on.

    Raises:
        WeightsError: no tokenizer weights (train one first: ``livedance train tokenizer --ship``).
    """
    from livedance.model.checkpoint import WEIGHTS_DIR
    from livedance.model.tokenizer import Tokenizer

    tok, rep, doc = Tokenizer.load(stem)
    path = Path(stem) if stem is not None else WEIGHTS_DIR / "tokenizer"
    return tok, rep, doc.get("sha256", ""), path


def _command(cfg: GeneratorRunConfig) -> str:
    from livedance.model.trainer import command_line

    return command_line(f"livedance train {cfg.model}")


def run_training(cfg: GeneratorRunConfig) -> dict:
    """Train the generator and export ``<out>/generator.{safetensors,json}`` (and ship it with ``cfg.ship``).

    Returns:
        dict with ``steps``, ``elapsed_s``, ``stopped_by``, ``final`` (last logged losses), ``paths``.
    Raises:
        WeightsError: no tokenizer, or bad ``--init`` / retrieval weights. DataError: missing data, or (with the
        alignment loss) a dance longer than its song. ConfigError: bad settings / foreign checkpoint, or ``--init``
        weights of another model, tokenizer or architecture.
    """
    from livedance.data.dataset import data_description, load_split
    from livedance.model.checkpoint import WEIGHTS_DIR
    from livedance.model.trainer import TrainConfig, Trainer, init_distributed, seed_everything

    if cfg.model != "livedance":
        raise ConfigError(f"model {cfg.model!r}: this trains the livedance generator; the baseline has "
                          "`livedance train baseline` (livedance.model.baseline_gpt.train_baseline)")
    if not 0.0 <= cfg.corrupt <= 1.0:
        raise ConfigError(f"--corrupt {cfg.corrupt}: expected a token-corruption rate in [0, 1]")
    if not 0.0 <= cfg.style_balance <= 1.0:
        raise ConfigError(f"--style-balance {cfg.style_balance}: expected a value in [0, 1] (0 = the data's "
                          "style shares, 1 = every style equally often)")
    from livedance.model.align import AlignConfig

    if not cfg.align_weight >= 0:
        raise ConfigError(f"--align-weight {cfg.align_weight}: expected a weight >= 0 (0 = off)")
    if not cfg.align_temperature > 0:
        raise ConfigError(f"--align-temperature {cfg.align_temperature}: expected a temperature > 0")
    acfg = AlignConfig(weight=cfg.align_weight, temperature=cfg.align_temperature)
    from livedance.model.continuity import ContinuityConfig

    try:
        ccfg = ContinuityConfig(weight=cfg.continuity_weight, temperature=cfg.align_temperature)
    except ConfigError:
        raise ConfigError(f"--continuity-weight {cfg.continuity_weight}: expected a finite weight >= 0 (0 = off)") from None
    dist = init_distributed()
    show = cfg.progress and dist.is_main
    tok, rep, tok_sha, tok_path = load_tokenizer_for_training(cfg.tokenizer)
    init_model, init_doc, retrieval_doc = None, {}, {}
    if cfg.init is not None:
        init_model, init_doc = load_model(Path(cfg.init))
        if init_doc.get("model", "livedance") != "livedance":
            raise ConfigError(f"--init {cfg.init}: those are {init_doc.get('model')!r} weights, not the generator's")
        from livedance.model.checkpoint import weight_paths
        from livedance.model.tokenizer import require_same_codes

        tok_json = weight_paths(tok_path)[1]
        try:
            require_same_codes(weight_paths(Path(cfg.init))[1], init_doc.get("tokenizer_sha256"),
                               json.loads(tok_json.read_text()), str(tok_json))
        except WeightsError as e:
            raise ConfigError(f"--init {cfg.init}: {e}; or pass the tokenizer it was trained with (--tokenizer)") from None
        from livedance.model.generator import GeneratorConfig

        gcfg = GeneratorConfig.from_dict({**init_model.config.to_dict(), **cfg.overrides})
    else:
        gcfg = _model_config(cfg, tok)
    from livedance.model.trainer import prepare_run_dir

    prepare_run_dir(cfg.out, cfg.resume)  # a bad --out or --resume fails before the data is read
    train = load_split("train", data_root=cfg.data_root, progress=show)
    n_dances = len(train)  # the dances themselves come first, then their mirrored / sped-up copies
    if cfg.mirror:
        from livedance.motion.mirror import mirror_clip

        train = list(train) + [mirror_clip(c) for c in train]
    speeds = sorted({float(r) for r in cfg.speeds} - {1.0})  # the data as it is is always there
    if speeds:
        from livedance.motion.speed import speed_clip

        train = list(train) + [speed_clip(c, r) for r in speeds for c in train]
    if init_model is not None and gcfg.pace is not None and not cfg.pace:
        raise ConfigError(f"--init {cfg.init}: those weights have a pace input; pass --pace (a fine-tune keeps the "
                          "weights' inputs)")
    data = prepare_clips(train, tok, rep, gcfg.window, gcfg.lag_s, align_music=acfg.weight > 0, pace=cfg.pace,
                         chunk=gcfg.chunk)
    init_state = init_model.state_dict() if init_model is not None else None
    if cfg.pace and gcfg.pace is None:  # from scratch, or --init weights without a pace input (widened below)
        from dataclasses import replace

        from livedance.model.conditioning import COND_DIM
        from livedance.model.pace import pace_prior

        # the prior is the dances' own: sped-up copies are not dancers of other paces
        gcfg = replace(gcfg, pace=pace_prior([c.pace for c in data[:n_dances]]), cond_dim=COND_DIM + 1)
        if init_state is not None:
            init_state = widen_for_pace(init_state)
    ds = TokenWindowDataset(data, cfg.tokens, cfg.hop, style_balance=cfg.style_balance)
    seed_everything(cfg.seed)
    model = _build(cfg.model, gcfg)
    if init_model is not None:  # a fine-tune keeps the weights' music statistics too (they are buffers)
        from livedance.model.checkpoint import load_state_into

        try:
            load_state_into(model, init_state, str(cfg.init))
        except WeightsError as e:
            raise ConfigError(f"--init {cfg.init}: the options change the model's tensors ({e}); a fine-tune keeps "
                              "the weights' architecture (e.g. --music-dropout needs weights trained with it)") from None
        if not cfg.timbre:  # a fine-tune can stop hearing the log-mel bands too
            model.music.set_stats(model.music.feat_mean.clone(), mute_timbre(model.music.feat_std))
    else:
        mean, std = feature_stats(data)
        model.music.set_stats(mean, std if cfg.timbre else mute_timbre(std))
    timbre = cfg.timbre and not timbre_muted(model.music.feat_std)  # muted --init weights stay muted
    align = None
    if acfg.weight > 0:
        from livedance.model.align import AlignmentLoss, music_bank
        from livedance.model.retrieval import MusicDanceRetrieval

        retrieval, retrieval_doc = MusicDanceRetrieval.load(cfg.retrieval)
        bank, bank_song = music_bank(retrieval, [c.music for c in data], round(acfg.bank_hop_s * rep.config.fps),
                                     ds.song_ids)
        align = AlignmentLoss(tok, rep, retrieval, bank, bank_song, acfg).to(dist.device)
        align.window_starts(cfg.tokens * tok.stride)  # a clear error now if the windows are too short
    cont = None
    if ccfg.weight > 0:
        from livedance.model.continuity import ContinuityLoss

        if cfg.tokens <= tok.decoder_context_tokens + 1:
            raise ConfigError(f"--continuity-weight needs training windows longer than the decoder's context "
                              f"({tok.decoder_context_tokens} slots): --tokens {tok.decoder_context_tokens + 2} or more")
        cont = ContinuityLoss(tok, rep).to(dist.device)
    tcfg = TrainConfig(steps=cfg.steps, minutes=cfg.minutes, batch_size=cfg.batch_size, lr=cfg.lr,
                       weight_decay=0.01, warmup_steps=min(100, max(cfg.steps // 10, 1)), seed=cfg.seed,
                       progress=show, log_every=10, ckpt_every=200, ckpt_every_minutes=2.0, ema_decay=cfg.ema_decay)
    run_config = {"model": cfg.model, "generator": gcfg.to_dict(), "tokens": cfg.tokens, "hop": cfg.hop,
                  "tokenizer_sha256": tok_sha, "train_clips": [c.name for c in data], "corrupt": cfg.corrupt,
                  "mirror": cfg.mirror, "style_balance": cfg.style_balance, "speeds": speeds,
                  "align_weight": acfg.weight, "init": str(cfg.init) if cfg.init is not None else None,
                  "timbre": timbre}
    if acfg.weight > 0:  # a resumed run must not silently change its loss
        run_config.update(align_temperature=acfg.temperature, retrieval_sha256=retrieval_doc.get("sha256"))
    if ccfg.weight > 0:  # (recorded only when used: older checkpoints resume unchanged)
        run_config.update(continuity_weight=ccfg.weight, draw_temperature=ccfg.temperature)
    if cfg.ema_decay > 0:
        run_config.update(ema_decay=cfg.ema_decay)
    if cfg.hold > 0:
        run_config.update(hold=cfg.hold)
        if cfg.hold_slots != 12:  # (recorded only when changed: the first --hold runs resume unchanged)
            run_config.update(hold_slots=cfg.hold_slots)
    parts = tok.config.parts

    def loss_fn(m, b):
        if align is None and cont is None:
            out = m(b["codes"], b["window"], b["cond"], corrupt=cfg.corrupt, cond_chunk=b.get("cond_chunk"),
                    hold=cfg.hold, hold_slots=cfg.hold_slots)
            return out["loss"], {k: v for k, v in out.items() if k != "loss"}
        out = m(b["codes"], b["window"], b["cond"], corrupt=cfg.corrupt, draw_temperature=acfg.temperature,
                cond_chunk=b.get("cond_chunk"), hold=cfg.hold, hold_slots=cfg.hold_slots)
        drawn = {p: out["drawn"][:, :, i] for i, p in enumerate(parts)}
        logs = {k: v for k, v in out.items() if k not in ("loss", "drawn")}
        loss = out["loss"]
        if align is not None:
            a = align(drawn, b["music"], b["song"])
            logs.update(align=a["loss"].detach(), align_acc=a["acc"])
            loss = loss + acfg.weight * a["loss"]
        if cont is not None:
            c = continuity_term(cont, out["drawn"], b["codes"], parts)
            logs.update(cont=c["loss"].detach(), ee_ratio=c["ee_ratio"])
            loss = loss + ccfg.weight * c["loss"]
        return loss, logs

    trainer = Trainer(model, ds, loss_fn, tcfg, cfg.out, resume=cfg.resume, run_config=run_config, dist=dist,
                      upgrade_run_config=upgrade_run_config)
    res = trainer.fit()
    result: dict[str, Any] = {"steps": res.step, "elapsed_s": res.elapsed_s, "stopped_by": res.stopped_by,
                              "final": res.history[-1] if res.history else None}
    if not dist.is_main:
        return result
    name = "generator" if cfg.model == "livedance" else "baseline"
    info = {"command": _command(cfg), "steps": res.step, "elapsed_s": round(res.elapsed_s, 1),
            "stopped_by": res.stopped_by, "train_windows": len(ds), "train_clips": len(data), "corrupt": cfg.corrupt,
            "mirror": cfg.mirror, "style_balance": cfg.style_balance,
            "speeds": speeds, "dropout": gcfg.dropout, "align_weight": acfg.weight,
            "align_temperature": acfg.temperature if acfg.weight > 0 else None,
            "draw_temperature": acfg.temperature if (acfg.weight > 0 or ccfg.weight > 0) else None,
            # eval notes MM-Dist / R@1 measured by this very judge (livedance.eval.alignment.trained_against);
            # a fine-tune without the prior keeps its init weights' judge
            "align_retrieval_sha256": retrieval_doc.get("sha256") if acfg.weight > 0 else
            (init_doc.get("training") or {}).get("align_retrieval_sha256"),
            "init": str(cfg.init) if cfg.init is not None else None, "timbre": timbre, "pace": gcfg.pace,
            "continuity_weight": ccfg.weight, "ema_decay": cfg.ema_decay, "hold": cfg.hold,
            "hold_slots": cfg.hold_slots if cfg.hold > 0 else None,
            "world_size": dist.world_size, "final_loss": result["final"]}
    extra = {"model": cfg.model, "tokenizer_sha256": tok_sha, "training": info,
             "data": data_description(cfg.data_root)}
    model.eval()
    final = trainer.averaged.eval()  # the weights' average with --ema, else the model itself
    paths = save_model(final, Path(cfg.out) / name, extra)
    if final is not model:  # the last step's weights beside the average, for comparison
        paths = (*paths, *save_model(model, Path(cfg.out) / f"{name}-last", {**extra, "training": {**info,
                                                                                               "ema_decay": 0.0}}))
    result["paths"] = [str(p) for p in paths]
    if cfg.ship:
        result["shipped"] = [str(p) for p in save_model(final, WEIGHTS_DIR / name, extra)]
    (Path(cfg.out) / "result.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def continuity_term(cont, drawn: torch.Tensor, codes: torch.Tensor, parts: Sequence[str]) -> dict[str, torch.Tensor]:
    """The continuity loss of a training batch (:class:`~livedance.model.continuity.ContinuityLoss` ``cont``).

    Args:
        drawn: (B, N, P, V, C) float one-hot draws with straight-through gradients (``forward(..., draw_temperature)``).
        codes: (B, N, P, V) int64 the real codes. parts: the tokenizer's part names, in the P axis's order.
    Returns:
        ``cont``'s dict: ``loss`` and ``ee_ratio``.
    """
    real = torch.nn.functional.one_hot(codes, drawn.shape[-1]).to(drawn.dtype)
    return cont({p: drawn[:, :, i] for i, p in enumerate(parts)}, {p: real[:, :, i] for i, p in enumerate(parts)})


def fixed_batches(ds: "TokenWindowDataset", batches: int, size: int = 16, seed: int = 0):
    """Yield ``batches`` batches of ``size`` windows of ``ds`` drawn with a fixed seed (the same for every caller):
    dicts of stacked tensors, as :class:`TokenWindowDataset` items with a leading batch axis."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(int(batches)):
        idx = torch.randint(0, len(ds), (size,), generator=g).tolist()
        yield {key: torch.stack([ds[i][key] for i in idx]) for key in ds[0]}


@torch.no_grad()
def drawn_codes(model, batch: dict[str, torch.Tensor], codebook_size: int, temperature: float) -> torch.Tensor:
    """The codes a generator would dance in a training batch, as (B, N, P, V, C) float one-hot vectors.

    ``model`` None gives the batch's real codes; a generator draws where it predicts (the chunks' masked base
    positions and every residual level) at ``temperature`` by straight-through Gumbel, the real history elsewhere
    (``forward(..., draw_temperature)``), with the chunk heads' conditions as the engine has them. A model without a
    pace input gets the condition without its pace column.
    """
    if model is None:
        return torch.nn.functional.one_hot(batch["codes"], codebook_size).float()
    d = model.config.cond_dim
    return model(batch["codes"], batch["window"], batch["cond"][..., :d], draw_temperature=temperature,
                 cond_chunk=batch["cond_chunk"][..., :d])["drawn"]


def widen_for_pace(state: dict) -> dict:
    """A generator state dict without a pace input, given one whose weights start at zero (``--init W --pace``).

    The slot condition reaches the model only through the music encoder's query (``music.query.weight``,
    (d_model, cond_dim)); a zero column for the pace code leaves the model's outputs exactly those of the weights
    it starts from, whatever the pace, until the fine-tune teaches it the pace.

    Args:
        state: name -> tensor, ``music.query.weight`` of shape (d_model, 10).
    Returns:
        a new dict (the other tensors shared), ``music.query.weight`` of shape (d_model, 11).
    Raises:
        ConfigError: the state has no such tensor, or its width is not the beat condition's.
    """
    from livedance.model.conditioning import COND_DIM

    w = state.get("music.query.weight")
    if w is None or w.ndim != 2 or w.shape[1] != COND_DIM:
        raise ConfigError(f"--pace with --init: expected a music.query.weight of width {COND_DIM}, got "
                          f"{None if w is None else tuple(w.shape)}")
    out = dict(state)
    out["music.query.weight"] = torch.cat([w, w.new_zeros(w.shape[0], 1)], dim=1)
    return out


def upgrade_run_config(saved: dict, run_options: bool = True) -> dict:
    """A generator (or baseline) run's saved ``run_config`` as this version writes it (for ``--resume``).

    Fields added since the checkpoint was written get their defaults: the generator config is parsed by
    :meth:`GeneratorConfig.from_dict` and written back whole (``top_k``, ``dropout``, ...), and, with
    ``run_options`` (the generator's runs, not the baseline's), the options ``corrupt`` / ``mirror`` / ``style_balance`` /
    ``speeds`` / ``align_weight`` / ``init`` (once recorded only when used, or not at all) default to off, and
    ``timbre`` to on. A run with the alignment loss also records ``align_temperature`` and ``retrieval_sha256`` (its
    judge), which are not filled in: an alignment run checkpointed before they were recorded cannot be resumed (its
    loss is not known well enough).

    Raises:
        ConfigError: the saved generator config has fields this version does not know.
    """
    from livedance.model.generator import GeneratorConfig

    out = dict(saved)
    if isinstance(out.get("generator"), dict):
        out["generator"] = GeneratorConfig.from_dict(out["generator"]).to_dict()
    if run_options:
        out.setdefault("corrupt", 0.0)
        out.setdefault("mirror", False)
        out.setdefault("style_balance", 0.0)
        out.setdefault("speeds", [])
        out.setdefault("align_weight", 0.0)
        out.setdefault("init", None)
        out.setdefault("timbre", True)
    return out


def _model_config(cfg: GeneratorRunConfig, tok):
    from livedance.model.generator import GeneratorConfig

    base = dict(parts=tuple(tok.config.parts), levels=tok.config.levels, codebook_size=tok.config.codebook_size,
                stride=tok.stride)
    base.update(cfg.overrides)
    return GeneratorConfig(**base)


def _build(kind: str, gcfg):
    if kind == "baseline":
        from livedance.model.baseline_gpt import BaselineGPT

        return BaselineGPT(gcfg)
    from livedance.model.generator import DanceGenerator

    return DanceGenerator(gcfg)


def save_model(model, stem: Path, extra: dict) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` + ``<stem>.json`` (format ``livedance.generator``; ``extra['model']``
    says which architecture)."""
    from livedance.model.checkpoint import save_weights
    from livedance.model.generator import GENERATOR_FORMAT

    return save_weights(stem, model.state_dict(), GENERATOR_FORMAT, model.config.to_dict(), extra)


def load_model(stem: Path):
    """Load a generator / baseline written by :func:`save_model`.

    Returns:
        ``(model in eval mode, json doc)``.
    Raises:
        WeightsError: missing / corrupt files, bad config, or tensors that do not match the config.
    """
    from livedance.model.checkpoint import load_state_into, load_weights, weight_paths
    from livedance.model.generator import GENERATOR_FORMAT, GeneratorConfig

    state, doc = load_weights(stem, GENERATOR_FORMAT)
    st_path, src = weight_paths(stem)
    try:
        gcfg = GeneratorConfig.from_dict(doc["config"])
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        raise WeightsError(f"{src}: bad generator config ({type(e).__name__}: {e})") from None
    kind = doc.get("model", "livedance")
    if kind not in ("livedance", "baseline"):
        raise WeightsError(f"{src}: model {kind!r}, expected 'livedance' or 'baseline'")
    model = _build(kind, gcfg)
    load_state_into(model, state, st_path)
    model.eval()
    return model, doc


def ship_generator(run_stem: str | Path, temperature: float | None = None,
                   eval_json: Sequence[str | Path] = (), selection_json: Sequence[str | Path] = (),
                   weights_dir: str | Path | None = None, residual_temperature: float | None = None,
                   top_k: int | None = None, min_p: float | None = None) -> list[str]:
    """Copy a trained generator into ``weights_dir`` (default ``livedance/weights``) as ``generator.*`` and
    write the ``Generator`` section of its ``MODEL_CARD.md`` (data, split, training command, metrics).

    FID on a few clips per row is noisy (the Tang test split has 6), so the card averages each row over
    the given runs (one per sampling seed, ``livedance eval --seed S``) and says how many there were.

    Args:
        run_stem: what ``livedance train generator`` wrote, e.g. ``runs/generator/generator``.
        temperature: sampling temperature to bake into the shipped config (None: keep the run's).
        eval_json: ``livedance eval --split test --models livedance,baseline --seed S --json F`` outputs (one per
            seed) whose rows (ground truth, wrong song, livedance, baseline) go into the card, averaged.
        selection_json: ``livedance eval --split val --models livedance --temperature T ... --json F`` outputs
            for the candidate sampling settings (any seeds); their livedance rows, averaged per label, are
            listed in the card as the selection.
        residual_temperature: residual levels' temperature to ship (None: keep the run's; 0: argmax).
        top_k: top-k sampling to ship (None: keep the run's; 0: all codes).
        min_p: min-p sampling to ship (None: keep the run's; 0: off).
    Returns:
        the written paths (weights, config, card).
    Raises:
        WeightsError: the run's files are missing or corrupt, or the run was trained on other codes than the
            tokenizer in ``weights_dir`` (checked before anything is written). DataError: an eval JSON is unreadable.
        ConfigError: temperature <= 0 or residual_temperature < 0 (checked by ``GeneratorConfig``); a selection
            file of the test split, or files of mixed protocols (split, reference, fps, excerpt, skeleton).
    """
    from dataclasses import replace

    from livedance.model.checkpoint import WEIGHTS_DIR, write_card_section

    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    model, doc = load_model(Path(run_stem))
    from livedance.model.checkpoint import weight_paths
    from livedance.model.tokenizer import Tokenizer, require_same_codes

    tok_stem = folder / "tokenizer"  # the tokenizer the shipped generator will run with: refuse before writing
    if weight_paths(tok_stem)[1].is_file():
        require_same_codes(weight_paths(Path(run_stem))[1], doc.get("tokenizer_sha256"), Tokenizer.load(tok_stem)[2],
                           str(weight_paths(tok_stem)[1]))
    sel_docs = [_read_eval(p) for p in selection_json]
    test_docs = [_read_eval(p) for p in eval_json]
    _check_eval_splits(sel_docs, selection_json, test_docs, eval_json)
    if temperature is not None:
        model.config = replace(model.config, temperature=float(temperature))
    if residual_temperature is not None:
        model.config = replace(model.config, residual_temperature=float(residual_temperature))
    if top_k is not None:
        model.config = replace(model.config, top_k=int(top_k))
    if min_p is not None:
        model.config = replace(model.config, min_p=float(min_p))
    sel = _mean_rows(sel_docs, lambda label: label.startswith("livedance"))
    test = _mean_rows(test_docs, lambda label: True)
    extra = {k: v for k, v in doc.items() if k not in ("format", "format_version", "config", "tensors", "sha256")}
    if sel:
        split = sel_docs[0].get("split")
        extra["inference_note"] = (
            f"temperature {model.config.temperature:g} (residual levels: {_res_t(model.config)}; top-k: "
            f"{model.config.top_k or 'all codes'}; min-p: {model.config.min_p or 'off'}) chosen after training "
            f"by the lowest FIDk + FIDg (mean over sampling seeds) on the {split} split (livedance eval --split {split} --temperature T "
            "--residual-temperature R [--top-k K] [--min-p M]); the weights were trained independently of it")
    paths = save_model(model, folder / "generator", extra)
    card = write_card_section(folder / "MODEL_CARD.md", "Generator", _generator_card(
        model, extra, sel, sel_docs[0] if sel_docs else None, test, test_docs[0] if test_docs else None))
    return [str(p) for p in (*paths, card)]


def _check_eval_splits(sel_docs: Sequence[dict], sel_paths: Sequence, test_docs: Sequence[dict],
                       test_paths: Sequence) -> None:
    """Selection files must come from one split that is not test; the metrics files from one split, with one
    reference split, frame rate, excerpt length and skeleton (their rows are averaged together).

    Raises:
        ConfigError: naming the file and the mismatch.
    """
    for docs, paths, what in ((sel_docs, sel_paths, "--selection"), (test_docs, test_paths, "--eval-json")):
        keys = [(d.get("split"), d.get("reference_split"), d.get("fps"), d.get("seconds"), d.get("skeleton"))
                for d in docs]
        for k, p in zip(keys, paths):
            if k != keys[0]:
                raise ConfigError(f"{what} {p}: split / reference / fps / seconds / skeleton {k} differ from "
                                  f"{paths[0]}'s {keys[0]}; give files of one protocol")
    for d, p in zip(sel_docs, sel_paths):
        if d.get("split") == "test":
            raise ConfigError(f"--selection {p} is a test-split run: sampling settings are chosen on val, never on test")


def _read_eval(p) -> dict:
    try:
        return json.loads(Path(p).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: not a readable `livedance eval --json` file ({type(e).__name__}: {e})") from None


def _mean_rows(docs: Sequence[dict], keep) -> list[dict]:
    """Rows with the same label and the same ``--weights`` (read from each JSON's ``command``) across eval JSONs,
    averaged: [{label, n, seeds, FIDk, ...}] in first-seen order; the label names the weights when a JSON gives
    them, so runs of different weights at the same sampling settings stay apart, and it says ", shared seed" for model
    rows sampled with one seed for every clip (JSONs without ``sampling_seeds``, written before 2026-11-24, were), so
    the two protocols are never averaged together."""
    groups: dict[str, list[tuple[Any, dict]]] = {}
    for d in docs:
        m = re.search(r"--weights (\S+)", str(d.get("command", "")))
        shared = d.get("sampling_seeds", "shared") == "shared"
        for r in d.get("rows", []):
            if keep(r.get("label", "")):
                label = r["label"] + (f", weights {m.group(1)}" if m and "livedance" in r["label"] else "")
                if shared and "(generated)" in r["label"] and "shared seed" not in r["label"]:
                    label += ", shared seed"
                groups.setdefault(label, []).append((d.get("seed"), r))
    out = []
    for label, items in groups.items():
        seeds = sorted((s for s, _ in items), key=lambda v: (v is None, v if isinstance(v, (int, float)) else 0))
        row: dict[str, Any] = {"label": label, "n": len(items), "seeds": seeds}
        for k in ("FIDk", "FIDg", "Divk", "Divg", "BAS", "PFC"):
            vals = [r[k] for _, r in items if r.get(k) is not None]
            row[k] = float(np.mean(vals)) if vals else None
        out.append(row)
    return out


def _res_t(c) -> str:
    rt = c.residual_temperature
    return "same" if rt is None else ("argmax" if rt == 0 else f"{rt:g}")


def _fmt_row(r: dict) -> str:
    def f(k, d=2):
        v = r.get(k)
        return "-" if v is None else f"{v:.{d}f}"

    seeds = ", ".join(str(s) for s in r.get("seeds", []))
    return (f"| {r['label']} | {f('FIDk')} | {f('FIDg')} | {f('Divk')} | {f('Divg')} | {f('BAS', 4)} | {f('PFC', 3)} "
            f"| {r.get('n', 1)} ({seeds}) |")


def _generator_card(model, doc: dict, selection: list, sel_doc: dict | None, test: list, test_doc: dict | None) -> str:
    from livedance.data.dataset import TANG_DATA, card_data_line

    c, tr = model.config, doc.get("training", {})
    fl = tr.get("final_loss") or {}
    n_par = sum(p.numel() for p in model.parameters())
    data_note = ": the dances and their left/right mirrors" if tr.get("mirror") else ""
    if tr.get("speeds"):
        n_base = int(tr.get("train_clips", 0)) // (len(tr["speeds"]) + 1)
        data_note += (f" = {n_base} dances, each also danced at " + " / ".join(f"{r:g}x" for r in tr["speeds"])
                     + " speed with its song")
    if tr.get("style_balance"):
        data_note += f"; styles drawn in proportion to n^(1 - {tr['style_balance']:g}) of their n windows"
    music_note = "" if tr.get("timbre", True) else " The music input's log-mel bands are muted (`--no-timbre`)."
    data_line = card_data_line(doc.get("data"), tr.get("train_clips", "?"),
                               f"{data_note},\n  {tr.get('train_windows', '?')} windows")
    split_file = "`livedance/data/tang_split.json`" if doc.get("data", TANG_DATA) == TANG_DATA else "AIST++'s crossmodal splits"
    extra_train = ""
    if tr.get("init"):
        extra_train += f" Fine-tuned from the weights `{tr['init']}`."
    if tr.get("align_weight"):
        extra_train += (f" Loss: cross-entropy + {tr['align_weight']:g} x SoulNet's alignment prior (codes drawn at "
                        f"T {tr.get('align_temperature') or 0.6:g}, decoded, InfoNCE of the retrieval model against "
                        f"the other train songs' music, last logged {fl.get('align', float('nan')):.3f}; "
                        "livedance.model.align).")
    head = ("| row | FIDk | FIDg | Divk | Divg | BAS | PFC | runs (seeds) |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |")
    sel = ""
    if selection:
        sel = (f"\n- Sampling: temperature {c.temperature:g}, residual levels {_res_t(c)}, top-k "
               f"{c.top_k or 'off'}, min-p {c.min_p or 'off'}; chosen on the "
               f"**{sel_doc.get('split')}** split (never on test) from these runs of `livedance eval --split "
               f"{sel_doc.get('split')} --models livedance --weights RUN --temperature T --residual-temperature R "
               "[--top-k K] [--min-p M] --seed S` (each row the mean over its runs; a row without a weights name ran "
               "the weights of this section; criterion: the lowest FIDk + FIDg):\n\n"
               + head + "\n" + "\n".join(_fmt_row(r) for r in selection) + "\n")
    met = ""
    if test:
        met = (f"\n- Metrics: `livedance eval --split {test_doc.get('split')} --models livedance,baseline --seed S` "
               f"(FID reference: split '{test_doc.get('reference_split')}', {test_doc.get('fps')} fps, first "
               f"{test_doc.get('seconds')} s of each dance; each row the mean over the seeds listed):\n\n"
               + head + "\n" + "\n".join(_fmt_row(r) for r in test) + "\n")
    return f"""Files: `generator.safetensors` (state dict) + `generator.json` (config, training record). Load with
`livedance.engine.load_generator()`; `livedance generate SONG -o OUT.npz` and `livedance perform` run it.

- Model: causal dance generator (docs/model.md): TGCA music encoder over the streaming features
  (window {c.window} frames up to t - {c.lag_s} s, causal beat-tracker phase / tempo / confidence), {c.n_layers}
  layers of parallel lower / upper-body Mamba branches (Danceba's PMMM; d_model {c.d_model}, d_state
  {c.d_state}), chunked mask-predict of the base level (K = {c.chunk} token slots, {c.mask_iters} MaskGIT
  iterations) and a residual head for levels 1..{c.levels - 1}, over the shipped HRVQ tokenizer's codes
  ({c.levels} levels x {c.codebook_size} codes per part); {n_par:,} parameters; {c.fps:g} fps output.
{data_line}; validation split for the temperature, test split for the metrics
  ({split_file}).
- Training (CPU, {tr.get('world_size', 1)} process): `{tr.get('command', '?')}`, {tr.get('steps', '?')} steps in
  {tr.get('elapsed_s', 0) / 60:.1f} min (stopped by {tr.get('stopped_by', '?')}); last logged loss
  {fl.get('loss', float('nan')):.3f} (base-level cross-entropy {fl.get('base', float('nan')):.3f} nats, accuracy
  {fl.get('acc', float('nan')):.3f}).{extra_train}{music_note}{sel}{met}
- Limits: body only; ballroom / Latin dances (waltz dominates), so other music gets ballroom-like steps.
"""
