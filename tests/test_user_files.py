"""Users' own files: every accepted shape, and bad input that names the file and line."""

from __future__ import annotations

import csv
import io
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parlai_dialogft.data.data_report import build_teacher, episodes
from parlai_dialogft.data.readers.user_files import read_user_file
from parlai_dialogft.utils.errors import DataFormatError

_UNIQUE = itertools.count()


def write(tmp_path, name, content):
    # A fresh folder per call: hypothesis reuses tmp_path, and the reader caches by file.
    folder = tmp_path / str(next(_UNIQUE))
    folder.mkdir()
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def sides(conversations):
    return [[(t.speaker, t.text) for t in c.turns] for c in conversations]


def files_teacher(path, *flags, datatype="train"):
    return build_teacher("dialogft_files", datatype, "--files-datapath", str(path), *flags)


# --- accepted shapes ----------------------------------------------------------------------


def test_csv_pairs_with_any_known_header_names(tmp_path):
    path = write(tmp_path, "faq.csv", 'Question,id,Answer\n你好,1,"你好，请问有什么可以帮您？"\nhi,2,"hello, there"\n')
    assert sides(read_user_file(path)) == [
        [("user", "你好"), ("assistant", "你好，请问有什么可以帮您？")],
        [("user", "hi"), ("assistant", "hello, there")],
    ]
    assert [c.lang for c in read_user_file(path)] == ["zh", "en"]


def test_tsv_pairs_keep_quotes_as_text(tmp_path):
    path = write(tmp_path, "faq.tsv", 'prompt\tresponse\nsay "hi"\t"hi"\n')
    assert sides(read_user_file(path)) == [[("user", 'say "hi"'), ("assistant", '"hi"')]]


def test_python_literal_list_of_pairs_knows_each_items_line(tmp_path):
    path = write(tmp_path, "pairs.py", '[("你好", "你好，请问有什么可以帮您？"),\n ("谢谢", "不客气")]\n')
    conversations = read_user_file(path)
    assert sides(conversations)[1] == [("user", "谢谢"), ("assistant", "不客气")]
    assert conversations[1].origin.endswith("pairs.py, line 2")


def test_jsonl_mixes_pairs_messages_trl_and_parlai_conversations(tmp_path):
    records = [
        {"prompt": "a", "completion": "b"},
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": [{"type": "text", "text": "hello"}]}]},
        {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "r"}]},
        {"dialog": [[{"id": "partner1", "text": "hey"}, {"id": "partner2", "text": "yo"}]]},
    ]
    path = write(tmp_path, "mixed.jsonl", "\n".join(json.dumps(r) for r in records) + "\n\n")
    assert sides(read_user_file(path)) == [
        [("user", "a"), ("assistant", "b")],
        [("system", "be brief"), ("user", "hi"), ("assistant", "hello")],
        [("user", "q"), ("assistant", "r")],
        [("partner1", "hey"), ("partner2", "yo")],
    ]


def test_parlai_text_format_builds_multi_turn_episodes(tmp_path):
    path = write(tmp_path, "chat.txt", "text:hi\tlabels:hello\ntext:how are you\tlabels:fine\tepisode_done:True\ntext:bye\tlabels:ciao\n")
    assert sides(read_user_file(path)) == [
        [("user", "hi"), ("assistant", "hello"), ("user", "how are you"), ("assistant", "fine")],
        [("user", "bye"), ("assistant", "ciao")],
    ]


