"""Weights on disk: safetensors tensors + a JSON config, and the shared model card.

A shipped model ``<stem>`` is two files side by side (never pickle, never ``torch.save``):

* ``<stem>.safetensors``: the module's ``state_dict`` (parameters and buffers), tensors as stored, with
  ``{"format": ...}`` in the safetensors metadata;
* ``<stem>.json``: ``{"format": ..., "format_version": 1, "config": {...}, "tensors": {name: shape},
  "sha256": <hex digest of the .safetensors file>, ...extra}``.

:func:`load_weights` checks both: a missing file, unreadable JSON or a wrong ``format`` / ``format_version``
raises :class:`~livedance.errors.WeightsError` naming the file. The ``sha256`` ties the pair together: when
the JSON records one, a file with another digest (truncated, corrupt, or from another run) is refused; when
it records none (a hand-made or older JSON), the file's metadata ``format`` must equal the JSON's and the
file's tensor names and shapes must equal the JSON's ``tensors`` list (a JSON without either is refused).
Without a digest, other weights of the same shapes still pass: only the digest proves the pair.
:func:`load_state_into` names every missing, unexpected or wrongly shaped tensor and every dtype-kind mismatch.

:func:`write_card_section` keeps one ``## <title>`` section per model in ``MODEL_CARD.md`` (the
tokenizer and the generator each own one and rewrite only theirs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import torch

from livedance.errors import WeightsError

__all__ = [
    "WEIGHTS_DIR",
    "atomic_write_bytes",
    "save_tensors",
    "load_tensors",
    "save_weights",
    "load_weights",
    "weight_paths",
    "load_state_into",
    "sha256_file",
    "write_card_section",
]

#: The folder that holds the shipped weights (``livedance/weights``).
WEIGHTS_DIR: Path = Path(__file__).resolve().parents[1] / "weights"

FORMAT_VERSION = 1


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    from livedance.atomic import atomic_target

    with atomic_target(path) as tmp:
        tmp.write_bytes(data)


def save_tensors(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save named tensors as safetensors, atomically (tensors are detached, made contiguous and unshared)."""
    from safetensors.torch import save

    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write_bytes(path, save(flat, metadata=metadata))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file to CPU tensors.

    Raises:
        WeightsError: when the file is missing or is not a readable safetensors file.
    """
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        return load(path.read_bytes())
    except Exception as e:  # safetensors raises SafetensorError / ValueError on bad headers
        raise WeightsError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e}); it may be truncated or corrupt") from None


def weight_paths(stem: str | Path) -> tuple[Path, Path]:
    """(``<stem>.safetensors``, ``<stem>.json``) of a weights stem.

    A given ``.safetensors`` / ``.json`` suffix is dropped first; any other dotted tail is part of the name
    (``runs/gen-T0.6/generator-s0.5`` stays whole: ``Path.with_suffix`` would have made it ``generator-s0.safetensors``).
    """
    stem = Path(stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    return stem.parent / (stem.name + ".safetensors"), stem.parent / (stem.name + ".json")


def save_weights(
    stem: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    fmt: str,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.safetensors`` and ``<stem>.json``.

    Args:
        stem: path without suffix (a ``.safetensors``/``.json`` suffix is stripped).
        state_dict: the module's ``state_dict()``.
        fmt: format name checked on load, e.g. ``"livedance.tokenizer"``.
        config: JSON-serialisable config needed to rebuild the module.
        extra: more JSON fields (normalisation statistics, metrics, training command ...).
    Returns:
        the two paths written.
    """
    st_path, js_path = weight_paths(stem)
    save_tensors(st_path, state_dict, metadata={"format": fmt})
    doc = {
        "format": fmt,
        "format_version": FORMAT_VERSION,
        "config": config,
        "tensors": {k: list(v.shape) for k, v in state_dict.items()},
        "sha256": sha256_file(st_path),
    }
    doc.update(extra or {})
    atomic_write_bytes(js_path, (json.dumps(doc, indent=1) + "\n").encode())
    return st_path, js_path


