"""Model folders: a JSON manifest plus ``.npz`` arrays, written atomically, never pickled.

Layout of a model folder::

    manifest.json   format, versions, model name, hyperparameters, vocabulary kind and size,
                    training-data fingerprint, metrics, and a SHA-256 of every other file
    vocab.npz       the external item ids (int64 or unicode; no object arrays)
    state.npz       the model's learned arrays
    counts.npz      the training clicks per item (``counts``, int64), the popularity
                    fallback of serving; absent in a composite model (its members hold
                    them) and in folders written before sessionrec kept them
    members/NAME/   a composite model's members (an ensemble's models, a layer's base
                    model), each a model folder of this layout (listed in the manifest)

The folder is written with :func:`sessionrec._atomic.atomic_folder`, so a reader (a serving
process hot-reloading it) never sees half a model. Reading one back as a model needs the
class its manifest names: :func:`sessionrec.models.registry.load_model`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._atomic import atomic_folder
from sessionrec._errors import ModelError
from sessionrec._version import __version__

if TYPE_CHECKING:
    from sessionrec.models.base import Recommender

FORMAT = "sessionrec.model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COUNTS = "counts.npz"
"""The file of a model folder holding the training clicks per item."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.dtype.hasobject:
            raise ModelError(f"state entry {key!r} must be a numeric or unicode numpy array")
    with path.open("wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError) as exc:
        raise ModelError(f"{path}: cannot read arrays: {exc}") from exc


def _plain(value: Any) -> Any:
    """numpy scalars (accepted as hyperparameters) as the Python values JSON knows."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r}")


def _json_ready(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=_plain))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where} is not JSON-serialisable: {exc}") from exc


MEMBERS = "members"
"""The sub-folder that holds a composite model's member models, one folder each."""

MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A member's name is a plain folder name: no path separators, no leading dot."""


def save_model(model: Recommender, path: str | Path, metrics: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to the folder ``path`` atomically (replacing an existing model folder)."""
    model._check_fitted()
    target = Path(path)
    if target.exists() and not (target / MANIFEST).is_file():
        raise ModelError(f"{target} exists and is not a model folder; refusing to replace it")
    with atomic_folder(target) as tmp:
        _write_folder(model, tmp, metrics)
    return target


def _write_folder(model: Recommender, folder: Path, metrics: dict[str, Any] | None) -> None:
    """The files of one model folder, members included (the caller makes it atomic)."""
    _write_npz(folder / "vocab.npz", {"ids": np.asarray(model.vocab_.ids)})
    _write_npz(folder / "state.npz", model._get_state())
    names = ["vocab.npz", "state.npz"]
    members = model._get_members()
    counts = None if members else model.training_counts()  # a composite's: its members'
    if counts is not None:
        _write_npz(folder / COUNTS, {"counts": np.asarray(counts, dtype=np.int64)})
        names.append(COUNTS)
    files = {name: _sha256(folder / name) for name in names}
    for name, member in members.items():
        if not MEMBER_NAME.match(name):
            raise ModelError(f"member name {name!r} is not a plain folder name")
        member._check_fitted()
        (folder / MEMBERS / name).mkdir(parents=True)
        _write_folder(member, folder / MEMBERS / name, None)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sessionrec_version": __version__,
        "model": model.name,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "artifact_version": model.artifact_version,
        "params": _json_ready(model.get_params(), "hyperparameters"),
        "vocab": {"kind": model.vocab_.kind, "size": len(model.vocab_)},
        "data_fingerprint": getattr(model, "data_fingerprint_", None),
        "metrics": _json_ready(metrics or {}, "metrics"),
        "files": files,
        "members": sorted(members),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a model folder, checked for format and version."""
    folder = Path(path)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"{folder}: not a model folder (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{manifest_path}: invalid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"{manifest_path}: not a sessionrec model manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelError(
            f"{manifest_path}: field 'format_version' is {version!r}, this sessionrec "
            f"({__version__}) reads up to {FORMAT_VERSION}; upgrade sessionrec"
        )
    for key in ("model", "params", "files", "artifact_version"):
        if key not in manifest:
            raise ModelError(f"{manifest_path}: missing field '{key}'")
    return manifest


def _verified(folder: Path, name: str, files: dict[str, Any]) -> Path:
    file = folder / name
    if not file.is_file():
        raise ModelError(f"{folder}: missing file {name}")
    if _sha256(file) != files.get(name):
        raise ModelError(f"{file}: checksum mismatch (the file is corrupt or was modified)")
    return file


def read_arrays(
    path: str | Path, manifest: dict[str, Any]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The external item ids and the state arrays of a model folder, checksums verified."""
    folder = Path(path)
    files = manifest["files"]
    for name in ("vocab.npz", "state.npz"):
        _verified(folder, name, files)
    return _read_npz(folder / "vocab.npz")["ids"], _read_npz(folder / "state.npz")


def read_counts(path: str | Path, manifest: dict[str, Any], n_items: int) -> np.ndarray | None:
    """The training clicks per item of a model folder (checksum verified); ``None`` when the
    folder has none (a composite model, or a folder saved before counts were kept)."""
    folder = Path(path)
    if COUNTS not in manifest["files"]:
        return None
    file = _verified(folder, COUNTS, manifest["files"])
    counts = _read_npz(file).get("counts")
    if (
        counts is None
        or counts.shape != (n_items,)
        or counts.dtype.kind not in "iu"
        or (counts.size and int(counts.min()) < 0)
    ):
        raise ModelError(f"{file}: 'counts' must be {n_items} non-negative integers")
    return counts.astype(np.int64)
