"""Count what the shipped-corpus teachers yield, per split, source and language.

The table in docs/data.md is this module's output; tests/test_teachers.py pins the numbers
and checks that the document shows them.

    python -m parlai_dialogft.data.data_report                 # print the table
    python -m parlai_dialogft.data.data_report docs/data.md    # rewrite the table in the document
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Tuple

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


BEGIN, END = "<!-- counts:begin -->", "<!-- counts:end -->"


def replace_table(document: str, table: str) -> str:
    """``document`` with the text between the count markers replaced by ``table``."""
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}{END}{tail}"


def main(argv: List[str]) -> None:
    from parlai.utils import logging

    logging.disable()  # ParlAI logs to stdout, where the table goes
    table = markdown(count_rows())
    if not argv:
        print(table, end="")
        return
    path = Path(argv[0])
    path.write_text(replace_table(path.read_text(encoding="utf-8"), table), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
