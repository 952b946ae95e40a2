"""CrossWOZ Inform: did the agent offer only entities that fit the user's goal?

No standard end-to-end metric exists for CrossWOZ; this one carries MultiWOZ's Inform
(:mod:`.task_success`) over, per dialogue, 0 or 1.

**Goal.** CrossWOZ's ``goal`` is a list of ``[sub_goal_id, domain, slot, value, filled]``;
each sub-goal id is one entity to find. For the venue domains (景点, 餐馆, 酒店) a tuple with a
value is a constraint (a list value such as 推荐菜 ``["美食街"]`` when non-empty), one without
a value a request. Three kinds of constraint:

* ``名称 = X``: the user names the entity: only X fits;
* ``名称 = 出现在id=N的周边景点里``: the entity is among the nearby places (周边景点 / 周边餐馆 /
  周边酒店) of an entity offered for sub-goal N;
* any other slot, checked by the database: ``query(domain, constraints)`` (ranges, ratings,
  dishes, :mod:`parlai_dialogft.tod.crosswoz_db`), except ``酒店设施-X = 否`` (no X), checked
  on the entity's own facilities; ``酒店设施-X = 是`` becomes the query's ``酒店设施 = X``.

A sub-goal that no entity can meet (CrossWOZ generates some: 评分 5分 with a dish only a
3.5分 restaurant serves, or a nearby place with a rating none of the nearby places has) is
met by any entity of its domain, since the user then settles for what there is. The metro
and taxi sub-goals (地铁, 出租) have no entity to offer and are left out.

**Offered entities.** On each system turn with a call to a venue domain: the ``名称`` of the
call's result (``APIRESP``) when the reply says it, and every entity of that domain the reply
names (names from the database, longest first) that fits the call's constraints. A name that does not fit what the
agent searched for is not an offer: a reply listing what is near 故宫 names places without
offering them (MultiWOZ's Inform, likewise, reads the offer from the turn's state). A turn
without a call talks on about the last call's search (its names count against that call's
constraints); turns before any call offer nothing.

**Inform** = 1 when every offered entity of a domain in the goal fits some sub-goal of that
domain, and every sub-goal of a venue domain is fitted by some offered entity (a sub-goal
that names its entity counts as met, as MultiWOZ's Inform does). Domains outside the goal
are ignored. Every offer counts, where MultiWOZ's rule keeps only the last: a wrong entity
offered first and a right one after still fails.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from parlai_dialogft.evaluation.task_success import PredictionError, Query, wilson
from parlai_dialogft.tod.calls import action_and_domain, constraints

VENUE_DOMAINS = ("景点", "餐馆", "酒店")
NAME = "名称"
NEARBY = ("周边景点", "周边餐馆", "周边酒店")
FACILITY_PREFIX = "酒店设施-"
_RELATION = re.compile(r"出现在id=(\d+)的(周边景点|周边餐馆|周边酒店)里")


@dataclass
class CrossWOZTurn:
    """One system turn: the reply users see, and its call and the call's result when it made one."""

    response: str
    call: Optional[Mapping[str, str]] = None  # APICALL as a dict: api_name = find_<domain>, slots
    result: Optional[Mapping[str, str]] = None  # APIRESP as a dict


@dataclass
class SubGoal:
    domain: str
    name: Optional[str] = None  # the user named the entity
    relation: Optional[Tuple[int, str]] = None  # (sub-goal id, 周边X)
    constraints: Dict[str, str] = field(default_factory=dict)  # for the database
    without: Tuple[str, ...] = ()  # facilities the hotel must not have


