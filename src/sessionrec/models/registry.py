"""The explicit list of model names (``--model NAME``) and their classes, and loading a saved
model folder as the class its manifest names.

A plain dict rather than import-time self-registration: what exists is visible in one place
and importing a module never changes it.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from sessionrec._errors import ConfigError, ModelError
from sessionrec.data.sessions import ItemVocab
from sessionrec.models.base import Recommender
from sessionrec.models.ensemble import Ensemble
from sessionrec.models.persist import (
    MANIFEST,
    MEMBER_NAME,
    MEMBERS,
    read_arrays,
    read_counts,
    read_manifest,
)
from sessionrec.models.repeat import RepeatAware
from sessionrec.models.standalone import STANDALONE_MODELS

MODELS: dict[str, type[Recommender]] = {
    **STANDALONE_MODELS,  # pop, spop, markov, sr, itemknn, the kNN family, the neural models
    "repeat": RepeatAware,  # a layer over any standalone model: repeat-aware scoring
    "ensemble": Ensemble,  # members: any of the models above
}


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}"
        ) from None


def model_params(name: str) -> dict[str, Any]:
    """Hyperparameters of a model with their default values."""
    signature = inspect.signature(model_class(name).__init__)
    return {
        key: p.default
        for key, p in signature.parameters.items()
        if key != "self" and p.default is not inspect.Parameter.empty
    }


def create_model(name: str, params: dict[str, Any] | None = None) -> Recommender:
    """Instantiate a registered model; unknown hyperparameter names are rejected."""
    params = dict(params or {})
    known = model_params(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(
            f"model {name!r} has no hyperparameter {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(known)) or 'none'}"
        )
    return model_class(name)(**params)


# The ensemble creates its members by name through this registry, which it cannot import.


def parse_param(name: str, key: str, text: str) -> Any:
    """Convert ``--param key=value`` text to the type of the hyperparameter's default."""
    defaults = model_params(name)
    if key not in defaults:
        raise ConfigError(
            f"model {name!r} has no hyperparameter {key!r}; "
            f"it takes: {', '.join(sorted(defaults)) or 'none'}"
        )
    default = defaults[key]
    try:
        if isinstance(default, bool):
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, str):
            return text
        # No usable default type (None): JSON when it parses, otherwise the raw text.
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    except ValueError as exc:
        raise ConfigError(f"--param {key}={text!r}: {exc}") from None


def parse_params(name: str, pairs: list[str] | None) -> dict[str, Any]:
    """Parse a list of ``key=value`` strings for model ``name``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param expects key=value, got {pair!r}")
        out[key.strip()] = parse_param(name, key.strip(), value)
    return out


def load_model(path: str | Path) -> Recommender:
    """Load any registered model from its folder, verifying versions and checksums."""
    folder = Path(path)
    manifest = read_manifest(folder)
    try:
        cls = model_class(manifest["model"])
    except ConfigError as exc:
        raise ModelError(f"{folder / MANIFEST}: field 'model': {exc}") from exc
    if manifest["artifact_version"] > cls.artifact_version:
        raise ModelError(
            f"{folder / MANIFEST}: field 'artifact_version' is {manifest['artifact_version']}, "
            f"this sessionrec reads {cls.name} artifacts up to {cls.artifact_version}; "
            "upgrade sessionrec"
        )
    if manifest["artifact_version"] < cls.oldest_artifact_version:
        raise ModelError(
            f"{folder / MANIFEST}: field 'artifact_version' is {manifest['artifact_version']}, "
            f"this sessionrec reads {cls.name} artifacts from version "
            f"{cls.oldest_artifact_version} on (the network changed); train the model again"
        )
    vocab_ids, state = read_arrays(folder, manifest)
    try:
        model = cls(**manifest["params"])
    except (TypeError, ConfigError) as exc:
        raise ModelError(f"{folder / MANIFEST}: field 'params': {exc}") from exc
    model.vocab_ = ItemVocab(vocab_ids)
    model.data_fingerprint_ = str(manifest.get("data_fingerprint") or "")
    model.training_counts_ = read_counts(folder, manifest, len(model.vocab_))
    model._set_members(_load_members(folder, manifest, model.vocab_))
    model._set_state(state)
    return model


def _load_members(folder: Path, manifest: dict[str, Any], vocab: ItemVocab) -> dict[str, Any]:
    """The member models a composite model's manifest lists, each from ``members/NAME/``."""
    names = manifest.get("members", [])
    if not isinstance(names, list) or not all(
        isinstance(n, str) and MEMBER_NAME.match(n) for n in names
    ):
        raise ModelError(f"{folder / MANIFEST}: field 'members' must list plain folder names")
    members = {}
    for name in names:
        member = load_model(folder / MEMBERS / name)
        if member.vocab_ != vocab:
            raise ModelError(f"{folder / MEMBERS / name}: its vocabulary is not the model's")
        members[name] = member
    return members
