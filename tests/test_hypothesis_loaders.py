"""Random and adversarial data through the whole loading path: file → reader → cleaning → teacher.

tests/test_cleaning.py holds the properties of the cleaning functions alone, and
tests/test_user_files.py those of the readers alone (pair round trips, arbitrary bytes, the
line of a bad JSONL record). Here the teacher sits at the end: whatever a user's file holds
(control characters, mixed scripts, huge lines, empty fields), ``dialogft_files`` serves
clean examples or stops with one line naming the file, and empty fields cost exactly their
own examples.
"""

from __future__ import annotations

import itertools
import json
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parlai_dialogft.data.cleaning import CleaningOptions, clean_text
from parlai_dialogft.data.data_report import build_teacher, episodes
from parlai_dialogft.data.readers.user_files import read_user_file
from parlai_dialogft.utils.errors import DataFormatError
from tests.support.strategies import ADVERSARIAL

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_UNIQUE = itertools.count()


def _write(tmp_path, name, text):
    # A fresh folder per example: hypothesis reuses tmp_path, and readers cache by file.
    folder = tmp_path / str(next(_UNIQUE))
    folder.mkdir()
    path = folder / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _teacher(path):
    return build_teacher("dialogft_files", "train:ordered", "--files-datapath", str(path))


def _is_clean(text):
    return (
        text == text.strip()
        and "\r" not in text
        and all(ch in "\n\t\u200d" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs") for ch in text)
    )


ROLES = st.sampled_from(["system", "user", "assistant"])
MESSAGES = st.lists(st.tuples(ROLES, ADVERSARIAL), min_size=1, max_size=8)


@PROPERTY
@given(conversations=st.lists(MESSAGES, min_size=1, max_size=5))
def test_any_chat_file_gives_clean_examples_or_one_line_naming_the_file(tmp_path, conversations):
    lines = [json.dumps({"messages": [{"role": r, "content": c} for r, c in conv]}) for conv in conversations]
    path = _write(tmp_path, "chats.jsonl", "\n".join(lines) + "\n")
    try:
        teacher = _teacher(path)
    except DataFormatError as err:
        # One line, naming the file (reading, cleaning) or the task (no reply for the model).
        assert str(err).startswith((str(path), "dialogft_files train: ")) and "\n" not in str(err)
        return
    served = [message for episode in episodes(teacher) for message in episode]
    assert served and len(served) == teacher.num_examples()
    for message in served:
        [label] = message["labels"]
        assert label and _is_clean(label)
        assert _is_clean(message["text"])
        (message["text"] + label).encode("utf-8")  # no lone surrogates reach the model
    # An example per assistant turn at most (cleaning only drops and merges).
    assert len(served) <= sum(role == "assistant" for conv in conversations for role, _ in conv)


FILLED = st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=30)
EMPTYISH = st.sampled_from(["", " ", "\u200b", "\t\x00", "\u3000", "\ufeff \u2028"])


@PROPERTY
@given(responses=st.lists(st.one_of(FILLED, EMPTYISH), min_size=1, max_size=12),
       shape=st.sampled_from(["jsonl", "csv", "tsv"]))
def test_empty_fields_cost_exactly_their_own_examples(tmp_path, responses, shape):
    prompts = [f"question {i}" for i in range(len(responses))]  # distinct: no deduplication
    if shape == "jsonl":
        text = "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in zip(prompts, responses))
    else:
        sep = "," if shape == "csv" else "\t"
        quote = (lambda s: '"' + s.replace('"', '""') + '"') if shape == "csv" else (lambda s: s)
        text = f"prompt{sep}response\n" + "".join(f"{p}{sep}{quote(r)}\n" for p, r in zip(prompts, responses))
    path = _write(tmp_path, f"pairs.{shape}", text)
    usable = [clean_text(r, CleaningOptions()) for r in responses]
    expected = [r for r in usable if r]
    if not expected:
        with pytest.raises(DataFormatError, match="no usable conversations"):
            _teacher(path)
        return
    teacher = _teacher(path)
    assert [m["labels"][0] for e in episodes(teacher) for m in e] == expected
    assert teacher.stats["report"]["empty_turns"] == len(responses) - len(expected)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(piece=st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\|\""), min_size=1, max_size=4),
       repeat=st.integers(min_value=600, max_value=300_000),
       shape=st.sampled_from(["jsonl", "csv", "tsv", "txt"]))
def test_a_huge_line_is_cut_by_cleaning_not_a_crash(tmp_path, piece, repeat, shape):
    huge = (piece * repeat).replace("\t", " ").replace("\n", " ")
    pairs = [("hello", "hi there"), ("tell me everything", huge)]
    if shape == "jsonl":
        text = "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs)
    elif shape == "csv":
        text = "prompt,response\n" + "".join(f'"{p}","{r.replace(chr(34), chr(34) * 2)}"\n' for p, r in pairs)
    elif shape == "tsv":
        text = "prompt\tresponse\n" + "".join(f"{p}\t{r}\n" for p, r in pairs)
    else:
        text = "".join(f"text:{p}\tlabels:{r.replace('|', ' ')}\tepisode_done:True\n" for p, r in pairs)
    path = _write(tmp_path, f"huge.{shape}", text)
    if shape in ("csv", "tsv") and len(huge) > 131_072:
        # Python's csv module refuses fields over its limit: one line naming file and line.
        with pytest.raises(DataFormatError, match=rf"huge\.{shape}, line 3: .*field limit"):
            read_user_file(path)
        return
    assert len(read_user_file(path)) == 2  # the reader keeps it whole; cleaning decides
    labels = [m["labels"][0] for e in episodes(_teacher(path)) for m in e]
    limit = CleaningOptions().max_turn_chars
    assert labels[0] == "hi there"
    assert all(len(label) <= limit for label in labels)
    assert len(labels) == (2 if len(clean_text(huge, CleaningOptions(max_turn_chars=0))) <= limit else 1)


SCRIPT_MIX = st.text(
    st.sampled_from(list("abc XYZ 你好世界 Ωψ éü مرحبا שלום привет 😀 ١٢٣ ＡＢＣ，。")), min_size=1, max_size=60
)


@PROPERTY
@given(turns=st.lists(SCRIPT_MIX, min_size=2, max_size=6))
def test_mixed_scripts_reach_the_model_as_cleaning_wrote_them(tmp_path, turns):
    """Nothing between the file and the teacher re-encodes, reorders or drops characters."""
    options = CleaningOptions()
    cleaned = [clean_text(t, options) for t in turns]
    if not all(cleaned) or len(set(cleaned)) < len(cleaned):
        return  # empty or merged turns: the properties above cover those
    roles = ["user", "assistant"] * len(turns)
    record = {"messages": [{"role": r, "content": t} for r, t in zip(roles, turns)]}
    path = _write(tmp_path, "mixed.jsonl", json.dumps(record, ensure_ascii=False) + "\n")
    served = [m for e in episodes(_teacher(path)) for m in e]
    assert [m["labels"][0] for m in served] == cleaned[1::2]
    assert [m["text"] for m in served] == cleaned[0::2][: len(served)]