def parse_goal(goal: Sequence[Sequence]) -> Dict[int, SubGoal]:
    """CrossWOZ ``goal`` tuples -> sub-goal id -> :class:`SubGoal`, venue domains only."""
    subgoals: Dict[int, SubGoal] = {}
    facilities: Dict[int, List[str]] = defaultdict(list)
    without: Dict[int, List[str]] = defaultdict(list)
    for sub_id, domain, slot, value, *_ in goal:
        if domain not in VENUE_DOMAINS:
            continue
        sub = subgoals.setdefault(int(sub_id), SubGoal(domain))
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        value = str(value).strip()
        if not value:
            continue
        if slot == NAME:
            relation = _RELATION.fullmatch(value)
            if relation:
                sub.relation = (int(relation.group(1)), relation.group(2))
            else:
                sub.name = value
        elif slot.startswith(FACILITY_PREFIX):
            facility = slot[len(FACILITY_PREFIX):]
            (without if value == "否" else facilities)[int(sub_id)].append(facility)
        else:
            sub.constraints[slot] = value
    for sub_id, names in facilities.items():
        subgoals[sub_id].constraints["酒店设施"] = " ".join(names)
    for sub_id, names in without.items():
        subgoals[sub_id].without = tuple(names)
    return subgoals


def _list(value: object) -> List[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        return [text] if text else []
    return [str(v) for v in parsed] if isinstance(parsed, list) else [text]


@dataclass
class CrossWOZDialogueInform:
    dialogue: str
    inform: bool
    offered: Dict[str, List[str]]  # domain -> entities offered
    unmet: List[int]  # sub-goals no offer fits
    misfits: Dict[str, List[str]]  # domain -> offered entities that fit no sub-goal


@dataclass
class CrossWOZInformReport:
    inform: float
    inform_interval: Tuple[float, float]
    dialogues: List[CrossWOZDialogueInform]

    def to_dict(self) -> dict:
        return asdict(self)


class CrossWOZInformScorer:
    """CrossWOZ Inform against a database ``query`` (results cached)."""

    def __init__(self, query: Query):
        self.query = query
        self._rows: Dict[Tuple[str, FrozenSet], List[Dict[str, str]]] = {}
        self._names = {d: sorted({r[NAME] for r in self._query(d, {})}, key=len, reverse=True) for d in VENUE_DOMAINS}
        self._finders = {d: re.compile("|".join(re.escape(n) for n in names)) for d, names in self._names.items() if names}

    def _query(self, domain: str, constraints: Mapping[str, str]) -> List[Dict[str, str]]:
        key = (domain, frozenset(constraints.items()))
        if key not in self._rows:
            self._rows[key] = self.query(domain, dict(constraints))
        return self._rows[key]

    def entity(self, domain: str, name: str) -> Optional[Dict[str, str]]:
        return next((r for r in self._query(domain, {NAME: name}) if r.get(NAME) == name), None)

    def named(self, text: str, domains: Iterable[str]) -> Set[Tuple[str, str]]:
        """(domain, name) of the entities ``text`` names, longest names first, no overlaps."""
        found: Set[Tuple[str, str]] = set()
        spans: List[Tuple[int, int, str, str]] = []
        for domain in domains:
            finder = self._finders.get(domain)
            if finder:
                spans += [(m.start(), m.end(), domain, m.group()) for m in finder.finditer(text)]
        taken: List[Tuple[int, int]] = []
        for start, end, domain, name in sorted(spans, key=lambda s: (s[0] - s[1], s[0])):
            if all(end <= a or start >= b for a, b in taken):
                taken.append((start, end))
                found.add((domain, name))
        return found

    def offered(self, turns: Sequence[CrossWOZTurn]) -> Dict[str, List[str]]:
        """domain -> the entities offered, in order (see the module's docstring)."""
        offered: Dict[str, List[str]] = defaultdict(list)
        last_call: Mapping[str, str] = {}
        for turn in turns:
            if turn.call:
                last_call = turn.call
            elif last_call:  # a turn without a call talks on about the last call's entities
                turn = CrossWOZTurn(turn.response, last_call, None)
            _, domain = action_and_domain(turn.call or {})
            if domain not in VENUE_DOMAINS:
                continue
            # The answer's entity is offered when the reply names it: an answer the reply leaves
            # unsaid offers nothing (and a reply-only model, scored with the gold answers, would
            # otherwise be credited with the corpus's offers).
            result_name = str((turn.result or {}).get(NAME) or "")
            names = [result_name] if result_name and result_name in turn.response else []
            searched = {r.get(NAME) for r in self._query(domain, constraints(turn.call or {}))}
            names += [name for _, name in sorted(self.named(turn.response, [domain])) if name in searched]
            offered[domain] += [name for name in dict.fromkeys(names) if name not in offered[domain]]
        return dict(offered)

    def own_fits(self, sub: SubGoal) -> Set[str]:
        """The entities that meet the sub-goal's own constraints (its relation aside)."""
        if sub.name is not None:
            return {sub.name}
        names = {r.get(NAME) for r in self._query(sub.domain, sub.constraints)} if sub.constraints else set(self._names[sub.domain])
        if sub.without:
            names = {n for n in names if not any(
                f in " ".join(_list((self.entity(sub.domain, n) or {}).get("酒店设施"))) for f in sub.without)}
        return names

    def candidates(self, subgoals: Mapping[int, SubGoal], sub_id: int, offered: Mapping[str, Sequence[str]]) -> Optional[Set[str]]:
        """The entities that meet sub-goal ``sub_id``; None when none can (then any will do)."""
        sub = subgoals[sub_id]
        names = self.own_fits(sub)
        if sub.relation and sub.relation[0] in subgoals:
            other_id, key = sub.relation
            other = subgoals[other_id]
            anchors = [n for n in offered.get(other.domain, ()) if n in self.own_fits(other)]
            names &= {n for a in anchors for n in _list((self.entity(other.domain, a) or {}).get(key))}
        return names or None

    def fits(self, subgoals: Mapping[int, SubGoal], sub_id: int, domain: str, name: str,
             offered: Mapping[str, Sequence[str]]) -> bool:
        if subgoals[sub_id].domain != domain:
            return False
        names = self.candidates(subgoals, sub_id, offered)
        return names is None or name in names

    def score(self, dialogue: str, goal: Sequence[Sequence], turns: Sequence[CrossWOZTurn]) -> CrossWOZDialogueInform:
        subgoals = parse_goal(goal)
        offered = self.offered(turns)
        goal_domains = {s.domain for s in subgoals.values()}
        misfits = {
            d: [n for n in names if not any(self.fits(subgoals, i, d, n, offered) for i in subgoals)]
            for d, names in offered.items() if d in goal_domains
        }
        unmet = [
            i for i, sub in subgoals.items()
            if sub.name is None and not any(self.fits(subgoals, i, sub.domain, n, offered) for n in offered.get(sub.domain, ()))
        ]
        misfits = {d: names for d, names in misfits.items() if names}
        return CrossWOZDialogueInform(dialogue, not unmet and not misfits, offered, sorted(unmet), misfits)


def score_crosswoz_inform(
    predictions: Mapping[str, Sequence[CrossWOZTurn]], dialogues: Mapping[str, Mapping], query: Query
) -> CrossWOZInformReport:
    """CrossWOZ Inform of ``predictions`` (dialogue id -> system turns) against CrossWOZ ``dialogues``."""
    scorer = CrossWOZInformScorer(query)
    scores = []
    for key, turns in predictions.items():
        if key not in dialogues:
            raise PredictionError(key, "not in the dialogues scored against (wrong split?)")
        expected = sum(1 for m in dialogues[key]["messages"] if m.get("role") == "sys")
        if len(turns) != expected:
            raise PredictionError(key, f"{len(turns)} turns predicted, the dialogue has {expected} system turns")
        scores.append(scorer.score(key, dialogues[key]["goal"], turns))
    informed = sum(s.inform for s in scores)
    rate = 100 * informed / len(scores) if scores else 0.0
    return CrossWOZInformReport(rate, wilson(informed, len(scores)), scores)
