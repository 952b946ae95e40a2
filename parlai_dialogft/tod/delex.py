"""Placeholders in system replies: ``[hotel_name]`` where a reply names a hotel.

MultiWOZ's end-to-end metrics read delexicalized replies: a scorer sees *that* the agent gave
a name, a phone number or a booking reference, not which one. Users see values, so the
replies are delexicalized twice, the same way on both sides:

* :func:`delexicalize_spans` and :func:`gold_replies`: a gold system reply from its
  ``span_info`` (``[act, slot, value, start_tok, end_tok]``, tokens split on whitespace);
  ``Hotel-Inform Name`` -> ``[hotel_name]``, ``Train-Inform Id`` -> ``[train_id]``,
  ``Booking-Book Ref`` -> ``[hotel_reference]`` when the hotel was the domain booked;
* :func:`delexicalize_reply`: a predicted reply from the values the agent could have copied,
  those of its call's result (``APIRESP: name = ... ; phone = ...``) and of the call itself.

The placeholder names are those of the standardized MultiWOZ evaluation (Nekvinda & Dušek,
2021, https://github.com/Tomiinek/MultiWOZ_Evaluation): ``<domain>_<slot>`` where that name
exists there, else the domain-free ``value_<slot>`` (``[value_day]`` for a booking's day).
:data:`PLACEHOLDER_CLASSES` says which of their slot classes (``NAME``, ``PHONE``,
``REFERENCE``, ``TRAINID``, ...) each name belongs to; the scorer reads only the classes.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from parlai_dialogft.tod.calls import BOOK_PREFIX, multiwoz_booked

# -- the vocabulary -------------------------------------------------------------------------------

DOMAINS = ("attraction", "hospital", "hotel", "police", "restaurant", "taxi", "train")
BOOKABLE = ("hotel", "restaurant", "train")


def _names(slot: str, domains: Iterable[str], extra: Iterable[str] = ()) -> List[str]:
    return [f"{d}_{slot}" for d in domains] + list(extra)


# Slot class -> the placeholder names the standardized evaluation reads as that class.
_CLASS_NAMES: Dict[str, List[str]] = {
    "NAME": _names("name", ("attraction", "hospital", "hotel", "police", "restaurant"), ("name", "value_name")),
    "ADDRESS": _names("address", ("attraction", "hospital", "hotel", "police", "restaurant"), ("address", "value_address")),
    "PHONE": _names("phone", ("attraction", "hospital", "hotel", "police", "restaurant", "taxi"), ("phone", "value_phone")),
    "POST": _names("postcode", ("attraction", "hospital", "hotel", "police", "restaurant"), ("postcode", "value_postcode")),
    "REFERENCE": _names("reference", ("attraction", "hotel", "restaurant", "train"), ("ref", "reference", "value_reference")),
    "TRAINID": ["train_id", "train_trainid", "trainid", "id", "train", "value_id"],
    "AREA": _names("area", ("attraction", "restaurant", "hotel"), ("area", "value_area")),
    "DAY": ["day", "value_day", "bookday", "train_day"],
    "PLACE": _names("departure", ("train", "taxi")) + _names("destination", ("train", "taxi"))
    + ["departure", "destination", "value_departure", "value_destination", "value_place"],
    "FOOD": ["food", "value_food", "restaurant_food"],
    "PRICE": _names("pricerange", ("attraction", "hotel", "restaurant"))
    + ["price", "value_price", "train_price", "attraction_price", "entrancefee", "entrance fee",
       "attraction_entrancefee", "pricerange", "price range", "value_pricerange"],
    "TIME": ["time", "value_time", "booktime", "duration", "value_duration", "train_duration",
             "arriveby", "arrive by", "value_arrive", "leaveat", "leave at", "value_leave",
             "train_arriveby", "train_leaveat", "train_arrive", "train_leave",
             "taxi_arriveby", "taxi_leaveat"],
    "COUNT": _names("choice", ("attraction", "hotel", "restaurant", "train"))
    + ["choice", "value_choice", "value_count", "stars", "value_stars", "hotel_stars",
       "stay", "bookstay", "value_stay", "people", "bookpeople", "value_people"],
    "TYPE": _names("type", ("attraction", "hotel", "restaurant", "taxi"))
    + ["type", "value_type", "car", "value_car", "taxi_car"],
    "INTERNET": ["internet", "hotel_internet"],
    "PARKING": ["parking", "hotel_parking"],
    "ID": ["attraction_id", "hospital_id", "restaurant_id"],
    "DEPARTMENT": ["department", "value_department", "hospital_department"],
    "OPEN": ["openhours"],
}
PLACEHOLDER_CLASSES: Dict[str, str] = {name: cls for cls, names in _CLASS_NAMES.items() for name in names}

# What a span's slot (MultiWOZ 2.1 dialogue acts) or a result's key says, as a slot kind.
_SPAN_KINDS = {
    "Name": "name", "Addr": "address", "Post": "postcode", "Phone": "phone", "Ref": "reference",
    "Area": "area", "Price": "pricerange", "Type": "type", "Food": "food", "Stars": "stars",
    "Choice": "choice", "Internet": "internet", "Parking": "parking", "Department": "department",
    "Fee": "entrancefee", "Car": "car", "Id": "id", "Leave": "leaveat", "Arrive": "arriveby",
    "Depart": "departure", "Dest": "destination", "Ticket": "price", "Day": "day",
    "People": "people", "Stay": "stay", "Time": "time", "Open": "openhours",
}
_TRAIN_SPAN_KINDS = {"Time": "duration"}  # a train's "Time" is how long it runs

_RESULT_KINDS = {
    "name": "name", "address": "address", "phone": "phone", "postcode": "postcode",
    "reference": "reference", "ref": "reference", "trainID": "id", "trainid": "id",
    "area": "area", "pricerange": "pricerange", "type": "type", "food": "food",
    "entrance fee": "entrancefee", "entrancefee": "entrancefee", "department": "department",
    "leaveAt": "leaveat", "arriveBy": "arriveby", "departure": "departure",
    "destination": "destination", "duration": "duration", "day": "day",
    "car": "car", "car type": "car", "openhours": "openhours",
    BOOK_PREFIX + "day": "day", BOOK_PREFIX + "people": "people", BOOK_PREFIX + "stay": "stay",
    BOOK_PREFIX + "time": "time",
}
# Keys whose meaning depends on the domain: a train's price is a ticket price, a hotel's
# "price" is a table of room prices; a train's id is its name, a hotel's id a row number.
_RESULT_KINDS_BY_DOMAIN = {"train": {"price": "price", "id": "id"}, "hotel": {"stars": "stars"}}


def placeholder(domain: str, kind: str) -> Optional[str]:
    """The placeholder name for a slot kind in a domain: ``<domain>_<kind>``, else ``value_<kind>``."""
    for name in (f"{domain}_{kind}", f"value_{kind}", kind):
        if name in PLACEHOLDER_CLASSES:
            return name
    return None


# The slot kinds each MultiWOZ domain has, in replies and in database rows.
DOMAIN_KINDS: Dict[str, Tuple[str, ...]] = {
    "attraction": ("name", "address", "postcode", "phone", "area", "type", "entrancefee", "pricerange", "choice", "openhours"),
    "hospital": ("name", "address", "postcode", "phone", "department"),
    "hotel": ("name", "address", "postcode", "phone", "reference", "area", "pricerange", "type", "stars",
              "choice", "internet", "parking", "day", "people", "stay"),
    "police": ("name", "address", "postcode", "phone"),
    "restaurant": ("name", "address", "postcode", "phone", "reference", "area", "food", "pricerange", "choice",
                   "day", "people", "time"),
    "taxi": ("car", "phone", "leaveat", "arriveby", "departure", "destination"),
    "train": ("id", "reference", "leaveat", "arriveby", "departure", "destination", "day", "duration", "price",
              "choice", "people"),
}


def placeholder_vocabulary() -> Dict[str, str]:
    """Every placeholder this module writes -> its slot class."""
    names = {}
    for domain, kinds in DOMAIN_KINDS.items():
        for kind in kinds:
            name = placeholder(domain, kind)
            if name:
                names[name] = PLACEHOLDER_CLASSES[name]
    return dict(sorted(names.items()))


# -- gold replies ---------------------------------------------------------------------------------

_NO_VALUE = {"", "?", "none", "dontcare", "do n't care", "don't care"}
Span = Sequence  # [act, slot, value, start_tok, end_tok]


def span_placeholder(act: str, slot: str, booking_domain: Optional[str]) -> Optional[str]:
    """``("Hotel-Inform", "Name")`` -> ``hotel_name``; ``Booking-*`` acts take ``booking_domain``."""
    domain = act.split("-", 1)[0].lower()
    if domain == "booking":
        domain = booking_domain or ""
    kinds = _TRAIN_SPAN_KINDS if domain == "train" else {}
    kind = kinds.get(slot) or _SPAN_KINDS.get(slot)
    if not kind or not domain:
        return placeholder("value", kind) if kind else None
    return placeholder(domain, kind)


def delexicalize_spans(text: str, spans: Iterable[Span], booking_domain: Optional[str] = None) -> str:
    """Replace each annotated span by its placeholder; tokens are ``text.split()``.

    Spans without a value (``?``, ``dontcare``) stay as written; a span overlapping an earlier
    one is skipped, as is a span outside the reply.
    """
    tokens = text.split()
    replaced: List[str] = []
    position = 0
    for act, slot, value, start, end in sorted(spans, key=lambda s: (int(s[3]), int(s[4]))):
        start, end = int(start), int(end)
        name = span_placeholder(act, slot, booking_domain)
        if name is None or str(value).strip().lower() in _NO_VALUE:
            continue
        if start < position or end >= len(tokens) or end < start:
            continue
        replaced.extend(tokens[position:start])
        replaced.append(f"[{name}]")
        position = end + 1
    replaced.extend(tokens[position:])
    return " ".join(replaced)


def _act_domains(dialog_act: Mapping) -> List[str]:
    found = []
    for act in dialog_act or {}:
        domain = act.split("-", 1)[0].lower()
        if domain in DOMAINS and domain not in found:
            found.append(domain)
    return found


def gold_replies(log: Sequence[Mapping]) -> List[str]:
    """The delexicalized system replies of a MultiWOZ 2.1 dialogue's ``log`` (odd turns).

    A ``Booking-*`` span belongs to the domain booked on that turn (the ``booked`` list that
    grew), else to a bookable domain the turn's other acts talk about, else to the last
    bookable domain talked about before.
    """
    replies = []
    booked_before: Dict[str, int] = {}
    last_domain: Optional[str] = None
    for index, turn in enumerate(log):
        acts = turn.get("dialog_act") or {}
        domains = [d for d in _act_domains(acts) if d in BOOKABLE]
        if index % 2 == 1:
            booked_now = multiwoz_booked(turn.get("metadata") or {})
            grew = [d for d in booked_now if d in BOOKABLE and booked_now[d] > booked_before.get(d, 0)]
            booked_before = booked_now
            booking = (grew or domains or [last_domain])[0]
            replies.append(delexicalize_spans(turn.get("text", ""), turn.get("span_info") or (), booking))
            last_domain = booking or last_domain
        if domains:
            last_domain = domains[-1]
    return replies


# -- predicted replies ----------------------------------------------------------------------------


def _value_pattern(kind: str, value: str) -> Optional[str]:
    value = " ".join(value.split())
    if value.lower() in _NO_VALUE or value.lower() in {"yes", "no", "free"}:
        return None
    if value.isdigit() and len(value) < 3:  # "2" (people, stars) is every other number in a reply
        return None
    if kind == "postcode":  # cb21ab, written "CB2 1AB" as often as not
        return r"\s*".join(re.escape(c) for c in value.replace(" ", ""))
    pieces = [re.escape(word) for word in value.split(" ")]
    return r"\s+".join(pieces).replace("'", r"\s?'")


def _replacements(domain: str, slots: Mapping[str, object]) -> List[Tuple[str, str]]:
    kinds = {**_RESULT_KINDS, **_RESULT_KINDS_BY_DOMAIN.get(domain, {})}
    found = []
    for key, value in slots.items():
        kind = kinds.get(key)
        name = placeholder(domain, kind) if kind else None
        if name is None or not isinstance(value, (str, int, float)):
            continue
        pattern = _value_pattern(kind, str(value))
        if pattern:
            found.append((pattern, name))
    return found


def delexicalize_reply(
    reply: str, domain: str, result: Mapping[str, object], call: Optional[Mapping[str, str]] = None
) -> str:
    """A lexicalized reply with the values of the call's result (and the call) as placeholders.

    ``("TR1234 leaves at 05:00", "train", {"trainID": "TR1234", "leaveAt": "05:00"})`` ->
    ``"[train_id] leaves at [train_leaveat]"``. Values are matched case-insensitively on word
    boundaries, the longest first (a name before an address that contains it), the result's
    before the call's; yes/no answers and one- or two-digit numbers are left alone (they
    would replace every "2" of the reply).
    """
    pairs = _replacements(domain, result) + _replacements(domain, call or {})
    pairs.sort(key=lambda pair: -len(pair[0]))
    text = reply
    for pattern, name in pairs:
        # Not inside a placeholder already written.
        text = re.sub(rf"(?<![\w\[])(?:{pattern})(?![\w\]])", f"[{name}]", text, flags=re.IGNORECASE)
    return text
