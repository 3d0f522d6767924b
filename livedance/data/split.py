"""Deterministic train/val/test split of the Tang 2018 DANCE sequences, by sequence, stratified by style.

Whole sequences go to one split (no frame of a test dance is ever seen in training). Within each
style the sequence names are sorted, shuffled with ``numpy.random.default_rng(seed)`` and cut:
``n_test = round(test_frac * n)`` and ``n_val = round(val_frac * n)``, each at least 1 when the style
has at least 2 (test) or 3 (val) sequences; a style with a single sequence goes to train. With the
38 sequences and the defaults (0.15 / 0.15, seed 0) that is 26 / 6 / 6. The committed result is
``livedance/data/tang_split.json`` (``livedance data split-tang`` writes it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from livedance.data.tang import style_of
from livedance.errors import ConfigError, DataError

#: Committed split file.
SPLIT_PATH: Path = Path(__file__).with_name("tang_split.json")
#: Split names accepted by :func:`split_names` (``'all'`` = the union).
SPLITS: tuple[str, ...] = ("train", "val", "test", "all")


def make_tang_split(
    names: list[str], seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15
) -> dict:
    """Split sequence names by style.

    Args:
        names: sequence folder names ``DANCE_<C|R|T|W>_<n>`` (order does not matter).
        seed: seed of ``numpy.random.default_rng``.
        val_frac, test_frac: fractions of each style's sequences for val and test, in [0, 0.5].

    Returns:
        ``{"seed", "val_frac", "test_frac", "train": [...], "val": [...], "test": [...],
        "by_style": {style: {"train": n, "val": n, "test": n}}}`` with sorted name lists.

    Raises:
        ConfigError: a fraction outside [0, 0.5], fractions that leave a style no train sequence, or
            duplicate names.
        DataError: a name that is not ``DANCE_<C|R|T|W>_<n>``.
    """
    for label, f in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0.0 <= f <= 0.5:
            raise ConfigError(f"{label} must be in [0, 0.5], got {f}")
    if len(set(names)) != len(names):
        raise ConfigError("sequence names must be unique")
    by_style: dict[str, list[str]] = defaultdict(list)
    for n in names:
        by_style[style_of(n)].append(n)
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    counts = {}
    for style in sorted(by_style):
        group = sorted(by_style[style], key=lambda s: (len(s), s))
        group = [group[i] for i in rng.permutation(len(group))]
        n = len(group)
        n_test = max(1, round(test_frac * n)) if n >= 2 and test_frac > 0 else 0
        n_val = max(1, round(val_frac * n)) if n >= 3 and val_frac > 0 else 0
        if n - n_test - n_val < 1:
            raise ConfigError(f"--val-frac {val_frac:g} and --test-frac {test_frac:g} leave style {style} ({n} "
                              f"sequences: {n_val} val, {n_test} test) no train sequence; lower them")
        out["test"] += group[:n_test]
        out["val"] += group[n_test : n_test + n_val]
        out["train"] += group[n_test + n_val :]
        counts[style] = {"train": n - n_test - n_val, "val": n_val, "test": n_test}
    return {
        "seed": seed,
        "val_frac": val_frac,
        "test_frac": test_frac,
        **{k: sorted(v) for k, v in out.items()},
        "by_style": counts,
    }


def write_split(split: dict, path: Path = SPLIT_PATH) -> Path:
    """Write a split as indented JSON; returns the path."""
    from livedance.atomic import atomic_target

    with atomic_target(path) as tmp:  # training reads it: never half a file
        tmp.write_text(json.dumps(split, indent=1) + "\n", encoding="utf-8")
    return path


def split_names(split: str, path: str | Path | None = None) -> list[str]:
    """Sequence names of one split from ``tang_split.json``.

    Args:
        split: ``'train'``, ``'val'``, ``'test'`` or ``'all'``.
        path: the split file (default :data:`SPLIT_PATH`).

    Raises:
        ConfigError: unknown split name.
        DataError: the file is missing or malformed, or a name is in two splits.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    p = Path(path) if path is not None else SPLIT_PATH
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        parts = {k: list(data[k]) for k in ("train", "val", "test")}
    except FileNotFoundError as err:
        raise DataError(f"split file {p} not found; run `livedance data split-tang`") from err
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(f"split file {p} is malformed ({err})") from err
    seen = [n for v in parts.values() for n in v]
    if len(seen) != len(set(seen)):
        raise DataError(f"split file {p} lists a sequence in more than one split")
    if split == "all":
        return sorted(seen)
    return parts[split]
