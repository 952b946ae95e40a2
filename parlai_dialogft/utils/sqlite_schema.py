"""Schema versions of the project's SQLite files (serving log, human-evaluation study).

``PRAGMA user_version`` records which version of the tables a file holds. Opening a file
brings it to the code's version inside the caller's write transaction, so two processes
opening one file at once migrate it once: a file from a newer release is refused (its
tables may mean something this code does not know), an existing older one runs its
migrations in order, then every ``CREATE ... IF NOT EXISTS`` of the schema runs (keeping
existing rows) and the file is stamped.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Mapping

from parlai_dialogft.utils.errors import UserError


def statements(sql: str):
    # One statement per execute (executescript would commit the transaction); our SQL has
    # no ';' inside comments or strings, so splitting on it is exact.
    return filter(str.strip, sql.split(";"))


def bring_to_version(db: sqlite3.Connection, schema: str, version: int, migrations: Mapping[int, str],
                     too_new: Callable[[int], str]) -> None:
    """Inside a write transaction: refuse, migrate, create and stamp (see the module doc).

    ``migrations[v]`` takes a file from version ``v`` to ``v + 1``; ``too_new(found)`` is
    the one-line complaint about a newer file.
    """
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found > version:
        raise UserError(too_new(found))
    if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:  # an existing file
        for old in range(found, version):
            for statement in statements(migrations[old]):
                db.execute(statement)
    for statement in statements(schema):
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
