"""The SketchGraphs sample: real Onshape FeatureScript documents in ``sample_json.tar.xz``.

Only decompression and JSON decoding live here; :mod:`quintet.sketch` parses the sketches.
"""

from __future__ import annotations

import json
import lzma
import os
import tarfile
from typing import Iterator

from quintet.core.errors import QuintetError
from quintet.datasets.registry import require_file

ARCHIVE = "sketchgraphs/sample_json.tar.xz"


def sketchgraphs_documents(data_dir: str | os.PathLike | None = None) -> Iterator[tuple[str, list[dict]]]:
    """Yield ``(document name, sketch features)`` for each ``.json`` member of the archive.

    A document is a JSON list of Onshape sketch features, each an object with ``entities`` and
    ``constraints`` (84 documents, 237 sketches in the sample).
    """
    path = require_file(ARCHIVE, data_dir)
    try:
        with tarfile.open(path, "r:xz") as archive:
            for member in archive:
                if not member.isfile() or not member.name.endswith(".json"):
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                name = os.path.basename(member.name)
                yield name, parse_document(handle.read(), name)
    except (tarfile.TarError, lzma.LZMAError, EOFError) as exc:
        raise QuintetError(f"{path}: cannot read the archive ({exc})") from exc


def parse_document(data: bytes | str, name: str) -> list[dict]:
    """Decode one FeatureScript document (a list of sketch features); errors name the document."""
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QuintetError(f"sketch document {name}: not valid JSON ({exc})") from exc
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise QuintetError(f"sketch document {name}: expected a list of sketch features, got {type(document).__name__}")
    for index, feature in enumerate(document):
        if not isinstance(feature, dict) or "entities" not in feature or "constraints" not in feature:
            raise QuintetError(
                f"sketch document {name}: feature {index} is not a sketch (needs 'entities' and 'constraints')"
            )
    return document
