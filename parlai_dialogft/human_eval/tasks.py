"""ACUTE-Eval task assignment and the judgments that come back.

A worker's queue: the onboarding pairings first (once), then tasks of N comparisons. A task
takes the pairings with the fewest assignments so far (so every pair gets judged about as
often), never one the worker has seen (``UNIQUE (worker_id, pair_id)`` in the database),
and mixes in attention checks at random positions. Each comparison shows the two models on
a side chosen at random, recorded as ``left_model``; the page never learns model names.

Everything that reads and then writes a worker's queue is one ``BEGIN IMMEDIATE``
transaction, so two tabs of one worker cannot build two tasks at once.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from parlai_dialogft.human_eval import qc
from parlai_dialogft.human_eval.db import Database, new_id, pair_id
from parlai_dialogft.plugin.errors import UserError


class Refused(Exception):
    """A request the worker's page must show as a message (status: the HTTP code to answer)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class TaskSettings:
    questions: Tuple[str, ...] = ("engagingness",)  # keys of the question table, asked in turn
    comparisons_per_task: int = 5
    checks_per_task: int = 1  # attention checks added to each task
    tasks_per_worker: int = 1
    judgments_per_pair: int = 0  # stop assigning a pair after this many workers (0: no cap)
    # An unanswered assignment holds its pair's place under judgments_per_pair this long;
    # after that a worker who left no longer keeps others from judging it.
    hold_s: float = 3600.0

    def __post_init__(self) -> None:
        if not self.questions:
            raise UserError("--he-questions: give at least one question key")
        for flag, value, least in (("--he-comparisons", self.comparisons_per_task, 1),
                                   ("--he-checks-per-task", self.checks_per_task, 0),
                                   ("--he-tasks-per-worker", self.tasks_per_worker, 1),
                                   ("--he-judgments-per-pair", self.judgments_per_pair, 0),
                                   ("--he-hold-minutes", self.hold_s, 0)):
            if value < least:
                raise UserError(f"{flag} {value}: must be at least {least}")


def load_pairings(db: Database, pairings: List[Dict[str, Any]], checks_per_task: int, seed: int = 0) -> Dict[str, int]:
    """Store the pairings of a run, plus one attention check derived from each real pairing."""
    onboarding = [p for p in pairings if p.get("is_onboarding")]
    for number, p in enumerate(onboarding, 1):
        if p.get("correct_answer") not in p["speakers_to_eval"]:
            raise UserError(f"onboarding pairing {number}: 'correct_answer' must name one of speakers_to_eval")
    real = [p for p in pairings if not p.get("is_onboarding")]
    db.add_pairings(onboarding, "onboarding")
    db.add_pairings(real, "task")
    rng = random.Random(seed)
    checks = []
    for p in real if checks_per_task else []:
        check = qc.attention_check(p, rng)
        check["check_of"] = pair_id(p, "task")  # so a task never holds a pairing and its own check
        checks.append(check)
    db.add_pairings(checks, "attention")
    return {"onboarding": len(onboarding), "task": len(real), "attention": len(checks)}


