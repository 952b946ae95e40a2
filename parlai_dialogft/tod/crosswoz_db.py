"""CrossWOZ's database and what a constraint on it means (as ConvLab-2's ``crosswoz/dbquery.py``).

Domains keep CrossWOZ's names (景点 餐馆 酒店 地铁 出租), as the dialogues' ``sys_state`` and
so the calls (``find_景点``) write them. Per slot:

* ``名称``: entities whose name contains the value; when it is given the other constraints are
  not used (ConvLab-2's rule: the user has picked the entity). An exact name comes first.
* ``评分``: at least the number the value starts with (``4.5分以上``, ``5分``).
* ``门票``, ``人均消费``, ``价格``: ``100-150元`` between, ``200元以上`` at least, ``20元以下``
  at most, ``60元`` exactly; ``门票 = 免费`` is 0, ``不免费`` at least 1.
* ``周边景点/餐馆/酒店``: some nearby place's name contains the value.
* ``推荐菜``, ``酒店设施``: every space-separated word is contained in some dish / facility.
* ``游玩时间``, ``酒店类型``: the entity's value contains the value (``经济`` finds ``经济型``).
* An entity without the attribute never satisfies a constraint on it.
* ``book_酒店`` and ``book_餐馆`` book the first match when the call has every detail of
  :data:`BOOKING` (``book_人数``, ``book_日期``...), as MultiWOZ's booking calls do.
* 地铁 (metro): the first place whose name contains ``出发地`` and the first containing
  ``目的地``, each with its nearest station; 出租 (taxi): the template car (``#CX``, ``#CP``,
  as the dialogues' replies write it). Both need both ends.

Unlike ConvLab-2, an unknown slot is dropped rather than raising, a constraint never outlives
its query (ConvLab-2's schema keeps the last value of a range), and a rating or price the
rules cannot read (``评分 = 很高``) finds nothing (ConvLab-2 ignores such a rating and fails on
such a price). Every rating and price in the shipped dialogues' states is readable.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from parlai_dialogft.data.readers.corpus_files import load_json
from parlai_dialogft.tod import calls

logger = logging.getLogger(__name__)
CORPUS = "crosswoz_database"
#: domain -> table
DOMAINS = {"景点": "attraction", "餐馆": "restaurant", "酒店": "hotel", "地铁": "metro", "出租": "taxi"}
#: Booking details a hotel or restaurant booking needs (CrossWOZ's dialogues book nothing:
#: these are ours, so that a Chinese conversation can book as an English one does).
BOOKING = {"酒店": ("人数", "日期", "天数"), "餐馆": ("人数", "日期", "时间")}
ACTIONS = {d: (calls.FIND, calls.BOOK) if d in BOOKING else (calls.FIND,) for d in DOMAINS}
NAME, START, END, STATION = "名称", "出发地", "目的地", "地铁"
NEARBY = ("周边景点", "周边餐馆", "周边酒店")
SLOTS = {
    "景点": (NAME, "门票", "游玩时间", "评分", *NEARBY),
    "餐馆": (NAME, "推荐菜", "人均消费", "评分", *NEARBY),
    "酒店": (NAME, "酒店类型", "酒店设施", "价格", "评分", *NEARBY),
    "地铁": (START, END),
    "出租": (START, END),
}
PRICES = ("门票", "人均消费", "价格")
ALL_WORDS = ("推荐菜", "酒店设施")
#: What a ``find`` answer carries of the first match (lists cut to LIST_ITEMS).
REPLY_FIELDS = {
    "景点": (NAME, "地址", "电话", "门票", "游玩时间", "评分", *NEARBY),
    "餐馆": (NAME, "地址", "电话", "营业时间", "人均消费", "评分", "推荐菜", *NEARBY),
    "酒店": (NAME, "酒店类型", "地址", "电话", "价格", "评分", "酒店设施", *NEARBY),
}
#: Nearby places, dishes and facilities kept in an answer: the validation replies that name
#: one name one of the entity's first five 95% of the time (the lists run to dozens).
LIST_ITEMS = 5
NONE = "无"  # how the dialogues' replies say an entity has no such value
FUNCTIONS: Tuple = ()


def tables(root: Path) -> Dict[str, Tuple[tuple, List[tuple]]]:
    """table -> ((column, kind) ..., rows): lists are ``json``, prices and ratings ``number``."""
    out = {}
    for table in DOMAINS.values():
        records = [{NAME: name, **record} for name, record in load_json(root / f"{table}_db.json.gz")]
        names = list(dict.fromkeys(k for record in records for k in record))
        out[table] = (tuple((n, _kind([r.get(n) for r in records])) for n in names),
                      [tuple(_cell(r.get(n)) for n in names) for r in records])
    return out


def _kind(values: list) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, list) for v in present):
        return "json"
    if present and all(isinstance(v, (int, float)) for v in present):
        return "number"
    return "text"


def _cell(value):
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return value


def slots(domain: str, table) -> Tuple[str, ...]:
    return SLOTS[domain]


# --- values -----------------------------------------------------------------------------------


def rating_floor(value: str) -> Optional[float]:
    """``4.5分以上`` -> 4.5, ``5分`` -> 5; None when the value does not start with a number."""
    match = re.match(r"\d\.\d|\d", value)
    return float(match.group()) if match else None


def price_range(slot: str, value: str) -> Tuple[Optional[int], Optional[int]]:
    """(low, high) of ``100-150元``, ``200元以上``, ``20元以下``, ``60元``, ``免费``; (None, None) unread."""
    if match := re.match(r"(\d+)-(\d+)", value):
        return int(match.group(1)), int(match.group(2))
    if match := re.match(r"\d+", value):
        number = int(match.group())
        if "以上" in value:
            return number, None
        if "以下" in value:
            return None, number
        return number, number
    if slot == "门票" and value == "免费":
        return 0, 0
    if slot == "门票" and value == "不免费":
        return 1, None
    return None, None


# --- queries ----------------------------------------------------------------------------------


def selects(domain: str, table, constraints: Mapping[str, str]) -> List[tuple]:
    if domain in ("地铁", "出租"):
        start, end = constraints.get(START), constraints.get(END)
        if not start or not end:
            return []
        if domain == "出租":
            return [([], [], "", 1)]
        return [_name_contains(table, start, limit=1), _name_contains(table, end, limit=1)]
    if NAME in constraints:
        return [_name_contains(table, constraints[NAME])]
    where: List[str] = []
    params: List[object] = []
    for slot, value in constraints.items():
        column = table.column(slot)
        if slot == "评分":
            floor = rating_floor(value)
            if floor is None:
                return _unreadable(domain, slot, value)
            where.append(f"{column} >= ?")
            params.append(floor)
        elif slot in PRICES:
            low, high = price_range(slot, value)
            if low is None and high is None:
                return _unreadable(domain, slot, value)
            for bound, op in ((low, ">="), (high, "<=")):
                if bound is not None:
                    where.append(f"{column} {op} ?")
                    params.append(bound)
        elif slot in NEARBY or slot in ALL_WORDS:
            words = [value] if slot in NEARBY else value.split()
            for word in words:
                where.append(f"EXISTS (SELECT 1 FROM json_each({column}) WHERE instr(json_each.value, ?) > 0)")
                params.append(word)
        else:
            where.append(f"instr({column}, ?) > 0")
            params.append(value)
    return [(where, params, "", None)]


def _unreadable(domain: str, slot: str, value: str) -> list:
    """A constraint the database cannot read is not one it can satisfy: no select, nothing found."""
    logger.warning("crosswoz %s: %s = %r is not a rating or price; nothing found", domain, slot, value)
    return []


def _name_contains(table, name: str, limit: Optional[int] = None) -> tuple:
    column = table.column(NAME)
    return [f"instr({column}, ?) > 0"], [name, name], f"{column} = ? DESC", limit


# --- answers ----------------------------------------------------------------------------------


def found(domain: str, rows: List[Dict[str, str]], constraints: Mapping[str, str]) -> Dict[str, str]:
    """``count`` and the first match's reply fields, written as the dialogues write them."""
    answer = {"count": str(len(rows))}
    if not rows:
        return answer
    if domain == "出租":
        answer.update(车型=rows[0]["车型"], 车牌=rows[0]["车牌"])
    elif domain == "地铁":
        for end, key in ((START, "出发地附近地铁站"), (END, "目的地附近地铁站")):
            row = next((r for r in rows if constraints.get(end, "") in r[NAME]), None)
            if row is not None:
                answer[key] = row[STATION] or NONE
    else:
        answer.update((k, show(k, rows[0].get(k, ""))) for k in REPLY_FIELDS[domain])
    return answer


