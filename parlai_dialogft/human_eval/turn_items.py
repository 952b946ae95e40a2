"""Per-turn pairwise items: a dialogue so far and two candidate next replies to it.

The ``--he-turn-pairs`` file is JSONL, one item a line::

    {"id": "chat7-t3", "context": ["hi, a table for two?", "sure, at what time?", "at eight"],
     "a": {"model": "base", "text": "Eight it is. Any allergies?"},
     "b": {"model": "dpo", "text": "ok"}}

``context`` holds the turns so far, oldest first; the newest is the user's, and the two
candidates answer it (the roles are counted back from the newest turn, as
:func:`parlai_dialogft.model.chat_format.to_messages` does). ``a`` and ``b`` may come from
two models or be two drafts of one model. A line with ``"is_onboarding": true`` and
``"correct_answer": "a"`` (or ``"b"``) is a practice item with a known answer, shown before
any real one, as ACUTE's onboarding pairings are. :func:`read_turn_pairs` stops at the first
bad line with ``FILE, line N: field: what is wrong``.

Attention checks are derived, not written: a copy of a real item whose one candidate is
:data:`~.qc.BROKEN_TURN`, so the other is the known answer (:func:`attention_check`).
:func:`load_turn_pairs` stores the items and their checks as the pairings are stored,
through :func:`~.work_queue.load_items`.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any, Dict, List

from parlai_dialogft.human_eval.db import Database
from parlai_dialogft.human_eval.formats import jsonl_records
from parlai_dialogft.human_eval.qc import BROKEN_TURN
from parlai_dialogft.human_eval.work_queue import load_items
from parlai_dialogft.utils.errors import UserError

SIDES = ("a", "b")


def other_side(side: str) -> str:
    return "b" if side == "a" else "a"


def validate_turn_pair(record: Any, where: str) -> Dict[str, Any]:
    """One item, checked and normalised to ``{"id", "context", "a", "b", "is_onboarding"[, "correct_answer"]}``."""
    if not isinstance(record, dict):
        raise UserError(f"{where}: an item must be a JSON object")
    item_id = record.get("id")
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or str(item_id).strip() == "":
        raise UserError(f"{where}: id: give each item a non-empty string or number")
    context = record.get("context")
    if not isinstance(context, list) or not context:
        raise UserError(f"{where}: context: must be a non-empty list of turns (the dialogue so far)")
    for index, turn in enumerate(context):
        if not isinstance(turn, str) or not turn.strip():
            raise UserError(f"{where}: context[{index}]: must be a non-empty string")
    candidates = {}
    for side in SIDES:
        candidate = record.get(side)
        if not isinstance(candidate, dict):
            raise UserError(f"{where}: {side}: must be an object {{\"model\": ..., \"text\": ...}}")
        for key in ("model", "text"):
            value = candidate.get(key)
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"{where}: {side}.{key}: must be a non-empty string")
        candidates[side] = {"model": candidate["model"], "text": candidate["text"]}
    if " ".join(candidates["a"]["text"].split()) == " ".join(candidates["b"]["text"].split()):
        raise UserError(f"{where}: a.text and b.text are the same reply: there is nothing to choose")
    onboarding = record.get("is_onboarding", False)
    if not isinstance(onboarding, bool):
        raise UserError(f"{where}: is_onboarding: must be true or false")
    answer = record.get("correct_answer")
    if answer is not None and answer not in SIDES:
        raise UserError(f"{where}: correct_answer: must be \"a\" or \"b\", not {answer!r}")
    if onboarding and answer is None:
        raise UserError(f"{where}: correct_answer: an onboarding item needs one (\"a\" or \"b\")")
    item = {"id": str(item_id), "context": list(context), **candidates, "is_onboarding": onboarding}
    if answer is not None:
        item["correct_answer"] = answer
    return item


def read_turn_pairs(path: str | Path) -> List[Dict[str, Any]]:
    """Every item of a ``--he-turn-pairs`` file, checked (blank lines skipped; ids unique)."""
    items: List[Dict[str, Any]] = []
    first_line: Dict[str, int] = {}
    for where, number, record in jsonl_records(path, f"--he-turn-pairs {path}: no such file"):
        item = validate_turn_pair(record, where)
        if item["id"] in first_line:  # the export names items by id: two would be one
            raise UserError(f"{where}: id: {item['id']!r} is already the id of line {first_line[item['id']]}")
        first_line[item["id"]] = number
        items.append(item)
    if not items:
        raise UserError(f"--he-turn-pairs {path}: no items in the file")
    return items


def attention_check(item: Dict[str, Any], rng: random.Random) -> Dict[str, Any]:
    """A copy of ``item`` whose one candidate says only nonsense; the other is the answer."""
    check = copy.deepcopy(item)
    check["is_onboarding"] = False
    broken = rng.choice(SIDES)
    check[broken]["text"] = BROKEN_TURN
    check["correct_answer"] = other_side(broken)
    return check


def load_turn_pairs(db: Database, items: List[Dict[str, Any]], checks_per_task: int,
                    seed: int = 0) -> Dict[str, int]:
    """Store a file's items, plus one attention check derived from each real item."""
    return load_items(db.add_turn_items, items, checks_per_task, attention_check, seed)
