"""API calls: how a belief state becomes ``APICALL: api_name = find_hotel ; area = north``, and back.

The text format is ParlAI's (``parlai.core.tod.tod_core``): ``slot = value`` pairs joined by
`` ; ``, keys sorted, ``api_name`` naming the function. Values are kept whole when read back
(ParlAI's reader splits a value at ``", "`` into a set, which would make a gold address and the
same predicted address compare unequal).

A call carries the whole state of one domain: its constraints (MultiWOZ's ``semi`` slots,
CrossWOZ's slots) and, for MultiWOZ, the booking details as ``book_people``, ``book_day``...
``api_name`` is ``find_<domain>``, or ``book_<domain>`` on the turn where the agent made the
booking. The database finds with the constraints and books with both (:mod:`.database`).
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

from parlai.core.tod.tod_core import STANDARD_API_NAME_SLOT, STANDARD_CALL, STANDARD_RESP

CALL, RESP, API_NAME = STANDARD_CALL, STANDARD_RESP, STANDARD_API_NAME_SLOT
FIND, BOOK = "find", "book"
BOOK_PREFIX = "book_"

Call = Dict[str, str]
State = Dict[str, Dict[str, str]]  # domain -> slot -> value

# MultiWOZ writes "no constraint yet" three ways and "any" two ways.
_EMPTY = {"", "not mentioned", "none"}
_DONTCARE = {"dontcare", "don't care", "do n't care", "dont care", "do nt care"}


def api_text(slots: Mapping[str, str]) -> str:
    """``a = 1 ; b = 2``, keys sorted (ParlAI's order, so equal calls are equal strings)."""
    return " ; ".join(f"{key} = {value}" for key, value in sorted(slots.items()))


def call_text(call: Mapping[str, str]) -> str:
    return CALL + api_text(call)


def resp_text(resp: Mapping[str, str]) -> str:
    return RESP + api_text(resp)


def parse_api_text(text: str, prefix: str = "") -> Dict[str, str]:
    """Read ``[prefix]a = 1 ; b = 2`` back; pieces without `` = `` are ignored, as ParlAI does."""
    text = text.strip()
    if prefix and text.startswith(prefix.strip()):
        text = text[len(prefix.strip()):]
    slots: Dict[str, str] = {}
    for piece in text.split(" ; "):
        if " = " not in piece:
            continue
        key, value = piece.split(" = ", 1)
        if key.strip():
            slots[key.strip()] = value.strip()
    return slots


def parse_call(text: str) -> Call:
    return parse_api_text(text, CALL)


def parse_resp(text: str) -> Dict[str, str]:
    return parse_api_text(text, RESP)


def action_and_domain(call: Mapping[str, str]) -> Tuple[str, str]:
    """``find_hotel`` -> ``("find", "hotel")``; an unnamed call -> ``("", "")``."""
    action, _, domain = call.get(API_NAME, "").partition("_")
    return (action, domain) if domain else ("", "")


def make_call(action: str, domain: str, slots: Mapping[str, str]) -> Call:
    return {API_NAME: f"{action}_{domain}", **slots}


def constraints(call: Mapping[str, str]) -> Dict[str, str]:
    """The slots a database finds with: everything but the name and the booking details."""
    return {k: v for k, v in call.items() if k != API_NAME and not k.startswith(BOOK_PREFIX)}


def booking(call: Mapping[str, str]) -> Dict[str, str]:
    """``book_people = 2`` -> ``{"people": "2"}``."""
    return {k[len(BOOK_PREFIX):]: v for k, v in call.items() if k.startswith(BOOK_PREFIX)}


def _clean(value) -> Optional[str]:
    text = " ".join(str(value).split())
    if text.casefold() in _EMPTY:
        return None
    if text.casefold() in _DONTCARE:
        return "dontcare"
    return text


# --- MultiWOZ -------------------------------------------------------------------------------------


def multiwoz_state(metadata: Mapping) -> State:
    """A system turn's ``metadata`` as domain -> slot -> value; unset slots left out.

    ``semi`` slots keep their names (``pricerange``, ``leaveAt``), ``book`` slots get
    ``book_``; the ``booked`` list is what happened, not what the user wants, and is left out.
    """
    state: State = {}
    for domain, parts in (metadata or {}).items():
        slots: Dict[str, str] = {}
        for slot, value in (parts.get("semi") or {}).items():
            if (clean := _clean(value)) is not None:
                slots[slot] = clean
        for slot, value in (parts.get("book") or {}).items():
            if slot != "booked" and (clean := _clean(value)) is not None:
                slots[BOOK_PREFIX + slot] = clean
        if slots:
            state[domain] = slots
    return state


def multiwoz_booked(metadata: Mapping) -> Dict[str, int]:
    """domain -> how many bookings the agent has made so far (the ``booked`` lists)."""
    return {d: len((p.get("book") or {}).get("booked") or ()) for d, p in (metadata or {}).items()}


# --- CrossWOZ -------------------------------------------------------------------------------------


def crosswoz_state(sys_state: Mapping) -> State:
    """A system turn's ``sys_state`` as domain -> slot -> value; ``selectedResults`` left out."""
    state: State = {}
    for domain, slots in (sys_state or {}).items():
        kept = {}
        for slot, value in slots.items():
            if slot == "selectedResults":
                continue
            if isinstance(value, (list, tuple)):
                value = " ".join(str(v) for v in value)
            if (clean := _clean(value)) is not None:
                kept[slot] = clean
        if kept:
            state[domain] = kept
    return state


# --- a turn's call --------------------------------------------------------------------------------


def changed_domains(before: State, after: State) -> Sequence[str]:
    return [domain for domain in after if after[domain] != before.get(domain)]


def turn_call(before: State, after: State, hint: Iterable[str] = (), booked: Iterable[str] = ()) -> Call:
    """The call the agent makes on a turn whose state went from ``before`` to ``after``.

    No call when nothing changed. When several domains changed, the one the turn's dialogue
    acts talk about (``hint``) wins, else the first in the state's order. ``booked``: domains
    where the agent made a booking on this turn; their call is ``book_<domain>``.
    """
    booked = set(booked)
    changed = list(changed_domains(before, after)) + [d for d in booked if d in after]
    if not changed:
        return {}
    hinted = [d for d in hint if d in changed]
    domain = hinted[0] if hinted else changed[0]
    return make_call(BOOK if domain in booked else FIND, domain, after[domain])


def accumulate(state: State, call: Mapping[str, str]) -> State:
    """The state after ``call``: its domain's slots replaced by the call's (the call is the whole domain)."""
    _, domain = action_and_domain(call)
    if not domain:
        return state
    new = dict(state)
    new[domain] = {k: v for k, v in call.items() if k != API_NAME}
    return new
