"""MultiWOZ's database (ConvLab-2's copy) and what a constraint on it means.

The semantics are those of MultiWOZ's Inform metric (``mwzeval/database.py`` of
Tomiinek/MultiWOZ_Evaluation), so that an entity this database finds is one the metric
accepts:

* "no constraint" values (``dontcare``, ``not mentioned``, ...) are ignored, and a database
  value ``?`` (unknown) satisfies any constraint;
* ``leaveAt`` keeps trains leaving at or after the time, ``arriveBy`` those arriving at or
  before it; times are read as ``HH:MM`` from ``9:30``, ``0930``, ``5pm``, ``after 11:00``,
  ``morning`` ...;
* ``name`` (hotel, attraction, restaurant), restaurant ``food`` and train ``departure`` and
  ``destination`` match when fuzzywuzzy's ``partial_ratio`` of the two is at least 90 (so
  ``acorn guesthouse`` finds ``acorn guest house``, ``worth house`` also ``warkworth house``),
  after the same normalisation: lower case,
  ``&`` as ``and``, the known misspellings of names and food types mapped to the database's;
  the entity named exactly comes first;
* every other slot matches case- and space-insensitively (``guest house`` is
  ``guesthouse``, ``night club`` ``nightclub``), ``free`` parking or internet is ``yes``.

Differences from mwzeval, by necessity or on purpose:

* mwzeval answers only hotel, restaurant, attraction and train. Here hospital (by
  ``department``, as ConvLab-2), police (one station) and taxi (a car drawn for a booking)
  answer too.
* a time that cannot be read finds nothing (mwzeval reads it as 00:00: nothing for
  ``arriveBy``, every train for ``leaveAt``); ``12pm`` is noon (mwzeval: ``24:00``).
* ``area = center`` is ``centre`` (ConvLab-2's rule; mwzeval has none).
* mwzeval's hotel file spells ``takesbookings`` where ConvLab-2's has the typo ``n`` on one
  record (allenbell); the column here is ``takesbookings``. The files are otherwise identical.
* mwzeval also maps ``the junction`` and ``parkside pools`` to names neither its database nor
  this one has (``junction theatre``, ``parkside swimming pool``), so it cannot find them;
  those two are left out here.
* equality is case-insensitive (mwzeval compares exactly; its states are lower case).
* ``fuzzywuzzy`` is not a dependency: :func:`partial_ratio` is written here from its
  pure-Python definition (with ``python-Levenshtein`` installed fuzzywuzzy's scores differ by
  a point or two near the threshold).
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
from difflib import SequenceMatcher
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from parlai_dialogft.data.readers.corpus_files import load_json
from parlai_dialogft.tod import calls

logger = logging.getLogger(__name__)
CORPUS = "multiwoz_db_convlab2"
#: domain -> table
DOMAINS = {d: d for d in ("attraction", "hospital", "hotel", "police", "restaurant", "taxi", "train")}
#: Booking details each bookable domain needs (taxi needs its route and a time instead).
BOOKING = {"hotel": ("people", "day", "stay"), "restaurant": ("people", "day", "time"), "train": ("people",),
           "taxi": ()}
ACTIONS = {d: (calls.FIND, calls.BOOK) if d in BOOKING else (calls.FIND,) for d in DOMAINS}
FUZZY_RATIO = 90
FUZZY = {"hotel": {"name"}, "attraction": {"name"}, "restaurant": {"name", "food"},
         "train": {"departure", "destination"}}
TIMES = {"leaveAt": ">=", "arriveBy": "<="}
#: Columns never searched, besides list and dict values (coordinates, the hotel's price table).
NOT_SEARCHED = {"id", "location", "introduction", "signature", "takesbookings", "openhours"}
TAXI_SLOTS = ("arriveBy", "departure", "destination", "leaveAt")
#: What a ``find`` answer carries of the first match, per domain (``?`` values left out).
REPLY_FIELDS = {
    "attraction": ("name", "type", "area", "address", "postcode", "phone", "entrance fee", "pricerange"),
    "hospital": ("department", "address", "postcode", "phone"),
    "hotel": ("name", "type", "area", "pricerange", "stars", "internet", "parking", "address", "postcode", "phone"),
    "police": ("name", "address", "postcode", "phone"),
    "restaurant": ("name", "food", "area", "pricerange", "address", "postcode", "phone"),
    "taxi": (),
    "train": ("trainID", "departure", "destination", "day", "leaveAt", "arriveBy", "duration", "price"),
}

# How the dialogues misspell what the database spells (the corpus's own variants).
NAME_ALIASES = {
    "hotel du vin bistro": "hotel du vin and bistro", "the river bar and grill": "the river bar steakhouse and grill",
    "nando's": "nandos", "city center b and b": "city center north b and b", "acorn house": "acorn guest house",
    "caffee uno": "caffe uno", "cafe uno": "caffe uno", "rosa's": "rosas bed and breakfast",
    "restaurant called two two": "restaurant two two", "restaurant 2 two": "restaurant two two",
    "restaurant two 2": "restaurant two two", "restaurant 2 2": "restaurant two two",
    "restaurant 1 7": "restaurant one seven", "restaurant 17": "restaurant one seven",
    "lime house": "limehouse", "cityrooms": "cityroomz", "whale of time": "whale of a time",
    "huntingdon hotel": "huntingdon marriott hotel",
    "holiday inn exlpress, cambridge": "express by holiday inn cambridge",
    "university hotel": "university arms hotel", "arbury guesthouse and lodge": "arbury lodge guesthouse",
    "arbury guesthouse": "arbury lodge guesthouse", "bridge house": "bridge guest house",
    "nandos in the city centre": "nandos city centre", "broughton gallery": "broughton house gallery",
    "scudamores punt co": "scudamores punting co", "cambridge botanic gardens": "cambridge university botanic gardens",
    "the botanical gardens at cambridge university": "cambridge university botanic gardens",
    "trinity street college": "trinity college",
    "christ college": "christ's college", "christs": "christ's college",
    "history of science museum": "whipple museum of the history of science",
    "cafe jello museum": "cafe jello gallery",
}
FOOD_ALIASES = {
    "eriterean": "mediterranean", "brazilian": "portuguese", "sea food": "seafood", "portugese": "portuguese",
    "modern american": "north american", "americas": "north american", "intalian": "italian", "italain": "italian",
    "asian or oriental": "asian", "english": "british", "australasian": "australian", "gastropod": "gastropub",
    "brutish": "british", "bristish": "british", "europeon": "european",
}
TIME_WORDS = {"morning": "08:00", "noon": "12:00", "midday": "12:00", "mid-day": "12:00", "lunch": "12:00",
              "lunchtime": "12:00", "around lunch time": "12:00", "afternoon": "13:00"}
_CLOCK = re.compile(r"(\d{1,2})(?:[:.h ]?(\d{2}))?\s*(a\.?m\.?|p\.?m\.?)?")


# --- the tables -------------------------------------------------------------------------------


def tables(root: Path) -> Dict[str, Tuple[tuple, List[tuple]]]:
    """table -> ((column, kind) ..., rows), kinds ``text`` or ``json`` (coordinates, price tables)."""
    out = {}
    for domain in DOMAINS:
        records = load_json(root / f"{domain}_db.json.gz")
        if domain == "taxi":  # the desk's colours, makes and phone pattern: one row of lists
            records = [records]
        records = [{("takesbookings" if k == "n" else k): v for k, v in r.items()} for r in records]
        names = list(dict.fromkeys(k for record in records for k in record))
        kinds = {n: "json" if any(isinstance(r.get(n), (list, dict)) for r in records) else "text" for n in names}
        rows = [tuple(_cell(record.get(n)) for n in names) for record in records]
        out[domain] = (tuple((n, kinds[n]) for n in names), rows)
    return out


def _cell(value) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def slots(domain: str, table) -> Tuple[str, ...]:
    if domain == "taxi":
        return TAXI_SLOTS
    return tuple(c for c, kind in table.kinds.items() if kind == "text" and c not in NOT_SEARCHED)


# --- values -----------------------------------------------------------------------------------


def canonical(slot: str, value: str) -> str:
    """A state's value as the database would write it (before the fold or fuzzy match)."""
    value = " ".join(value.lower().split())
    if slot in ("name", "departure", "destination"):
        value = " ".join(value.replace("&", " and ").replace(" '", "'").split())
        return NAME_ALIASES.get(value, value)
    if slot == "food":
        return FOOD_ALIASES.get(value, value)
    if slot in ("parking", "internet") and value == "free":
        return "yes"
    if slot == "area" and value == "center":
        return "centre"
    return value


