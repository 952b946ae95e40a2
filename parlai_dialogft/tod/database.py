"""The task database: the shipped MultiWOZ and CrossWOZ databases in SQLite, and the answer to a call.

Read :func:`open_database`, then :meth:`TaskDatabase.answer`. What a constraint means (time
windows, fuzzy names, price ranges, nearby lists) is each dataset's own and lives in
:mod:`.multiwoz_db` and :mod:`.crosswoz_db`; this module builds, opens and queries, and keeps
the bookings.

Why SQLite and how it stays safe:

* The shipped JSON becomes one SQLite file per machine (under the corpus readers'
  :func:`~parlai_dialogft.data.readers.corpus_files.cache_dir`), named by a hash of the source
  files' bytes and of the code that lays them out, so a changed source or layout builds a new
  file; it is written to a temporary file and moved into place with ``os.replace``, so a
  parallel run never opens half a file.
* Queries go through a connection opened read-only (``file:...?mode=ro``, ``query_only``):
  nothing a call says can change an entity. Bookings go to a second, writable database owned
  by each :class:`TaskDatabase` (in memory unless a path is given).
* Every value from a call is a bound parameter. Column names in SQL text come only from
  :meth:`Table.column`, which accepts the table's own columns and nothing else; a slot a
  dataset does not know is dropped (with a warning) before any SQL is written.

The answers (``APIRESP: ...`` once :func:`~.calls.resp_text` writes them):

* ``find_<domain>``: ``count = N`` and the first match's attributes replies need
  (:func:`.multiwoz_db.found`, :func:`.crosswoz_db.found`); ``count = 0`` when nothing matches.
* ``book_<domain>`` (MultiWOZ hotel, restaurant, train, taxi): ``booking = confirmed ;
  reference = 8 letters/digits`` with the entity's name (``trainID``) and the booked details,
  or ``booking = failed ; reason = ...`` (with ``count = 0`` when no entity matches).
* a domain or action the dataset lacks: ``count = 0`` and one warning naming what is known.

A user's own SQLite file (``--task-db shop.sqlite``, :func:`open_database_file`) is opened
read-only in place and answers ``find_<table>`` calls by :mod:`.user_db`'s rules.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import random
import sqlite3
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from parlai_dialogft.data.readers.corpus_files import cache_dir, corpus_dir
from parlai_dialogft.tod import calls, crosswoz_db, multiwoz_db, user_db
from parlai_dialogft.tod.call_grammar import CLOSED_SLOT_VALUES, WEEKDAYS, Signature, closed_values
from parlai_dialogft.utils.errors import UserError

logger = logging.getLogger(__name__)

#: name -> the module holding that dataset's tables and query semantics.
DATASETS: Dict[str, ModuleType] = {"multiwoz": multiwoz_db, "crosswoz": crosswoz_db}
#: Values that mean "no constraint" in either dataset's states.
NO_CONSTRAINT = {"", "dontcare", "don't care", "dont care", "do n't care", "do not care", "not mentioned", "none"}
REFERENCE_CHARS = string.ascii_uppercase + string.digits
REFERENCE_LENGTH = 8


class UnknownDatabaseError(UserError):
    """``open_database`` or ``--tod-database`` named a database that is not shipped."""


# --- tables ---------------------------------------------------------------------------------


# A dataset module (:mod:`.multiwoz_db`, :mod:`.crosswoz_db`) provides:
#
# * ``CORPUS`` (its folder of shipped JSON), ``DOMAINS`` (domain -> table), ``ACTIONS``
#   (domain -> the actions it answers), ``FUNCTIONS`` (SQL functions its queries call);
# * ``tables(root)``: table -> ``((column, kind), ...), rows``. ``kind`` is ``text``, ``number``
#   or ``json``: a list or dict value, stored as JSON text and searched with SQLite's
#   ``json_each`` (one row per entity keeps the record whole; the lists are read-only and
#   small, so a side table would only add a join);
# * ``slots(domain, table)``: the slots it searches with;
# * ``selects(domain, table, constraints)``: the SELECTs a query runs, each ``(where clauses,
#   params, order, limit)``; column names only through ``table.column``;
# * ``found(domain, rows, constraints)``: a find's answer; for bookable domains
#   ``booking_problem(domain, details, constraints)`` (why not, or None) and
#   ``booked(domain, details, entity, rng)`` (what a confirmation says besides its reference).

#: kind -> declared column type (``JSON_TEXT`` has TEXT affinity and reads back as ``json``).
_DECLARED = {"text": "TEXT", "number": "NUMERIC", "json": "JSON_TEXT"}
_KIND = {declared: kind for kind, declared in _DECLARED.items()}


@dataclass(frozen=True)
class Table:
    name: str
    kinds: Dict[str, str]  # column -> kind, in the table's order

    @property
    def sql(self) -> str:
        return _quote(self.name)

    def column(self, name: str) -> str:
        """``name`` quoted for SQL text; only the table's own columns are accepted."""
        if name not in self.kinds:
            raise KeyError(f"{self.name} has no column {name!r}")
        return _quote(name)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# --- the SQLite file -------------------------------------------------------------------------


