"""Knowledge stores: lists of one-line entries, from the shipped corpora or the user's files.

An :class:`Entry` is one fact, record or passage as it enters the context (:mod:`.context`),
with the entity it is about (for recall against gold and the entity metrics). A store is
named by ``--knowledge-file``:

* ``kdconv``: the knowledge triples (``entity | attribute | value``, zh) that the shipped
  KdConv dialogues use (dev + test of film, music, travel; upstream's full knowledge base is
  not shipped, see ``data/corpora/kdconv/README.md``).
* ``crosswoz``: the CrossWOZ database (zh), one entry per attraction, restaurant and hotel.
* ``multiwoz``: the MultiWOZ database (en, ConvLab-2 copy), one entry per attraction,
  hospital department, hotel, police station, restaurant and train.
* a path: ``*.jsonl`` of FAQ pairs and/or documents, or ``*.csv`` of triples
  (``subject,relation,object``, an optional header of exactly those names). A pair is any
  record the user-file teacher reads (:mod:`parlai_dialogft.data.readers.user_files`, by its
  reader and its field names): ``{"question": ..., "answer": ...}``, ``{"prompt": ...,
  "response": ...}``, ``{"input": ..., "output": ...}``, chat ``messages``, ...; so the pairs
  file a model was trained on is a store as it is. A record with ``"text"`` and no response
  field is a document (``{"text": ..., "title": ...}``, cut into passages). A bad row is a
  :class:`~parlai_dialogft.utils.errors.DataFormatError` naming the file and line.

Several stores can be joined with commas (``--knowledge-file crosswoz,faq.jsonl``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

from parlai_dialogft.data.conversation import resolve_speakers, to_examples
from parlai_dialogft.data.readers import user_files
from parlai_dialogft.data.readers.corpus_files import corpus_dir, load_json
from parlai_dialogft.utils import jsonl
from parlai_dialogft.utils.errors import DataFormatError, UserError

#: Bumped when an entry's text changes for the same source, so cached indexes are rebuilt.
RENDER_VERSION = "1"
#: A document passage is at most this many characters (cut at sentence ends when it can be).
PASSAGE_CHARS = 200
#: Items of a list value kept in a database entry (CrossWOZ lists dozens of nearby places).
LIST_ITEMS = 3


@dataclass(frozen=True)
class Entry:
    text: str  # one line, as it enters the context
    entity: str = ""  # what the entry is about: the triple's subject, the record's name


@dataclass(frozen=True)
class Store:
    name: str  # as given to --knowledge-file
    entries: Tuple[Entry, ...]
    fingerprint: str  # changes when the source or the rendering changes

    def __len__(self) -> int:
        return len(self.entries)


# --- shipped stores -----------------------------------------------------------------------


def triple(subject: str, relation: str, value: str) -> str:
    """A fact as one line, as the KdConv reader writes its turns' knowledge."""
    return f"{subject} | {relation} | {value}"


def _one_line(value) -> str:
    if isinstance(value, list):
        value = "、".join(str(v) for v in value[:LIST_ITEMS])
    return " ".join(str(value).split())


def _kdconv() -> List[Entry]:
    from parlai_dialogft.data.readers.chitchat import KDCONV_DOMAINS

    root = corpus_dir("kdconv")
    seen: Dict[str, Entry] = {}
    for domain in KDCONV_DOMAINS:
        for split in ("dev", "test"):
            for conversation in load_json(root / domain / f"{split}.json.gz"):
                for message in conversation["messages"]:
                    for attr in message.get("attrs", ()):
                        text = triple(attr["name"], attr["attrname"], _one_line(attr["attrvalue"]))
                        seen.setdefault(text, Entry(text, attr["name"]))
    return list(seen.values())


#: CrossWOZ fields worth a place in the context, in order (nearby places and metro last).
CROSSWOZ_FIELDS = ("酒店类型", "门票", "人均消费", "价格", "评分", "游玩时间", "营业时间", "推荐菜", "酒店设施",
                   "地址", "电话", "地铁", "周边景点", "周边餐馆", "周边酒店")
CROSSWOZ_DOMAINS = ("attraction", "restaurant", "hotel")


def crosswoz_records() -> List[dict]:
    """Every attraction, restaurant and hotel record of the CrossWOZ database."""
    root = corpus_dir("crosswoz_database")
    return [record for domain in CROSSWOZ_DOMAINS for _name, record in load_json(root / f"{domain}_db.json.gz")]