def test_the_teacher_labels_the_assistant_side_and_keeps_the_system_prompt_as_context(tmp_path):
    path = write(tmp_path, "chat.jsonl", json.dumps({"messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "ciao"}]}) + "\n")
    [episode] = list(episodes(files_teacher(path)))
    assert [(m["text"], m["labels"]) for m in episode] == [("be brief\nhi", ["hello"]), ("bye", ["ciao"])]
    assert [m["episode_done"] for m in episode] == [False, True]


def test_model_speaker_flag_picks_the_side(tmp_path):
    dialog = {"dialog": [[{"id": "a", "text": "1"}, {"id": "b", "text": "2"}, {"id": "a", "text": "3"}]]}
    path = write(tmp_path, "conv.jsonl", json.dumps(dialog) + "\n")
    labels = lambda *flags: [m["labels"][0] for e in episodes(files_teacher(path, *flags)) for m in e]
    assert labels() == ["2"]  # the second speaker by default
    assert labels("--files-model-speaker", "a") == ["3"]
    assert labels("--files-model-speaker", "both") == ["3", "2"]


def test_split_placeholder_and_hash_split(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"d_{split}.csv").write_text(f"prompt,response\nq {split},a {split}\n")
    teacher = files_teacher(tmp_path / "d_{split}.csv", datatype="valid")
    assert [m["text"] for e in episodes(teacher) for m in e] == ["q valid"]
    rows = "".join(f"q{i},a{i}\n" for i in range(200))
    path = write(tmp_path, "all.csv", "prompt,response\n" + rows)
    seen = [
        {m["text"] for e in episodes(files_teacher(path, "--files-split", "hash", datatype=s)) for m in e}
        for s in ("train", "valid", "test")
    ]
    assert sum(map(len, seen)) == 200 and not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])


# --- bad input: one line that names the file and the line ---------------------------------

BAD_INPUTS = [
    ("broken.jsonl", '{"prompt": "a", "response": "b"}\n{"prompt": "a" "response": "b"}\n', 2, "not valid JSON"),
    ("latin1.csv", b"prompt,response\nhi,hello\ncaf\xe9,ok\n", 3, "not valid UTF-8"),
    ("nocol.csv", "prompt,answerx\nhi,hello\n", 1, "no response column"),
    ("short.csv", "prompt,response\nhi,hello\nonly one\n", 3, "expected at least 2 columns"),
    ("empty.jsonl", "\n  \n", 1, "the file is empty"),
    ("solo.jsonl", '{"prompt":"a","response":"b"}\n{"messages":[{"role":"user","content":"hi"},{"role":"user","content":"?"}]}\n', 2, "only 'user'"),
    ("nofield.jsonl", '{"question": "a"}\n', 1, "no a response field"),
    ("nolabels.txt", "text:hi\tlabels:hello\ntext:what\n", 2, "no labels"),
    ("badliteral.py", '[("a", "b"),\n ("c", 3)]\n', 2, "the response must be a string"),
]


@pytest.mark.parametrize("name,content,line,problem", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_the_file_and_line(tmp_path, name, content, line, problem):
    path = write(tmp_path, name, content)
    with pytest.raises(ValueError) as caught:
        read_user_file(path)
    message = str(caught.value)
    assert isinstance(caught.value, DataFormatError)
    assert f"{path}, line {line}: " in message and problem in message
    assert "\n" not in message


def test_the_teacher_raises_the_same_one_line_error(tmp_path):
    path = write(tmp_path, "broken.jsonl", '{"prompt": "a", "response": "b"}\n{oops\n')
    with pytest.raises(DataFormatError, match=r"broken\.jsonl, line 2: not valid JSON"):
        files_teacher(path)


def test_a_file_that_cleaning_empties_is_an_error_not_an_empty_task(tmp_path):
    path = write(tmp_path, "blank.csv", "prompt,response\nhi,\u200b\nhey, \n")
    with pytest.raises(DataFormatError, match=r"blank\.csv: no usable conversations .*2 empty turns"):
        files_teacher(path)


def test_empty_responses_among_good_ones_are_skipped_and_counted(tmp_path):
    path = write(tmp_path, "some.csv", "prompt,response\nhi,hello\nhey,\n")
    teacher = files_teacher(path)
    assert teacher.num_examples() == 1
    assert teacher.stats["report"]["empty_turns"] == 1


def test_unknown_extension_asks_for_the_format_flag(tmp_path):
    path = write(tmp_path, "data.xlsx", "x")
    with pytest.raises(DataFormatError, match="--files-format"):
        read_user_file(path)


# --- properties ---------------------------------------------------------------------------

FIELD = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
PAIRS = st.lists(st.tuples(FIELD, FIELD), min_size=1, max_size=8)
HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _csv(pairs, delimiter):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["prompt", "response"])
    writer.writerows(pairs)
    return out.getvalue()


@HYPOTHESIS
@given(pairs=PAIRS, shape=st.sampled_from(["csv", "jsonl", "json", "py"]))
def test_pairs_round_trip_through_every_pair_format(tmp_path, pairs, shape):
    if shape == "csv":
        # csv cannot tell "\r\n" inside a field from a line end; writers quote them alike.
        # A row of blank cells is a blank line, skipped like one.
        pairs = [(p.replace("\r", ""), r.replace("\r", "")) for p, r in pairs]
        pairs = [pair for pair in pairs if pair[0].strip() or pair[1].strip()] or [("q", "a")]
        content = _csv(pairs, ",")
    elif shape == "jsonl":
        content = "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs)
    elif shape == "json":
        content = json.dumps([[p, r] for p, r in pairs])
    else:
        content = "[\n" + "".join(f"    ({p!r}, {r!r}),\n" for p, r in pairs) + "]\n"
    path = write(tmp_path, f"round.{shape}", content)
    assert [tuple(t.text for t in c.turns) for c in read_user_file(path)] == [tuple(p) for p in pairs]


@HYPOTHESIS
@given(data=st.binary(max_size=400), shape=st.sampled_from(["csv", "tsv", "jsonl", "json", "py", "txt"]))
def test_arbitrary_bytes_either_load_or_raise_a_data_format_error(tmp_path, data, shape):
    path = write(tmp_path, f"junk.{shape}", data)
    try:
        conversations = read_user_file(path)
    except DataFormatError as err:
        assert str(path) in str(err) and "\n" not in str(err)
    else:
        assert all(len(c.speakers) >= 2 for c in conversations)


@HYPOTHESIS
@given(lines=st.lists(st.one_of(
    st.just('{"prompt": "a", "response": "b"}'),
    st.just('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}'),
    st.text(max_size=40),
), min_size=1, max_size=6))
def test_a_bad_jsonl_line_is_reported_at_its_own_line(tmp_path, lines):
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    path = write(tmp_path, "mixed.jsonl", "\n".join(lines) + "\n")
    try:
        read_user_file(path)
    except DataFormatError as err:
        assert err.line is not None and 1 <= err.line <= len(lines)
        assert str(err).startswith(f"{path}, line {err.line}: ")