@dataclass
class Assigner:
    db: Database
    settings: TaskSettings
    qc_settings: qc.QcSettings
    rng: random.Random = field(default_factory=random.Random)

    # --- what the worker sees next ----------------------------------------------------------

    def next(self, worker_id: str, more: bool = False) -> Dict[str, Any]:
        """The worker's next comparison, or their stage (``done``, ``no_work``, ``blocked``).

        Fetching marks the comparison as shown (the start of its minimum time) once.
        """
        reason = self.db.blocked_reason(worker_id)
        if reason:
            return {"stage": "blocked", "reason": reason}
        with self.db.write() as db:
            row = self._pending(db, worker_id) or self._new_task(db, worker_id, more)
            if isinstance(row, dict):
                return row
            if row["shown"] is None:
                db.execute("UPDATE assignments SET shown = ? WHERE assignment_id = ?",
                           (time.time(), row["assignment_id"]))
            progress = db.execute("SELECT count(*), sum(done) FROM assignments WHERE worker_id = ? AND task_no = ?",
                                  (worker_id, row["task_no"])).fetchone()
        pairing = self.db.pairing(row["pair_id"])
        return {"stage": "onboarding" if row["task_no"] == 0 else "task",
                "assignment_id": row["assignment_id"], "question": row["question"],
                "number": (progress[1] or 0) + 1, "total": progress[0],
                **_sides(pairing["data"], row["left_model"])}

    def _pending(self, db, worker_id: str):
        return db.execute("SELECT * FROM assignments WHERE worker_id = ? AND done = 0 ORDER BY task_no, position LIMIT 1",
                          (worker_id,)).fetchone()

    def _new_task(self, db, worker_id: str, more: bool):
        worker = db.execute("SELECT onboarding FROM workers WHERE worker_id = ?", (worker_id,)).fetchone()
        has_onboarding = db.execute("SELECT 1 FROM pairings WHERE kind = 'onboarding' LIMIT 1").fetchone()
        if worker["onboarding"] == "pending" and has_onboarding:
            pids = [r[0] for r in db.execute("SELECT pair_id FROM pairings WHERE kind = 'onboarding' ORDER BY pair_id")]
            self.rng.shuffle(pids)
            self._insert(db, worker_id, pids, task_no=0, question=self.settings.questions[0])
            return self._pending(db, worker_id)
        done_tasks = db.execute("SELECT count(DISTINCT task_no) FROM assignments WHERE worker_id = ? AND task_no > 0",
                                (worker_id,)).fetchone()[0]
        under_cap = done_tasks < self.settings.tasks_per_worker
        pids = self._available(db, worker_id, self.settings.comparisons_per_task) if under_cap else []
        if done_tasks and not (more and pids):  # a finished task waits for the worker to ask for more
            return {"stage": "done", "tasks_done": done_tasks, "more_available": bool(pids)}
        if not pids:
            return {"stage": "no_work"}
        checks = self._checks(db, worker_id, pids)
        queue = list(pids)
        for check in checks:
            queue.insert(self.rng.randrange(len(queue) + 1), check)
        self._insert(db, worker_id, queue, task_no=done_tasks + 1)
        return self._pending(db, worker_id)

    def _available(self, db, worker_id: str, limit: int) -> List[str]:
        """Real pairings this worker has not seen, least-judged first (ties at random)."""
        rows = db.execute(
            "SELECT p.pair_id, (SELECT count(*) FROM assignments a WHERE a.pair_id = p.pair_id "
            "AND (a.done = 1 OR a.created > ?)) AS n "
            "FROM pairings p WHERE p.kind = 'task' AND p.pair_id NOT IN "
            "(SELECT pair_id FROM assignments WHERE worker_id = ?)",
            (time.time() - self.settings.hold_s, worker_id)).fetchall()
        cap = self.settings.judgments_per_pair
        rows = [r for r in rows if not cap or r["n"] < cap]
        self.rng.shuffle(rows)
        rows.sort(key=lambda r: r["n"])  # stable: shuffled within equal counts
        return [r["pair_id"] for r in rows[:limit]]

    def _checks(self, db, worker_id: str, chosen: List[str]) -> List[str]:
        if not self.settings.checks_per_task:
            return []
        rows = db.execute("SELECT pair_id, data FROM pairings WHERE kind = 'attention' AND pair_id NOT IN "
                          "(SELECT pair_id FROM assignments WHERE worker_id = ?) ORDER BY pair_id",
                          (worker_id,)).fetchall()
        self.rng.shuffle(rows)
        # Checks of pairings outside this task first: the same conversations twice would give it away.
        rows.sort(key=lambda r: json.loads(r["data"]).get("check_of") in chosen)
        return [r["pair_id"] for r in rows[: self.settings.checks_per_task]]

    def _insert(self, db, worker_id: str, pids: List[str], task_no: int, question: Optional[str] = None) -> None:
        start = db.execute("SELECT coalesce(max(position), -1) + 1 FROM assignments WHERE worker_id = ?",
                           (worker_id,)).fetchone()[0]
        questions = self.settings.questions
        for offset, pid in enumerate(pids):
            a, b = db.execute("SELECT model_a, model_b FROM pairings WHERE pair_id = ?", (pid,)).fetchone()
            db.execute("INSERT INTO assignments (assignment_id, worker_id, pair_id, question, left_model, position, "
                       "task_no, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (new_id("as"), worker_id, pid, question or questions[(start + offset) % len(questions)],
                        self.rng.choice((a, b)), start + offset, task_no, time.time()))

    # --- an answer comes back ---------------------------------------------------------------

    def submit(self, worker_id: str, assignment_id: str, choice: object, justification: object) -> Dict[str, Any]:
        """Record one judgment; then onboarding, attention-check and uniformity rules apply."""
        if choice not in ("left", "right"):
            raise Refused(400, "choice must be 'left' or 'right'")
        if not isinstance(justification, str):
            raise Refused(400, "justification must be text")
        problem = qc.justification_problem(justification, self.qc_settings)
        if problem:
            raise Refused(422, problem)
        reason = self.db.blocked_reason(worker_id)
        if reason:
            raise Refused(403, f"you can no longer take part: {reason}")
        now = time.time()
        with self.db.write() as db:
            row = db.execute("SELECT a.*, p.kind, p.model_a, p.model_b, p.correct_answer FROM assignments a "
                             "JOIN pairings p USING (pair_id) WHERE a.assignment_id = ? AND a.worker_id = ?",
                             (assignment_id, worker_id)).fetchone()
            if row is None:  # someone else's, or made up: the same answer, so ids leak nothing
                raise Refused(404, "no such comparison")
            if row["done"]:
                raise Refused(409, "this comparison is already answered")
            if row["shown"] is None:
                raise Refused(409, "this comparison was never shown")
            duration = now - row["shown"]
            problem = qc.too_fast(duration, self.qc_settings)
            if problem:
                raise Refused(422, problem)
            winner = row["left_model"] if choice == "left" else (
                row["model_b"] if row["left_model"] == row["model_a"] else row["model_a"])
            passed = None if row["correct_answer"] is None else winner == row["correct_answer"]
            db.execute("INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (new_id("j"), assignment_id, worker_id, row["pair_id"], row["question"], row["model_a"],
                        row["model_b"], winner, row["left_model"], justification.strip(), duration,
                        int(row["kind"] == "onboarding"), int(row["kind"] == "attention"),
                        None if passed is None else int(passed), now))
            db.execute("UPDATE assignments SET done = 1 WHERE assignment_id = ?", (assignment_id,))
            events = self._after(db, worker_id, row, passed, now)
        for kind, detail in events.get("flags", []):
            self.db.flag(worker_id, kind, detail)
        if events.get("block"):
            self.db.block(worker_id, events["block"])
            return {"recorded": True, "stage": "blocked", "reason": events["block"]}
        return {"recorded": True, **{k: v for k, v in events.items() if k == "onboarding"}}

    def _after(self, db, worker_id: str, row, passed: Optional[bool], now: float) -> Dict[str, Any]:
        events: Dict[str, Any] = {"flags": []}
        if row["kind"] == "attention" and passed is False:
            events["flags"].append(("failed_check", row["pair_id"]))
            failed = db.execute("SELECT count(*) FROM judgments WHERE worker_id = ? AND is_attention_check = 1 "
                                "AND passed_check = 0", (worker_id,)).fetchone()[0]
            if failed > self.qc_settings.max_failed_checks:
                events["block"] = f"failed {failed} attention check(s)"
        left = db.execute("SELECT count(*) FROM assignments WHERE worker_id = ? AND task_no = ? AND done = 0",
                          (worker_id, row["task_no"])).fetchone()[0]
        if left:
            return events
        answers = db.execute("SELECT j.passed_check, j.winner = j.left_model AS on_left FROM judgments j JOIN "
                             "assignments a USING (assignment_id) WHERE a.worker_id = ? AND a.task_no = ? "
                             "ORDER BY a.position", (worker_id, row["task_no"])).fetchall()
        if row["task_no"] == 0:
            ok = qc.onboarding_passed([bool(a["passed_check"]) for a in answers], self.qc_settings)
            db.execute("UPDATE workers SET onboarding = ? WHERE worker_id = ?", ("passed" if ok else "failed", worker_id))
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


def _sides(pairing: Dict[str, Any], left_model: str) -> Dict[str, Any]:
    """The two conversations as the page shows them: no model names, the evaluated turns marked."""
    speakers = pairing["speakers_to_eval"]
    order = [0, 1] if speakers[0] == left_model else [1, 0]
    sides = []
    for i in order:
        sides.append([{"text": str(turn.get("text", "")), "evaluated": turn.get("id") == speakers[i]}
                      for turn in qc.dialogue_of(pairing, i)["dialogue"]])
    return {"left": sides[0], "right": sides[1]}
