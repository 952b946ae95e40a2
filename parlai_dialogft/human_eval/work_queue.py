"""A worker's queue of judgments: the protocol shared by the ACUTE and per-turn tasks.

:func:`load_items` stores a run's items the same way for both tasks: practice items
(``kind = 'onboarding'``), real ones (``'task'``) and an attention check derived from each
real one (``'attention'``). A worker gets the practice items first, once, then tasks of
``QueueSettings.comparisons_per_task`` items: the least-judged ones the worker has not seen
(ties at random), with ``checks_per_task`` attention checks at random positions, checks of
items outside the task first. Fetching an item marks it shown, the start of its minimum
time. An answer is refused with a message when :mod:`.qc` says so; a failed practice round
or too many failed checks block the worker, a task answered all on one side is flagged.

Everything that reads and then writes a worker's queue is one ``BEGIN IMMEDIATE``
transaction, so two tabs of one worker cannot build two tasks at once. The two tasks differ
in their tables (:class:`Tables`), in what an assignment stores and in what the page shows:
the hooks :meth:`WorkQueue._insert`, :meth:`WorkQueue._page` and :meth:`WorkQueue._record`.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from parlai_dialogft.human_eval import qc
from parlai_dialogft.human_eval.db import Database, pair_id
from parlai_dialogft.utils.errors import UserError

Item = Dict[str, Any]


class Refused(Exception):
    """A request the worker's page must show as a message (status: the HTTP code to answer)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Tables:
    """Where one task keeps its items, assignments and judgments (fixed names, never user input)."""

    items: str  # one row per item: its id column, kind, data, correct_answer
    item_id: str  # the id column of items, assignments and judgments
    assignments: str
    judgments: str
    onboarding: str  # the workers column with 'pending' | 'passed' | 'failed'
    left: str  # the judgments column naming what was shown on the left
    failed_check_flag: str  # the flag kind a failed attention check leaves
    noun: str  # what the page calls an item, in refusals


@dataclass(frozen=True)
class QueueSettings:
    """How work is handed out, the same for both tasks (the ACUTE task adds its questions)."""

    comparisons_per_task: int = 5
    checks_per_task: int = 1  # attention checks added to each task
    tasks_per_worker: int = 1
    judgments_per_pair: int = 0  # stop assigning a pair after this many workers (0: no cap)
    # An unanswered assignment holds its pair's place under judgments_per_pair this long;
    # after that a worker who left no longer keeps others from judging it.
    hold_s: float = 3600.0

    def __post_init__(self) -> None:
        for flag, value, least in (("--he-comparisons", self.comparisons_per_task, 1),
                                   ("--he-checks-per-task", self.checks_per_task, 0),
                                   ("--he-tasks-per-worker", self.tasks_per_worker, 1),
                                   ("--he-judgments-per-pair", self.judgments_per_pair, 0),
                                   ("--he-hold-minutes", self.hold_s / 60, 0)):
            if value < least:
                raise UserError(f"{flag} {value}: must be at least {least}")


def load_items(store: Callable[[List[Item], str], object], items: Sequence[Item], checks_per_task: int,
               attention_check: Callable[[Item, random.Random], Item], seed: int = 0) -> Dict[str, int]:
    """Store a run's items, plus one attention check derived from each real item.

    ``store(items, kind)`` is the task's :class:`~.db.Database` method (idempotent: loading
    a file again adds nothing); ``attention_check(item, rng)`` turns a real item into one
    with a known answer.
    """
    onboarding = [i for i in items if i.get("is_onboarding")]
    real = [i for i in items if not i.get("is_onboarding")]
    store(onboarding, "onboarding")
    store(real, "task")
    rng = random.Random(seed)
    checks = []
    for item in real if checks_per_task else []:
        check = attention_check(item, rng)
        check["check_of"] = pair_id(item, "task")  # so a task never holds an item and its own check
        checks.append(check)
    store(checks, "attention")
    return {"onboarding": len(onboarding), "task": len(real), "attention": len(checks)}


