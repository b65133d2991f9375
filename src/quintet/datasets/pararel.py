"""PARAREL (Elazar et al., 2021): templates per relation, T-REx facts, and the knowledge-neurons
authors' 1-1 bags of prompts (Dai et al., 2022)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from quintet.core.errors import QuintetError
from quintet.datasets.registry import data_root, json_records, require_file


@dataclass(frozen=True)
class Template:
    """A paraphrase of a relation with ``[X]`` (subject) and ``[Y]`` (object) slots."""

    pattern: str
    lemma: str = ""
    extended_lemma: str = ""
    tense: str = ""


@dataclass(frozen=True)
class Fact:
    subject: str
    object: str
    uuid: str = ""


@dataclass(frozen=True)
class BagPrompt:
    """One prompt of a fact's bag: text with one ``[MASK]``, the answer, the relation label."""

    prompt: str
    answer: str
    relation: str


def _jsonl(path: Path) -> list[dict]:
    return list(json_records(path.read_text(encoding="utf-8").splitlines(), path))


def pararel_relations(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Relation ids (e.g. ``P36``) that have both templates and facts, sorted by number."""
    root = data_root(data_dir) / "pararel"
    patterns = {p.stem for p in (root / "patterns").glob("P*.jsonl")}
    facts = {p.stem for p in (root / "trex_lms_vocab").glob("P*.jsonl")}
    if not patterns:
        raise QuintetError(f"no PARAREL templates found: looked for {root / 'patterns'}/P*.jsonl")
    return sorted(patterns & facts, key=lambda r: int(r[1:]))


def load_pararel_templates(relation: str, data_dir: str | os.PathLike | None = None) -> list[Template]:
    path = require_file(f"pararel/patterns/{relation}.jsonl", data_dir)
    templates = []
    for record in _jsonl(path):
        pattern = record.get("pattern", "")
        if "[X]" not in pattern or "[Y]" not in pattern:
            raise QuintetError(f"{path}: template {pattern!r} lacks an [X] or [Y] slot")
        templates.append(Template(pattern, record.get("lemma", ""), record.get("extended_lemma", ""), record.get("tense", "")))
    return templates


def load_trex_facts(relation: str, data_dir: str | os.PathLike | None = None) -> list[Fact]:
    path = require_file(f"pararel/trex_lms_vocab/{relation}.jsonl", data_dir)
    try:
        return [Fact(r["sub_label"], r["obj_label"], r.get("uuid", "")) for r in _jsonl(path)]
    except KeyError as exc:
        raise QuintetError(f"{path}: a fact lacks the field {exc}") from exc


def load_kn_bags(data_dir: str | os.PathLike | None = None) -> list[list[BagPrompt]]:
    """The authors' 1-1 bags (``data_11.json``): a list of facts, each a list of prompts."""
    path = require_file("pararel/kn-bags/data_11.json", data_dir)
    try:
        bags = json.loads(path.read_text(encoding="utf-8"))
        return [[BagPrompt(str(p), str(a), str(r)) for p, a, r in bag] for bag in bags]
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise QuintetError(f"{path}: not a list of bags of [prompt, answer, relation] ({exc})") from exc


def load_lama_relations(data_dir: str | os.PathLike | None = None) -> dict[str, dict]:
    """LAMA's relation records (label, description, type) keyed by relation id."""
    path = require_file("pararel/kn-bags/lama_relations.jsonl", data_dir)
    return {r["relation"]: r for r in _jsonl(path)}