def fold(text: Optional[str]) -> Optional[str]:
    """Case and spaces do not count: ``Guest House`` folds to ``guesthouse``."""
    return None if text is None else "".join(text.split()).casefold()


def clock(text: str) -> Optional[str]:
    """``HH:MM`` of a time as the dialogues write it, or None when it is not a time."""
    text = " ".join(text.lower().strip(" .,?").split())
    text = re.sub(r"^(after|afer|by|before|around|at)\s+", "", text)
    if text in TIME_WORDS:
        return TIME_WORDS[text]
    match = _CLOCK.fullmatch(text)
    if not match:
        return None
    digits, minutes, half = match.groups()
    if minutes is None and len(digits) > 2:
        return None
    hours = int(digits)
    if half and half.startswith("p") and hours < 12:
        hours += 12
    elif half and half.startswith("a") and hours == 12:
        hours = 0
    if hours > 24 or int(minutes or 0) > 59:
        return None
    return f"{hours:02d}:{minutes or '00'}"


@functools.lru_cache(maxsize=1 << 16)
def partial_ratio(a: Optional[str], b: Optional[str]) -> int:
    """fuzzywuzzy's ``partial_ratio`` (0-100): how well the shorter string fits some same-length
    window of the longer one, windows tried where the two share a block of characters."""
    if not a or not b:
        return 0
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if short in long:
        return 100
    best = 0.0
    for i, j, _ in SequenceMatcher(None, short, long).get_matching_blocks():
        start = max(j - i, 0)
        ratio = SequenceMatcher(None, short, long[start:start + len(short)]).ratio()
        if ratio > 0.995:
            return 100
        best = max(best, ratio)
    return round(100 * best)