def crosswoz_entry(record: dict) -> Entry:
    fields = [f"{key} {_one_line(record[key])}" for key in CROSSWOZ_FIELDS if record.get(key) not in (None, "", [])]
    return Entry(" | ".join([record["名称"], record["领域"], *fields]), record["名称"])


def _crosswoz() -> List[Entry]:
    return [crosswoz_entry(record) for record in crosswoz_records()]


MULTIWOZ_DOMAINS = ("attraction", "hospital", "hotel", "police", "restaurant", "train")
_MULTIWOZ_SKIP = {"id", "location", "name", "trainID", "introduction"}


def _multiwoz() -> List[Entry]:
    root = corpus_dir("multiwoz_db_convlab2")
    entries = []
    for domain in MULTIWOZ_DOMAINS:
        for record in load_json(root / f"{domain}_db.json.gz"):
            name = record.get("name") or record.get("trainID") or record.get("department") or domain
            fields = []
            for key, value in record.items():
                if key in _MULTIWOZ_SKIP or value in (None, "", "?"):
                    continue
                if isinstance(value, dict):  # hotel prices per room type
                    value = ", ".join(f"{k} {v}" for k, v in value.items())
                fields.append(f"{key} {_one_line(value)}")
            entries.append(Entry(" | ".join([name, domain, *fields]), name))
    return entries


SHIPPED: Dict[str, Tuple[Callable[[], List[Entry]], str]] = {
    "kdconv": (_kdconv, "kdconv"),
    "crosswoz": (_crosswoz, "crosswoz_database"),
    "multiwoz": (_multiwoz, "multiwoz_db_convlab2"),
}


# --- the user's files ------------------------------------------------------------------------


def _passages(text: str, limit: int = PASSAGE_CHARS) -> List[str]:
    """``text`` on one line, cut into passages of at most ``limit`` characters at sentence ends."""
    sentences = [s for s in re.split(r"(?<=[.!?。！？；;])\s*", " ".join(text.split())) if s]
    passages: List[str] = []
    current = ""
    for sentence in sentences:
        while len(sentence) > limit:  # one overlong sentence: hard cuts
            if current:
                passages.append(current)
                current = ""
            passages.append(sentence[:limit])
            sentence = sentence[limit:]
        joined = f"{current} {sentence}".strip() if current and not _cjk_end(current) else current + sentence
        if len(joined) > limit:
            passages.append(current)
            current = sentence
        else:
            current = joined
    if current:
        passages.append(current)
    return passages


def _cjk_end(text: str) -> bool:
    return bool(text) and ord(text[-1]) > 0x2E80


def _field(record: dict, key: str, path: Path, line: int) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(path, line, f'"{key}" must be a non-empty string, got {value!r}')
    return " ".join(value.split())


#: What a line of a knowledge JSONL may be, for the error on a line that is neither.
ACCEPTED_SHAPES = (
    'expected {"question": ..., "answer": ...} (FAQ) or another pair the dialogft_files teacher reads '
    f"(a prompt field: {', '.join(user_files.PROMPT_KEYS)}; a response field: {', '.join(user_files.RESPONSE_KEYS)}), "
    'chat {"messages": [...]}, or {"text": ...} (document)'
)


def _is_dialogue(record: dict) -> bool:
    """Chat ``messages`` or ParlAI's ``dialog``: the user-file teacher's other record shapes."""
    return any(str(k).casefold() in ("messages", "dialog") for k in record)


def _pairs(record: dict, path: Path, line: int) -> List[Entry]:
    """A record the user-file teacher reads → a ``prompt | response`` entry per reply.

    Read by that teacher's own reader, each reply with the context it would train on (the
    turns since the reply before), so a pairs file trained on is a FAQ store as it is.
    """
    _, conversation = user_files.record_conversation(path, line, record)
    entries = []
    for speaker in resolve_speakers(conversation, conversation.extra["model_speaker"]):
        for example in to_examples(conversation, speaker):
            prompt, response = _one_line(example["text"]), _one_line(example["labels"][0])
            if not prompt or not response:
                empty = user_files.pair_fields(record)[0 if not prompt else 1]
                if empty is None:
                    raise DataFormatError(path, line, f"a turn is empty: {prompt!r} then {response!r}")
                raise DataFormatError(path, line, f'"{empty}" must be a non-empty string, got {record[empty]!r}')
            entries.append(Entry(f"{prompt} | {response}", prompt))
    if not entries:
        raise DataFormatError(path, line, "the conversation has no reply to a prompt")
    return entries


