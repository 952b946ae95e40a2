"""The per-turn pairwise task: which next reply is better, and why.

The queue protocol of :mod:`.work_queue`, as the ACUTE task (:mod:`.tasks`), on the
``turn_*`` tables; its items are read and loaded by :mod:`.turn_items`. Each item's
candidates are shown on a side drawn per assignment (``left_side``); the page gets texts
only, never the models. ``UNIQUE (worker_id, item_id)`` keeps it to one judgment per
worker per item. Blocked workers are on the shared blocklist, so the export leaves them out.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

from parlai_dialogft.human_eval.db import new_id
from parlai_dialogft.human_eval.turn_items import SIDES, other_side
from parlai_dialogft.human_eval.work_queue import Tables, WorkQueue
from parlai_dialogft.model.chat_format import to_messages

#: What the worker is asked about every item.
TURN_QUESTION = "Which reply is the better next message in this conversation?"


class TurnAssigner(WorkQueue):
    """The per-turn task: two candidate next replies to one context."""

    tables = Tables(items="turn_items", item_id="item_id", assignments="turn_assignments",
                    judgments="turn_judgments", onboarding="turn_onboarding", left="left_side",
                    failed_check_flag="failed_turn_check", noun="item")
    read_first = "the conversation and both replies"

    def _insert(self, db, worker_id: str, ids: List[str], task_no: int, start: int) -> None:
        for offset, iid in enumerate(ids):
            db.execute("INSERT INTO turn_assignments (assignment_id, worker_id, item_id, left_side, position, "
                       "task_no, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (new_id("ta"), worker_id, iid, self.rng.choice(SIDES), start + offset, task_no, time.time()))

    def _page(self, row) -> Dict[str, Any]:
        item = self.db.turn_item(row["item_id"])["data"]
        left, right = row["left_side"], other_side(row["left_side"])
        return {"question": TURN_QUESTION,
                "context": [{"role": m["role"], "text": m["content"]} for m in to_messages(item["context"])],
                "left": item[left]["text"], "right": item[right]["text"]}

    def _record(self, db, row, choice: str, justification: str, duration: float, now: float) -> Optional[bool]:
        winner = row["left_side"] if choice == "left" else other_side(row["left_side"])
        passed = None if row["correct_answer"] is None else winner == row["correct_answer"]
        db.execute("INSERT INTO turn_judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (new_id("tj"), row["assignment_id"], row["worker_id"], row["item_id"], winner, row["left_side"],
                    justification, duration, int(row["kind"] == "onboarding"), int(row["kind"] == "attention"),
                    None if passed is None else int(passed), now))
        return passed
