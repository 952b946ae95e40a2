"""MultiWOZ text and states as the end-to-end scorer reads them.

* :func:`normalize_response`: a delexicalized reply lowercased, each placeholder replaced by
  its slot class (``[hotel_name]s`` -> ``NAME``), and ConvLab's split contractions and
  punctuation joined again (``i 'm`` -> ``i'm``, ``centre .`` -> ``centre.``), so a reference
  in ConvLab's tokenization and a natural reply compare token for token under sacrebleu's
  ``13a`` tokenizer. This follows the standardized evaluation (Nekvinda & Dušek, 2021,
  https://github.com/Tomiinek/MultiWOZ_Evaluation), which uses a Moses tokenize/detokenize
  round trip for the last step; the rule here is a small stand-in for it, not the same code.
* :func:`normalize_state`: slot names as in MultiWOZ 2.1's ``semi`` dicts (``arriveBy``,
  ``leaveAt``) plus ``book_*`` (:mod:`parlai_dialogft.tod.calls`), whatever spelling came in
  (2.2's ``arriveby``, ``bookday``, the standardized evaluation's ``arrive``); times as
  ``HH:MM``; a few value spellings the database does not use (``guest house``, ``free``
  parking) made canonical.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Dict, Mapping, Optional

from parlai_dialogft.tod.calls import BOOK_PREFIX
from parlai_dialogft.tod.delex import PLACEHOLDER_CLASSES

State = Dict[str, Dict[str, str]]

# -- replies --------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\[([\w\s]+)\](?:es|s|-s|-es)?")
_SPACE_BEFORE = re.compile(r"\s+([.,!?;:%)\]}])")
_SPACE_AFTER = re.compile(r"([(\[{$£])\s+")
_CLITIC = re.compile(r"(\w)\s+('s|'re|'ve|'m|'ll|'d|n't)\b")


def normalize_response(text: str, unknown: Optional[Counter] = None) -> str:
    """``"[hotel_name] is in the [value_area] ."`` -> ``"NAME is in the AREA."``.

    A placeholder the vocabulary does not know is dropped (as the standardized evaluation
    does) and counted in ``unknown`` when given.
    """

    def to_class(match: re.Match) -> str:
        name = " ".join(match.group(1).split())
        cls = PLACEHOLDER_CLASSES.get(name)
        if cls is None and unknown is not None:
            unknown[name] += 1
        return cls or ""

    text = _PLACEHOLDER.sub(to_class, text.lower())
    text = text.replace("-s", "").replace("-ly", "")
    text = " ".join(text.split())
    text = _CLITIC.sub(r"\1\2", text)
    text = _SPACE_BEFORE.sub(r"\1", text)
    return _SPACE_AFTER.sub(r"\1", text)


# -- states ---------------------------------------------------------------------------------------

_SLOT_NAMES = {"arrive": "arriveBy", "arriveby": "arriveBy", "leave": "leaveAt", "leaveat": "leaveAt"}
_BOOK_SLOTS = ("day", "people", "stay", "time")
# Booking details some systems write without "book": a hotel's or restaurant's day is the
# booking's, as is a train's number of people (a train's day is the one it runs).
_BOOKING_BY_DOMAIN = {"hotel": _BOOK_SLOTS, "restaurant": _BOOK_SLOTS, "train": ("people",)}
_TIME_SLOTS = {"arriveBy", "leaveAt", BOOK_PREFIX + "time"}
_DONTCARE = {"dontcare", "don't care", "do n't care", "dont care", "do not care", "any"}
_EMPTY = {"", "not mentioned", "none"}
_TYPES = {"guest house": "guesthouse", "guesthouses": "guesthouse", "night club": "nightclub",
          "swimming pool": "swimmingpool", "mutliple sports": "multiple sports"}
_TIME_WORDS = {"noon": "12:00", "midday": "12:00", "lunch": "12:00", "morning": "08:00",
               "afternoon": "13:00", "evening": "18:00", "midnight": "00:00"}


def canonical_slot(slot: str, domain: str = "") -> str:
    """Any common spelling of a MultiWOZ slot -> the ``semi`` name or ``book_<slot>``.

    ``arrive``, ``arriveby``, ``arrive by`` -> ``arriveBy``; ``bookday``, ``book day`` ->
    ``book_day``, as is a hotel's or a restaurant's plain ``day``; ``price range`` -> ``pricerange``.
    """
    compact = re.sub(r"[\s_-]", "", slot).lower()
    if compact in _SLOT_NAMES:
        return _SLOT_NAMES[compact]
    if compact.startswith("book") and compact[len("book"):] in _BOOK_SLOTS:
        return BOOK_PREFIX + compact[len("book"):]
    if compact in _BOOKING_BY_DOMAIN.get(domain, ()):
        return BOOK_PREFIX + compact
    return compact


def canonical_time(value: str) -> str:
    """``"after 5:30 pm"`` -> ``"17:30"``, ``"14 :00"`` -> ``"14:00"``; a value that is no time stays as it was."""
    text = value.strip().lower()
    if text in _TIME_WORDS:
        return _TIME_WORDS[text]
    text = re.sub(r"^(after|by|around|at|before|afer)\s+", "", text)
    text = re.sub(r"\s*:\s*", ":", text)  # "14 :00", as tokenized outputs write it
    match = re.fullmatch(r"(\d{1,2})(?:[:.]?(\d{2}))?\s*([ap])?\.?m?\.?", text)
    if not match:
        return value.strip()
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if half == "p" and hour < 12:
        hour += 12
    if half == "a" and hour == 12:
        hour = 0
    if hour > 24 or minute > 59:
        return value.strip()
    return f"{hour:02d}:{minute:02d}"


def canonical_value(slot: str, value: object) -> Optional[str]:
    """A state value as the database spells it; ``None`` for "not set"."""
    text = " ".join(str(value).split()).lower()
    if text in _EMPTY:
        return None
    if text in _DONTCARE:
        return "dontcare"
    if slot in _TIME_SLOTS:
        return canonical_time(text)
    if slot == "type":
        return _TYPES.get(text, text)
    if slot in ("parking", "internet") and text == "free":
        return "yes"
    return text.replace(" & ", " and ").replace(" '", "'")


def normalize_state(state: Mapping[str, Mapping[str, object]], keep_dontcare: bool = True) -> State:
    """Canonical slot names and values; unset slots (and domains left empty) dropped."""
    normalized: State = {}
    for domain, slots in (state or {}).items():
        domain = domain.strip().lower()
        kept = {}
        for slot, value in (slots or {}).items():
            name = canonical_slot(slot, domain)
            clean = canonical_value(name, value)
            if clean is None or (clean == "dontcare" and not keep_dontcare):
                continue
            kept[name] = clean
        if kept:
            normalized[domain] = kept
    return normalized


def mwzeval_slot(slot: str) -> str:
    """Our slot name -> MultiWOZ 2.2's, as the standardized evaluation's files write it."""
    if slot.startswith(BOOK_PREFIX):
        return "book" + slot[len(BOOK_PREFIX):]
    return slot.lower()
