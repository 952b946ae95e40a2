"""The calls a backend can answer, as a grammar the loop's call step is decoded under.

A small model that has not yet learnt the call format writes calls no database can answer: a
hotel request as ``api_name = find_train ; day = cambridge``, a slot twice until the length
limit. Decoded under this grammar (llguidance, :mod:`parlai_dialogft.model.constrained`), the
call step writes either ``APICALL:`` (no call this round) or a call its backend answers:

* a function the backend has (``find_hotel``, ``book_hotel``, a ``--tools`` function);
* its slots in ParlAI's order (keys sorted, :func:`.calls.api_text`), each at most once;
* for a slot with few values in the database (``area``, ``pricerange``, a hotel's ``type``,
  a tool's ``enum``) one of them or ``dontcare``; a tool's property written as JSON (an
  array, a number: :func:`.functions.plain_string`) JSON valid under its schema; ``book_day`` a weekday; any other value
  at most :data:`FREE_WORDS` words without `` ; `` or ``=`` (what
  :func:`.calls.parse_api_text` reads back whole).

The model still chooses the function, the slots and the values: the grammar only takes away
what the backend could not answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from parlai_dialogft.model.constrained import Grammar, lark_json, lark_literal
from parlai_dialogft.tod import calls

#: A slot with at most this many distinct values in the database is closed to them.
CLOSED_SLOT_VALUES = 8
DONTCARE = "dontcare"
#: A free value is at most this many words of at most this many characters (the annotated
#: dialogues' longest: 8 words, 22 characters), so a call always ends.
FREE_WORDS, WORD_CHARS = 12, 32
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


#: A slot's values: a tuple (closed to them), a JSON Schema (a tool's array, object or number,
#: written as JSON), or None (free words).
Values = Union[Tuple[str, ...], Dict[str, Any], None]


@dataclass(frozen=True)
class Signature:
    """A function a backend answers: its name and, per slot, its values."""

    api_name: str
    slots: Dict[str, Values] = field(default_factory=dict)


def closed_values(values: Iterable[str]) -> Optional[Tuple[str, ...]]:
    """A slot's values when they are few enough to close it to them (and ``dontcare``), else None."""
    distinct = sorted({" ".join(str(v).split()) for v in values} - {""})
    if not distinct or len(distinct) > CLOSED_SLOT_VALUES or any(" ; " in v for v in distinct):
        return None
    return tuple(distinct) + ((DONTCARE,) if DONTCARE not in distinct else ())


def _value(values: Values, json_rules: List[str]) -> str:
    if values is None:
        return "free"
    if isinstance(values, dict):
        json_rules.append(f"json{len(json_rules)}: {lark_json(values)}")
        return f"json{len(json_rules) - 1}"
    return "(" + " | ".join(lark_literal(v) for v in values) + ")"


def _call_rule(signature: Signature, json_rules: List[str]) -> str:
    """One function's call: every key optional but ``api_name``, all in sorted order."""
    keys = sorted([calls.API_NAME, *signature.slots])
    parts: List[str] = []
    seen_name = False
    for key in keys:
        if key == calls.API_NAME:
            parts.append(lark_literal(f"{calls.API_NAME} = {signature.api_name}"))
            seen_name = True
        elif seen_name:  # after the name: " ; key = value"
            parts.append(f"({lark_literal(f' ; {key} = ')} {_value(signature.slots[key], json_rules)})?")
        else:  # a key that sorts before api_name ("address"): "key = value ; "
            parts.append(f"({lark_literal(f'{key} = ')} {_value(signature.slots[key], json_rules)} {lark_literal(' ; ')})?")
    return " ".join(parts)


def call_grammar(signatures: Iterable[Signature]) -> Grammar:
    """``APICALL:`` alone (no call), or one call of one of ``signatures``."""
    json_rules: List[str] = []
    rules = [f"call{i}: {_call_rule(s, json_rules)}" for i, s in enumerate(signatures)]
    if not rules:
        raise ValueError("no functions to call: the backend has no domains and no tools")
    names = " | ".join(f"call{i}" for i in range(len(rules)))
    prefix = lark_literal(calls.CALL.strip())
    return Grammar("\n".join([
        f'start: {prefix} (" " ({names})?)?',
        *rules,
        *json_rules,
        f'free: WORD (" " WORD){{0,{FREE_WORDS - 1}}}',
        # A value is words; " ; " ends it (one byte of lookahead), and it holds no "=" (a model
        # writing "推荐菜 = 评分 = 4.5分以上" would pass a second slot off as a value).
        rf"WORD: /[^ ;=\n]{{1,{WORD_CHARS}}}/",
    ]) + "\n")
