"""A user's own SQLite file as a task database: ``--task-db shop.sqlite``.

Each table is a domain and each column a slot: ``APICALL: api_name = find_products ; colour =
red`` selects the rows of ``products`` whose ``colour`` is ``red``. A text value matches
whatever its case and surrounding spaces, a numeric column by number. The answer is ParlAI's
``APIRESP: count = N`` and the first row's non-empty columns, as for the shipped databases.

The file is opened read-only (:func:`.database.open_database_file`): a company points the bot
at its data without the bot being able to change it. Values are bound parameters and column
names come only from the table itself (:meth:`.database.Table.column`). Bookings need rules a
plain table does not carry (what a booking requires, what it confirms), so a user's tables
answer ``find_`` calls only.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

from parlai_dialogft.tod import calls

#: A SELECT as :class:`~.database.TaskDatabase` runs it: (where clauses, params, order, limit).
Select = Tuple[List[str], List[object], str, None]


class UserTables:
    """The query rules of a user's file, the same interface as :mod:`.multiwoz_db`'s."""

    FUNCTIONS: Sequence = ()

    def __init__(self, tables: Mapping[str, object]):
        self.DOMAINS: Dict[str, str] = {name: name for name in tables}
        self.ACTIONS: Dict[str, Tuple[str, ...]] = {name: (calls.FIND,) for name in tables}

    def slots(self, domain: str, table) -> Tuple[str, ...]:
        return tuple(table.kinds)

    def selects(self, domain: str, table, constraints: Mapping[str, str]) -> List[Select]:
        where: List[str] = []
        params: List[object] = []
        for slot, value in constraints.items():
            column = table.column(slot)
            if table.kinds[slot] == "number" and _number(value) is not None:
                where.append(f"{column} = ?")
                params.append(_number(value))
            else:
                where.append(f"lower(trim({column})) = ?")
                params.append(value.strip().lower())
        return [(where, params, "", None)]

    def found(self, domain: str, rows: List[Dict[str, str]], constraints: Mapping[str, str]) -> Dict[str, str]:
        if not rows:
            return {"count": "0"}
        return {"count": str(len(rows)), **{k: v for k, v in rows[0].items() if v != ""}}


def _number(value: str):
    try:
        return float(value)
    except ValueError:
        return None
