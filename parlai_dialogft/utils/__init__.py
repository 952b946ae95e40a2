"""Small utilities every stage may import: the bottom of the package, importing no stage.

* :mod:`.errors` – :class:`~.errors.UserError`, the one family of mistakes a user can fix,
  and :func:`~.errors.one_line_errors`, the one way they are printed.
* :mod:`.jsonl` – the one JSONL reader (UTF-8 and BOM checked, errors naming file and line)
  and writer.
* :mod:`.progress` – progress of long commands, a bar in a terminal, log lines elsewhere.
* :mod:`.sqlite_schema` – schema versions and migrations of our SQLite files.
"""
