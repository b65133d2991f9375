"""Saving and loading Vitruvion models: ``config.json`` (with the model ``kind``) +
``model.safetensors`` through :mod:`quintet.core.io`, so a checkpoint of the wrong kind is a clear
error rather than a shape mismatch."""

from __future__ import annotations

from pathlib import Path

import torch

from quintet.core.errors import QuintetError
from quintet.core.io import latest_checkpoint, load_checkpoint, read_json, save_checkpoint
from quintet.sketch.models.constraint import KIND_CONSTRAINT, ConstraintModel, ConstraintModelConfig
from quintet.sketch.models.primitive import (
    KIND_IMAGE_PRIMITIVE,
    KIND_PRIMITIVE,
    PrimitiveModel,
    PrimitiveModelConfig,
)

KINDS = (KIND_PRIMITIVE, KIND_IMAGE_PRIMITIVE, KIND_CONSTRAINT)


def build_model(config: dict) -> torch.nn.Module:
    """A fresh model from a config dict (its ``kind`` picks the class)."""
    kind = config.get("kind")
    try:
        if kind in (KIND_PRIMITIVE, KIND_IMAGE_PRIMITIVE):
            return PrimitiveModel(PrimitiveModelConfig(**config))
        if kind == KIND_CONSTRAINT:
            return ConstraintModel(ConstraintModelConfig(**config))
    except (TypeError, ValueError) as exc:
        raise QuintetError(f"the {kind} model configuration is damaged or of another version ({exc})") from exc
    raise QuintetError(f"unknown model kind {kind!r}; expected one of: {', '.join(KINDS)}")


def save_model(directory: str | Path, model: torch.nn.Module, *, step: int, optimizer=None, extra: dict | None = None) -> Path:
    """Write ``checkpoint-<step>/`` (config.json with the kind, model.safetensors) under ``directory``."""
    return save_checkpoint(directory, model, step=step, config=model.config.to_dict(), optimizer=optimizer, extra=extra)


def _resolve(path: Path) -> Path:
    if (path / "latest").is_file():
        resolved = latest_checkpoint(path)
        if resolved is None:
            raise QuintetError(f"{path / 'latest'} points at a missing or incomplete checkpoint")
        return resolved
    return path


def read_config(path: str | Path) -> dict:
    """The config.json of a checkpoint (or of the latest checkpoint in a run directory)."""
    path = Path(path)
    if not path.exists():
        raise QuintetError(f"checkpoint path {path} does not exist")
    cfg_file = _resolve(path) / "config.json"
    if not cfg_file.is_file():
        raise QuintetError(f"{path} holds no config.json (not a quintet sketch model checkpoint)")
    config = read_json(cfg_file, "model configuration")
    if not isinstance(config, dict):
        raise QuintetError(f"model configuration {cfg_file} is not a JSON object; the file is damaged")
    return config


def load_model(path: str | Path, kind: str | tuple[str, ...] | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a model saved by :func:`save_model`; ``kind`` names the kind(s) the caller expects."""
    config = read_config(path)
    got = config.get("kind")
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted is not None and got not in wanted:
        raise QuintetError(
            f"checkpoint {path} holds a {got!r} model, but a {' or '.join(repr(w) for w in wanted)} model is needed"
        )
    model = build_model(config)
    load_checkpoint(_resolve(Path(path)), model)
    return model.to(device).eval()
