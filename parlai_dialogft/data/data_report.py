"""Count what the shipped-corpus teachers yield, per split, source and language.

The tables in docs/data.md are this module's output; tests/test_teachers.py pins the counts
and checks that the document shows them. The second table and docs/images/turn_lengths.png
are turn lengths in the default model's tokens, for choosing --text-truncate and
--label-truncate (:mod:`parlai_dialogft.data.length_plots` draws the picture).

    python -m parlai_dialogft.data.data_report                 # print the counts
    python -m parlai_dialogft.data.data_report docs/data.md    # rewrite both tables and the picture
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Sequence, Tuple

from parlai_dialogft.data.splits import SPLITS

# (teacher as documented, task string with the flags the counts use)
TEACHERS = (
    ("dialogft_customer", "dialogft_customer:lang=all"),
    ("dialogft_chitchat", "dialogft_chitchat"),
    ("dialogft_qa", "dialogft_qa"),
)
Row = Tuple[str, str, str, str, int, int, int]  # teacher, source, lang, split, dialogues, episodes, examples


def build_teacher(task: str, datatype: str, *flags: str):
    """A teacher exactly as ``parlai display_data -t task -dt datatype`` builds it."""
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    opt = ParlaiParser(True, False).parse_args(["-t", task, "-dt", datatype, *flags])
    return create_task_agent_from_taskname(opt)[0]


def episodes(teacher):
    """Every episode as ParlAI serves it (``DialogData.get``), as lists of messages."""
    for index in range(teacher.num_episodes()):
        episode: list = []
        while not episode or not episode[-1]["episode_done"]:
            message, _end_of_data = teacher.data.get(index, len(episode))
            episode.append(message)
        yield episode


def count_teacher(name: str, split: str, teacher) -> List[Row]:
    """Rows for one built teacher, one per (source, language) it yields."""
    dialogues: Dict[Tuple[str, str], set] = defaultdict(set)
    counts: Dict[Tuple[str, str], List[int]] = defaultdict(lambda: [0, 0])
    for episode in episodes(teacher):
        key = (episode[0]["source"], episode[0]["lang"])
        dialogues[key].add(episode[0]["dialogue_id"])
        counts[key][0] += 1
        counts[key][1] += len(episode)
    return [
        (name, source, lang, split, len(dialogues[(source, lang)]), n_episodes, n_examples)
        for (source, lang), (n_episodes, n_examples) in sorted(counts.items())
    ]


def datatype(split: str) -> str:
    # train:evalmode: the train data exactly once, in order, as ParlAI's scripts count it.
    return "train:evalmode" if split == "train" else split


def count_rows(build: Callable = build_teacher) -> List[Row]:
    return [
        row
        for name, task in TEACHERS
        for split in SPLITS
        for row in count_teacher(name, split, build(task, datatype(split)))
    ]


def markdown(rows: List[Row]) -> str:
    lines = [
        "| teacher | source | lang | split | dialogues | episodes | examples |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    lines += [f"| {t} | {s} | {l} | {sp} | {d:,} | {e:,} | {x:,} |" for t, s, l, sp, d, e, x in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- turn lengths

#: The model whose tokenizer measures lengths: the default ``--hf-model`` of the docs.
LENGTH_MODEL = "bilingual_t5"
#: Where the picture goes, relative to the document (docs/data.md -> docs/images/...).
LENGTH_PNG = Path("images") / "turn_lengths.png"
LengthKey = Tuple[str, str, str]  # teacher, source, lang
Counter = Callable[[Sequence[str]], List[int]]  # texts -> their lengths in tokens


@dataclass
class TurnLengths:
    """Token counts of one (teacher, source, lang): one context and one reply per example."""

    contexts: List[int] = field(default_factory=list)
    replies: List[int] = field(default_factory=list)


def contexts_and_replies(episode: Sequence[dict], delimiter: str = "\n") -> Iterator[Tuple[str, str]]:
    """(context, reply) per example, as the agent reads them in training: ParlAI's history of
    the episode so far (teacher turns and gold replies joined by ``--delimiter``) up to and
    including the example's text, and the gold reply."""
    turns: List[str] = []
    for message in episode:
        # train:evalmode serves the gold reply as eval_labels.
        labels = message.get("labels") or message.get("eval_labels") or [""]
        turns.append(message.get("text") or "")
        yield delimiter.join(turns), labels[0]
        turns.append(labels[0])


