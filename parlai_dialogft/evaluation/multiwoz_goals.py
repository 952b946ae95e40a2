"""What a MultiWOZ dialogue had to achieve, as Inform and Success read it.

:func:`parse_goal` turns a dialogue's ``goal`` into one :class:`DomainGoal` per domain the
user had a task in, with the rules of the standardized evaluation (Nekvinda & Dušek, 2021,
https://github.com/Tomiinek/MultiWOZ_Evaluation, whose goals follow the original MultiWOZ
``evaluate.py``):

* every domain with a non-empty goal counts (restaurant, hotel, attraction, train, taxi,
  hospital, police); a domain whose goal has no ``info`` counts with nothing to inform or
  request;
* ``informable``: the goal's ``info`` (the constraints the user ends up with; ``fail_info``,
  the ones that find nothing, is ignored), in the database's spelling;
* ``requestable``, as slot classes: for a train, ``REFERENCE`` when the goal books it and
  ``TRAINID`` when the user asks for ``trainID``, nothing else (departure times, prices and
  durations are not checked); for the other domains the ``reqt`` among phone, address,
  postcode (``PHONE``, ``ADDRESS``, ``POST``), plus ``REFERENCE`` when the goal books;
* ``booking``: the goal's ``book`` details (not used by the metrics; kept for reports).

:func:`booked_domains` says, per system turn, which domains have a booking so far (the
``booked`` lists of the turn's ``metadata``, taxi left out); a reference number counts only
for such a domain, because MultiWOZ does not say whether a booking could have succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Mapping, Sequence

from parlai_dialogft.evaluation.multiwoz_normalize import normalize_state

GOAL_DOMAINS = ("restaurant", "hotel", "attraction", "train", "taxi", "hospital", "police")
VENUE_DOMAINS = ("restaurant", "hotel", "attraction", "train")  # a database entity must be offered
NO_ENTITY_DOMAINS = ("taxi", "police", "hospital")  # nothing to offer: always informed
REQUESTABLE_CLASSES = ("PHONE", "ADDRESS", "POST", "REFERENCE", "TRAINID")
_REQT_CLASSES = {"phone": "PHONE", "address": "ADDRESS", "postcode": "POST", "reference": "REFERENCE", "id": "TRAINID"}


@dataclass(frozen=True)
class DomainGoal:
    informable: Dict[str, str] = field(default_factory=dict)  # semi slot -> value
    requestable: FrozenSet[str] = frozenset()  # slot classes: PHONE, ADDRESS, POST, REFERENCE, TRAINID
    booking: Dict[str, str] = field(default_factory=dict)


def parse_goal(goal: Mapping) -> Dict[str, DomainGoal]:
    """A MultiWOZ 2.1 ``goal`` -> domain -> :class:`DomainGoal`, for the domains in the task."""
    parsed: Dict[str, DomainGoal] = {}
    for domain in GOAL_DOMAINS:
        spec = goal.get(domain) or {}
        if not spec:
            continue
        if "info" not in spec:
            parsed[domain] = DomainGoal()
            continue
        requestable = set()
        reqt = spec.get("reqt") or ()
        if domain == "train":
            if "trainID" in reqt:
                requestable.add("TRAINID")
        else:
            requestable.update(_REQT_CLASSES[slot] for slot in reqt if slot in _REQT_CLASSES)
        if "book" in spec:
            requestable.add("REFERENCE")
        informable = normalize_state({domain: spec.get("info") or {}}).get(domain, {})
        booking = {k: str(v) for k, v in (spec.get("book") or {}).items() if k not in ("invalid", "pre_invalid")}
        parsed[domain] = DomainGoal(informable, frozenset(requestable), booking)
    return parsed


def booked_domains(log: Sequence[Mapping]) -> List[List[str]]:
    """Per system turn of a MultiWOZ 2.1 ``log``: the domains with a booking made so far."""
    booked = []
    for index, turn in enumerate(log):
        if index % 2 == 1:
            metadata = turn.get("metadata") or {}
            booked.append(sorted(
                domain for domain, parts in metadata.items()
                if domain != "taxi" and ((parts or {}).get("book") or {}).get("booked")
            ))
    return booked