def _source_key(dataset: ModuleType) -> str:
    """Changes when a shipped file's bytes or the code laying out the tables change."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(Path(inspect.getsourcefile(dataset) or "").read_bytes())
    root = corpus_dir(dataset.CORPUS)
    for path in sorted(root.glob("*_db.json*")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _write(path: Path, tables: Mapping[str, Tuple[tuple, List[tuple]]]) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            for name, (columns, rows) in tables.items():
                declared = ", ".join(f"{_quote(c)} {_DECLARED[kind]}" for c, kind in columns)
                conn.execute(f"CREATE TABLE {_quote(name)} ({declared})")
                marks = ", ".join("?" * len(columns))
                conn.executemany(f"INSERT INTO {_quote(name)} VALUES ({marks})", rows)
    finally:
        conn.close()


def database_file(name: str) -> Path:
    """The SQLite file of database ``name``, built on first use on this machine.

    Under the cache root; in the system's temporary folder when that cannot be written.
    """
    dataset = _dataset(name)
    file_name = f"{name}-{_source_key(dataset)}.sqlite3"
    folders = (cache_dir() / "tod", Path(tempfile.gettempdir()) / "parlai_dialogft-tod")
    for folder in folders:
        path = folder / file_name
        if path.is_file():
            return path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.unlink(missing_ok=True)
            _write(partial, dataset.tables(corpus_dir(dataset.CORPUS)))
            os.replace(partial, path)  # atomic: a parallel run sees no file or the whole file
            return path
        except (OSError, sqlite3.Error) as err:
            logger.warning("cannot build the %s task database in %s (%s)", name, folder, err)
    raise UserError(f"cannot build the {name} task database in {' or '.join(map(str, folders))}; "
                    "set DIALOGFT_CACHE_DIR to a writable folder")


@functools.lru_cache(maxsize=None)
def _entities(name: str) -> Tuple[Path, sqlite3.Connection, Dict[str, Table]]:
    """One read-only connection per database and process, shared by every TaskDatabase."""
    path = database_file(name)
    conn, tables = _open_read_only(path, _KIND.__getitem__)
    for fn_name, arity, fn in _dataset(name).FUNCTIONS:
        conn.create_function(fn_name, arity, fn, deterministic=True)
    return path, conn, tables


def _open_read_only(path: Path, kind: Callable[[str], str]) -> Tuple[sqlite3.Connection, Dict[str, Table]]:
    """A read-only connection to ``path`` and its tables; ``kind``: a column's kind from its declared type."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    names = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    tables = {name: Table(name, {row[1]: kind(row[2]) for row in conn.execute(f"PRAGMA table_info({_quote(name)})")})
              for name in names}
    return conn, tables


