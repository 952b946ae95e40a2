"""Per-turn judgments as DPO pairs, in TRL's conversational preference format.

``parlai dialogft_human_eval_preferences --he-db STUDY --he-preferences-out FILE`` writes
one JSON line per item whose kept judgments have a majority::

    {"prompt": [{"role": "user", "content": "a table for two?"},
                {"role": "assistant", "content": "sure, at what time?"},
                {"role": "user", "content": "at eight"}],
     "chosen": [{"role": "assistant", "content": "Eight it is. Any allergies?"}],
     "rejected": [{"role": "assistant", "content": "ok"}]}

The prompt is the item's context with roles counted back from the newest turn, the
user's (:func:`parlai_dialogft.model.chat_format.to_messages`, as the agent reads a
history); chosen and rejected are the two candidates. ``-t dialogft_preferences
--pref-datapath FILE`` trains on it.

What counts is what the ACUTE analysis counts: onboarding and attention-check judgments
never do; blocked workers are not read (``include_blocked`` reads them), and workers who
failed a practice item or an attention check of the per-turn task are left out entirely
(``keep_failed_workers`` keeps them). An item with as many kept votes each way is a tie
and is skipped, as is an item nobody judged; :class:`Summary` counts both.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from parlai_dialogft.data.preference_records import paired
from parlai_dialogft.human_eval.db import Database, turn_records
from parlai_dialogft.human_eval.turn_items import other_side
from parlai_dialogft.model.chat_format import to_messages
from parlai_dialogft.utils.errors import UserError
from parlai_dialogft.utils.jsonl import write_jsonl


@dataclass
class Summary:
    """What :func:`export_preferences` wrote and what it skipped."""

    items: int = 0  # real items in the study
    written: int = 0  # items with a majority: one record each
    ties: int = 0  # kept judgments split evenly
    no_judgments: int = 0  # no kept judgment at all
    judgments: int = 0  # kept judgments counted
    excluded_workers: List[str] = field(default_factory=list)  # failed a check, left out

    def lines(self) -> List[str]:
        return [f"{self.items} items in the study, {self.judgments} judgments counted",
                f"written: {self.written} preference pairs",
                f"skipped: {self.ties} ties, {self.no_judgments} items with no judgments",
                f"workers left out (failed a check): {len(self.excluded_workers)}"]


def majority(votes: Counter) -> Optional[str]:
    """``"a"`` or ``"b"`` when one has more votes; None for a tie (or no votes)."""
    if votes["a"] == votes["b"]:
        return None
    return "a" if votes["a"] > votes["b"] else "b"


def preference_pair(item: Dict[str, Any], winner: str) -> dict:
    """One TRL conversational preference record: the context as the prompt, the candidates as replies."""
    return paired(to_messages(item["context"]), item[winner]["text"], item[other_side(winner)]["text"])


def kept_judgments(records: Iterable[Dict[str, Any]],
                   keep_failed_workers: bool) -> Tuple[List[Dict[str, Any]], List[str]]:
    """The real judgments that count, and the workers left out for a failed check."""
    records = list(records)
    failed = sorted({r["worker_id"] for r in records if r["passed_check"] is False})
    dropped = set() if keep_failed_workers else set(failed)
    kept = [r for r in records if not r["is_onboarding"] and not r["is_attention_check"]
            and r["worker_id"] not in dropped]
    return kept, [] if keep_failed_workers else failed


def export_preferences(db_path: str | Path, out_path: str | Path, *, include_blocked: bool = False,
                       keep_failed_workers: bool = False) -> Summary:
    """Write the study's majority preferences to ``out_path`` (JSONL, replaced); what was written and skipped."""
    out = Path(out_path)
    if not out.parent.is_dir():
        raise UserError(f"--he-preferences-out {out}: the folder {out.parent} does not exist")
    records = turn_records(db_path, include_blocked=include_blocked)  # checks the file first
    items = Database(db_path).rows("SELECT item_id, data FROM turn_items WHERE kind = 'task' "
                                   "ORDER BY source_id, item_id")
    kept, excluded = kept_judgments(records, keep_failed_workers)
    votes: Dict[str, Counter] = defaultdict(Counter)
    for record in kept:
        votes[record["item_id"]][record["winner"]] += 1
    summary = Summary(items=len(items), judgments=len(kept), excluded_workers=excluded)
    def records():
        for row in items:
            counted = votes.get(row["item_id"], Counter())
            winner = majority(counted)
            if not counted:
                summary.no_judgments += 1
            elif winner is None:
                summary.ties += 1
            else:
                summary.written += 1
                yield preference_pair(json.loads(row["data"]), winner)

    write_jsonl(str(out), records())
    return summary