@dataclass
class WorkQueue:
    db: Database
    settings: QueueSettings
    qc_settings: qc.QcSettings
    rng: random.Random = field(default_factory=random.Random)

    # Each task sets these three.
    tables = Tables("", "", "", "", "", "", "", "")
    #: Columns of the item that :meth:`_record` needs, besides the assignment's own.
    item_columns = "i.kind, i.correct_answer"
    #: What the worker must have read before answering, in the too-fast refusal.
    read_first = ""

    # --- the task's own parts -------------------------------------------------------------------

    def _insert(self, db, worker_id: str, ids: List[str], task_no: int, start: int) -> None:
        """Add assignments of ``ids`` at positions ``start, start + 1, ...``."""
        raise NotImplementedError

    def _page(self, row) -> Dict[str, Any]:
        """What the page shows of an assignment: texts only, never the models."""
        raise NotImplementedError

    def _record(self, db, row, choice: str, justification: str, duration: float, now: float) -> Optional[bool]:
        """Store the judgment of ``row``; whether it passed its check (None: not a check)."""
        raise NotImplementedError

    # --- what the worker sees next ----------------------------------------------------------

    def next(self, worker_id: str, more: bool = False) -> Dict[str, Any]:
        """The worker's next item, or their stage (``done``, ``no_work``, ``blocked``)."""
        t = self.tables
        reason = self.db.blocked_reason(worker_id)
        if reason:
            return {"stage": "blocked", "reason": reason}
        with self.db.write() as db:
            row = self._pending(db, worker_id) or self._new_task(db, worker_id, more)
            if isinstance(row, dict):
                return row
            if row["shown"] is None:
                db.execute(f"UPDATE {t.assignments} SET shown = ? WHERE assignment_id = ?",
                           (time.time(), row["assignment_id"]))
            total, done = db.execute(f"SELECT count(*), sum(done) FROM {t.assignments} WHERE worker_id = ? "
                                     "AND task_no = ?", (worker_id, row["task_no"])).fetchone()
        return {"stage": "onboarding" if row["task_no"] == 0 else "task",
                "assignment_id": row["assignment_id"], "number": (done or 0) + 1, "total": total,
                **self._page(row)}

    def _pending(self, db, worker_id: str):
        return db.execute(f"SELECT * FROM {self.tables.assignments} WHERE worker_id = ? AND done = 0 "
                          "ORDER BY task_no, position LIMIT 1", (worker_id,)).fetchone()

    def _new_task(self, db, worker_id: str, more: bool):
        t = self.tables
        worker = db.execute(f"SELECT {t.onboarding} FROM workers WHERE worker_id = ?", (worker_id,)).fetchone()
        practice = [r[0] for r in db.execute(f"SELECT {t.item_id} FROM {t.items} WHERE kind = 'onboarding' "
                                             f"ORDER BY {t.item_id}")]
        if worker[0] == "pending" and practice:
            self.rng.shuffle(practice)
            self._add(db, worker_id, practice, task_no=0)
            return self._pending(db, worker_id)
        done_tasks = db.execute(f"SELECT count(DISTINCT task_no) FROM {t.assignments} WHERE worker_id = ? "
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
        self._add(db, worker_id, queue, task_no=done_tasks + 1)
        return self._pending(db, worker_id)

    def _available(self, db, worker_id: str, limit: int) -> List[str]:
        """Real items this worker has not seen, least-judged first (ties at random)."""
        t = self.tables
        rows = db.execute(
            f"SELECT i.{t.item_id}, (SELECT count(*) FROM {t.assignments} a WHERE a.{t.item_id} = i.{t.item_id} "
            "AND (a.done = 1 OR a.created > ?)) AS n "
            f"FROM {t.items} i WHERE i.kind = 'task' AND i.{t.item_id} NOT IN "
            f"(SELECT {t.item_id} FROM {t.assignments} WHERE worker_id = ?)",
            (time.time() - self.settings.hold_s, worker_id)).fetchall()
        cap = self.settings.judgments_per_pair
        rows = [r for r in rows if not cap or r["n"] < cap]
        self.rng.shuffle(rows)
        rows.sort(key=lambda r: r["n"])  # stable: shuffled within equal counts
        return [r[0] for r in rows[:limit]]

    def _checks(self, db, worker_id: str, chosen: List[str]) -> List[str]:
        if not self.settings.checks_per_task:
            return []
        t = self.tables
        rows = db.execute(f"SELECT {t.item_id}, data FROM {t.items} WHERE kind = 'attention' AND {t.item_id} "
                          f"NOT IN (SELECT {t.item_id} FROM {t.assignments} WHERE worker_id = ?) "
                          f"ORDER BY {t.item_id}", (worker_id,)).fetchall()
        self.rng.shuffle(rows)
        # Checks of items outside this task first: the same conversation twice would give it away.
        rows.sort(key=lambda r: json.loads(r["data"]).get("check_of") in chosen)
        return [r[0] for r in rows[: self.settings.checks_per_task]]

    def _add(self, db, worker_id: str, ids: List[str], task_no: int) -> None:
        start = db.execute(f"SELECT coalesce(max(position), -1) + 1 FROM {self.tables.assignments} "
                           "WHERE worker_id = ?", (worker_id,)).fetchone()[0]
        self._insert(db, worker_id, ids, task_no, start)

    # --- an answer comes back ---------------------------------------------------------------

    def submit(self, worker_id: str, assignment_id: str, choice: object, justification: object) -> Dict[str, Any]:
        """Record one judgment; then the onboarding, attention-check and uniformity rules apply."""
        t = self.tables
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
            row = db.execute(f"SELECT a.*, {self.item_columns} FROM {t.assignments} a JOIN {t.items} i USING ({t.item_id}) "
                             "WHERE a.assignment_id = ? AND a.worker_id = ?", (assignment_id, worker_id)).fetchone()
            if row is None:  # someone else's, or made up: the same answer, so ids leak nothing
                raise Refused(404, f"no such {t.noun}")
            if row["done"]:
                raise Refused(409, f"this {t.noun} is already answered")
            if row["shown"] is None:
                raise Refused(409, f"this {t.noun} was never shown")
            duration = now - row["shown"]
            problem = qc.too_fast(duration, self.qc_settings, self.read_first)
            if problem:
                raise Refused(422, problem)
            passed = self._record(db, row, choice, justification.strip(), duration, now)
            db.execute(f"UPDATE {t.assignments} SET done = 1 WHERE assignment_id = ?", (assignment_id,))
            events = self._after(db, worker_id, row, passed, now)
        for kind, detail in events["flags"]:
            self.db.flag(worker_id, kind, detail)
        if events.get("block"):
            self.db.block(worker_id, events["block"])
            return {"recorded": True, "stage": "blocked", "reason": events["block"]}
        return {"recorded": True, **{k: v for k, v in events.items() if k == "onboarding"}}

    def _after(self, db, worker_id: str, row, passed: Optional[bool], now: float) -> Dict[str, Any]:
        t = self.tables
        events: Dict[str, Any] = {"flags": []}
        if row["kind"] == "attention" and passed is False:
            events["flags"].append((t.failed_check_flag, row[t.item_id]))
            failed = db.execute(f"SELECT count(*) FROM {t.judgments} WHERE worker_id = ? AND is_attention_check = 1 "
                                "AND passed_check = 0", (worker_id,)).fetchone()[0]
            if failed > self.qc_settings.max_failed_checks:
                events["block"] = f"failed {failed} attention check(s)"
        left = db.execute(f"SELECT count(*) FROM {t.assignments} WHERE worker_id = ? AND task_no = ? AND done = 0",
                          (worker_id, row["task_no"])).fetchone()[0]
        if left:
            return events
        answers = db.execute(f"SELECT j.passed_check, j.winner = j.{t.left} AS on_left FROM {t.judgments} j JOIN "
                             f"{t.assignments} a USING (assignment_id) WHERE a.worker_id = ? AND a.task_no = ? "
                             "ORDER BY a.position", (worker_id, row["task_no"])).fetchall()
        if row["task_no"] == 0:
            ok = qc.onboarding_passed([bool(a["passed_check"]) for a in answers], self.qc_settings)
            db.execute(f"UPDATE workers SET {t.onboarding} = ? WHERE worker_id = ?",
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
