"""Atomic file writes and crash-safe checkpoints (config.json + model.safetensors).

A checkpoint is a directory ``checkpoint-<step>/`` holding ``config.json``, ``model.safetensors``,
``optimizer.safetensors`` and ``trainer_state.json``. Each file is written atomically and the
``latest`` pointer beside the directories is replaced only after all of them are on disk, so a
process killed mid-write leaves the previous checkpoint as the one that resumes. Loading never
unpickles: tensors come from safetensors, everything else from JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file, save

from quintet.core.errors import QuintetError

LATEST = "latest"


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give (mkstemp's temporaries are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> Path:
    """Write a flat dict of tensors as safetensors, atomically."""
    return atomic_write_bytes(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}))


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise QuintetError(f"no weights file at {path}")
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own error types
        reason = " ".join(str(exc).split())
        raise QuintetError(f"{path} is not a valid safetensors file ({reason}); the file is damaged") from exc


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Parse a JSON file; a missing, truncated or garbage file is a :class:`QuintetError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QuintetError(f"{what} {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise QuintetError(f"{what} {path} is not valid JSON ({reason}); the file is damaged") from None


def config_differences(saved: Any, wanted: dict[str, Any], ignore: tuple[str, ...] = (), prefix: str = "") -> list[str]:
    """``"name: saved -> wanted"`` for every entry of ``wanted`` (nested dicts as ``a.b``) that
    ``saved`` holds otherwise; names in ``ignore`` are skipped."""
    plain = json.loads(json.dumps(wanted, default=_json_default))
    saved = saved if isinstance(saved, dict) else {}
    out = []
    for key, value in plain.items():
        old = saved.get(key)
        if key in ignore or old == value:
            continue
        if isinstance(value, dict) and isinstance(old, dict):
            out += config_differences(old, value, ignore, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}: {old!r} -> {value!r}")
    return out


def _split_optimizer_state(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Separate an optimizer state_dict into flat tensors and a JSON-able remainder."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, dict[str, Any]] = {}
    for pid, pstate in state["state"].items():
        meta[str(pid)] = {}
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value
            else:
                meta[str(pid)][key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": meta}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {int(pid): dict(vals) for pid, vals in meta["scalars"].items()}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: str | os.PathLike,
    model: torch.nn.Module,
    *,
    step: int,
    config: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Save ``checkpoint-<step>/`` under ``directory`` and point ``latest`` at it.

    ``extra`` holds JSON-able trainer state (metrics so far, RNG seeds); tensors inside it are not
    allowed. Older checkpoints beyond ``keep`` are removed after the pointer moves.
    """
    root = Path(directory)
    target = root / f"checkpoint-{step:08d}"
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_json(target / "config.json", config or {})
    save_tensors(target / "model.safetensors", _unshared_state_dict(model))
    state: dict[str, Any] = {"step": step, "extra": extra or {}}
    if optimizer is not None:
        tensors, meta = _split_optimizer_state(optimizer.state_dict())
        save_tensors(target / "optimizer.safetensors", tensors)
        state["optimizer"] = meta
    atomic_write_json(target / "trainer_state.json", state)
    atomic_write_text(root / LATEST, target.name + "\n")
    old = sorted(p for p in root.glob("checkpoint-*") if p.is_dir() and p != target)
    for stale in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    return target


def _unshared_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with tied tensors cloned, since safetensors refuses shared storage."""
    seen: dict[int, str] = {}
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        ptr = tensor.untyped_storage().data_ptr() if tensor.numel() else -1
        out[name] = tensor.clone() if ptr in seen and ptr != -1 else tensor
        seen.setdefault(ptr, name)
    return out


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint the ``latest`` pointer names, or ``None`` when there is none."""
    root = Path(directory)
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    target = root / pointer.read_text().strip()
    return target if (target / "trainer_state.json").is_file() else None


