"""ACUTE-Eval task assignment and the judgments that come back.

The queue protocol (loading, practice first, least-judged pairings, attention checks,
quality control) is :mod:`.work_queue`'s, as for the per-turn task (:mod:`.turn_tasks`).
Here: the questions asked, the pairings with their attention checks
(:func:`~.qc.attention_check`), and what an ACUTE comparison is. Each shows the two
models' conversations on a side chosen at random, recorded as ``left_model``; the page
never learns model names. A worker never sees a pairing twice (``UNIQUE (worker_id,
pair_id)`` in the database).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from parlai_dialogft.human_eval import qc
from parlai_dialogft.human_eval.db import Database, new_id
from parlai_dialogft.human_eval.work_queue import QueueSettings, Tables, WorkQueue, load_items
from parlai_dialogft.utils.errors import UserError


@dataclass(frozen=True)
class TaskSettings(QueueSettings):
    """The ACUTE task's settings: the queue's, and the questions its comparisons ask."""

    questions: Tuple[str, ...] = ("engagingness",)  # keys of the question table, asked in turn

    def __post_init__(self) -> None:
        if not self.questions:
            raise UserError("--he-questions: give at least one question key")
        super().__post_init__()


def load_pairings(db: Database, pairings: List[Dict[str, Any]], checks_per_task: int, seed: int = 0) -> Dict[str, int]:
    """Store the pairings of a run, plus one attention check derived from each real pairing."""
    onboarding = [p for p in pairings if p.get("is_onboarding")]
    for number, p in enumerate(onboarding, 1):
        if p.get("correct_answer") not in p["speakers_to_eval"]:
            raise UserError(f"onboarding pairing {number}: 'correct_answer' must name one of speakers_to_eval")
    return load_items(db.add_pairings, pairings, checks_per_task, qc.attention_check, seed)


class Assigner(WorkQueue):
    """The ACUTE task: pairs of conversations, one question per comparison."""

    settings: TaskSettings
    tables = Tables(items="pairings", item_id="pair_id", assignments="assignments", judgments="judgments",
                    onboarding="onboarding", left="left_model", failed_check_flag="failed_check", noun="comparison")
    item_columns = "i.kind, i.correct_answer, i.model_a, i.model_b"
    read_first = "both conversations"

    def _insert(self, db, worker_id: str, ids: List[str], task_no: int, start: int) -> None:
        questions = self.settings.questions
        for offset, pid in enumerate(ids):
            # Practice pairings all ask the first question; tasks take the questions in turn.
            question = questions[0] if task_no == 0 else questions[(start + offset) % len(questions)]
            a, b = db.execute("SELECT model_a, model_b FROM pairings WHERE pair_id = ?", (pid,)).fetchone()
            db.execute("INSERT INTO assignments (assignment_id, worker_id, pair_id, question, left_model, position, "
                       "task_no, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (new_id("as"), worker_id, pid, question, self.rng.choice((a, b)), start + offset, task_no,
                        time.time()))

    def _page(self, row) -> Dict[str, Any]:
        return {"question": row["question"], **_sides(self.db.pairing(row["pair_id"])["data"], row["left_model"])}

    def _record(self, db, row, choice: str, justification: str, duration: float, now: float) -> Optional[bool]:
        left = row["left_model"]
        winner = left if choice == "left" else (row["model_b"] if left == row["model_a"] else row["model_a"])
        passed = None if row["correct_answer"] is None else winner == row["correct_answer"]
        db.execute("INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (new_id("j"), row["assignment_id"], row["worker_id"], row["pair_id"], row["question"],
                    row["model_a"], row["model_b"], winner, left, justification, duration,
                    int(row["kind"] == "onboarding"), int(row["kind"] == "attention"),
                    None if passed is None else int(passed), now))
        return passed


def _sides(pairing: Dict[str, Any], left_model: str) -> Dict[str, Any]:
    """The two conversations as the page shows them: no model names, the evaluated turns marked."""
    speakers = pairing["speakers_to_eval"]
    order = [0, 1] if speakers[0] == left_model else [1, 0]
    sides = []
    for i in order:
        sides.append([{"text": str(turn.get("text", "")), "evaluated": turn.get("id") == speakers[i]}
                      for turn in qc.dialogue_of(pairing, i)["dialogue"]])
    return {"left": sides[0], "right": sides[1]}
