"""The two SQLite files the package writes carry a schema version, and opening one checks it.

The serving log (``--serve-log-db``, :mod:`parlai_dialogft.serving.store`) and the human
evaluation study (``--he-db``, :mod:`parlai_dialogft.human_eval.db`) both stamp
``PRAGMA user_version`` with their module's ``SCHEMA_VERSION``:

* a new file gets the current tables and the stamp;
* a file from a newer release is refused, the message naming the flag, the file, its version
  and the version this code reads;
* a file from before the stamp (user_version 0, version 1's tables) opens, keeps its rows
  and is stamped; later versions add their SQL to ``MIGRATIONS``, run on old files only, in
  one transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Callable

import pytest

from parlai_dialogft.human_eval import db as study_db
from parlai_dialogft.serving import store
from parlai_dialogft.utils.errors import UserError
from tests.support.schemas import SERVING_LOG_V1_SCHEMA, STUDY_V1_SCHEMA


@dataclass
class Kind:
    module: object
    flag: str
    open: Callable[[str], object]
    close: Callable[[object], None]
    table: str  # one of the file's tables, to add a column to in a migration
    add_row: str  # SQL that adds one row, as an old release would have
    count_rows: Callable[[object], int]
    first_schema: str  # version 1's tables, which a file from before the stamp has


SERVING_LOG = Kind(
    store, "--serve-log-db", lambda path: store.ConversationStore(path, retention_days=0), lambda s: s.close(),
    "replies", "INSERT INTO replies VALUES ('r1', 1.0, 'm', '[]', 'hello', 'stop', 3, 1, 0.2)",
    lambda s: s.aggregates()["replies"], SERVING_LOG_V1_SCHEMA,
)
STUDY = Kind(
    study_db, "--he-db", study_db.Database, lambda _d: None,
    "workers", "INSERT INTO workers (worker_id, platform, token, created) VALUES ('w1', 'link', 't', 1.0)",
    lambda d: d.rows("SELECT count(*) n FROM workers")[0]["n"], STUDY_V1_SCHEMA,
)
KINDS = pytest.mark.parametrize("kind", [SERVING_LOG, STUDY], ids=["serving_log", "study"])


def user_version(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def columns(path, table: str):
    with sqlite3.connect(path) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def old_file(path, kind: Kind) -> None:
    """A file as releases before the stamp wrote it: version 1's tables, a row, user_version 0."""
    with sqlite3.connect(path) as db:
        db.executescript(kind.first_schema)
        db.execute(kind.add_row)
    assert user_version(path) == 0


@KINDS
def test_a_new_file_is_stamped_with_the_schema_version(tmp_path, kind):
    path = str(tmp_path / "new.sqlite")
    kind.close(kind.open(path))
    assert kind.module.SCHEMA_VERSION >= 1
    assert user_version(path) == kind.module.SCHEMA_VERSION
    kind.close(kind.open(path))  # reopening a current file changes nothing
    assert user_version(path) == kind.module.SCHEMA_VERSION


@KINDS
def test_a_file_from_a_newer_release_is_refused_with_its_path_and_versions(tmp_path, kind):
    path = str(tmp_path / "future.sqlite")
    kind.close(kind.open(path))
    newer = kind.module.SCHEMA_VERSION + 6
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {newer}")
    with pytest.raises(UserError) as caught:
        kind.open(path)
    message = str(caught.value)
    assert message.startswith(f"{kind.flag} {path}: ")
    assert f"schema version {newer}" in message and f"version {kind.module.SCHEMA_VERSION} that" in message
    assert user_version(path) == newer  # left as it was


