"""A user's own dialogue files → conversations, with errors that name the file and line.

Shapes accepted (``fmt``; ``auto`` picks by extension, then by the records themselves):

* ``csv`` / ``tsv``: a header row with a prompt and a response column
  (names in :data:`PROMPT_KEYS` / :data:`RESPONSE_KEYS`, any case), one pair per row.
* ``jsonl``: one JSON object per line, each either
  a pair (``{"prompt": ..., "response": ...}``, also ``completion``/``output``/...),
  chat ``messages`` (``{"messages": [{"role": "user", "content": ...}, ...]}``, as OpenAI/TRL;
  TRL's conversational ``prompt``/``completion`` message lists too), or
  ParlAI's Conversations format (``{"dialog": [[{"id": ..., "text": ...}, ...], ...]}``).
* ``json``: one JSON document or Python literal holding a list of any of the above, or of
  pairs/turn lists like ``[("你好", "你好，请问有什么可以帮您？"), ...]`` (read with
  :func:`ast.literal_eval`, never executed).
* ``parlai``: ParlAI's text format (``text:...<TAB>labels:...<TAB>episode_done:True``).

Pairs, messages and ParlAI text name their sides ``user``/``assistant`` (roles as written
for messages); Conversations keep their ``id``s. Each conversation records in
``extra["model_speaker"]`` which side the model learns by default.

Malformed input raises :class:`~parlai_dialogft.data.conversation.DataFormatError` (a
``ValueError``): bad JSON, invalid UTF-8, a missing column or field, an empty file, a
conversation with one speaker. Empty prompt or response *text* is not an error: the
cleaning step drops such pairs and counts them.
"""

from __future__ import annotations

import ast
import csv
import functools
import json
import re
from pathlib import Path
from typing import Any, List, Optional, Tuple

from parlai_dialogft.data.conversation import Conversation, Turn
from parlai_dialogft.utils.errors import DataFormatError
from parlai_dialogft.utils.jsonl import decoded_lines, json_lines

FORMATS = ("auto", "csv", "tsv", "jsonl", "json", "parlai")
PROMPT_KEYS = ("prompt", "input", "question", "query", "instruction", "context", "text")
RESPONSE_KEYS = ("response", "completion", "output", "answer", "reply", "target", "labels", "label")
USER, ASSISTANT = "user", "assistant"
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".py": "json",
    ".txt": "parlai",
}
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def guess_lang(texts) -> str:
    """``zh`` when any CJK ideograph appears, else ``en``: all our metrics need to know."""
    return "zh" if any(_CJK.search(t) for t in texts) else "en"


def detect_format(path: Path) -> str:
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise DataFormatError(
            path, None, f"cannot tell the format from the extension {path.suffix!r}; "
            f"pass --files-format ({', '.join(FORMATS[1:])})"
        )
    return fmt


