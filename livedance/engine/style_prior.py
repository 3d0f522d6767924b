"""Style by codes: a per-style code prior that steers the learned dancer's sampling.

DanceMeld (Gao et al. 2024) edits a dance's style by swapping its codes; our generator has no style input,
and priming its recurrent state with a style's codes does not last (docs/model.md, "Styles by priming the
state? No"). What lasts is a bias on every sampling decision. For each dance style s of the training split
(Tang: cha-cha, rumba, tango, waltz; AIST++: the genre codes) the prior counts how often the tokenizer
gives each code, per part p and residual level v, on that style's real dances:

    p_s(c | p, v) = (n_s(c) + alpha) / sum_c' (n_s(c') + alpha)          (add-alpha smoothing)
    p(c | p, v)   = the same over all styles together
    r_s(c | p, v) = log p_s(c | p, v) - log p(c | p, v)                 (pointwise mutual information)

Sampling with style s at strength lambda then draws every code from

    q(c) proportional to p_model(c | context) * exp(lambda * r_s(c))

which for lambda = 1 is the prior-shift (label-shift) correction of Saerens, Latinne & Decaestecker
(Neural Computation 2002, Eq. 2.4): if the model's distribution is a mixture over the training styles, this
reweights it towards style s's share of each code. It needs no retraining and no new graph input: in the
Gumbel-max sampler (:func:`livedance.model.maskpredict.gumbel_sample`, ``score = log p / T + g``) adding
``lambda * r_s / T`` to the noise g adds ``lambda * r_s`` to the log-probabilities before the temperature
(also for the residual levels, whose own temperature scales only g; and for the stall guard's boost). Two
approximations: the mask-predict confidences that choose which positions to re-mask stay the model's own, and
a top-k / min-p cut (off in the shipped config) is made on the unshifted probabilities, so a style cannot bring
back a code the cut removed. The prior-shift reading assumes the context depends on the style only through the
codes.

Files: ``<stem>.safetensors`` (tensor ``log_ratio``, (S, P, V, C) float32) and ``<stem>.json`` (format
``livedance.style_prior``: the style names in tensor order, parts, levels, codebook size, alpha, the code
lineage of the tokenizer it was measured with, counts per style, the command). The shipped prior is
``livedance/weights/style_prior.*``, made by ``livedance train style-prior`` from the **train** split in
seconds. A prior is used only with a generator whose tokenizer has the same codes (its sha256 is in the
prior's lineage); otherwise :meth:`StylePrior.check_codes` raises.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from livedance.errors import ConfigError, WeightsError

__all__ = ["StylePrior", "default_style_prior", "style_prior_from_split", "NO_STYLE", "clears_style", "MAX_STRENGTH"]

#: The largest style strength lambda accepted (``livedance perform`` takes 0..2): far beyond any useful push,
#: and small enough that ``lambda * r_s / T`` stays finite in float32 (1e39 overflowed to +-inf).
MAX_STRENGTH = 100.0

#: Names that clear the style (the dancer samples from its own distribution again).
NO_STYLE = ("", "none", "off", "free")


def clears_style(style: str | int | None) -> bool:
    """Whether a style request means "no style": None or one of :data:`NO_STYLE` (any case, spaces ignored)."""
    return style is None or (isinstance(style, str) and style.strip().lower() in NO_STYLE)


def default_style_prior() -> Path:
    """Stem of the shipped prior: ``livedance/weights/style_prior`` (made by ``livedance train style-prior``)."""
    return Path(__file__).resolve().parent.parent / "weights" / "style_prior"


@dataclass
class StylePrior:
    """Per-style code log-ratios r_s (module docstring).

    Attributes:
        styles: style names, in the order of ``log_ratio``'s first axis.
        parts: the tokenizer's parts (e.g. ``("lower", "upper")``).
        log_ratio: (S, P, V, C) float32, r_s(c | p, v) in nats.
        lineage: sha256s of the tokenizers whose codes these are (the measuring tokenizer's own and its
            ``same_codes_as``).
        alpha: add-alpha smoothing of the counts.
        counts: per style, the number of token slots counted (one per 4 frames at 25 fps).
        source: data, split, command.
    """

    styles: tuple[str, ...]
    parts: tuple[str, ...]
    log_ratio: np.ndarray
    lineage: tuple[str, ...] = ()
    alpha: float = 0.5
    counts: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.styles = tuple(self.styles)
        self.parts = tuple(self.parts)
        self.log_ratio = np.asarray(self.log_ratio, np.float32)
        if self.log_ratio.ndim != 4 or self.log_ratio.shape[:2] != (len(self.styles), len(self.parts)):
            raise WeightsError(f"style prior: log_ratio has shape {self.log_ratio.shape}; expected "
                               f"({len(self.styles)}, {len(self.parts)}, levels, codebook)")
        if not np.isfinite(self.log_ratio).all():
            raise WeightsError("style prior: log_ratio holds NaN or inf")

    @classmethod
    def from_counts(cls, counts: Mapping[str, np.ndarray], parts: Sequence[str], alpha: float = 0.5,
                    lineage: Sequence[str] = (), source: dict | None = None) -> "StylePrior":
        """Build the prior from code counts.

        Args:
            counts: style -> (P, V, C) code counts (non-negative).
            parts: the P part names. alpha: add-alpha smoothing (> 0). lineage, source: see the attributes.
        Returns:
            the prior, styles sorted by name, ``log_ratio`` (S, P, V, C) float32 nats.
        Raises:
            ConfigError: no styles, alpha <= 0, negative counts or mismatched shapes.
        """
        if not counts:
            raise ConfigError("style prior: no styles to count")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ConfigError(f"style prior: alpha must be > 0, got {alpha}")
        styles = sorted(counts)
        n = np.stack([np.asarray(counts[s], np.float64) for s in styles])  # (S, P, V, C)
        if n.ndim != 4 or n.shape[1] != len(parts) or (n < 0).any():
            raise ConfigError(f"style prior: counts must be non-negative (P={len(parts)}, V, C) arrays, got {n.shape}")
        p_s = (n + alpha) / (n + alpha).sum(-1, keepdims=True)
        tot = n.sum(0)
        p_all = (tot + alpha) / (tot + alpha).sum(-1, keepdims=True)
        ratio = np.log(p_s) - np.log(p_all)[None]
        return cls(tuple(styles), tuple(parts), ratio.astype(np.float32), tuple(lineage), float(alpha),
                   {s: int(n[i, 0, 0].sum()) for i, s in enumerate(styles)}, dict(source or {}))

    # ------------------------------------------------------------------ use
    def index(self, style: str | int) -> int:
        """The index of a style given by name (case-insensitive) or index.

        Raises:
            ConfigError: unknown name or index out of range (the message lists the styles).
        """
        if isinstance(style, (int, np.integer)) and not isinstance(style, bool):
            if not 0 <= int(style) < len(self.styles):
                raise ConfigError(f"style index {style} is out of range 0..{len(self.styles) - 1} "
                                  f"({', '.join(self.styles)})")
            return int(style)
        name = str(style).strip().lower()
        for i, s in enumerate(self.styles):
            if s.lower() == name:
                return i
        raise ConfigError(f"unknown style {style!r}; expected one of {', '.join(self.styles)} "
                          f"(or {'/'.join(n for n in NO_STYLE if n)} for none)")

    def bias(self, style: str | int, strength: float = 1.0) -> np.ndarray:
        """lambda * r_s: the log-probability shift of every code, (P, V, C) float32 nats.

        Raises:
            ConfigError: unknown style; strength not a number in [0, :data:`MAX_STRENGTH`].
        """
        if not (math.isfinite(strength) and 0 <= strength <= MAX_STRENGTH):
            raise ConfigError(f"style strength must be a number in [0, {MAX_STRENGTH:g}], got {strength}")
        return (float(strength) * self.log_ratio[self.index(style)]).astype(np.float32)

    def check_codes(self, trained_with: str | None, what: str) -> None:
        """Raise unless a model trained on the tokenizer with sha256 ``trained_with`` has this prior's codes.

        Raises:
            WeightsError: naming ``what`` (the model's file), both sha256s and the fix.
        """
        if not self.lineage or trained_with not in self.lineage:
            raise WeightsError(
                f"{what}: trained with tokenizer sha256 {str(trained_with)[:12]}..., but the style prior was measured "
                f"with {', '.join(s[:12] + '...' for s in self.lineage) or 'an unknown tokenizer'}; rerun "
                "`livedance train style-prior` with that model's tokenizer")

    # ------------------------------------------------------------------ files
    def save(self, stem: str | Path) -> tuple[Path, Path]:
        """Write ``<stem>.safetensors`` and ``<stem>.json`` (each atomically); returns both paths.

        The JSON records the tensor file's SHA-256 (as every livedance weights JSON does,
        :func:`livedance.model.checkpoint.save_weights`), so a pair from two runs (a save cut off between the two
        files) is refused on load instead of mixing one run's styles with another's ratios.

        Raises:
            OSError: the folder cannot be written.
        """
        from safetensors.numpy import save as st_save

        from livedance.atomic import atomic_target
        from livedance.model.checkpoint import sha256_file, weight_paths

        st, js = weight_paths(stem)
        st.parent.mkdir(parents=True, exist_ok=True)
        with atomic_target(st) as tmp:
            tmp.write_bytes(st_save({"log_ratio": np.ascontiguousarray(self.log_ratio)}))
        doc = {"format": "livedance.style_prior", "format_version": 1, "styles": list(self.styles),
               "parts": list(self.parts), "levels": int(self.log_ratio.shape[2]),
               "codebook_size": int(self.log_ratio.shape[3]), "alpha": self.alpha,
               "tokenizer_lineage": list(self.lineage), "token_slots": self.counts, "source": self.source,
               "sha256": sha256_file(st)}
        with atomic_target(js) as tmp:
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
        return st, js

    @classmethod
    def load(cls, stem: str | Path | None = None) -> "StylePrior":
        """Read a prior (None: the shipped one).

        Returns:
            :class:`StylePrior` (``log_ratio`` (S, P, V, C) float32 nats).
        Raises:
            WeightsError: missing, corrupt or inconsistent files (the message names the file), including a
            tensor file whose SHA-256 is not the one its JSON records (files of session 15 have none: not checked).
        """
        from safetensors.numpy import load_file

        from livedance.model.checkpoint import sha256_file, weight_paths

        st, js = weight_paths(stem if stem is not None else default_style_prior())
        for f in (js, st):
            if not f.is_file():
                raise WeightsError(f"{f}: style prior file not found (make one with `livedance train style-prior`)")
        try:
            doc = json.loads(js.read_text())
        except (OSError, ValueError) as err:
            raise WeightsError(f"{js}: not a style prior JSON ({err})") from err
        if not isinstance(doc, dict) or doc.get("format") != "livedance.style_prior":
            raise WeightsError(f"{js}: format is {doc.get('format') if isinstance(doc, dict) else None!r}; "
                               "expected 'livedance.style_prior'")
        want_sha = doc.get("sha256")
        if want_sha is not None and sha256_file(st) != want_sha:
            raise WeightsError(f"{st}: SHA-256 {sha256_file(st)[:12]}... does not match {str(want_sha)[:12]}... recorded "
                               f"in {js.name}; the files are corrupt or from two runs (rerun `livedance train style-prior`)")
        try:
            ratio = load_file(str(st))["log_ratio"]
        except Exception as err:  # noqa: BLE001 - safetensors raises several types on corrupt files
            raise WeightsError(f"{st}: cannot read the style prior tensor 'log_ratio' ({err})") from err
        want = (len(doc.get("styles", [])), len(doc.get("parts", [])), doc.get("levels"), doc.get("codebook_size"))
        if tuple(ratio.shape) != want:
            raise WeightsError(f"{st}: log_ratio has shape {tuple(ratio.shape)}, but {js.name} describes {want}")
        try:
            return cls(tuple(doc["styles"]), tuple(doc["parts"]), ratio, tuple(doc.get("tokenizer_lineage", ())),
                       float(doc.get("alpha", 0.5)), dict(doc.get("token_slots", {})), dict(doc.get("source", {})))
        except WeightsError as err:
            raise WeightsError(f"{st}: {err}") from err
        except (KeyError, TypeError, ValueError) as err:  # valid JSON with fields of the wrong kind
            raise WeightsError(f"{js}: malformed style prior field ({type(err).__name__}: {err})") from err


def style_prior_from_split(split: str = "train", data_root: str | Path | None = None,
                           tokenizer: str | Path | None = None, alpha: float = 0.5,
                           progress: bool = True) -> StylePrior:
    """Count the tokenizer's codes per dance style on a split's real dances.

    Args:
        split: dataset split (``train``: never the split a model is scored on).
        data_root: folder holding the data (None: the default).
        tokenizer: tokenizer stem (None: the shipped one; its codes must be the generator's).
        alpha: add-alpha smoothing. progress: show a progress bar while clips load.
    Raises:
        DataError / ConfigError: from :func:`livedance.data.dataset.load_split` or a clip name without a style.
        WeightsError: missing tokenizer.
    """
    import torch

    from livedance.data.dataset import load_split
    from livedance.model.tokenizer import Tokenizer, code_lineage
    from livedance.model.train_generator import clip_style
    from livedance.model.train_tokenizer import clip_raw_features

    tok, rep, tdoc = Tokenizer.load(tokenizer)
    cfg = tok.config
    clips = load_split(split, data_root, progress=progress)
    counts: dict[str, np.ndarray] = {}
    for clip, raw in zip(clips, clip_raw_features(clips, rep.config)):
        x = rep.normalize(torch.from_numpy(np.ascontiguousarray(raw, np.float32)))
        codes = tok.encode(x[None])
        n = counts.setdefault(clip_style(clip.name), np.zeros((len(cfg.parts), cfg.levels, cfg.codebook_size)))
        for i, p in enumerate(cfg.parts):
            for v in range(cfg.levels):
                n[i, v] += np.bincount(codes[p][0, :, v].numpy(), minlength=cfg.codebook_size)
    from livedance.data.dataset import data_description, data_root_option

    cmd = f"livedance train style-prior --split {split} --alpha {alpha:g}" + data_root_option(data_root)
    return StylePrior.from_counts(counts, cfg.parts, alpha, sorted(code_lineage(tdoc)),
                                  {"data": data_description(data_root), "split": split, "clips": len(clips),
                                   "command": cmd})
