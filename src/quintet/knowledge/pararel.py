"""PARAREL facts as bags of prompts (Dai et al., 2022, §4.1: 34 relations, one bag per fact).

Relations with at most 3 templates are dropped (39 -> 34). A fact's *bag* is its subject
written into each template, ``[Y]`` replaced by ``[MASK]``. Facts whose object is not a single
token for the model's tokenizer are dropped (the paper keeps single-token objects only).

A causal LM reads the object as the next token, so :func:`causal_bags` keeps only templates in
which ``[Y]`` ends the sentence (``"[X] was born in [Y]."`` -> ``"Ada was born in [MASK]"``; the
final full stop is dropped) and objects that are one token *with* the leading space, and counts
what each filter leaves (:class:`FilterCounts`).
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import asdict, dataclass, field

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


def chosen_templates(relations: list[str] | None, data_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """:func:`relation_templates`, restricted to ``relations`` (all when ``None``); an unknown
    relation is a :class:`QuintetError` naming the known ones."""
    templates = relation_templates(data_dir=data_dir)
    if relations is None:
        return templates
    unknown = [r for r in relations if r not in templates]
    if unknown:
        raise QuintetError(f"unknown relation(s) {unknown}; expected some of: {', '.join(templates)}")
    return {r: templates[r] for r in relations}


def split_templates(patterns: list[str], heldout_fraction: float, rng: random.Random) -> tuple[list[str], list[str]]:
    """Hold out ``round(fraction * n)`` templates (at least 1, leaving at least 3 for training)."""
    n_out = min(max(1, round(heldout_fraction * len(patterns))), len(patterns) - 3) if heldout_fraction > 0 else 0
    shuffled = patterns[:]
    rng.shuffle(shuffled)
    return sorted(shuffled[n_out:]), sorted(shuffled[:n_out])


def single_token(tokenizer, word: str, causal: bool = False) -> bool:
    from quintet.knowledge.prompts import answer_id

    try:
        answer_id(tokenizer, word, causal)
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
    templates = chosen_templates(relations, data_dir)
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


_ENDS_WITH_Y = re.compile(r"^(?P<head>.*\S)\s*\[Y\][\s.]*$")


def causal_template(pattern: str) -> str | None:
    """``"[X] was born in [Y] ."`` -> ``"[X] was born in [Y]"``; ``None`` unless ``[Y]`` ends the
    sentence (only a full stop may follow) and ``[X]`` comes before it, exactly once each."""
    match = _ENDS_WITH_Y.match(pattern.strip())
    if match is None or pattern.count("[X]") != 1 or pattern.count("[Y]") != 1:
        return None
    return f"{match.group('head')} [Y]"


@dataclass
class FilterCounts:
    """What survives each filter of :func:`causal_bags` (and of the knowledge filter that
    :func:`~quintet.knowledge.experiments.known_facts` adds)."""

    relations: int = 0                    # PARAREL relations with >= 4 templates (the paper's 34)
    relations_causal: int = 0             # ... with >= min_templates templates ending in [Y]
    facts: int = 0                        # unique subjects of those relations
    facts_single_token: int = 0           # ... whose object is one token with its leading space
    facts_sampled: int = 0                # ... after sampling facts_per_relation
    facts_known: int | None = None        # ... that the model knows
    relations_known: int | None = None    # relations with at least one known fact

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


def causal_bags(
    tokenizer,
    facts_per_relation: int | None = None,
    min_templates: int = 3,
    heldout: int = 1,
    max_prompts: int | None = None,
    seed: int = 0,
    relations: list[str] | None = None,
    data_dir: str | os.PathLike | None = None,
) -> tuple[list[FactBag], FilterCounts]:
    """PARAREL bags for a next-token LM, and the counts each filter leaves.

    Per relation: the templates in which ``[Y]`` ends the prompt (:func:`causal_template`;
    relations with fewer than ``min_templates`` are dropped); ``heldout`` of them (seeded) go to
    ``FactBag.heldout`` (templates never used to find neurons), the rest, at most
    ``max_prompts`` of them, to ``FactBag.prompts``. Facts: unique subjects whose object is one
    token of ``tokenizer`` with its leading space, ``facts_per_relation`` sampled (seeded).
    """
    if min_templates < heldout + 1:
        raise QuintetError(f"min_templates ({min_templates}) must exceed heldout ({heldout}): "
                           "a fact needs at least one prompt to find neurons with")
    rng = random.Random(seed)
    counts = FilterCounts(relations=len(relation_templates(data_dir=data_dir)))
    templates = chosen_templates(relations, data_dir)
    bags = []
    for relation, patterns in templates.items():
        causal = sorted({c for c in map(causal_template, patterns) if c is not None})
        if len(causal) < min_templates:
            continue
        counts.relations_causal += 1
        rng.shuffle(causal)
        held, train = sorted(causal[:heldout]), sorted(causal[heldout:])[:max_prompts]
        subjects: dict[str, str] = {}
        for fact in load_trex_facts(relation, data_dir):
            if "[" not in fact.subject:
                subjects.setdefault(fact.subject, fact.object)
        counts.facts += len(subjects)
        keep = [(s, o) for s, o in subjects.items() if single_token(tokenizer, o, causal=True)]
        counts.facts_single_token += len(keep)
        rng.shuffle(keep)
        keep = keep[:facts_per_relation]
        counts.facts_sampled += len(keep)
        bags += [FactBag(relation, s, o, tuple(fill(p, s) for p in train), tuple(fill(p, s) for p in held))
                 for s, o in keep]
    return bags, counts