def file_version(path) -> Tuple[str, int, int]:
    """(path, mtime, size): a cache key that changes when the file does."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        raise DataFormatError(path, None, f"cannot read the file ({err.strerror})") from None
    return str(path), stat.st_mtime_ns, stat.st_size


def read_user_file(path, fmt: str = "auto") -> Tuple[Conversation, ...]:
    """All conversations in one file; parsed once per process per file version."""
    return _read_cached(*file_version(path), fmt)


@functools.lru_cache(maxsize=32)
def _read_cached(path_str: str, _mtime: int, _size: int, fmt: str) -> Tuple[Conversation, ...]:
    path = Path(path_str)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise ValueError(f"--files-format: choose one of {', '.join(FORMATS)}, not {fmt!r}")
    lines = decoded_lines(path)
    if fmt in ("csv", "tsv"):
        found = _read_table(path, lines, "," if fmt == "csv" else "\t")
    elif fmt == "jsonl":
        found = _read_jsonl(path, lines)
    elif fmt == "json":
        found = _read_literal(path, lines)
    else:
        found = _read_parlai_text(path, lines)
    for line, conversation in found:
        speakers = conversation.speakers
        if len(speakers) < 2:
            who = f"only {speakers[0]!r}" if speakers else "no turns"
            raise DataFormatError(path, line, f"the conversation has {who}; a teacher needs two sides")
    return tuple(conversation for _, conversation in found)


def _pair(path: Path, line: int, prompt: Any, response: Any) -> Tuple[int, Conversation]:
    for name, value in (("prompt", prompt), ("response", response)):
        if not isinstance(value, str):
            raise DataFormatError(path, line, f"the {name} must be a string, not {type(value).__name__}")
    return line, Conversation(
        f"{path.name}:{line}",
        path.name,
        guess_lang((prompt, response)),
        (Turn(USER, prompt), Turn(ASSISTANT, response)),
        f"{path}, line {line}",
        {"model_speaker": ASSISTANT},
    )


def _column(path: Path, header: List[str], names, kind: str) -> int:
    folded = [h.strip().casefold() for h in header]
    for name in names:
        if name in folded:
            return folded.index(name)
    raise DataFormatError(
        path, 1, f"no {kind} column: the header is {header}; name one column "
        f"{' or '.join(names[:3])} (also accepted: {', '.join(names[3:])})"
    )


def _read_table(path: Path, lines: List[str], delimiter: str):
    # TSV has no quoting convention: a quote is text. CSV follows RFC 4180.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader((line + "\n" for line in lines), delimiter=delimiter, quoting=quoting)
    found = []
    try:
        header = next(reader)
        prompt_col = _column(path, header, PROMPT_KEYS, "prompt")
        response_col = _column(path, header, RESPONSE_KEYS, "response")
        start = reader.line_num + 1
        for row in reader:
            if any(cell.strip() for cell in row):
                needed = max(prompt_col, response_col) + 1
                if len(row) < needed:
                    raise DataFormatError(
                        path, start, f"expected at least {needed} columns "
                        f"({header[prompt_col]!r} and {header[response_col]!r}), found {len(row)}"
                    )
                found.append(_pair(path, start, row[prompt_col], row[response_col]))
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataFormatError(path, reader.line_num, f"not valid {'TSV' if delimiter == chr(9) else 'CSV'} ({err})") from None
    return found


def _text_of(path: Path, line: Optional[int], content: Any) -> str:
    """Message content: a string, or a list of parts of which the text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(str(p.get("text", "")) for p in content if p.get("type", "text") == "text")
    raise DataFormatError(path, line, f"message content must be a string or a list of parts, not {type(content).__name__}")


def pair_fields(record: dict) -> Tuple[Optional[str], Optional[str]]:
    """The record's prompt and response keys as written (matched in any case), or None each."""
    keys = {str(k).casefold(): k for k in record}
    return (next((keys[k] for k in PROMPT_KEYS if k in keys), None),
            next((keys[k] for k in RESPONSE_KEYS if k in keys), None))