def show(slot: str, value: str) -> str:
    """A stored value as the replies say it: ``4.7分``, ``60元``, ``免费``, ``无``, a list cut short."""
    if value == "":
        return NONE
    if value.startswith("["):
        items = json.loads(value)
        return "、".join(items[:LIST_ITEMS]) if items else NONE
    if slot == "评分":
        return f"{value}分"
    if slot in PRICES:
        return "免费" if slot == "门票" and value == "0" else f"{value}元"
    return value


# --- bookings ---------------------------------------------------------------------------------


def booking_problem(domain: str, details: Mapping[str, str], wanted: Mapping[str, str]) -> Optional[str]:
    """Why a booking cannot be made as asked (a missing detail), or None (as :mod:`.multiwoz_db`)."""
    missing = [f"{calls.BOOK_PREFIX}{slot}" for slot in BOOKING[domain]
               if not details.get(slot) or details[slot].lower() in ("dontcare", "none")]
    return f"missing {', '.join(missing)}" if missing else None


def booked(domain: str, details: Mapping[str, str], entity: Mapping[str, str], rng) -> Dict[str, str]:
    """What a confirmed booking says besides its reference: the entity and the booked details."""
    return {NAME: entity[NAME], **{calls.BOOK_PREFIX + k: v for k, v in details.items()}}