def _document(record: dict, path: Path, line: int) -> List[Entry]:
    text = _field(record, "text", path, line)
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise DataFormatError(path, line, f'"title" must be a string, got {title!r}')
    title = " ".join((title or "").split())
    return [Entry(f"{title} | {passage}" if title else passage, title) for passage in _passages(text)]


def read_jsonl_entries(path: Path) -> List[Entry]:
    """FAQ pairs and documents, one JSON object per line (blank lines allowed).

    A pair is any record the user-file teacher (``dialogft_files``) reads as a dialogue:
    ``{"question", "answer"}``, ``{"prompt", "response"}``, ``{"input", "output"}``, ...,
    or chat ``messages``. A record with ``"text"`` and no response field is a document.
    """
    entries: List[Entry] = []
    for line_no, record in jsonl.read_jsonl(path):
        if not isinstance(record, dict):
            raise DataFormatError(path, line_no, "each line must be a JSON object")
        prompt, response = user_files.pair_fields(record)
        if response is not None or _is_dialogue(record):
            entries.extend(_pairs(record, path, line_no))
        elif str(prompt).casefold() == "text":  # {"text": ...}: "text" is the only prompt-like key
            entries.extend(_document(record, path, line_no))
        elif prompt is not None:  # half a pair, {"question": ..., "text": ...} too: name the missing side as the FAQ does
            missing = "answer" if str(prompt).casefold() == "question" else user_files.RESPONSE_KEYS[0]
            raise DataFormatError(path, line_no, f'"{missing}" must be a non-empty string, got None: the line '
                                  f"has a prompt field ({prompt!r}) and no response field "
                                  f"({', '.join(user_files.RESPONSE_KEYS)})")
        else:
            raise DataFormatError(path, line_no, f"{ACCEPTED_SHAPES}, got keys {sorted(record)}")
    return entries


TRIPLE_HEADER = ["subject", "relation", "object"]


def read_triples_csv(path: Path) -> List[Entry]:
    """``subject,relation,object`` rows (quoted as CSV when a field holds a comma)."""
    entries: List[Entry] = []
    text = "\n".join(jsonl.decoded_lines(path))
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        line_no = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        cells = [" ".join(cell.split()) for cell in row]
        if line_no == 1 and [c.lower() for c in cells] == TRIPLE_HEADER:
            continue
        if len(cells) != 3 or not all(cells):
            raise DataFormatError(
                path, line_no, f"expected 3 non-empty fields (subject,relation,object), got {len(cells)}: {row!r}"
            )
        entries.append(Entry(triple(*cells), cells[0]))
    return entries


USER_READERS: Dict[str, Callable[[Path], List[Entry]]] = {".jsonl": read_jsonl_entries, ".csv": read_triples_csv}


# --- one entry point -----------------------------------------------------------------------------


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha1(RENDER_VERSION.encode())
    for part in parts:
        digest.update(hashlib.sha1(part).digest())
    return digest.hexdigest()[:16]


def _load_one(name: str, flag: str) -> Tuple[List[Entry], str]:
    if name in SHIPPED:
        read, folder = SHIPPED[name]
        root = corpus_dir(folder)
        files = sorted(p for p in root.rglob("*.gz") if p.is_file())
        return read(), _digest([name.encode()] + [p.read_bytes() for p in files])
    path = Path(name).expanduser()
    reader = USER_READERS.get(path.suffix.lower())
    if reader is None:
        raise UserError(
            f"{flag} {name}: not a shipped store ({', '.join(SHIPPED)}) nor a .jsonl (FAQ pairs, documents) "
            "or .csv (subject,relation,object) file"
        )
    if not path.is_file():
        raise UserError(f"{flag} {name}: no such file")
    return reader(path), _digest([path.suffix.encode(), path.read_bytes()])


def load_store(spec: str, flag: str = "--knowledge-file") -> Store:
    """The store named by ``spec`` (comma-separated names and paths); errors name ``flag``."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UserError(f"{flag} is empty; name a store ({', '.join(SHIPPED)}) or a .jsonl/.csv file")
    entries: List[Entry] = []
    prints: List[bytes] = []
    for name in names:
        part, fingerprint = _load_one(name, flag)
        if not part:
            raise UserError(f"{flag} {name}: no entries")
        entries.extend(part)
        prints.append(fingerprint.encode())
    return Store(spec, tuple(entries), _digest(prints))


def entity_names(entries: Sequence[Entry]) -> List[str]:
    return list(dict.fromkeys(e.entity for e in entries if e.entity))