def check_checkpoint(
    path: str | os.PathLike,
    expected_config: dict[str, Any] | None = None,
    ignore: tuple[str, ...] = (),
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Read a checkpoint's JSON files and the headers of its safetensors files, and compare
    ``expected_config`` (its keys, except ``ignore``) with the saved configuration, without loading
    any weights: a damaged file or a changed configuration is a one-line :class:`QuintetError`.

    ``path`` is a checkpoint directory or a folder holding ``latest``. Returns ``(checkpoint
    directory, trainer state, saved configuration)``.
    """
    path = Path(path)
    if not path.exists():
        raise QuintetError(f"checkpoint path {path} does not exist")
    if (path / LATEST).is_file():
        resolved = latest_checkpoint(path)
        if resolved is None:
            raise QuintetError(f"{path / LATEST} points at a missing or incomplete checkpoint")
        path = resolved
    state_file = path / "trainer_state.json"
    if not (path / "model.safetensors").is_file():
        raise QuintetError(f"{path} holds no model.safetensors")
    state = read_json(state_file, "trainer state") if state_file.is_file() else {"step": 0, "extra": {}}
    if not isinstance(state, dict) or not isinstance(state.get("step", 0), int):
        raise QuintetError(f"trainer state {state_file} has no integer 'step'; the file is damaged")
    state.setdefault("step", 0)
    state.setdefault("extra", {})
    config_file = path / "config.json"
    config = read_json(config_file, "checkpoint configuration") if config_file.is_file() else {}
    if not isinstance(config, dict):
        raise QuintetError(f"checkpoint configuration {config_file} is not a JSON object; the file is damaged")
    if expected_config is not None:
        diff = config_differences(config, expected_config, ignore)
        if diff:
            raise QuintetError(f"{path} was written with another configuration ({'; '.join(diff)}); "
                               "use another folder or --no-resume")
    for tensors in sorted(path.glob("*.safetensors")):
        _check_safetensors_header(tensors)
    return path, state, config


def _check_safetensors_header(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as exc:  # safetensors raises its own error types
        reason = " ".join(str(exc).split())
        raise QuintetError(f"{path} is not a valid safetensors file ({reason}); the file is damaged") from exc


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    strict: bool = True,
    expected_config: dict[str, Any] | None = None,
    ignore: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Load a checkpoint directory (or a run directory holding ``latest``) into model/optimizer.

    :func:`check_checkpoint` runs first, so a damaged file or a changed configuration is refused
    before any weights are loaded and the model stays untouched.
    Returns the trainer state: ``{"step": int, "extra": dict, "config": dict}``.
    """
    path, state, config = check_checkpoint(path, expected_config, ignore)
    weights = path / "model.safetensors"
    load_weights(model, load_tensors(weights), str(weights), strict=strict)
    if optimizer is not None and "optimizer" in state:
        tensors = load_tensors(path / "optimizer.safetensors")
        try:
            optimizer.load_state_dict(_join_optimizer_state(tensors, state["optimizer"]))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise QuintetError(f"the optimizer state in {path} does not fit the model ({exc})") from exc
    state["config"] = config
    state.pop("optimizer", None)
    return state


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str, strict: bool = True) -> None:
    """``model.load_state_dict`` whose mismatch is one line counting missing, unexpected and
    differently shaped tensors (instead of listing every one of them)."""
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    shapes = [k for k in own if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)]
    if shapes or (strict and (missing or unexpected)):
        first = shapes[0] if shapes else (missing or unexpected)[0]
        detail = (f"{first}: saved {tuple(tensors[first].shape)}, model {tuple(own[first].shape)}"
                  if shapes else f"first: {first}")
        raise QuintetError(f"{source} does not fit the model: {len(missing)} missing, {len(unexpected)} unexpected, "
                           f"{len(shapes)} differently shaped tensors ({detail}); it was saved with other sizes")
    model.load_state_dict(tensors, strict=strict)