def test_the_analysis_refuses_a_study_from_a_newer_release_too(tmp_path):
    path = str(tmp_path / "future.sqlite")
    study_db.Database(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(UserError, match="schema version 99"):
        study_db.pairwise_records(path)


@KINDS
def test_a_file_from_before_the_stamp_opens_keeps_its_rows_and_is_stamped(tmp_path, kind):
    path = str(tmp_path / "old.sqlite")
    old_file(path, kind)
    opened = kind.open(path)
    assert kind.count_rows(opened) == 1
    kind.close(opened)
    assert user_version(path) == kind.module.SCHEMA_VERSION


@KINDS
def test_migrations_run_on_old_files_only(tmp_path, kind, monkeypatch):
    # What a version 2 would do: an ALTER in MIGRATIONS[1], run once on version-1 files.
    monkeypatch.setattr(kind.module, "MIGRATIONS", {0: "", 1: f"ALTER TABLE {kind.table} ADD COLUMN note TEXT"})
    monkeypatch.setattr(kind.module, "SCHEMA_VERSION", 2)
    old = str(tmp_path / "old.sqlite")
    old_file(old, kind)
    opened = kind.open(old)
    assert kind.count_rows(opened) == 1
    kind.close(opened)
    assert "note" in columns(old, kind.table) and user_version(old) == 2
    kind.close(kind.open(old))  # stamped: not migrated twice (a second ALTER would fail)
    new = str(tmp_path / "new.sqlite")
    kind.close(kind.open(new))
    assert "note" not in columns(new, kind.table)  # new files get SCHEMA as written


@KINDS
def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path, kind, monkeypatch):
    monkeypatch.setattr(kind.module, "MIGRATIONS",
                        {0: f"ALTER TABLE {kind.table} ADD COLUMN note TEXT; ALTER TABLE no_such_table ADD COLUMN x"})
    path = str(tmp_path / "old.sqlite")
    old_file(path, kind)
    with pytest.raises((sqlite3.OperationalError, UserError), match="no_such_table"):
        kind.open(path)
    assert "note" not in columns(path, kind.table) and user_version(path) == 0


def test_a_version_1_study_gains_the_per_turn_task_and_keeps_its_workers_judgments_and_onboarding(tmp_path):
    """Version 2 adds the per-turn tables and each worker's own practice-round result for it."""
    path = str(tmp_path / "v1.sqlite")
    with sqlite3.connect(path) as db:
        db.executescript(STUDY_V1_SCHEMA)
        db.execute("INSERT INTO workers (worker_id, platform, token, created, onboarding) "
                   "VALUES ('w1', 'link', 't', 1.0, 'passed')")
        db.execute("INSERT INTO pairings VALUES ('task_1', 'task', 'a', 'b', NULL, '{}')")
        db.execute("INSERT INTO assignments (assignment_id, worker_id, pair_id, question, left_model, position, "
                   "task_no, created, done) VALUES ('as1', 'w1', 'task_1', 'engagingness', 'a', 0, 1, 1.0, 1)")
        db.execute("INSERT INTO judgments VALUES ('j1', 'as1', 'w1', 'task_1', 'engagingness', 'a', 'b', 'a', 'a', "
                   "'a reason here', 6.0, 0, 0, NULL, 2.0)")
        db.execute("PRAGMA user_version = 1")
    assert "turn_onboarding" not in columns(path, "workers")

    study = study_db.Database(path)
    assert user_version(path) == study_db.SCHEMA_VERSION == 2
    assert study.rows("SELECT worker_id, onboarding, turn_onboarding FROM workers") == [
        {"worker_id": "w1", "onboarding": "passed", "turn_onboarding": "pending"}]
    assert [r["judgment_id"] for r in study_db.pairwise_records(path)] == ["j1"]
    for table in ("turn_items", "turn_assignments", "turn_judgments"):
        assert columns(path, table), table
    assert study_db.turn_records(path) == []
    # the migrated file has the columns a new one has, so the app's queries read both alike
    new = str(tmp_path / "v2.sqlite")
    study_db.Database(new)
    for table in ("workers", "turn_items", "turn_assignments", "turn_judgments"):
        assert columns(path, table) == columns(new, table), table
