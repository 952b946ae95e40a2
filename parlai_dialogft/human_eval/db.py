"""The human-evaluation database: one SQLite file holds workers, tasks, judgments and chats.

Every write is one short ``BEGIN IMMEDIATE`` transaction on its own connection, so parallel
submissions queue on SQLite's write lock (``busy_timeout``) instead of losing rows; WAL mode
lets readers (the admin pages, the analysis) read while workers write.

The analysis reads only two functions, whose dict shapes are the contract with
:mod:`parlai_dialogft.human_eval.analysis`:

* :func:`pairwise_records` -- one dict per ACUTE judgment;
* :func:`chat_records` -- one dict per finished live chat;
* :func:`turn_records` -- one dict per per-turn judgment ("which next reply is better"),
  read by :mod:`parlai_dialogft.human_eval.preferences`.

The file carries its schema version in ``PRAGMA user_version`` (:data:`SCHEMA_VERSION`): a
study written by a newer release is refused with a message instead of misread, one written
by an older release is migrated when opened (see :meth:`Database._open_schema`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from parlai_dialogft.utils import sqlite_schema
from parlai_dialogft.utils.errors import UserError

#: The layout :data:`SCHEMA` creates, stamped in the file's ``PRAGMA user_version``.
SCHEMA_VERSION = 2

#: SQL that takes a file from version v to v + 1. Version 0 is a study written before files
#: were stamped: its tables are version 1's already, so the stamp is all it needs. Version 2
#: adds the per-turn task: its tables are new (``SCHEMA`` creates them, IF NOT EXISTS), and
#: each worker gets the task's own onboarding result, since passing the ACUTE practice round
#: says nothing about judging single replies.
MIGRATIONS: Dict[int, str] = {
    0: "",
    1: "ALTER TABLE workers ADD COLUMN turn_onboarding TEXT NOT NULL DEFAULT 'pending'",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,              -- link, prolific, mturk
    token TEXT,                          -- the secret of a lab link (NULL for platform workers)
    created REAL NOT NULL,
    onboarding TEXT NOT NULL DEFAULT 'pending',   -- pending, passed, failed
    completion_code TEXT,
    finished REAL,
    turn_onboarding TEXT NOT NULL DEFAULT 'pending'   -- the per-turn task's practice round
);
CREATE TABLE IF NOT EXISTS sessions (
    session TEXT PRIMARY KEY,
    worker_id TEXT NOT NULL REFERENCES workers(worker_id),
    protocol TEXT NOT NULL,              -- pairwise or chat
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blocklist (
    worker_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS flags (
    worker_id TEXT NOT NULL,
    kind TEXT NOT NULL,                  -- uniform_side, low_effort_chat, failed_check, ...
    detail TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pairings (
    pair_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,                  -- task, onboarding, attention
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    correct_answer TEXT,
    data TEXT NOT NULL                   -- the pairing as JSON (ParlAI's ACUTE shape)
);
CREATE TABLE IF NOT EXISTS assignments (
    assignment_id TEXT PRIMARY KEY,
    worker_id TEXT NOT NULL,
    pair_id TEXT NOT NULL REFERENCES pairings(pair_id),
    question TEXT NOT NULL,
    left_model TEXT NOT NULL,
    position INTEGER NOT NULL,           -- order within the worker's queue
    task_no INTEGER NOT NULL,            -- which of the worker's tasks (0 = onboarding)
    created REAL NOT NULL,
    shown REAL,                          -- first time the page fetched it
    done INTEGER NOT NULL DEFAULT 0,
    UNIQUE (worker_id, pair_id)          -- a worker never sees the same pair twice
);
CREATE TABLE IF NOT EXISTS judgments (
    judgment_id TEXT PRIMARY KEY,
    assignment_id TEXT NOT NULL UNIQUE REFERENCES assignments(assignment_id),
    worker_id TEXT NOT NULL,
    pair_id TEXT NOT NULL,
    question TEXT NOT NULL,
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    winner TEXT NOT NULL,
    left_model TEXT NOT NULL,
    justification TEXT NOT NULL,
    duration_s REAL NOT NULL,
    is_onboarding INTEGER NOT NULL,
    is_attention_check INTEGER NOT NULL,
    passed_check INTEGER,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chats (
    chat_id TEXT PRIMARY KEY,
    worker_id TEXT NOT NULL,
    model TEXT NOT NULL,
    target_turns INTEGER NOT NULL,
    created REAL NOT NULL,
    finished REAL,
    duration_s REAL,
    ratings TEXT,                        -- JSON {key: 1..5}
    low_effort INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS chat_turns (
    chat_id TEXT NOT NULL REFERENCES chats(chat_id),
    idx INTEGER NOT NULL,
    speaker TEXT NOT NULL,               -- human or bot
    text TEXT NOT NULL,
    problems TEXT,                       -- JSON list, bot turns only, once annotated
    created REAL NOT NULL,
    PRIMARY KEY (chat_id, idx)
);
CREATE TABLE IF NOT EXISTS turn_items (
    item_id TEXT PRIMARY KEY,            -- kind and a hash of the content, as pair_id
    kind TEXT NOT NULL,                  -- task, onboarding, attention
    source_id TEXT NOT NULL,             -- the item's id in the --he-turn-pairs file
    model_a TEXT NOT NULL,               -- may equal model_b: two drafts of one model
    model_b TEXT NOT NULL,
    correct_answer TEXT,                 -- a or b, when the answer is known
    data TEXT NOT NULL                   -- the item as JSON: id, context, a, b
);
CREATE TABLE IF NOT EXISTS turn_assignments (
    assignment_id TEXT PRIMARY KEY,
    worker_id TEXT NOT NULL,
    item_id TEXT NOT NULL REFERENCES turn_items(item_id),
    left_side TEXT NOT NULL,             -- a or b: the candidate shown first
    position INTEGER NOT NULL,
    task_no INTEGER NOT NULL,            -- 0 = onboarding
    created REAL NOT NULL,
    shown REAL,
    done INTEGER NOT NULL DEFAULT 0,
    UNIQUE (worker_id, item_id)          -- one judgment per worker per item
);
CREATE TABLE IF NOT EXISTS turn_judgments (
    judgment_id TEXT PRIMARY KEY,
    assignment_id TEXT NOT NULL UNIQUE REFERENCES turn_assignments(assignment_id),
    worker_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    winner TEXT NOT NULL,                -- a or b
    left_side TEXT NOT NULL,
    justification TEXT NOT NULL,
    duration_s REAL NOT NULL,
    is_onboarding INTEGER NOT NULL,
    is_attention_check INTEGER NOT NULL,
    passed_check INTEGER,
    created REAL NOT NULL
);
"""


