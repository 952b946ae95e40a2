"""JSON Lines in and out: the one reader and the one writer of the package.

Every JSONL file a user hands us (dialogue files, preference pairs, knowledge stores, ACUTE
pairings, crowd judgments) is read by :func:`read_jsonl`, so each gets the same checks: the
file must exist and be UTF-8 (a BOM is dropped), and a line that is not JSON is a
:class:`~parlai_dialogft.utils.errors.DataFormatError` naming the file, the line and the
column. Every JSONL file we write goes through :func:`write_jsonl`: UTF-8 as it is
(``ensure_ascii=False``, so Chinese stays readable), all of it or nothing.

    for line, record in read_jsonl(path, hint="a preference file holds one JSON object per line"):
        ...
    write_jsonl(out / "pairs.jsonl", records)
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Tuple

from parlai_dialogft.utils.errors import DataFormatError


def decoded_lines(path: str | Path, allow_empty: bool = False) -> List[str]:
    """The file's lines as text; invalid UTF-8 is an error on its line, not a crash later.

    An empty (or blank) file is an error unless ``allow_empty``: then it has no lines.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFormatError(path, None, f"cannot read the file ({err.strerror})") from None
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    if not data.strip():
        if allow_empty:
            return []
        raise DataFormatError(path, 1, "the file is empty")
    lines = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as err:
            raise DataFormatError(
                path, number, f"not valid UTF-8 (byte {raw[err.start]:#04x} at column "
                f"{err.start + 1}); save the file as UTF-8"
            ) from None
    return lines


def json_lines(path: str | Path, lines: List[str], hint: str = "") -> Iterator[Tuple[int, Any]]:
    """``(line number, parsed value)`` for each non-blank line of a JSONL file's ``lines``.

    A line that is not JSON is an error on it; ``hint`` (e.g. what the file should hold) is
    added to that message.
    """
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as err:
            problem = f"not valid JSON ({err.msg} at column {err.colno})"
            raise DataFormatError(path, number, f"{problem}; {hint}" if hint else problem) from None


def read_jsonl(path: str | Path, hint: str = "", allow_empty: bool = False) -> Iterator[Tuple[int, Any]]:
    """``(line number, parsed value)`` for each non-blank line of the file at ``path``
    (an empty file is an error unless ``allow_empty``)."""
    return json_lines(path, decoded_lines(path, allow_empty), hint)


def write_jsonl(path: str | Path, records: Iterable[Any]) -> Path:
    """One JSON value a line; the parent folder is made. All of it or nothing: written aside,
    then renamed, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(partial, path)
    return path
