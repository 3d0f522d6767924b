"""Music-dance alignment by retrieval: MM-Dist and R-precision with the contrastive model.

SoulNet (Li et al., ICCV 2025) scores how well a dance belongs to its music with a pre-trained music-motion
retrieval model; the text-to-motion literature defines the two figures used here (Guo et al., CVPR 2022,
"Generating Diverse and Natural 3D Human Motions from Text", Sec. 5: R-precision and MM-Dist):

* Each dance is cut into windows of W frames (the model's, 4 s) every ``hop_s`` seconds within the protocol's first
  ``seconds`` (20 s, as FID and Div), and each window is paired with the music it was danced to over the same
  song times. :class:`~livedance.model.retrieval.MusicDanceRetrieval` embeds both as unit vectors.
* **MM-Dist**: the mean Euclidean distance between a motion window's embedding and its own music window's (unit
  vectors: 0 = the same direction, sqrt 2 = unrelated, 2 = opposite). Lower is better.
* **R@1** (R-precision, top 1): for each motion window, a pool of its own music window and ``pool - 1`` music
  windows drawn (seeded, without replacement) from the other songs of the same set; the share of motion windows
  whose own music is the closest (a tie counts against it). Chance is 1 / pool (1/32 = 0.031). Higher is better.
  ``R@3`` likewise for the top 3. A set with fewer than ``pool - 1`` windows of other songs has no R@1 (NaN): a
  smaller pool would not be comparable.

A real dance on its own song against the same dance on another song (:func:`wrong_song_figures`) is the check that
the figures mean something; the eval table prints both rows. In the wrong-song row the pool's other songs include
the dance's real one, so its R@1 is not a chance level: it is how often a dance is closer to a song it was not
danced to than to the song it was.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from livedance.errors import DataError

__all__ = ["ALIGNMENT_NAMES", "trained_against", "window_starts", "retrieval_figures", "wrong_song_figures"]

#: Alignment columns of the eval table, in order.
ALIGNMENT_NAMES = ("MM-Dist", "R@1")


def trained_against(generator_doc: dict[str, Any], retrieval_doc: dict[str, Any]) -> bool:
    """Whether a generator was trained against this very retrieval model (``livedance train generator
    --align-weight``, :mod:`livedance.model.align`).

    Such a generator learns the judge's blind spots along with the music (docs/model.md, "SoulNet's alignment prior
    in training"), so its MM-Dist / R@1 by that judge flatter it; ``livedance eval`` then notes it on the row.

    Args:
        generator_doc: the generator's JSON (its ``training.align_retrieval_sha256``).
        retrieval_doc: the retrieval model's JSON (its ``sha256``).
    Returns:
        True when both sha256s are present and equal (False for documents of another shape).
    """
    training = generator_doc.get("training") if isinstance(generator_doc, dict) else None
    want = training.get("align_retrieval_sha256") if isinstance(training, dict) else None
    return bool(want) and isinstance(retrieval_doc, dict) and want == retrieval_doc.get("sha256")


def window_starts(n_frames: int, window: int, hop: int, limit: int | None = None) -> np.ndarray:
    """Start frames of the windows of ``window`` frames, ``hop`` apart, inside the first ``limit`` frames.

    Args:
        n_frames: the clip's frames. window: frames per window. hop: frames between starts (values below 1 count
            as 1). limit: only the first ``limit`` frames (None: all).
    Returns:
        (K,) int64 starts s with s + window <= min(n_frames, limit); empty when the clip is shorter than a window.
    """
    end = n_frames if limit is None else min(n_frames, int(limit))
    return np.arange(0, max(end - window + 1, 0), max(int(hop), 1), dtype=np.int64)


def _embed(model: Any, pairs: Sequence[Any], seconds: float, hop_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import torch

    c = model.config
    W, hop, limit = c.window, int(round(hop_s * c.fps)), int(round(seconds * c.fps))
    motion, music, owner = [], [], []
    for k, p in enumerate(pairs):
        n = min(len(p.motion), len(p.music))
        for s in window_starts(n, W, hop, limit):
            motion.append(p.motion[s:s + W])
            music.append(p.music[s:s + W])
            owner.append(k)
    if not motion:
        raise DataError(f"no dance of the set is {W / c.fps:g} s long: the retrieval figures need one window")
    with torch.no_grad():
        zm = model.embed_motion(torch.from_numpy(np.stack(motion))).numpy()
        za = model.embed_music(torch.from_numpy(np.stack(music))).numpy()
    return zm.astype(np.float64), za.astype(np.float64), np.asarray(owner)


def retrieval_figures(
    model: Any, pairs: Sequence[Any], songs: Sequence[Any] | None = None, seconds: float = 20.0, hop_s: float = 1.0,
    pool: int = 32, seed: int = 0,
) -> dict[str, float]:
    """MM-Dist, R@1 and R@3 of a set of dance-music pairs (see the module docstring).

    Args:
        model: a :class:`~livedance.model.retrieval.MusicDanceRetrieval` (eval mode).
        pairs: :class:`~livedance.model.train_retrieval.PairedClip` (per-frame motion and music features at the
            model's fps); R@1 needs >= 32 windows in all, from at least two songs (else NaN).
        songs: one key per pair naming its song (pairs with the same key are never each other's negatives);
            default: every pair its own song.
        seconds: only windows inside each dance's first ``seconds`` (the protocol's 20 s).
        hop_s: seconds between window starts (rounded to whole frames, at least 1). pool: candidates per R-precision query (1 true + pool - 1 others).
        seed: seed of the negative draws.

    Returns:
        ``{"MM-Dist": float, "R@1": float, "R@3": float, "windows": int, "clips": int, "per_pair_mm_dist": list}``:
        ``clips`` counts the pairs with at least one window (shorter dances are left out, NaN in ``per_pair_mm_dist``,
        the MM-Dist of each pair's own windows); R@1 and R@3 are NaN when some window has fewer than
        ``pool - 1`` windows of other songs to be drawn against (one song only, or too few windows).
    Raises:
        DataError: no pair as long as one window, or a song key per pair missing.
    """
    keys = list(range(len(pairs))) if songs is None else list(songs)
    if len(keys) != len(pairs):
        raise DataError(f"retrieval figures: {len(keys)} song keys for {len(pairs)} pairs")
    zm, za, owner = _embed(model, pairs, seconds, hop_s)
    ids: dict[Any, int] = {}
    song = np.array([ids.setdefault(keys[k], len(ids)) for k in owner])
    sim = zm @ za.T
    rng = np.random.default_rng(seed)
    dist = np.linalg.norm(zm - za, axis=1)
    per_pair = [float(dist[owner == k].mean()) if (owner == k).any() else float("nan") for k in range(len(pairs))]
    out = {"MM-Dist": float(dist.mean()), "R@1": float("nan"), "R@3": float("nan"),
           "windows": int(len(zm)), "clips": int(np.unique(owner).size), "per_pair_mm_dist": per_pair}
    ranks = []
    for i in range(len(zm)):
        others = np.flatnonzero(song != song[i])
        if others.size < pool - 1:
            return out
        neg = rng.choice(others, pool - 1, replace=False)
        ranks.append(int((sim[i, neg] >= sim[i, i]).sum()))
    ranks = np.asarray(ranks)
    out["R@1"], out["R@3"] = float((ranks < 1).mean()), float((ranks < 3).mean())
    return out


def wrong_song_figures(model: Any, pairs: Sequence[Any], seed: int = 0, **kw: Any) -> dict[str, dict[str, float]]:
    """:func:`retrieval_figures` of real pairs, and of the same dances each paired with another pair's music.

    The wrong pairing is a cyclic shift (dance i with the music of pair i + 1), each cut to the shorter of the two;
    songs are told apart by :attr:`~livedance.model.retrieval.PairedClip.song_key` (AIST++ has several dances to one
    song: they are never each other's negatives). Where the shift would pair a dance with another recording of its
    own song, a seeded derangement that avoids that is used instead (:func:`livedance.eval.suite.derangement`).

    Args:
        model: a :class:`~livedance.model.retrieval.MusicDanceRetrieval`. pairs: >= 2 :class:`PairedClip`.
        seed: seed of the negative draws. kw: more :func:`retrieval_figures` arguments (``seconds``, ``hop_s``, ``pool``).
    Returns:
        ``{"own": figures, "wrong": figures}``.
    Raises:
        DataError: fewer than 2 pairs, or none as long as one window.
    """
    if len(pairs) < 2:
        raise DataError(f"wrong-song figures need at least 2 dances, got {len(pairs)}")
    from livedance.model.retrieval import PairedClip

    n = len(pairs)
    keys = [p.song_key for p in pairs]
    partner = [(i + 1) % n for i in range(n)]
    if any(keys[i] == keys[j] for i, j in enumerate(partner)):
        from livedance.eval.suite import derangement

        partner = [int(j) for j in derangement(n, seed, keys)]
    wrong = []
    for i, p in enumerate(pairs):
        q = pairs[partner[i]]
        m = min(len(p.motion), len(q.music))
        wrong.append(PairedClip(f"{p.name} to {q.name}", p.motion[:m], q.music[:m], q.song_key))
    return {"own": retrieval_figures(model, pairs, songs=[p.song_key for p in pairs], seed=seed, **kw),
            "wrong": retrieval_figures(model, wrong, songs=[p.song_key for p in wrong], seed=seed, **kw)}
