"""The gold knowledge of CrossWOZ's agent turns: the database entities their dialogue acts name.

A turn's acts name entities in the ``名称`` slot (``["Inform","餐馆","名称","讲礼驴肉馆"]``) and
in the nearby-place slots (``周边景点`` ...). A turn that only gives an attribute
(``["Inform","餐馆","地址",...]``) is about the entity the agent has selected for that domain
(``sys_state[domain]["selectedResults"]``). Named entities come first, then selected ones.
The acts and states are the CrossWOZ reader's turn annotations (``Turn.annotations``).
KdConv needs nothing here: its turns carry their triples (``Turn.knowledge``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Mapping, Tuple

from parlai_dialogft.data.readers.task_oriented import AGENT, read_crosswoz

ENTITY_DOMAINS = ("景点", "餐馆", "酒店")
NAME_SLOTS = ("名称", "周边景点", "周边餐馆", "周边酒店")


@dataclass(frozen=True)
class TurnGold:
    named: Tuple[str, ...]  # entities the reply names (its acts say so)
    entities: Tuple[str, ...]  # named, then the selected entities the reply talks about


def turn_gold(annotations: Mapping[str, Any], known: FrozenSet[str]) -> TurnGold:
    """The gold of one agent turn from its annotations (upstream's ``dialog_act``, ``sys_state``)."""
    named, selected = [], []
    informed_domains = []
    for _intent, domain, slot, value in annotations.get("dialog_act", ()):
        if domain not in ENTITY_DOMAINS:
            continue
        informed_domains.append(domain)
        if slot in NAME_SLOTS and value in known:
            named.append(value)
    for domain in dict.fromkeys(informed_domains):
        state = (annotations.get("sys_state") or {}).get(domain) or {}
        selected.extend(name for name in state.get("selectedResults") or () if name in known)
    named = list(dict.fromkeys(named))
    return TurnGold(tuple(named), tuple(dict.fromkeys(named + selected)))


@functools.lru_cache(maxsize=None)
def crosswoz_turn_gold() -> Dict[str, Tuple[TurnGold, ...]]:
    """Dialogue id -> the gold of each agent (``sys``) turn, in order, in every split."""
    from parlai_dialogft.knowledge.stores import crosswoz_records

    known = frozenset(record["名称"] for record in crosswoz_records())
    return {
        conversation.id: tuple(turn_gold(t.annotations, known) for t in conversation.turns if t.speaker == AGENT)
        for split in read_crosswoz().values()
        for conversation in split
    }