def load_weights(stem: str | Path, fmt: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and check ``<stem>.json`` and ``<stem>.safetensors``.

    Returns:
        ``(state_dict, json_doc)``.
    Raises:
        WeightsError: missing file, unreadable JSON, wrong format/version, digest mismatch (corrupt or
            truncated weights), unreadable safetensors; without a digest in the JSON, a file whose metadata
            ``format`` or whose tensor names / shapes differ from the JSON's ``format`` / ``tensors``.
    """
    st_path, js_path = weight_paths(stem)
    if not js_path.is_file():
        raise WeightsError(f"{js_path}: weights config not found (expected it beside {st_path.name})")
    if not st_path.is_file():
        raise WeightsError(f"{st_path}: weights file not found (its config {js_path.name} exists)")
    try:
        doc = json.loads(js_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{js_path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise WeightsError(f"{js_path}: format is {got!r}, expected {fmt!r}")
    if doc.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{js_path}: format_version {doc.get('format_version')!r}, expected {FORMAT_VERSION}")
    want = doc.get("sha256")
    if want is not None:
        got = sha256_file(st_path)
        if got != want:
            raise WeightsError(
                f"{st_path}: SHA-256 {got[:12]}... does not match {want[:12]}... recorded in {js_path.name}; "
                "the weights are corrupt, truncated or from another training run"
            )
    state = load_tensors(st_path)
    if want is None:
        _check_undigested_pair(st_path, js_path, state, doc, fmt)
    return state, doc


def _check_undigested_pair(st_path: Path, js_path: Path, state: Mapping[str, torch.Tensor], doc: dict, fmt: str) -> None:
    """Without a ``sha256``, tie ``st_path`` to ``js_path`` by the metadata ``format`` and the ``tensors`` list."""
    from safetensors import safe_open

    try:
        with safe_open(str(st_path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 - a header safetensors.load accepted; belt and braces
        raise WeightsError(f"{st_path}: unreadable safetensors header ({type(e).__name__}: {e})") from None
    if meta.get("format") != fmt:
        raise WeightsError(
            f"{st_path}: safetensors metadata format is {meta.get('format')!r}, but {js_path.name} is {fmt!r} and "
            "records no sha256; the two files are not a pair (restore the matching weights, or the JSON with its sha256)"
        )
    listed = doc.get("tensors")
    if not isinstance(listed, dict):
        raise WeightsError(f"{js_path}: records neither a sha256 nor a tensors list, so nothing ties it to {st_path.name}")
    file_shapes = {k: tuple(v.shape) for k, v in state.items()}
    json_shapes = {str(k): tuple(v) if isinstance(v, (list, tuple)) else v for k, v in listed.items()}
    if file_shapes != json_shapes:
        parts = _mismatches(file_shapes, json_shapes, "json", "tensors not in its tensors list", "listed tensors missing")
        raise WeightsError(f"{st_path}: does not match the tensors list of {js_path.name} (which records no sha256): "
                           f"{'; '.join(parts)}")


def _mismatches(have: Mapping[str, Any], want: Mapping[str, Any], want_label: str, extra: str, missing: str) -> list[str]:
    """Readable differences between two name -> shape maps (file first; shapes as tuples, or whatever a broken JSON
    lists): extra names, missing names, shapes."""
    only_have, only_want = sorted(set(have) - set(want)), sorted(set(want) - set(have))
    shape = sorted(f"{k}: file {have[k]} vs {want_label} {want[k]}"
                   for k in set(have) & set(want) if have[k] != want[k])
    parts = []
    if only_have:
        parts.append(f"{len(only_have)} {extra} (e.g. {', '.join(only_have[:4])})")
    if only_want:
        parts.append(f"{len(only_want)} {missing} (e.g. {', '.join(only_want[:4])})")
    if shape:
        parts.append(f"shape mismatch: {'; '.join(shape[:4])}")
    return parts


def load_state_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Copy ``state`` into ``module`` after checking names, shapes and dtype kinds.

    A tensor is cast to the module's dtype only within its kind (float16 -> float32 is fine); a float, integer,
    bool or complex tensor for a buffer of another kind (e.g. a float file into an int64 buffer) is refused.

    Raises:
        WeightsError: naming ``source`` and listing missing, unexpected, wrongly shaped and wrong-kind tensors.
    """
    own = module.state_dict()
    kind = sorted(
        f"{k}: file {state[k].dtype} vs model {own[k].dtype}"
        for k in set(own) & set(state)
        if _dtype_kind(state[k].dtype) != _dtype_kind(own[k].dtype)
    )
    parts = _mismatches({k: tuple(v.shape) for k, v in state.items()}, {k: tuple(v.shape) for k, v in own.items()},
                        "model", "unexpected tensors", "missing tensors")
    if kind:
        parts.append(f"dtype kind mismatch: {'; '.join(kind[:4])}")
    if parts:
        raise WeightsError(f"{source}: weights do not match the model built from its config: {'; '.join(parts)}")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def _dtype_kind(dtype: torch.dtype) -> str:
    """'bool', 'complex', 'float' or 'int'."""
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    return "float" if dtype.is_floating_point else "int"


def write_card_section(card_path: str | Path, title: str, body: str) -> Path:
    """Create or replace the ``## <title>`` section of a Markdown model card (other sections are kept).

    Args:
        card_path: the card (created with a ``# livedance model card`` header when absent).
        title: section title, without ``## ``.
        body: section text (Markdown, without the heading).
    Returns:
        the card path.
    """
    card_path = Path(card_path)
    text = card_path.read_text() if card_path.is_file() else "# livedance model card\n"
    lines = text.splitlines()
    head = f"## {title}"
    out, i, replaced = [], 0, False
    while i < len(lines):
        if lines[i].strip() == head:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("## "):
                j += 1
            out.extend([head, "", body.strip(), ""])
            replaced = True
            i = j
        else:
            out.append(lines[i])
            i += 1
    if not replaced:
        if out and out[-1].strip():
            out.append("")
        out.extend([head, "", body.strip(), ""])
    atomic_write_bytes(card_path, ("\n".join(out).rstrip() + "\n").encode())
    return card_path