def _dataset(name: str) -> ModuleType:
    if name not in DATASETS:
        raise UnknownDatabaseError(f"no task database {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def open_database(name: str, bookings: Union[str, Path] = ":memory:", seed: Optional[int] = None) -> "TaskDatabase":
    """The task database ``name`` (``multiwoz`` or ``crosswoz``), bookings kept at ``bookings``.

    ``seed`` fixes the booking references and taxi details (random otherwise, as MultiWOZ's).
    """
    return TaskDatabase(name, *_entities(name), bookings=bookings, seed=seed)


def open_database_file(path: Union[str, Path]) -> "TaskDatabase":
    """A user's own SQLite file (``--task-db shop.sqlite``), opened read-only: each table a
    domain, each column a slot (:mod:`.user_db`)."""
    path = Path(path)
    if not path.is_file():
        raise UnknownDatabaseError(f"--task-db {path}: no such file")
    try:
        conn, tables = _open_read_only(path, _affinity)
    except sqlite3.DatabaseError as err:
        raise UnknownDatabaseError(f"--task-db {path}: not a readable SQLite database ({err})") from None
    if not tables:
        raise UnknownDatabaseError(f"--task-db {path}: the database has no tables")
    return TaskDatabase(path.stem, path, conn, tables, rules=user_db.UserTables(tables))


def _affinity(declared: str) -> str:
    """A user's column as a number or text, by SQLite's own rules for a declared type."""
    declared = (declared or "").upper()
    return "number" if any(k in declared for k in ("INT", "REAL", "FLOA", "DOUB", "NUM", "DEC")) else "text"


# --- queries and answers ---------------------------------------------------------------------


class TaskDatabase:
    """Entities to find (shared, read-only) and the bookings made through this instance."""

    def __init__(self, name: str, path: Path, conn: sqlite3.Connection, tables: Dict[str, Table],
                 bookings: Union[str, Path] = ":memory:", seed: Optional[int] = None, rules=None):
        self.name, self.path = name, path  # path: the entities' SQLite file (opened read-only)
        self.rules = rules if rules is not None else _dataset(name)  # a user's file: user_db.UserTables
        self._conn, self._tables = conn, tables
        self._rng = random.Random(seed)
        self._bookings = _Bookings(bookings)

    @property
    def domains(self) -> Tuple[str, ...]:
        return tuple(self.rules.DOMAINS)

    def slots(self, domain: str) -> Tuple[str, ...]:
        """The slots ``query`` searches with in ``domain`` (others are dropped with a warning)."""
        return self.rules.slots(domain, self._table(domain)) if domain in self.rules.DOMAINS else ()

    def signatures(self) -> List[Signature]:
        """The calls this database answers, for the call step's grammar (:mod:`.call_grammar`).

        A call carries the whole state of its domain, booking details included, whether it
        finds or books; a slot with few distinct values in its column is closed to them.
        """
        out = []
        for domain in self.domains:
            table = self._table(domain)
            slots: Dict[str, Optional[Tuple[str, ...]]] = {}
            for slot in self.slots(domain):
                slots[slot] = None
                if table.kinds.get(slot) == "text":  # numbers are compared (a rating "4.5分以上"), not matched
                    column = table.column(slot)
                    rows = self._conn.execute(f"SELECT DISTINCT lower(trim({column})) FROM {table.sql} "
                                              f"LIMIT {CLOSED_SLOT_VALUES + 1}").fetchall()
                    slots[slot] = closed_values(_text(row[0]) for row in rows)
            for detail in getattr(self.rules, "BOOKING", {}).get(domain, ()):
                slots[calls.BOOK_PREFIX + detail] = WEEKDAYS if detail == "day" else None
            out += [Signature(f"{action}_{domain}", slots) for action in self.rules.ACTIONS.get(domain, ())]
        return out

    def fork(self, bookings: Union[str, Path] = ":memory:", seed: Optional[int] = None) -> "TaskDatabase":
        """The same entities, bookings of its own (a ParlAI batch copy's)."""
        return TaskDatabase(self.name, self.path, self._conn, self._tables, bookings, seed, self.rules)

    def query(self, domain: str, constraints: Mapping[str, str]) -> List[Dict[str, str]]:
        """The entities of ``domain`` that satisfy ``constraints``, best first.

        Values come back as text: numbers as written, list and dict values as JSON, a missing
        value as ``""``.
        """
        if domain not in self.rules.DOMAINS:
            logger.warning("%s database has no domain %r (known: %s); nothing found",
                           self.name, domain, ", ".join(self.domains))
            return []
        return self._select(domain, self._known_constraints(domain, constraints))

    def _select(self, domain: str, wanted: Mapping[str, str]) -> List[Dict[str, str]]:
        table = self._table(domain)
        rows: List[Dict[str, str]] = []
        for where, params, order, limit in self.rules.selects(domain, table, wanted):
            sql = f"SELECT * FROM {table.sql}"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY " + (order + ", " if order else "") + "rowid"
            params = list(params)
            if limit is not None:
                sql += " LIMIT ?"
                params.append(limit)
            cursor = self._conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            rows.extend({n: _text(v) for n, v in zip(names, row)} for row in cursor.fetchall())
        return rows

    def answer(self, call: Mapping[str, str], prefer: Optional[str] = None) -> Dict[str, str]:
        """The APIRESP for ``call`` (a dict as :func:`.calls.parse_call` reads it).

        ``prefer``: of the matches, the entity with this name (or train id) is the one
        answered; training data uses it so the answer offers what the gold reply offers.
        """
        action, domain = calls.action_and_domain(call)
        actions = self.rules.ACTIONS.get(domain, ())
        if action not in actions:
            known = "; ".join(f"{a}_{d}" for d, acts in self.rules.ACTIONS.items() for a in acts)
            logger.warning("%s database cannot answer %s (known calls: %s); answering count = 0",
                           self.name, calls.call_text(call), known)
            return {"count": "0"}
        wanted = self._known_constraints(domain, calls.constraints(call))
        found = self._select(domain, wanted)
        if prefer:
            first = [row for row in found if _names(row) & {prefer.casefold().strip()}]
            found = first[:1] + [row for row in found if row not in first[:1]]
        if action == calls.FIND:
            return self.rules.found(domain, found, wanted)
        return self._book(domain, call, wanted, found)

    def bookings(self, reference: Optional[str] = None) -> List[Dict[str, str]]:
        """The bookings made through this instance (the one with ``reference``), oldest first."""
        return self._bookings.read(reference)

    def _book(self, domain: str, call: Mapping[str, str], wanted: Mapping[str, str],
              found: List[Dict[str, str]]) -> Dict[str, str]:
        details = {k: " ".join(str(v).split()) for k, v in calls.booking(call).items()}
        problem = self.rules.booking_problem(domain, details, wanted)
        if problem:
            return {"booking": "failed", "reason": problem}
        if not found:
            return {"booking": "failed", "count": "0", "reason": f"no {domain} matches"}
        booked = self.rules.booked(domain, details, found[0], self._rng)
        reference = self._bookings.add(self.name, domain, call, booked, self._rng)
        return {"booking": "confirmed", "reference": reference, **booked}

    def _table(self, domain: str) -> Table:
        return self._tables[self.rules.DOMAINS[domain]]

    def _known_constraints(self, domain: str, constraints: Mapping[str, str]) -> Dict[str, str]:
        """``constraints`` under the slot names the dataset knows, "no constraint" values left out."""
        known = self.slots(domain)
        by_fold = {_fold_name(s): s for s in known}
        wanted: Dict[str, str] = {}
        for slot, value in constraints.items():
            canonical = slot if slot in known else by_fold.get(_fold_name(slot))
            if canonical is None:
                logger.warning("%s %s: slot %r is not searchable (known: %s); dropped",
                               self.name, domain, slot, ", ".join(known))
                continue
            value = " ".join(str(value).split())
            if value.casefold() not in NO_CONSTRAINT:
                wanted[canonical] = value
        return wanted


def _names(row: Mapping[str, str]) -> set:
    """What an entity is called: MultiWOZ's name or train id, CrossWOZ's 名称 (case-folded)."""
    return {str(row[key]).casefold().strip() for key in ("name", "trainID", "名称") if row.get(key)}


def _fold_name(slot: str) -> str:
    """``leaveat``, ``leave at`` and ``leaveAt`` name one slot."""
    return "".join(slot.split()).casefold()


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- bookings ---------------------------------------------------------------------------------


class _Bookings:
    """The writable side: one ``bookings`` table, in its own SQLite database."""

    def __init__(self, path: Union[str, Path]):
        self._conn = sqlite3.connect(str(path), check_same_thread=False)
        with self._conn:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS bookings (reference TEXT PRIMARY KEY, database TEXT NOT NULL, "
                "domain TEXT NOT NULL, call TEXT NOT NULL, details TEXT NOT NULL)"
            )

    def add(self, database: str, domain: str, call: Mapping[str, str], details: Mapping[str, str],
            rng: random.Random) -> str:
        while True:
            reference = "".join(rng.choice(REFERENCE_CHARS) for _ in range(REFERENCE_LENGTH))
            try:
                with self._conn:
                    self._conn.execute(
                        "INSERT INTO bookings VALUES (?, ?, ?, ?, ?)",
                        (reference, database, domain, json.dumps(dict(call), ensure_ascii=False),
                         json.dumps(dict(details), ensure_ascii=False)),
                    )
                return reference
            except sqlite3.IntegrityError:  # the reference is taken: draw another
                continue

    def read(self, reference: Optional[str] = None) -> List[Dict[str, str]]:
        sql = "SELECT reference, domain, details FROM bookings"
        params: Sequence[str] = ()
        if reference is not None:
            sql, params = sql + " WHERE reference = ?", (reference,)
        rows = self._conn.execute(sql + " ORDER BY rowid", params).fetchall()
        return [{"reference": ref, "domain": domain, **json.loads(details)} for ref, domain, details in rows]


class Databases:
    """Several task databases behind one ``answer``: a call goes to the one that has its domain.

    ``--task-db multiwoz,crosswoz`` serves one bilingual model: MultiWOZ's domains are English
    words (``hotel``), CrossWOZ's Chinese (``酒店``), so a call's domain says which to ask.
    """

    def __init__(self, databases: Sequence[TaskDatabase]):
        self.databases = tuple(databases)

    @property
    def domains(self) -> Tuple[str, ...]:
        return tuple(d for db in self.databases for d in db.domains)

    def answer(self, call: Mapping[str, str], prefer: Optional[str] = None) -> Dict[str, str]:
        _, domain = calls.action_and_domain(call)
        for db in self.databases:
            if domain in db.domains:
                return db.answer(call, prefer=prefer)
        return self.databases[0].answer(call, prefer=prefer)  # it logs what is known and answers count = 0

    def bookings(self, reference: Optional[str] = None) -> List[Dict[str, str]]:
        return [row for db in self.databases for row in db.bookings(reference)]

    def signatures(self) -> List[Signature]:
        return [s for db in self.databases for s in db.signatures()]

    def fork(self) -> "Databases":
        return Databases([db.fork() for db in self.databases])


USER_FILE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def open_databases(spec: str) -> Databases:
    """``multiwoz``, ``crosswoz``, a SQLite file of one's own (``shop.sqlite``), or several
    comma-separated (``--task-db``); an unknown name is a UserError."""
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in DATASETS and not name.endswith(USER_FILE_SUFFIXES)]
    if not names or unknown:
        raise UnknownDatabaseError(
            f"--task-db {spec}: no such database {', '.join(unknown) or spec!r}; "
            f"choose from {', '.join(DATASETS)}, or a SQLite file of yours ({', '.join(USER_FILE_SUFFIXES)}) "
            "(comma-separated for several), or none")
    return Databases([open_database(name) if name in DATASETS else open_database_file(name) for name in names])
