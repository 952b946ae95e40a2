"""Opt-in SQLite log of served replies and the feedback users give them (online evaluation).

Nothing is written unless ``--serve-log-db PATH`` is given: conversations are user data.
Rows older than ``--serve-log-retention-days`` are deleted at start and then at most once an
hour while serving (0 keeps everything); drafts, choices and feedback go with their reply
(``ON DELETE CASCADE``).

    sqlite3 log.db "select rating, count(*) from feedback group by rating"
    sqlite3 log.db "select r.messages, r.reply, f.comment from feedback f join replies r on r.id = f.reply_id
                    where f.rating = 'down'"
    sqlite3 log.db "select d.choice_index, d.content from choices c join drafts d using (reply_id, choice_index)"
    sqlite3 log.db "select call, call_result, content from drafts where call != ''"   # calls and what answered

A reply with several drafts (the request's ``n``) keeps every draft in ``drafts``, so a
user's pick among them (``choices``) and the drafts passed over become preference pairs
(:mod:`.preferences`, ``parlai dialogft_log_preferences``).

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
from typing import Dict, Optional, Sequence, Tuple

from parlai_dialogft.utils import sqlite_schema

#: The layout :data:`SCHEMA` creates, stamped in the file's ``PRAGMA user_version``.
#: 1: replies and thumbs. 2: every draft of a reply, the draft a user chose, thumbs per draft.
#: 3: a draft's call (a tools request's call, or the task round's ``APICALL``) and its answer.
SCHEMA_VERSION = 3

#: The drafts table as version 2 created it (migration 1 creates it so on old files).
DRAFTS_V2 = """
CREATE TABLE IF NOT EXISTS drafts (
    reply_id TEXT NOT NULL REFERENCES replies (id) ON DELETE CASCADE,
    choice_index INTEGER NOT NULL, -- the choice's index in the response, best first
    content TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (reply_id, choice_index)
)"""
DRAFTS = """
CREATE TABLE IF NOT EXISTS drafts (
    reply_id TEXT NOT NULL REFERENCES replies (id) ON DELETE CASCADE,
    choice_index INTEGER NOT NULL, -- the choice's index in the response, best first
    content TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    completion_tokens INTEGER NOT NULL,
    call TEXT NOT NULL DEFAULT '', -- the tool call the draft is (OpenAI's JSON), or the APICALL its reply followed
    call_result TEXT NOT NULL DEFAULT '', -- the APIRESP the reply was written from ('' for a client's tool)
    PRIMARY KEY (reply_id, choice_index)
)"""

#: SQL that takes a file from version v to v + 1. Version 0 is a log written before files
#: were stamped: its tables are version 1's already, so the stamp is all it needs. Version 1
#: had one draft per reply: ``replies.reply`` becomes draft 0, and its thumbs rated draft 0.
#: (The tables version 2 only adds, ``choices``, come from :data:`SCHEMA` after the migrations.)
MIGRATIONS: Dict[int, str] = {
    0: "",
    1: f"""
ALTER TABLE feedback ADD COLUMN choice_index INTEGER NOT NULL DEFAULT 0;
{DRAFTS_V2};
INSERT OR IGNORE INTO drafts SELECT id, 0, reply, finish_reason, completion_tokens FROM replies
""",
    2: """
ALTER TABLE drafts ADD COLUMN call TEXT NOT NULL DEFAULT '';
ALTER TABLE drafts ADD COLUMN call_result TEXT NOT NULL DEFAULT ''
""",
}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS replies (
    id TEXT PRIMARY KEY,           -- the chat completion's id, which feedback refers to
    created REAL NOT NULL,         -- unix time
    model TEXT NOT NULL,
    messages TEXT NOT NULL,        -- the request's messages, JSON
    reply TEXT NOT NULL,           -- draft 0: the reply a one-choice client shows
    finish_reason TEXT NOT NULL,   -- draft 0's
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, -- all drafts together (the response's usage)
    latency_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_created ON replies (created);
{DRAFTS};
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reply_id TEXT NOT NULL REFERENCES replies (id) ON DELETE CASCADE,
    created REAL NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '',
    choice_index INTEGER NOT NULL DEFAULT 0 -- the draft the thumbs rate
);
CREATE INDEX IF NOT EXISTS feedback_reply ON feedback (reply_id);
CREATE TABLE IF NOT EXISTS choices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reply_id TEXT NOT NULL,
    choice_index INTEGER NOT NULL, -- the draft the user chose over the reply's other drafts
    created REAL NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (reply_id, choice_index) REFERENCES drafts (reply_id, choice_index) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS choices_reply ON choices (reply_id);
"""

#: A draft as logged: (content, finish reason, completion tokens[, call, call result]).
DraftRow = Tuple


class NoSuchDraft(Exception):
    """Feedback named a ``choice`` the reply does not have; ``drafts`` is how many it has."""

    def __init__(self, choice: int, drafts: int):
        super().__init__(f"the reply has {drafts} draft(s) (choices 0 to {drafts - 1}), not choice {choice}")
        self.choice, self.drafts = choice, drafts


PURGE_EVERY_S = 3600.0
DAY_S = 86400.0


def open_schema(db: sqlite3.Connection, path: str, flag: str = "--serve-log-db") -> None:
    """Create the tables in a new file, or bring an existing one to :data:`SCHEMA_VERSION`.

    A file from a newer release (a higher version) is refused: its tables may mean something
    this code does not know. A file from an older one runs :data:`MIGRATIONS` in order, then
    is stamped; all of it in one transaction, so two servers opening one file migrate it once.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        sqlite_schema.bring_to_version(db, SCHEMA, SCHEMA_VERSION, MIGRATIONS, lambda found: (
            f"{flag} {path}: the file has schema version {found}, newer than version {SCHEMA_VERSION} "
            "that this parlai_dialogft reads; serve with a newer parlai_dialogft or log to another file"))
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
                  prompt_tokens: int, completion_tokens: int, latency_s: float,
                  drafts: Sequence[DraftRow] = ()) -> None:
        """``drafts``: every choice of the response, best first (absent: ``reply`` is the only one)."""
        now = self._clock()
        drafts = list(drafts) or [(reply, finish_reason, completion_tokens)]
        with self._lock:
            self._db.execute("BEGIN")  # the reply and its drafts, or nothing
            try:
                self._db.execute(
                    "INSERT INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (reply_id, now, model, json.dumps(messages, ensure_ascii=False), reply, finish_reason,
                     prompt_tokens, completion_tokens, latency_s),
                )
                self._db.executemany(
                    "INSERT INTO drafts (reply_id, choice_index, content, finish_reason, completion_tokens, call, "
                    "call_result) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(reply_id, index, *draft, *("", "")[len(draft) - 3:]) for index, draft in enumerate(drafts)],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        if now - self._last_purge > PURGE_EVERY_S:
            self.purge()

    def add_feedback(self, reply_id: str, rating: Optional[str], comment: str = "",
                     choice: Optional[int] = None) -> bool:
        """Thumbs (``rating``) on draft ``choice`` (0 when not given), and ``choice`` as the
        draft the user chose when given; one transaction.

        False when no logged reply has this id (never served, or past retention);
        :class:`NoSuchDraft` when it has no draft ``choice``.
        """
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                drafts = self._db.execute("SELECT count(*) FROM drafts WHERE reply_id = ?", (reply_id,)).fetchone()[0]
                if not drafts:  # every logged reply has draft 0: the id is unknown
                    self._db.execute("ROLLBACK")
                    return False
                if choice is not None and not 0 <= choice < drafts:
                    raise NoSuchDraft(choice, drafts)
                if rating is not None:
                    self._db.execute(
                        "INSERT INTO feedback (reply_id, created, rating, comment, choice_index) VALUES (?, ?, ?, ?, ?)",
                        (reply_id, now, rating, comment, choice or 0),
                    )
                if choice is not None:
                    self._db.execute(
                        "INSERT INTO choices (reply_id, choice_index, created, comment) VALUES (?, ?, ?, ?)",
                        (reply_id, choice, now, comment),
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
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