#: SQL functions the queries call: (name, arity, function).
FUNCTIONS = (("fold", 1, fold), ("partial_ratio", 2, lambda a, b: partial_ratio(a and a.lower(), b)))
UNKNOWN = "?"


# --- queries ----------------------------------------------------------------------------------


def selects(domain: str, table, constraints: Mapping[str, str]) -> List[tuple]:
    """One select: every constraint a clause (a ``?`` in the database passes any), trains in time order."""
    if domain in ("taxi", "police"):  # no entities to choose among (ConvLab-2: police ignores constraints)
        return [([], [], "", None)]
    where: List[str] = []
    params: List[object] = []
    for slot, value in constraints.items():
        column = table.column(slot)
        if slot in TIMES:
            time = clock(value)
            if time is None:  # a constraint the database cannot read is not one it can satisfy
                logger.warning("multiwoz %s: %s = %r is not a time; nothing found", domain, slot, value)
                return []
            where.append(f"({column} = ? OR {column} {TIMES[slot]} ?)")
            params += [UNKNOWN, time]
        elif slot in FUZZY.get(domain, ()):
            where.append(f"({column} = ? OR partial_ratio({column}, ?) >= ?)")
            params += [UNKNOWN, canonical(slot, value), FUZZY_RATIO]
        else:
            where.append(f"({column} = ? OR fold({column}) = ?)")
            params += [UNKNOWN, fold(canonical(slot, value))]
    order = ""
    if domain == "train":  # earliest departure; latest arrival when only the arrival is asked
        only_arrival = "arriveBy" in constraints and "leaveAt" not in constraints
        order = f"{table.column('arriveBy')} DESC" if only_arrival else table.column("leaveAt")
    elif "name" in constraints:  # "worth house" is a hotel of its own before it is part of "warkworth house"
        order = f"lower({table.column('name')}) = ? DESC"
        params.append(canonical("name", constraints["name"]))
    return [(where, params, order, None)]


# --- answers ----------------------------------------------------------------------------------


def found(domain: str, rows: List[Dict[str, str]], constraints: Mapping[str, str]) -> Dict[str, str]:
    """``count`` and the first match's reply fields (unknown ``?`` values left out)."""
    answer = {"count": str(len(rows))}
    if rows:
        answer.update((k, rows[0][k]) for k in REPLY_FIELDS[domain] if rows[0].get(k) not in (None, "", UNKNOWN))
    return answer


def booking_problem(domain: str, details: Mapping[str, str], wanted: Mapping[str, str]) -> Optional[str]:
    """Why a booking cannot be made as asked (a missing detail), or None.

    ``details``: the call's booking details without ``book_`` (``people``, ``day``...);
    ``wanted``: its constraints ("no constraint" values already left out).
    """
    missing = [f"{calls.BOOK_PREFIX}{slot}" for slot in BOOKING[domain] if _unset(details.get(slot))]
    if domain == "taxi":
        missing += [slot for slot in ("departure", "destination") if slot not in wanted]
        if "leaveAt" not in wanted and "arriveBy" not in wanted:
            missing.append("leaveAt or arriveBy")
    return f"missing {', '.join(missing)}" if missing else None


def _unset(value: Optional[str]) -> bool:
    return value is None or value.lower() in ("", "dontcare", "none", "not mentioned")


def booked(domain: str, details: Mapping[str, str], entity: Mapping[str, str], rng: random.Random) -> Dict[str, str]:
    """What a confirmed booking says besides its reference: the entity and the booked details.

    A taxi is a car drawn as MultiWOZ's desk did: ``type = grey lexus ; phone = 07...``.
    """
    if domain == "taxi":
        colour = rng.choice(json.loads(entity["taxi_colors"]))
        make = rng.choice(json.loads(entity["taxi_types"]))
        phone = "07" + "".join(rng.choice("0123456789") for _ in range(9))
        return {"type": f"{colour} {make}", "phone": phone}
    booked_details = {calls.BOOK_PREFIX + k: v for k, v in details.items()}
    if domain == "train":
        times = {k: entity[k] for k in ("leaveAt", "arriveBy", "price")}
        return {"trainID": entity["trainID"], **times, **booked_details}
    return {"name": entity["name"], **booked_details}