def record_conversation(path: Path, line: int, record: Any) -> Tuple[int, Conversation]:
    """One JSON object (or a pair/list literal) → a conversation; shared with knowledge stores."""
    if isinstance(record, (list, tuple)):
        if len(record) == 2:
            return _pair(path, line, record[0], record[1])
        if len(record) < 2 or not all(isinstance(t, str) for t in record):
            raise DataFormatError(path, line, "a list item must hold at least two strings (prompt, response, ...)")
        turns = tuple(Turn(ASSISTANT if i % 2 else USER, t) for i, t in enumerate(record))
        return line, _conversation(path, line, turns, ASSISTANT)
    if not isinstance(record, dict):
        raise DataFormatError(path, line, f"expected a JSON object, found {type(record).__name__}")
    keys = {str(k).casefold(): k for k in record}
    if "messages" in keys or (isinstance(record.get("prompt"), list) and "completion" in record):
        messages = record[keys["messages"]] if "messages" in keys else record["prompt"] + record["completion"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise DataFormatError(path, line, "'messages' must be a list of {role, content} objects")
        for m in messages:
            if "role" not in m or "content" not in m:
                raise DataFormatError(path, line, f"a message lacks 'role' or 'content': {sorted(m)}")
        turns = tuple(Turn(str(m["role"]), _text_of(path, line, m["content"])) for m in messages)
        return line, _conversation(path, line, turns, ASSISTANT)
    if "dialog" in keys:
        rounds = record[keys["dialog"]]
        if not isinstance(rounds, list) or not all(isinstance(r, list) for r in rounds):
            raise DataFormatError(path, line, "'dialog' must be a list of rounds, each a list of turns")
        turns = []
        for turn in (t for r in rounds for t in r):
            if not isinstance(turn, dict) or "id" not in turn or "text" not in turn:
                raise DataFormatError(path, line, "every turn in 'dialog' needs 'id' and 'text'")
            turns.append(Turn(str(turn["id"]), _text_of(path, line, turn["text"])))
        return line, _conversation(path, line, tuple(turns), "second")
    prompt, response = pair_fields(record)
    if prompt is None or response is None:
        missing = "a prompt" if prompt is None else "a response"
        raise DataFormatError(
            path, line, f"the record has no {missing} field (keys: {sorted(record)}); expected "
            "'messages', 'dialog', or prompt/response fields such as prompt and completion"
        )
    value = record[response]
    if isinstance(value, list) and len(value) == 1:  # ParlAI-style "labels": ["..."]
        value = value[0]
    return _pair(path, line, record[prompt], value)


def _conversation(path: Path, line: int, turns, model_speaker: str) -> Conversation:
    return Conversation(
        f"{path.name}:{line}",
        path.name,
        guess_lang(t.text for t in turns),
        turns,
        f"{path}, line {line}",
        {"model_speaker": model_speaker},
    )


def _read_jsonl(path: Path, lines: List[str]):
    return [record_conversation(path, number, record) for number, record in json_lines(path, lines)]


def _read_literal(path: Path, lines: List[str]):
    """A JSON document or Python literal list; Python's parser gives each item its line."""
    text = "\n".join(lines)
    positioned = _python_items(text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        if positioned is None:
            if path.suffix.lower() == ".json" and _looks_like_jsonl(lines):
                return _read_jsonl(path, lines)
            raise DataFormatError(path, err.lineno, f"not a JSON or Python literal list ({err.msg})") from None
        items = positioned
    else:
        if not isinstance(document, list):
            raise DataFormatError(path, 1, f"expected a list of examples, found a {type(document).__name__}")
        # Valid JSON is read as JSON ("\ud83d\ude00" is one emoji there, two surrogates in
        # Python); Python's line numbers are used only where both read the same values.
        same = positioned is not None and [value for _, value in positioned] == document
        items = positioned if same else [(None, item) for item in document]
    if not items:
        raise DataFormatError(path, 1, "the list is empty")
    found = []
    for index, (line, item) in enumerate(items, 1):
        try:
            found.append(record_conversation(path, line or index, item))
        except DataFormatError as err:
            if line is None:  # no positions known: name the item instead
                raise DataFormatError(path, None, f"item {index}: {err.problem}") from None
            raise
    return found


def _python_items(text: str) -> Optional[List[Tuple[int, Any]]]:
    """(line, value) of each item of a Python literal list, or None if it is not one."""
    # Keep leading newlines (line numbers) but not the indentation Python would refuse.
    stripped = text.lstrip()
    source = "\n" * text[: len(text) - len(stripped)].count("\n") + stripped
    try:
        body = ast.parse(source, mode="eval").body
        if not isinstance(body, (ast.List, ast.Tuple)):
            return None
        return [(node.lineno, _lists(ast.literal_eval(node))) for node in body.elts]
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return None


def _lists(value: Any) -> Any:
    """Tuples as lists, so a Python literal compares equal to the same JSON."""
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value


def _looks_like_jsonl(lines: List[str]) -> bool:
    first = next((line for line in lines if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _read_parlai_text(path: Path, lines: List[str]):
    from parlai.utils.misc import str_to_msg

    found: List[Tuple[int, Conversation]] = []
    turns: List[Turn] = []
    start = 0
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        if "text:" not in text:
            raise DataFormatError(
                path, number, "not ParlAI text format: expected tab-separated fields such as "
                "text:...<TAB>labels:...<TAB>episode_done:True"
            )
        try:
            message = str_to_msg(text)
        except Exception as err:  # ParlAI's parser raises whatever its split() hits
            raise DataFormatError(path, number, f"not ParlAI text format ({err})") from None
        labels = message.get("labels") or message.get("eval_labels")
        if not labels:
            raise DataFormatError(path, number, "the example has no labels: (or eval_labels:) field")
        if not turns:
            start = number
        turns += [Turn(USER, str(message.get("text", ""))), Turn(ASSISTANT, str(labels[0]))]
        if str(message.get("episode_done", "")).lower() == "true":
            found.append((start, _conversation(path, start, tuple(turns), ASSISTANT)))
            turns = []
    if turns:  # the last episode needs no episode_done:True
        found.append((start, _conversation(path, start, tuple(turns), ASSISTANT)))
    return found
