"""Opt-in SQLite log of served replies and the feedback users give them (online evaluation).

Nothing is written unless ``--serve-log-db PATH`` is given: conversations are user data.
Rows older than ``--serve-log-retention-days`` are deleted at start and then at most once an
hour while serving (0 keeps everything); feedback goes with its reply (``ON DELETE CASCADE``).

    sqlite3 log.db "select rating, count(*) from feedback group by rating"
    sqlite3 log.db "select r.messages, r.reply, f.comment from feedback f join replies r on r.id = f.reply_id
                    where f.rating = 'down'"

One connection, guarded by a lock: writes are a few rows per request, and callers run them
off the event loop (``run_in_threadpool``).

The file carries its schema version in ``PRAGMA user_version`` (:data:`SCHEMA_VERSION`), so
a log written by a newer release is refused with a message instead of misread; see
:func:`open_schema`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Dict, Optional

from parlai_dialogft.plugin.errors import UserError

#: The layout :data:`SCHEMA` creates, stamped in the file's ``PRAGMA user_version``.
SCHEMA_VERSION = 1

#: SQL that takes a file from version v to v + 1. Version 0 is a log written before files
#: were stamped: its tables are version 1's already, so the stamp is all it needs.
MIGRATIONS: Dict[int, str] = {0: ""}

SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    id TEXT PRIMARY KEY,           -- the chat completion's id, which feedback refers to
    created REAL NOT NULL,         -- unix time
    model TEXT NOT NULL,
    messages TEXT NOT NULL,        -- the request's messages, JSON
    reply TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_created ON replies (created);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reply_id TEXT NOT NULL REFERENCES replies (id) ON DELETE CASCADE,
    created REAL NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS feedback_reply ON feedback (reply_id);
"""

PURGE_EVERY_S = 3600.0
DAY_S = 86400.0


def open_schema(db: sqlite3.Connection, path: str) -> None:
    """Create the tables in a new file, or bring an existing one to :data:`SCHEMA_VERSION`.

    A file from a newer release (a higher version) is refused: its tables may mean something
    this code does not know. A file from an older one runs :data:`MIGRATIONS` in order, then
    is stamped; all of it in one transaction, so two servers opening one file migrate it once.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            raise UserError(f"--serve-log-db {path}: the file has schema version {found}, newer than "
                            f"version {SCHEMA_VERSION} that this parlai_dialogft reads; serve with a newer "
                            f"parlai_dialogft or log to another file")
        if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:  # an existing log
            for version in range(found, SCHEMA_VERSION):
                for statement in filter(str.strip, MIGRATIONS[version].split(";")):
                    db.execute(statement)
        # One statement per execute (executescript would commit the transaction); the SQL here
        # has no ';' inside comments or strings, so splitting on it is exact.
        for statement in filter(str.strip, SCHEMA.split(";")):  # IF NOT EXISTS: keeps existing rows
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class ConversationStore:
    def __init__(self, path: str, retention_days: float = 30.0, clock=time.time):
        self.path = path
        self.retention_days = retention_days
        self._clock = clock
        self._lock = threading.Lock()
        # isolation_level=None: autocommit, one statement is one transaction.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")  # readers (sqlite3 CLI) do not block writes
        self._db.execute("PRAGMA foreign_keys=ON")
        try:
            open_schema(self._db, path)
        except BaseException:  # a newer file, or a migration that failed (and rolled back)
            self._db.close()
            raise
        self._last_purge = 0.0
        self.purge()

    def log_reply(self, reply_id: str, model: str, messages: list, reply: str, finish_reason: str,
                  prompt_tokens: int, completion_tokens: int, latency_s: float) -> None:
        now = self._clock()
        with self._lock:
            self._db.execute(
                "INSERT INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (reply_id, now, model, json.dumps(messages, ensure_ascii=False), reply, finish_reason,
                 prompt_tokens, completion_tokens, latency_s),
            )
        if now - self._last_purge > PURGE_EVERY_S:
            self.purge()

    def add_feedback(self, reply_id: str, rating: str, comment: str = "") -> bool:
        """False when no logged reply has this id (never served, or past retention)."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO feedback (reply_id, created, rating, comment) VALUES (?, ?, ?, ?)",
                    (reply_id, self._clock(), rating, comment),
                )
            except sqlite3.IntegrityError:  # the foreign key: unknown reply
                return False
        return True

    def purge(self) -> int:
        """Delete replies (and their feedback) older than the retention window."""
        now = self._clock()
        self._last_purge = now
        if not self.retention_days:
            return 0
        with self._lock:
            cursor = self._db.execute("DELETE FROM replies WHERE created < ?",
                                      (now - self.retention_days * DAY_S,))
        return cursor.rowcount

    def aggregates(self) -> Dict[str, int]:
        with self._lock:
            replies = self._db.execute("SELECT count(*) FROM replies").fetchone()[0]
            rows = self._db.execute("SELECT rating, count(*) FROM feedback GROUP BY rating").fetchall()
        counts = {"replies": replies, "feedback_up": 0, "feedback_down": 0}
        counts.update({f"feedback_{rating}": n for rating, n in rows})
        return counts

    def reply(self, reply_id: str) -> Optional[dict]:
        with self._lock:
            cursor = self._db.execute("SELECT * FROM replies WHERE id = ?", (reply_id,))
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        return dict(zip(names, row)) if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
