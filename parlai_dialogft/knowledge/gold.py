"""The gold knowledge of CrossWOZ's agent turns: the database entities their dialogue acts name.

A turn's acts name entities in the ``名称`` slot (``["Inform","餐馆","名称","讲礼驴肉馆"]``) and
in the nearby-place slots (``周边景点`` ...). A turn that only gives an attribute
(``["Inform","餐馆","地址",...]``) is about the entity the agent has selected for that domain
(``sys_state[domain]["selectedResults"]``). Named entities come first, then selected ones.
KdConv needs nothing here: its turns carry their triples (``Turn.knowledge``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Tuple

from parlai_dialogft.data.readers.corpus_files import corpus_dir, disk_cached, load_json

ENTITY_DOMAINS = ("景点", "餐馆", "酒店")
NAME_SLOTS = ("名称", "周边景点", "周边餐馆", "周边酒店")


@dataclass(frozen=True)
class TurnGold:
    named: Tuple[str, ...]  # entities the reply names (its acts say so)
    entities: Tuple[str, ...]  # named, then the selected entities the reply talks about


def turn_gold(message: dict, known: FrozenSet[str]) -> TurnGold:
    named, selected = [], []
    informed_domains = []
    for _intent, domain, slot, value in message.get("dialog_act", ()):
        if domain not in ENTITY_DOMAINS:
            continue
        informed_domains.append(domain)
        if slot in NAME_SLOTS and value in known:
            named.append(value)
    for domain in dict.fromkeys(informed_domains):
        state = (message.get("sys_state") or {}).get(domain) or {}
        selected.extend(name for name in state.get("selectedResults") or () if name in known)
    named = list(dict.fromkeys(named))
    return TurnGold(tuple(named), tuple(dict.fromkeys(named + selected)))


@disk_cached("crosswoz")
def crosswoz_turn_gold() -> Dict[str, Tuple[TurnGold, ...]]:
    """Dialogue id -> the gold of each agent (``sys``) turn, in order."""
    from parlai_dialogft.knowledge.stores import crosswoz_records

    known = frozenset(record["名称"] for record in crosswoz_records())
    result: Dict[str, Tuple[TurnGold, ...]] = {}
    for upstream in ("val", "test"):
        for dialogue_id, dialogue in load_json(corpus_dir("crosswoz") / f"{upstream}.json.zip").items():
            result[dialogue_id] = tuple(turn_gold(m, known) for m in dialogue["messages"] if m["role"] == "sys")
    return result
