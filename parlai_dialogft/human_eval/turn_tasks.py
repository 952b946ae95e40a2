"""The per-turn pairwise task: which next reply is better, and why.

The same protocol as the ACUTE task (:mod:`.tasks`), on the ``turn_*`` tables: a worker's
practice items (``kind = 'onboarding'``) first, once, then tasks of
``TaskSettings.comparisons_per_task`` items, least-judged first, with
``checks_per_task`` attention checks at random positions. Each item's candidates are
shown on a side drawn per assignment (``left_side``); the page gets texts only, never the
models. ``UNIQUE (worker_id, item_id)`` keeps it to one judgment per worker per item.

Quality control is :mod:`.qc`'s: the justification's length and the time on the page are
refused with a message, a failed practice round or too many failed checks block the
worker (the shared blocklist, so the export leaves them out), one-sided tasks are flagged.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from parlai_dialogft.human_eval import qc
from parlai_dialogft.human_eval.db import Database, new_id
from parlai_dialogft.human_eval.tasks import Refused, TaskSettings
from parlai_dialogft.human_eval.turn_items import SIDES, other_side
from parlai_dialogft.model.chat_format import to_messages

#: What the worker is asked about every item.
TURN_QUESTION = "Which reply is the better next message in this conversation?"


@dataclass
class TurnAssigner:
    db: Database
    settings: TaskSettings
    qc_settings: qc.QcSettings
    rng: random.Random = field(default_factory=random.Random)

    # --- what the worker sees next ----------------------------------------------------------

    def next(self, worker_id: str, more: bool = False) -> Dict[str, Any]:
        """The worker's next item, or their stage (``done``, ``no_work``, ``blocked``).

        Fetching marks the item as shown (the start of its minimum time) once.
        """
        reason = self.db.blocked_reason(worker_id)
        if reason:
            return {"stage": "blocked", "reason": reason}
        with self.db.write() as db:
            row = self._pending(db, worker_id) or self._new_task(db, worker_id, more)
            if isinstance(row, dict):
                return row
            if row["shown"] is None:
                db.execute("UPDATE turn_assignments SET shown = ? WHERE assignment_id = ?",
                           (time.time(), row["assignment_id"]))
            total, done = db.execute("SELECT count(*), sum(done) FROM turn_assignments WHERE worker_id = ? "
                                     "AND task_no = ?", (worker_id, row["task_no"])).fetchone()
        item = self.db.turn_item(row["item_id"])["data"]
        left, right = row["left_side"], other_side(row["left_side"])
        return {"stage": "onboarding" if row["task_no"] == 0 else "task",
                "assignment_id": row["assignment_id"], "question": TURN_QUESTION,
                "number": (done or 0) + 1, "total": total,
                "context": [{"role": m["role"], "text": m["content"]} for m in to_messages(item["context"])],
                "left": item[left]["text"], "right": item[right]["text"]}

    def _pending(self, db, worker_id: str):
        return db.execute("SELECT * FROM turn_assignments WHERE worker_id = ? AND done = 0 "
                          "ORDER BY task_no, position LIMIT 1", (worker_id,)).fetchone()

    def _new_task(self, db, worker_id: str, more: bool):
        worker = db.execute("SELECT turn_onboarding FROM workers WHERE worker_id = ?", (worker_id,)).fetchone()
        practice = [r[0] for r in db.execute("SELECT item_id FROM turn_items WHERE kind = 'onboarding' "
                                             "ORDER BY item_id")]
        if worker["turn_onboarding"] == "pending" and practice:
            self.rng.shuffle(practice)
            self._insert(db, worker_id, practice, task_no=0)
            return self._pending(db, worker_id)
        done_tasks = db.execute("SELECT count(DISTINCT task_no) FROM turn_assignments WHERE worker_id = ? "
                                "AND task_no > 0", (worker_id,)).fetchone()[0]
        under_cap = done_tasks < self.settings.tasks_per_worker
        ids = self._available(db, worker_id, self.settings.comparisons_per_task) if under_cap else []
        if done_tasks and not (more and ids):  # a finished task waits for the worker to ask for more
            return {"stage": "done", "tasks_done": done_tasks, "more_available": bool(ids)}
        if not ids:
            return {"stage": "no_work"}
        queue = list(ids)
        for check in self._checks(db, worker_id, ids):
            queue.insert(self.rng.randrange(len(queue) + 1), check)
        self._insert(db, worker_id, queue, task_no=done_tasks + 1)
        return self._pending(db, worker_id)

    def _available(self, db, worker_id: str, limit: int) -> List[str]:
        """Real items this worker has not judged, least-judged first (ties at random)."""
        rows = db.execute(
            "SELECT i.item_id, (SELECT count(*) FROM turn_assignments a WHERE a.item_id = i.item_id "
            "AND (a.done = 1 OR a.created > ?)) AS n "
            "FROM turn_items i WHERE i.kind = 'task' AND i.item_id NOT IN "
            "(SELECT item_id FROM turn_assignments WHERE worker_id = ?)",
            (time.time() - self.settings.hold_s, worker_id)).fetchall()
        cap = self.settings.judgments_per_pair
        rows = [r for r in rows if not cap or r["n"] < cap]
        self.rng.shuffle(rows)
        rows.sort(key=lambda r: r["n"])  # stable: shuffled within equal counts
        return [r["item_id"] for r in rows[:limit]]

    def _checks(self, db, worker_id: str, chosen: List[str]) -> List[str]:
        if not self.settings.checks_per_task:
            return []
        rows = db.execute("SELECT item_id, data FROM turn_items WHERE kind = 'attention' AND item_id NOT IN "
                          "(SELECT item_id FROM turn_assignments WHERE worker_id = ?) ORDER BY item_id",
                          (worker_id,)).fetchall()
        self.rng.shuffle(rows)
        # Checks of items outside this task first: the same context twice would give it away.
        rows.sort(key=lambda r: json.loads(r["data"]).get("check_of") in chosen)
        return [r["item_id"] for r in rows[: self.settings.checks_per_task]]

    def _insert(self, db, worker_id: str, ids: List[str], task_no: int) -> None:
        start = db.execute("SELECT coalesce(max(position), -1) + 1 FROM turn_assignments WHERE worker_id = ?",
                           (worker_id,)).fetchone()[0]
        for offset, iid in enumerate(ids):
            db.execute("INSERT INTO turn_assignments (assignment_id, worker_id, item_id, left_side, position, "
                       "task_no, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (new_id("ta"), worker_id, iid, self.rng.choice(SIDES), start + offset, task_no, time.time()))

    # --- an answer comes back ---------------------------------------------------------------

    def submit(self, worker_id: str, assignment_id: str, choice: str, justification: str) -> Dict[str, Any]:
        """Record one judgment; then the onboarding, attention-check and uniformity rules apply."""
        problem = qc.justification_problem(justification, self.qc_settings)
        if problem:
            raise Refused(422, problem)
        reason = self.db.blocked_reason(worker_id)
        if reason:
            raise Refused(403, f"you can no longer take part: {reason}")
        now = time.time()
        with self.db.write() as db:
            row = db.execute("SELECT a.*, i.kind, i.correct_answer FROM turn_assignments a JOIN turn_items i "
                             "USING (item_id) WHERE a.assignment_id = ? AND a.worker_id = ?",
                             (assignment_id, worker_id)).fetchone()
            if row is None:  # someone else's, or made up: the same answer, so ids leak nothing
                raise Refused(404, "no such item")
            if row["done"]:
                raise Refused(409, "this item is already answered")
            if row["shown"] is None:
                raise Refused(409, "this item was never shown")
            duration = now - row["shown"]
            problem = qc.too_fast(duration, self.qc_settings, "the conversation and both replies")
            if problem:
                raise Refused(422, problem)
            winner = row["left_side"] if choice == "left" else other_side(row["left_side"])
            passed = None if row["correct_answer"] is None else winner == row["correct_answer"]
            db.execute("INSERT INTO turn_judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (new_id("tj"), assignment_id, worker_id, row["item_id"], winner, row["left_side"],
                        justification.strip(), duration, int(row["kind"] == "onboarding"),
                        int(row["kind"] == "attention"), None if passed is None else int(passed), now))
            db.execute("UPDATE turn_assignments SET done = 1 WHERE assignment_id = ?", (assignment_id,))
            events = self._after(db, worker_id, row, passed, now)
        for kind, detail in events["flags"]:
            self.db.flag(worker_id, kind, detail)
        if events.get("block"):
            self.db.block(worker_id, events["block"])
            return {"recorded": True, "stage": "blocked", "reason": events["block"]}
        return {"recorded": True, **{k: v for k, v in events.items() if k == "onboarding"}}

    def _after(self, db, worker_id: str, row, passed: Optional[bool], now: float) -> Dict[str, Any]:
        events: Dict[str, Any] = {"flags": []}
        if row["kind"] == "attention" and passed is False:
            events["flags"].append(("failed_turn_check", row["item_id"]))
            failed = db.execute("SELECT count(*) FROM turn_judgments WHERE worker_id = ? AND is_attention_check = 1 "
                                "AND passed_check = 0", (worker_id,)).fetchone()[0]
            if failed > self.qc_settings.max_failed_checks:
                events["block"] = f"failed {failed} attention check(s)"
        left = db.execute("SELECT count(*) FROM turn_assignments WHERE worker_id = ? AND task_no = ? AND done = 0",
                          (worker_id, row["task_no"])).fetchone()[0]
        if left:
            return events
        answers = db.execute("SELECT j.passed_check, j.winner = j.left_side AS on_left FROM turn_judgments j JOIN "
                             "turn_assignments a USING (assignment_id) WHERE a.worker_id = ? AND a.task_no = ? "
                             "ORDER BY a.position", (worker_id, row["task_no"])).fetchall()
        if row["task_no"] == 0:
            ok = qc.onboarding_passed([bool(a["passed_check"]) for a in answers], self.qc_settings)
            db.execute("UPDATE workers SET turn_onboarding = ? WHERE worker_id = ?",
                       ("passed" if ok else "failed", worker_id))
            events["onboarding"] = "passed" if ok else "failed"
            if not ok:
                events["block"] = "did not pass the onboarding"
            return events
        uniform = qc.uniform_side([bool(a["on_left"]) for a in answers], self.qc_settings)
        if uniform:
            events["flags"].append(("uniform_side", uniform))
            if self.qc_settings.block_uniform:
                events.setdefault("block", uniform)
        db.execute("UPDATE workers SET finished = ? WHERE worker_id = ?", (now, worker_id))
        return events