def sorted_models(pairing: Dict[str, Any]) -> Tuple[str, str]:
    a, b = sorted(pairing["speakers_to_eval"])
    return a, b


def pair_id(pairing: Dict[str, Any], kind: str) -> str:
    """Stable id from the pairing's content: loading the same file twice adds nothing."""
    digest = hashlib.sha256(json.dumps(pairing, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return f"{kind}_{digest[:16]}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class Database:
    """Access to one SQLite file; safe to share between threads (a connection per call)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        parent = Path(self.path).parent
        if not parent.is_dir():
            raise UserError(f"--he-db {self.path}: the folder {parent} does not exist")
        try:
            with self.read() as db:
                db.execute("PRAGMA journal_mode=WAL")  # stored in the file: set once
            self._open_schema()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"--he-db {self.path}: not a usable SQLite file ({exc})") from None

    def _open_schema(self) -> None:
        """Create the tables in a new file, or bring an existing one to :data:`SCHEMA_VERSION`.

        A file from a newer release (a higher version) is refused: its tables may mean
        something this code does not know. A file from an older one runs :data:`MIGRATIONS`
        in order, then is stamped; all in one write transaction, so the app and a
        ``--he-make-links`` run opening one file at once migrate it once.
        """
        with self.write() as db:
            sqlite_schema.bring_to_version(db, SCHEMA, SCHEMA_VERSION, MIGRATIONS, lambda found: (
                f"--he-db {self.path}: the study has schema version {found}, newer than version "
                f"{SCHEMA_VERSION} that this parlai_dialogft reads; open it with a newer parlai_dialogft"))

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=60000")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that takes the write lock at once (no upgrade deadlocks)."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            yield db
        finally:
            db.close()

    def rows(self, sql: str, params: tuple = ()) -> List[Dict[str, Any]]:
        with self.read() as db:
            return [dict(row) for row in db.execute(sql, params)]

    # --- pairings -------------------------------------------------------------------------

    def add_pairings(self, pairings: List[Dict[str, Any]], kind: str) -> List[str]:
        """Store pairings (idempotent: a pairing's id is its content's hash, see :func:`pair_id`)."""
        ids = []
        with self.write() as db:
            for pairing in pairings:
                pid = pair_id(pairing, kind)
                model_a, model_b = sorted_models(pairing)
                db.execute("INSERT OR IGNORE INTO pairings VALUES (?, ?, ?, ?, ?, ?)",
                           (pid, kind, model_a, model_b, pairing.get("correct_answer"),
                            json.dumps(pairing, ensure_ascii=False)))
                ids.append(pid)
        return ids

    def pairing(self, pid: str) -> Dict[str, Any]:
        (row,) = self.rows("SELECT * FROM pairings WHERE pair_id = ?", (pid,))
        row["data"] = json.loads(row["data"])
        return row

    # --- per-turn items -------------------------------------------------------------------

    def add_turn_items(self, items: List[Dict[str, Any]], kind: str) -> List[str]:
        """Store per-turn items (idempotent, as :meth:`add_pairings`): ``{"id", "context", "a", "b", ...}``."""
        ids = []
        with self.write() as db:
            for item in items:
                iid = pair_id(item, kind)
                db.execute("INSERT OR IGNORE INTO turn_items VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (iid, kind, item["id"], item["a"]["model"], item["b"]["model"],
                            item.get("correct_answer"), json.dumps(item, ensure_ascii=False)))
                ids.append(iid)
        return ids

    def turn_item(self, item_id: str) -> Dict[str, Any]:
        (row,) = self.rows("SELECT * FROM turn_items WHERE item_id = ?", (item_id,))
        row["data"] = json.loads(row["data"])
        return row

    # --- workers --------------------------------------------------------------------------

    def create_link_workers(self, count: int, prefix: str = "w") -> List[Dict[str, str]]:
        """``count`` new lab workers, each with a secret token for its ``/start`` link."""
        made = []
        with self.write() as db:
            for _ in range(count):
                worker, token = f"{prefix}{secrets.token_hex(4)}", secrets.token_urlsafe(16)
                db.execute("INSERT INTO workers (worker_id, platform, token, created) VALUES (?, 'link', ?, ?)",
                           (worker, token, time.time()))
                made.append({"worker_id": worker, "token": token})
        return made

    def block(self, worker_id: str, reason: str) -> None:
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO blocklist VALUES (?, ?, ?)", (worker_id, reason, time.time()))

    def unblock(self, worker_id: str) -> bool:
        with self.write() as db:
            return db.execute("DELETE FROM blocklist WHERE worker_id = ?", (worker_id,)).rowcount > 0

    def blocked_reason(self, worker_id: str) -> Optional[str]:
        found = self.rows("SELECT reason FROM blocklist WHERE worker_id = ?", (worker_id,))
        return found[0]["reason"] if found else None

    def flag(self, worker_id: str, kind: str, detail: str) -> None:
        with self.write() as db:
            db.execute("INSERT INTO flags VALUES (?, ?, ?, ?)", (worker_id, kind, detail, time.time()))


# --- the analysis contract --------------------------------------------------------------------


def _open_existing(db_path: str | Path) -> Database:
    if not Path(db_path).is_file():
        raise UserError(f"--he-db {db_path}: no such file")
    return Database(db_path)


def pairwise_records(db_path: str | Path, *, include_blocked: bool = False) -> List[Dict[str, Any]]:
    """Every ACUTE judgment, oldest first, as the analysis reads it.

    Judgments of blocked workers (failed onboarding or attention checks, or blocked by hand)
    are left out unless ``include_blocked``: a worker caught not reading is not trusted on
    the comparisons either. Onboarding and attention-check rows are included, marked.
    """
    db = _open_existing(db_path)
    where = "" if include_blocked else "WHERE j.worker_id NOT IN (SELECT worker_id FROM blocklist)"
    rows = db.rows(f"SELECT j.* FROM judgments j {where} ORDER BY j.created, j.judgment_id")
    return [{
        "judgment_id": r["judgment_id"], "worker_id": r["worker_id"], "pair_id": r["pair_id"],
        "question": r["question"], "model_a": r["model_a"], "model_b": r["model_b"],
        "winner": r["winner"], "left_model": r["left_model"], "justification": r["justification"],
        "duration_s": float(r["duration_s"]), "is_onboarding": bool(r["is_onboarding"]),
        "is_attention_check": bool(r["is_attention_check"]),
        "passed_check": None if r["passed_check"] is None else bool(r["passed_check"]),
    } for r in rows]


def chat_records(db_path: str | Path, *, include_blocked: bool = False,
                 include_low_effort: bool = False) -> List[Dict[str, Any]]:
    """Every finished live chat, oldest first; blocked workers and low-effort chats left out by default."""
    db = _open_existing(db_path)
    conditions = ["c.finished IS NOT NULL"]
    if not include_blocked:
        conditions.append("c.worker_id NOT IN (SELECT worker_id FROM blocklist)")
    if not include_low_effort:
        conditions.append("c.low_effort = 0")
    chats = db.rows(f"SELECT c.* FROM chats c WHERE {' AND '.join(conditions)} ORDER BY c.finished, c.chat_id")
    records = []
    for chat in chats:
        turns = db.rows("SELECT speaker, problems FROM chat_turns WHERE chat_id = ? ORDER BY idx", (chat["chat_id"],))
        bot = [json.loads(t["problems"] or "[]") for t in turns if t["speaker"] == "bot"]
        records.append({
            "chat_id": chat["chat_id"], "worker_id": chat["worker_id"], "model": chat["model"],
            "turns": len(bot), "bot_turn_problems": bot, "ratings": json.loads(chat["ratings"] or "{}"),
            "duration_s": float(chat["duration_s"] or 0.0),
        })
    return records


def turn_records(db_path: str | Path, *, include_blocked: bool = False) -> List[Dict[str, Any]]:
    """Every per-turn judgment, oldest first, with its item's context and both candidates.

    As :func:`pairwise_records`: blocked workers are left out unless ``include_blocked``;
    onboarding and attention-check rows are included, marked. ``winner`` is ``"a"`` or
    ``"b"`` (the item's own names: both candidates may come from one model).
    """
    db = _open_existing(db_path)
    where = "" if include_blocked else "WHERE j.worker_id NOT IN (SELECT worker_id FROM blocklist)"
    rows = db.rows(f"SELECT j.*, i.source_id, i.data FROM turn_judgments j JOIN turn_items i USING (item_id) "
                   f"{where} ORDER BY j.created, j.judgment_id")
    records = []
    for r in rows:
        item = json.loads(r["data"])
        records.append({
            "judgment_id": r["judgment_id"], "worker_id": r["worker_id"], "item_id": r["item_id"],
            "source_id": r["source_id"], "context": item["context"], "a": item["a"], "b": item["b"],
            "winner": r["winner"], "left_side": r["left_side"], "justification": r["justification"],
            "duration_s": float(r["duration_s"]), "is_onboarding": bool(r["is_onboarding"]),
            "is_attention_check": bool(r["is_attention_check"]),
            "passed_check": None if r["passed_check"] is None else bool(r["passed_check"]),
        })
    return records
