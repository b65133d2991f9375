"""PARAREL facts as bags of prompts (Dai et al., 2022, §4.1: 34 relations, one bag per fact).

Relations with at most 3 templates are dropped (39 -> 34). A fact's *bag* is its subject
written into each template, ``[Y]`` replaced by ``[MASK]``. Facts whose object is not a single
token for the model's tokenizer are dropped (the paper keeps single-token objects only).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from quintet.core.errors import QuintetError
from quintet.datasets import (
    load_kn_bags,
    load_pararel_templates,
    load_trex_facts,
    pararel_relations,
)


@dataclass(frozen=True)
class FactBag:
    """One fact ``(subject, relation, object)``: ``prompts`` (each with one ``[MASK]``) and, for
    the library's fact LM, ``heldout`` prompts written with templates it never saw."""

    relation: str
    subject: str
    object: str
    prompts: tuple[str, ...]
    heldout: tuple[str, ...] = field(default=())


def fill(pattern: str, subject: str) -> str:
    """``"[X] was born in [Y] ."`` -> ``"Ada was born in [MASK] ."``."""
    return pattern.replace("[X]", subject).replace("[Y]", "[MASK]")


def relation_templates(min_templates: int = 4, data_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Templates per relation, keeping relations with at least ``min_templates`` (34 relations)."""
    out = {}
    for relation in pararel_relations(data_dir):
        patterns = list(dict.fromkeys(t.pattern.strip() for t in load_pararel_templates(relation, data_dir)))
        if len(patterns) >= min_templates:
            out[relation] = patterns
    return out


def split_templates(patterns: list[str], heldout_fraction: float, rng: random.Random) -> tuple[list[str], list[str]]:
    """Hold out ``round(fraction * n)`` templates (at least 1, leaving at least 3 for training)."""
    n_out = min(max(1, round(heldout_fraction * len(patterns))), len(patterns) - 3) if heldout_fraction > 0 else 0
    shuffled = patterns[:]
    rng.shuffle(shuffled)
    return sorted(shuffled[n_out:]), sorted(shuffled[:n_out])


def single_token(tokenizer, word: str) -> bool:
    from quintet.knowledge.prompts import answer_id

    try:
        answer_id(tokenizer, word)
        return True
    except QuintetError:
        return False


def pararel_bags(
    tokenizer=None,
    facts_per_relation: int | None = None,
    heldout_fraction: float = 0.0,
    seed: int = 0,
    relations: list[str] | None = None,
    data_dir: str | os.PathLike | None = None,
) -> list[FactBag]:
    """Bags of the 34 PARAREL relations; with a ``tokenizer``, single-token objects only.

    ``facts_per_relation`` takes a seeded random sample per relation (subjects unique within a
    relation); ``heldout_fraction`` of each relation's templates go to ``FactBag.heldout``.
    """
    rng = random.Random(seed)
    templates = relation_templates(data_dir=data_dir)
    if relations is not None:
        unknown = [r for r in relations if r not in templates]
        if unknown:
            raise QuintetError(f"unknown relation(s) {unknown}; expected some of: {', '.join(templates)}")
        templates = {r: templates[r] for r in relations}
    bags = []
    for relation, patterns in templates.items():
        train, held = split_templates(patterns, heldout_fraction, rng)
        facts = load_trex_facts(relation, data_dir)
        seen = set()
        keep = []
        for fact in facts:
            if fact.subject in seen or "[" in fact.subject:
                continue
            if tokenizer is not None and not single_token(tokenizer, fact.object):
                continue
            seen.add(fact.subject)
            keep.append(fact)
        rng.shuffle(keep)
        if facts_per_relation is not None:
            keep = keep[:facts_per_relation]
        for fact in keep:
            bags.append(FactBag(relation, fact.subject, fact.object,
                                tuple(fill(p, fact.subject) for p in train),
                                tuple(fill(p, fact.subject) for p in held)))
    return bags


def kn_bags(tokenizer=None, data_dir: str | os.PathLike | None = None) -> list[FactBag]:
    """The authors' 1-1 bags (``kn-bags/data_11.json``), single-token answers only with a tokenizer."""
    out = []
    for bag in load_kn_bags(data_dir):
        if not bag:
            continue
        answer = bag[0].answer
        if tokenizer is not None and not single_token(tokenizer, answer):
            continue
        relation = bag[0].relation.split("(")[0]
        prompts = tuple(p.prompt for p in bag if p.prompt.count("[MASK]") == 1)
        out.append(FactBag(relation, "", answer, prompts))
    return out
