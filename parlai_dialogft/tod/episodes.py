"""SGD, MultiWOZ and CrossWOZ as ParlAI ``TodStructuredEpisode`` s: goals, calls, answers, replies.

Each round is a user turn, the call the agent made, the answer it read and its reply:

* **SGD** has the calls: a system turn's ``service_call`` is the call (``api_name`` = the
  method), and of its ``service_results`` the one the reply talks about is the answer.
* **MultiWOZ** and **CrossWOZ** have a belief state instead: a turn whose state changed calls
  the changed domain with its whole state (:func:`.calls.turn_call`), and the shipped database
  answers, so training sees the answers the agent will read at run time. Of the entities that
  match, the one the gold reply offers comes first (MultiWOZ: the name in its ``span_info``;
  CrossWOZ: ``selectedResults``), and a MultiWOZ booking answers with the booking's own
  reference (a taxi's own car and phone): the reply can then be learnt as a copy of the
  answer, not a guess.

Goals (for ParlAI's user simulator and its goal metrics) are calls too: the goal's
constraints per domain, ``book_<domain>`` where the goal books.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from parlai.core.tod.tod_core import (
    STANDARD_OPTIONAL_KEY,
    STANDARD_REQUIRED_KEY,
    TodStructuredEpisode,
    TodStructuredRound,
)

from parlai_dialogft.data.conversation import Conversation
from parlai_dialogft.data.readers import task_oriented
from parlai_dialogft.tod import calls

SOURCES = ("sgd", "multiwoz", "crosswoz")  # the corpora with calls or states; Taskmaster-4 has neither
LANGUAGES = {name: task_oriented.LANGUAGES[name] for name in SOURCES}


def annotations(item) -> Mapping[str, Any]:
    return getattr(item, "annotations", None) or {}


def pairs(conversation: Conversation) -> List[Tuple[Any, Any]]:
    """(user turn, agent turn) in order; a trailing user turn has no reply and is left out."""
    turns = conversation.turns
    out = []
    for i in range(len(turns) - 1):
        if turns[i].speaker == task_oriented.USER and turns[i + 1].speaker == task_oriented.AGENT:
            out.append((turns[i], turns[i + 1]))
    return out


@functools.lru_cache(maxsize=None)
def database(source: str):
    from parlai_dialogft.tod.database import open_database

    return open_database(source)  # each state-annotated corpus has its database under its own name


def _round(user, agent, call: calls.Call, result: Mapping[str, str], state: calls.State) -> TodStructuredRound:
    return TodStructuredRound(user_utt=user.text, api_call_machine=call, api_resp_machine=dict(result),
                              sys_utt=agent.text, extras={"state": state})


def _episode(source: str, conversation: Conversation, rounds, goal_calls) -> TodStructuredEpisode:
    return TodStructuredEpisode(
        domain=source,
        api_schemas_machine=schemas(database(source)),
        goal_calls_machine=goal_calls,
        rounds=rounds,
        extras={"dialogue_id": conversation.id, "goal": annotations(conversation).get("goal"), "source": source},
    )


# --- MultiWOZ ---------------------------------------------------------------------------------


def _act_domains(*turns) -> List[str]:
    """Domains a turn's dialogue acts talk about (``Hotel-Inform`` -> ``hotel``), in order."""
    found = []
    for turn in turns:
        acts = annotations(turn).get("dialog_act") or {}
        if isinstance(acts, Mapping):
            found += [key.split("-")[0].lower() for key in acts]
        else:  # CrossWOZ: [intent, domain, slot, value]
            found += [act[1] for act in acts if len(act) > 1]
    return list(dict.fromkeys(found))


def _multiwoz_offered(turn) -> Optional[str]:
    """The entity the reply names: its ``span_info``'s Name or Id (a train)."""
    for act, slot, value, *_ in annotations(turn).get("span_info") or ():
        if slot in ("Name", "Id") and not act.startswith("Booking"):
            return str(value)
    return None


def _multiwoz_booked(metadata: Mapping, domain: str) -> Mapping[str, str]:
    """What the agent's booking got (a reference; a taxi's car and phone), as the gold reply says it."""
    booked = ((metadata or {}).get(domain) or {}).get("book", {}).get("booked") or []
    return booked[-1] if booked else {}


def multiwoz_episode(conversation: Conversation) -> TodStructuredEpisode:
    db = database("multiwoz")
    rounds = []
    state: calls.State = {}
    booked: Dict[str, int] = {}
    for user, agent in pairs(conversation):
        metadata = annotations(agent).get("metadata") or {}
        after = calls.multiwoz_state(metadata)
        now_booked = calls.multiwoz_booked(metadata)
        new_bookings = [d for d, n in now_booked.items() if n > booked.get(d, 0)]
        call = calls.turn_call(state, after, _act_domains(agent, user), new_bookings)
        result: Dict[str, str] = {}
        if call:
            result = db.answer(call, prefer=_multiwoz_offered(agent))
            _, domain = calls.action_and_domain(call)
            if domain in new_bookings and result.get("booking") == "confirmed":
                gold = _multiwoz_booked(metadata, domain)
                result.update({k: str(gold[k]) for k in ("reference", "phone", "type") if gold.get(k)})
        rounds.append(_round(user, agent, call, result, after))
        state, booked = after, now_booked
    return _episode("multiwoz", conversation, rounds, multiwoz_goal_calls(annotations(conversation).get("goal") or {}))