def turn_lengths(name: str, served: Iterable[Sequence[dict]], count: Counter, delimiter: str = "\n") -> Dict[LengthKey, TurnLengths]:
    """Lengths per (teacher ``name``, source, language) of the episodes ``served``."""
    texts: Dict[LengthKey, Tuple[List[str], List[str]]] = defaultdict(lambda: ([], []))
    for episode in served:
        contexts, replies = texts[(name, episode[0]["source"], episode[0]["lang"])]
        for context, reply in contexts_and_replies(episode, delimiter):
            contexts.append(context)
            replies.append(reply)
    return {key: TurnLengths(count(contexts), count(replies)) for key, (contexts, replies) in sorted(texts.items())}


def percentile(values: Sequence[int], q: float) -> int:
    """Nearest rank: the smallest value with at least ``q`` percent of ``values`` at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def share_over(values: Sequence[int], limit: int) -> float:
    """The share of ``values`` above ``limit``: what truncation to ``limit`` cuts."""
    return sum(v > limit for v in values) / len(values)


def length_markdown(lengths: Dict[LengthKey, TurnLengths], text_truncate: int, label_truncate: int) -> str:
    lines = [
        f"| teacher | source | lang | examples | context p50 / p95 / p99 | contexts > {text_truncate} "
        f"| reply p50 / p95 / p99 | replies > {label_truncate} |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for (teacher, source, lang), turns in lengths.items():
        ctx = " / ".join(str(percentile(turns.contexts, q)) for q in (50, 95, 99))
        rep = " / ".join(str(percentile(turns.replies, q)) for q in (50, 95, 99))
        lines.append(
            f"| {teacher} | {source} | {lang} | {len(turns.contexts):,} | {ctx} "
            f"| {share_over(turns.contexts, text_truncate):.1%} | {rep} | {share_over(turns.replies, label_truncate):.1%} |"
        )
    return "\n".join(lines) + "\n"


def agent_defaults() -> Tuple[int, int, str]:
    """--text-truncate, --label-truncate and --delimiter as dialogft_agent sets them."""
    from parlai.core.params import ParlaiParser

    opt = ParlaiParser(True, True).parse_args(["-m", "dialogft_agent"])
    return opt["text_truncate"], opt["label_truncate"], opt["delimiter"]


def token_counter(model: str = LENGTH_MODEL) -> Counter:
    """Lengths in the tokens of the shipped zoo model (no special tokens: the agent's txt2vec)."""
    from transformers import AutoTokenizer

    from parlai_dialogft.zoo.dialogft.build import SHIPPED

    tokenizer = AutoTokenizer.from_pretrained(str(SHIPPED / model))

    def count(texts: Sequence[str]) -> List[int]:
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    return count


def train_lengths(build: Callable = build_teacher, delimiter: str = "\n") -> Dict[LengthKey, TurnLengths]:
    """Turn lengths of the train split of every shipped teacher."""
    count = token_counter()
    lengths: Dict[LengthKey, TurnLengths] = {}
    for name, task in TEACHERS:
        lengths.update(turn_lengths(name, episodes(build(task, datatype("train"))), count, delimiter))
    return lengths


# ---------------------------------------------------------------- the document

BEGIN, END = "<!-- counts:begin -->", "<!-- counts:end -->"
LENGTHS_BEGIN, LENGTHS_END = "<!-- lengths:begin -->", "<!-- lengths:end -->"


def replace_table(document: str, table: str, begin: str = BEGIN, end: str = END) -> str:
    """``document`` with the text between the markers ``begin`` and ``end`` replaced by ``table``."""
    head, rest = document.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table}{end}{tail}"


def main(argv: List[str]) -> None:
    from parlai.utils import logging

    logging.disable()  # ParlAI logs to stdout, where the table goes
    table = markdown(count_rows())
    if not argv:
        print(table, end="")
        return
    from parlai_dialogft.data.length_plots import plot_lengths

    path = Path(argv[0])
    text_truncate, label_truncate, delimiter = agent_defaults()
    lengths = train_lengths(delimiter=delimiter)
    (path.parent / LENGTH_PNG).parent.mkdir(parents=True, exist_ok=True)
    plot_lengths(lengths, text_truncate, label_truncate, str(path.parent / LENGTH_PNG))
    document = replace_table(path.read_text(encoding="utf-8"), table)
    document = replace_table(document, length_markdown(lengths, text_truncate, label_truncate), LENGTHS_BEGIN, LENGTHS_END)
    path.write_text(document, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
