"""The default rule pack: aggregate definitions, rules and lists shipped as data.

``default_pack/`` holds three JSON files: ``aggregates.json`` (the definition format of
``docs/AGGREGATES.md``), ``rules.json`` (rules in the ``lendgate.rules.Rule`` model, plus
the match kinds a rule's report shows) and ``lists.json``. :func:`load_pack` reads them
and :func:`install` puts the rules into a :class:`~lendgate.rules.RuleBook` and the lists
into :class:`~lendgate.lists.Lists`, where the rule-administration API edits them later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lendgate._core import DEFAULT_NAME_SIMILARITY
from lendgate.lists import ListDefinition, ListEntry, ListEntryKind, Lists, ListType
from lendgate.rules import Rule, RuleBook, rule_from_json

DEFAULT_PACK_DIR = Path(__file__).parent / "default_pack"
PACK_AUTHOR = "default-pack"


@dataclass(frozen=True)
class Pack:
    """A rule pack as loaded: nothing is compiled or installed yet."""

    name: str
    revision: str
    zone_threshold: int
    aggregates: dict[str, Any]
    rules: tuple[Rule, ...]
    matches: dict[str, tuple[str, ...]]
    name_similarity: float
    """Jaro-Winkler threshold (0, 1] from which two names with one birth date are taken
    as the same person's (fuzzy consortium matching)."""
    lists: tuple[dict[str, Any], ...]


def _rule(raw: dict[str, Any], pack: str) -> Rule:
    """A pack rule: the stored rule format, kind APPLICATION unless it says otherwise."""
    return rule_from_json({"event_kind": "APPLICATION", **raw, "source_pack": pack})


def load_pack(directory: Path = DEFAULT_PACK_DIR) -> Pack:
    """Read the pack in ``directory`` (the default pack when not given)."""
    rules_doc = json.loads((directory / "rules.json").read_text())
    name = rules_doc["pack"]
    return Pack(
        name=name,
        revision=rules_doc["revision"],
        zone_threshold=int(rules_doc["zone_threshold"]),
        aggregates=json.loads((directory / "aggregates.json").read_text()),
        rules=tuple(_rule(r, name) for r in rules_doc["rules"]),
        matches={r["rule_id"]: tuple(r.get("matches", [])) for r in rules_doc["rules"]},
        name_similarity=float(rules_doc.get("name_similarity", DEFAULT_NAME_SIMILARITY)),
        lists=tuple(json.loads((directory / "lists.json").read_text())["lists"]),
    )


def install(pack: Pack, book: RuleBook, lists: Lists) -> None:
    """Create the pack's rules in ``book`` and its lists (with entries) in ``lists``."""
    for rule in pack.rules:
        book.create(rule, author=PACK_AUTHOR, reason=f"{pack.name} pack {pack.revision}")
    for spec in pack.lists:
        lists.create(
            ListDefinition(
                spec["list_id"],
                ListEntryKind(spec["entry_kind"]),
                ListType(spec["list_type"]),
                description=spec.get("description", ""),
            ),
            author=PACK_AUTHOR,
        )
        entries = [ListEntry(v) for v in spec.get("entries", [])]
        if entries:
            lists.add_entries(spec["list_id"], entries, author=PACK_AUTHOR)
