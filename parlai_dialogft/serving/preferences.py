"""From the serving log to preference data, in TRL's standard conversational shapes.

``parlai dialogft_log_preferences --serve-log LOG --out-dir DIR`` writes two JSON Lines files:

* ``paired.jsonl`` (DPO): for each reply whose user chose a draft (feedback ``choice``),
  one record per other draft::

      {"prompt": [{"role": "user", "content": "a table for two"}],
       "chosen": [{"role": "assistant", "content": "at what time?"}],
       "rejected": [{"role": "assistant", "content": "which restaurant?"}]}

* ``unpaired.jsonl`` (KTO): each thumbs up or down on a draft::

      {"prompt": [...], "completion": [{"role": "assistant", "content": "..."}], "label": true}

The prompt is the request's messages as the model read them (``developer`` written as
``system``, text parts joined). What is left out, and why, is counted in the
:class:`Summary`: a pair whose two drafts read the same once whitespace is normalised (no
preference to learn), a choice on a reply with one draft (nothing passed over), and a
choice or a rating made again later on the same reply or draft (the latest one counts).

An older log is brought to the current schema first, as opening it in the server would.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List

from parlai_dialogft.data.preference_records import paired, unpaired
from parlai_dialogft.serving.protocol import same_text
from parlai_dialogft.serving.store import open_schema
from parlai_dialogft.utils.errors import UserError
from parlai_dialogft.utils.jsonl import write_jsonl

PAIRED = "paired.jsonl"
UNPAIRED = "unpaired.jsonl"
FLAG = "--serve-log"

#: Why a record was not written: the key counted in :attr:`Summary.skipped`, and its words.
EQUAL_DRAFTS = "pairs whose two drafts are equal after whitespace normalisation"
ONE_DRAFT = "choices on a reply with a single draft (nothing to prefer it to)"
LATER_CHOICE = "choices replaced by a later choice on the same reply"
LATER_RATING = "ratings replaced by a later rating of the same draft"

#: The latest choice per reply (the highest row id is the latest), and every draft of that reply.
CHOSEN_SQL = """
SELECT r.id, r.messages, c.choice_index, d.choice_index, d.content
FROM choices c
JOIN replies r ON r.id = c.reply_id
JOIN drafts d ON d.reply_id = c.reply_id
WHERE c.id = (SELECT max(id) FROM choices WHERE reply_id = c.reply_id)
ORDER BY r.created, r.id, d.choice_index
"""
#: The latest rating per (reply, draft), with the rated draft.
RATED_SQL = """
SELECT r.messages, f.rating, d.content
FROM feedback f
JOIN replies r ON r.id = f.reply_id
JOIN drafts d ON d.reply_id = f.reply_id AND d.choice_index = f.choice_index
WHERE f.id = (SELECT max(id) FROM feedback WHERE reply_id = f.reply_id AND choice_index = f.choice_index)
ORDER BY r.created, r.id, f.choice_index
"""


@dataclass
class Summary:
    """What :func:`export_preferences` wrote, and what it left out with the reason."""

    replies: int = 0  # in the log
    chosen: int = 0  # choices that gave at least one pair
    paired: int = 0
    up: int = 0
    down: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count

    @property
    def unpaired(self) -> int:
        return self.up + self.down

    def lines(self) -> List[str]:
        out = [f"{self.replies} replies in the log",
               f"{PAIRED}: {self.paired} records (from {self.chosen} chosen drafts)",
               f"{UNPAIRED}: {self.unpaired} records ({self.up} up, {self.down} down)"]
        if not self.skipped:
            return out + ["skipped: nothing"]
        return out + [f"skipped: {count} {reason}" for reason, count in sorted(self.skipped.items())]


def prompt_messages(logged: str) -> List[Dict[str, str]]:
    """The logged request messages (JSON) as TRL's conversational prompt."""
    messages = []
    for message in json.loads(logged):
        content = message["content"]
        if not isinstance(content, str):  # a list of text parts
            content = "".join(part.get("text", "") for part in content)
        role = "system" if message["role"] == "developer" else message["role"]
        messages.append({"role": role, "content": content})
    return messages


def open_log(path: str) -> sqlite3.Connection:
    """The serving log at ``path``, at the current schema; a :class:`UserError` naming the flag if it is not one."""
    if not os.path.isfile(path):
        raise UserError(f"{FLAG} {path}: no such file")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "replies" not in tables:
            raise UserError(f"{FLAG} {path}: not a dialogft_serve log (no 'replies' table); "
                            f"give the file the server wrote with --serve-log-db")
        db.execute("PRAGMA foreign_keys=ON")
        open_schema(db, path, FLAG)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise UserError(f"{FLAG} {path}: not a readable SQLite file ({exc})") from None
    except BaseException:
        db.close()
        raise
    return db


def paired_records(db: sqlite3.Connection, summary: Summary) -> Iterable[dict]:
    rows = db.execute(CHOSEN_SQL).fetchall()
    by_reply: Dict[str, list] = {}
    for reply_id, messages, chosen, index, content in rows:
        by_reply.setdefault(reply_id, [messages, chosen, {}])[2][index] = content
    choices = db.execute("SELECT count(*) FROM choices").fetchone()[0]
    summary.skipped[LATER_CHOICE] += choices - len(by_reply)
    for messages, chosen, drafts in by_reply.values():
        others = [text for index, text in sorted(drafts.items()) if index != chosen]
        if not others:
            summary.skipped[ONE_DRAFT] += 1
            continue
        prompt, wrote = prompt_messages(messages), 0
        for rejected in others:
            if same_text(rejected) == same_text(drafts[chosen]):
                summary.skipped[EQUAL_DRAFTS] += 1
                continue
            wrote += 1
            yield paired(prompt, drafts[chosen], rejected)
        summary.paired += wrote
        summary.chosen += bool(wrote)


def unpaired_records(db: sqlite3.Connection, summary: Summary) -> Iterable[dict]:
    rows = db.execute(RATED_SQL).fetchall()
    summary.skipped[LATER_RATING] += db.execute("SELECT count(*) FROM feedback").fetchone()[0] - len(rows)
    for messages, rating, content in rows:
        label = rating == "up"
        summary.up += label
        summary.down += not label
        yield unpaired(prompt_messages(messages), content, label)


def export_preferences(log_path: str, out_dir: str) -> Summary:
    """Write ``out_dir/paired.jsonl`` and ``out_dir/unpaired.jsonl`` from the log; both always exist after."""
    db = open_log(log_path)
    summary = Summary()
    try:
        summary.replies = db.execute("SELECT count(*) FROM replies").fetchone()[0]
        os.makedirs(out_dir, exist_ok=True)
        write_jsonl(os.path.join(out_dir, PAIRED), paired_records(db, summary))
        write_jsonl(os.path.join(out_dir, UNPAIRED), unpaired_records(db, summary))
    finally:
        db.close()
    summary.skipped = Counter({reason: n for reason, n in summary.skipped.items() if n})
    return summary