def multiwoz_goal_calls(goal: Mapping) -> List[calls.Call]:
    out = []
    for domain, parts in goal.items():
        if not isinstance(parts, Mapping) or not parts:
            continue
        slots = {k: v for k, v in ((k, calls._clean(v)) for k, v in (parts.get("info") or {}).items()) if v}
        book = {calls.BOOK_PREFIX + k: str(v) for k, v in (parts.get("book") or {}).items()
                if k not in ("invalid", "pre_invalid") and str(v).strip()}
        if slots or book:
            out.append(calls.make_call(calls.BOOK if book else calls.FIND, domain, {**slots, **book}))
    return out


# --- CrossWOZ ---------------------------------------------------------------------------------


def _crosswoz_selected(turn, domain: str) -> Optional[str]:
    selected = ((annotations(turn).get("sys_state") or {}).get(domain) or {}).get("selectedResults") or []
    return selected[0] if selected else None


def crosswoz_episode(conversation: Conversation) -> TodStructuredEpisode:
    db = database("crosswoz")
    rounds = []
    state: calls.State = {}
    for user, agent in pairs(conversation):
        after = calls.crosswoz_state(annotations(agent).get("sys_state") or {})
        call = calls.turn_call(state, after, _act_domains(agent, user))
        result: Dict[str, str] = {}
        if call:
            _, domain = calls.action_and_domain(call)
            result = db.answer(call, prefer=_crosswoz_selected(agent, domain))
        rounds.append(_round(user, agent, call, result, after))
        state = after
    return _episode("crosswoz", conversation, rounds, crosswoz_goal_calls(annotations(conversation).get("goal") or []))


def crosswoz_goal_calls(goal: Sequence) -> List[calls.Call]:
    """CrossWOZ goals are ``[sub_goal_id, domain, slot, value, filled]``; a value is a constraint."""
    grouped: Dict[Tuple[Any, str], Dict[str, str]] = {}
    for item in goal or ():
        sub_goal, domain, slot, value = item[:4]
        group = grouped.setdefault((sub_goal, domain), {})
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        if value not in ("", None) and not str(value).startswith("出现在"):
            group[slot] = str(value)
    return [calls.make_call(calls.FIND, domain, slots) for (_, domain), slots in grouped.items() if slots]


# --- SGD --------------------------------------------------------------------------------------


def _sgd_frames(turn) -> List[Mapping]:
    return list(annotations(turn).get("frames") or ())


def _sgd_result(results: Sequence[Mapping], reply: str) -> Dict[str, str]:
    """Of the service's results, the one whose values the reply says most of."""
    if not results:
        return {"count": "0"}  # the service found nothing (or refused): the database's answer too
    said = reply.casefold()
    best = max(results, key=lambda r: sum(str(v).casefold() in said for v in r.values()))
    return {"count": str(len(results)), **{str(k): str(v) for k, v in best.items()}}


def sgd_episode(conversation: Conversation, schema: Mapping[str, Mapping]) -> TodStructuredEpisode:
    rounds = []
    goals = []
    for user, agent in pairs(conversation):
        call: calls.Call = {}
        result: Dict[str, str] = {}
        for frame in _sgd_frames(agent):
            service_call = frame.get("service_call")
            if service_call:
                call = {calls.API_NAME: service_call["method"], **{k: str(v) for k, v in service_call["parameters"].items()}}
                result = _sgd_result(frame.get("service_results") or (), agent.text)
                goals.append(call)
                break
        rounds.append(TodStructuredRound(user_utt=user.text, api_call_machine=call, api_resp_machine=result, sys_utt=agent.text))
    services = list(annotations(conversation).get("services") or ())
    return TodStructuredEpisode(
        domain=",".join(services) or "sgd",
        api_schemas_machine=[s for name in services for s in sgd_schemas(schema.get(name) or {})],
        goal_calls_machine=goals,
        rounds=rounds,
        extras={"dialogue_id": conversation.id, "services": services, "source": "sgd"},
    )


@functools.lru_cache(maxsize=None)
def _train_services() -> frozenset:
    return frozenset(task_oriented.sgd_schema("train"))


def sgd_seen(episode: TodStructuredEpisode) -> bool:
    """Whether every service of an SGD dialogue is in the train schema (SGD's "seen" services)."""
    return set(episode.extras.get("services") or ()) <= _train_services()


def sgd_schemas(service: Mapping) -> List[Dict[str, Any]]:
    return [
        {calls.API_NAME: intent["name"], STANDARD_REQUIRED_KEY: list(intent.get("required_slots") or ()),
         STANDARD_OPTIONAL_KEY: list((intent.get("optional_slots") or {}).keys())}
        for intent in service.get("intents") or ()
    ]


def schemas(db) -> List[Dict[str, Any]]:
    return [{calls.API_NAME: f"{calls.FIND}_{domain}", STANDARD_REQUIRED_KEY: [], STANDARD_OPTIONAL_KEY: list(db.slots(domain))}
            for domain in db.domains]


# --- all of a split ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def episodes(source: str, split: str) -> Tuple[TodStructuredEpisode, ...]:
    """A split's episodes, built once per process (ParlAI's TOD teachers ask for them twice)."""
    return tuple(_build(source, split))


def _build(source: str, split: str) -> List[TodStructuredEpisode]:
    conversations: Iterable[Conversation] = task_oriented.READERS[source]()[split]
    if source == "multiwoz":
        return [multiwoz_episode(c) for c in conversations]
    if source == "crosswoz":
        return [crosswoz_episode(c) for c in conversations]
    if source == "sgd":
        schema = task_oriented.sgd_schema(split)
        return [sgd_episode(c, schema) for c in conversations]
    raise ValueError(f"{source}: no calls or states to make task-oriented episodes of; choose from {', '.join(SOURCES)}")
