"""dialogft_preferences: TRL's paired (DPO) and unpaired (KTO) files as ParlAI messages.

One record is one episode of one example: the prompt in ``text``, the preferred reply in
``labels`` (``eval_labels`` outside training), and the judgement in ``chosen``/``rejected``
or ``completion``/``desirable``. Bad input names the file and line.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from parlai_dialogft.data import splits
from parlai_dialogft.data.data_report import build_teacher, episodes
from parlai_dialogft.data.readers.preferences import read_preference_file
from parlai_dialogft.utils.errors import DataFormatError, UserError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "preferences"
PAIRED_FIXTURE = FIXTURES / "paired_conversational.jsonl"
UNPAIRED_FIXTURE = FIXTURES / "unpaired_standard.jsonl"
BIN = Path(sys.executable).parent
_UNIQUE = itertools.count()


def write(tmp_path, name: str, records) -> Path:
    """A JSONL file of ``records`` (dicts, or raw lines as str) in a fresh folder: the
    reader caches by path and version."""
    folder = tmp_path / str(next(_UNIQUE))
    folder.mkdir()
    path = folder / name
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def pref_teacher(path, *flags: str, datatype: str = "train"):
    return build_teacher("dialogft_preferences", datatype, "--pref-datapath", str(path), *flags)


def messages(teacher):
    """Every example as ParlAI serves it, less the keys ParlAI itself adds."""
    served = []
    for episode in episodes(teacher):
        assert len(episode) == 1 and episode[0]["episode_done"] is True
        served.append({k: v for k, v in episode[0].items() if k not in ("episode_done", "id")})
    return served


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


# --- each format yields these exact messages ----------------------------------------------


def from_line(path: Path, line: int, lang: str) -> dict:
    """The provenance every message carries: the file and the line of its record."""
    return {"lang": lang, "source": path.name, "dialogue_id": f"{path.name}:{line}"}


def test_paired_conversational_records_are_prompt_chosen_and_rejected():
    assert messages(pref_teacher(PAIRED_FIXTURE)) == [
        {
            "text": "What color is the sky?",
            "labels": ["It is blue."], "chosen": "It is blue.", "rejected": "It is green.",
            **from_line(PAIRED_FIXTURE, 1, "en"),
        },
        {
            "text": "You are a helpful travel agent.\nCan you book me a hotel in Cambridge?",  # system first
            "labels": ["Sure, for which nights?"], "chosen": "Sure, for which nights?", "rejected": "No.",
            **from_line(PAIRED_FIXTURE, 2, "en"),
        },
        {
            "text": "我想订一张明天去北京的火车票。\n好的，请问您几点出发？\n上午九点左右。",
            "labels": ["好的，九点零五分有一班高铁，需要帮您预订吗？"],
            "chosen": "好的，九点零五分有一班高铁，需要帮您预订吗？", "rejected": "北京是中国的首都。",
            **from_line(PAIRED_FIXTURE, 3, "zh"),
        },
    ]


def test_unpaired_standard_records_are_prompt_completion_and_desirable():
    # TRL's completions start with a space (" blue."); cleaning trims it, as any turn.
    assert messages(pref_teacher(UNPAIRED_FIXTURE)) == [
        {
            "text": "The sky is", "labels": ["blue."], "completion": "blue.", "desirable": True,
            **from_line(UNPAIRED_FIXTURE, 1, "en"),
        },
        {
            "text": "The sky is", "labels": ["green."], "completion": "green.", "desirable": False,
            **from_line(UNPAIRED_FIXTURE, 2, "en"),
        },
        {
            "text": "你好，请问有什么可以帮您？", "labels": ["我想查询一下我的订单。"],
            "completion": "我想查询一下我的订单。", "desirable": True,
            **from_line(UNPAIRED_FIXTURE, 3, "zh"),
        },
    ]


def test_paired_standard_strings_and_unpaired_conversational_messages(tmp_path):
    paired = write(tmp_path, "dpo.jsonl", [{"prompt": "The sky is", "chosen": "blue.", "rejected": "green."}])
    unpaired = write(tmp_path, "kto.jsonl", [
        {"prompt": [user("What color is the sky?")], "completion": [assistant("It is blue.")], "label": True},
    ])
    [dpo] = messages(pref_teacher(paired))
    [kto] = messages(pref_teacher(unpaired))
    assert (dpo["text"], dpo["labels"], dpo["chosen"], dpo["rejected"]) == ("The sky is", ["blue."], "blue.", "green.")
    assert (kto["text"], kto["labels"], kto["completion"], kto["desirable"]) == (
        "What color is the sky?", ["It is blue."], "It is blue.", True,
    )


def test_implicit_prompt_is_the_shared_opening_of_chosen_and_rejected(tmp_path):
    path = write(tmp_path, "implicit.jsonl", [{
        "chosen": [user("hi"), assistant("hello!"), user("what color is the sky?"), assistant("It is blue.")],
        "rejected": [user("hi"), assistant("hello!"), user("what color is the sky?"), assistant("It is green.")],
    }])
    [message] = messages(pref_teacher(path))
    assert message["text"] == "hi\nhello!\nwhat color is the sky?"
    assert message["labels"] == ["It is blue."]
    assert (message["chosen"], message["rejected"]) == ("It is blue.", "It is green.")


def test_outside_training_the_reply_is_in_eval_labels():
    teacher = pref_teacher(PAIRED_FIXTURE, datatype="valid")
    act = teacher.act()
    assert "labels" not in act
    assert act["eval_labels"] == ["It is blue."]
    assert (act["chosen"], act["rejected"]) == ("It is blue.", "It is green.")


def test_parlai_verify_data_finds_text_and_labels_in_every_example(tmp_path):
    from parlai.scripts.verify_data import VerifyData

    for fixture in (PAIRED_FIXTURE, UNPAIRED_FIXTURE):
        counts = VerifyData.main(task="dialogft_preferences", pref_datapath=str(fixture), datapath=str(tmp_path))
        assert counts["missing_text"] == counts["missing_labels"] == counts["did_not_return_message"] == 0


def test_stream_mode_serves_the_same_records(tmp_path):
    teacher = pref_teacher(UNPAIRED_FIXTURE, "--datapath", str(tmp_path), datatype="valid:stream")
    acts = [teacher.act() for _ in range(teacher.num_examples())]
    assert [a["eval_labels"] for a in acts] == [["blue."], ["green."], ["我想查询一下我的订单。"]]
    assert [a["desirable"] for a in acts] == [True, False, True]


def test_streamed_counts_follow_the_file(tmp_path):
    """Stream mode caches counts per set of data-shaping options: --pref-* must be one."""
    one = write(tmp_path, "one.jsonl", [GOOD])
    counts = [
        pref_teacher(path, "--datapath", str(tmp_path / "data"), datatype="valid:stream").num_examples()
        for path in (UNPAIRED_FIXTURE, one)
    ]
    assert counts == [3, 1]


# --- splits -------------------------------------------------------------------------------


def test_split_in_the_path_picks_a_file_per_datatype(tmp_path):
    folder = tmp_path / "prefs"
    folder.mkdir()
    for split in splits.SPLITS:
        (folder / f"prefs_{split}.jsonl").write_text(
            json.dumps({"prompt": f"{split} prompt", "chosen": "yes", "rejected": "no"}) + "\n", encoding="utf-8"
        )
    template = str(folder / "prefs_{split}.jsonl")
    for split, datatype in (("train", "train"), ("valid", "valid"), ("test", "test")):
        assert [m["text"] for m in messages(pref_teacher(template, datatype=datatype))] == [f"{split} prompt"]


def test_without_a_split_every_datatype_gets_the_whole_file():
    for datatype in ("train", "valid", "test"):
        assert len(messages(pref_teacher(UNPAIRED_FIXTURE, datatype=datatype))) == 3


def test_hash_split_keeps_a_prompts_records_together_and_the_splits_disjoint(tmp_path):
    records = [
        {"prompt": f"question {i // 3}", "completion": f"answer {i}", "label": i % 2 == 0}
        for i in range(300)  # 100 prompts, three judged completions each
    ]
    path = write(tmp_path, "kto.jsonl", records)
    served = {
        split: messages(pref_teacher(path, "--pref-split", "hash", datatype=split)) for split in splits.SPLITS
    }
    ids = {split: {m["dialogue_id"] for m in found} for split, found in served.items()}
    prompts = {split: {m["text"] for m in found} for split, found in served.items()}
    for one, other in itertools.combinations(splits.SPLITS, 2):
        assert not ids[one] & ids[other] and not prompts[one] & prompts[other], (one, other)
    assert set().union(*ids.values()) == {f"kto.jsonl:{line}" for line in range(1, 301)}
    assert all(len(found) % 3 == 0 for found in served.values())  # no prompt cut in parts
    assert len(served["train"]) > len(served["valid"]) > 0 and len(served["test"]) > 0


def test_hash_split_ignores_case_and_spacing_of_the_prompt(tmp_path):
    path = write(tmp_path, "dpo.jsonl", [
        {"prompt": f"Question {i}", "chosen": "yes", "rejected": "no"} for i in range(40)
    ] + [
        {"prompt": f"  question   {i} ", "chosen": "sure", "rejected": "never"} for i in range(40)
    ])
    for split in splits.SPLITS:
        found = messages(pref_teacher(path, "--pref-split", "hash", datatype=split))
        lines = {int(m["dialogue_id"].split(":")[1]) for m in found}
        assert {line for line in lines if line <= 40} == {line - 40 for line in lines if line > 40}


# --- cleaning -----------------------------------------------------------------------------


def test_cleaning_drops_and_counts_equal_and_empty_replies(tmp_path):
    path = write(tmp_path, "dpo.jsonl", [
        {"prompt": "ok", "chosen": "fine", "rejected": "bad"},
        {"prompt": "same", "chosen": "It is  blue.", "rejected": "It is blue."},  # equal once cleaned
        {"prompt": "empty", "chosen": " \u200b ", "rejected": "no"},
        {"prompt": "empty", "chosen": "yes", "rejected": ""},
        {"prompt": [assistant("")], "chosen": "yes", "rejected": "no"},
    ])
    teacher = pref_teacher(path)
    assert [m["text"] for m in messages(teacher)] == ["ok"]
    report = teacher.stats["report"]
    reasons = ("same_replies", "empty_chosen", "empty_rejected", "empty_prompt")
    assert [report[reason] for reason in reasons] == [1, 1, 1, 1]
    summary = report.summary()
    assert "1 records dropped (chosen equals rejected)" in summary
    assert "1 records dropped (empty chosen)" in summary and "1 records dropped (empty rejected)" in summary


def test_cleaning_drops_empty_completions_and_normalises_every_text(tmp_path):
    path = write(tmp_path, "kto.jsonl", [
        {"prompt": [{"role": "system", "content": "ＡＢＣ  helper"}, user("价格是１００元吗？")],
         "completion": [assistant("是的，１００元。")], "label": True},
        {"prompt": "hello", "completion": "   ", "label": False},
    ])
    teacher = pref_teacher(path)
    [message] = messages(teacher)
    # Full-width letters and digits fold; Chinese keeps its full-width punctuation.
    assert message["text"] == "ABC helper\n价格是100元吗？"
    assert message["completion"] == "是的，100元。" and message["labels"] == ["是的，100元。"]
    report = teacher.stats["report"]
    assert report["empty_completion"] == 1 and report["changed_turns"] == 4


def test_duplicate_records_are_dropped_and_counted_unless_dedup_is_off(tmp_path):
    record = {"prompt": "hi", "chosen": "hello", "rejected": "go away"}
    path = write(tmp_path, "dpo.jsonl", [record, record])
    teacher = pref_teacher(path)
    assert len(messages(teacher)) == 1 and teacher.stats["report"]["duplicate_records"] == 1
    assert len(messages(pref_teacher(path, "--clean-dedup", "false"))) == 2


def test_a_file_with_nothing_usable_left_is_an_error_naming_it(tmp_path):
    path = write(tmp_path, "dpo.jsonl", [{"prompt": "p", "chosen": "same", "rejected": "same"}])
    with pytest.raises(DataFormatError) as caught:
        pref_teacher(path)
    assert str(caught.value) == f"{path}: no usable records after cleaning (1 records dropped (chosen equals rejected))"


# --- bad input: one line naming the file and the line -------------------------------------

GOOD = {"prompt": "p", "chosen": "c", "rejected": "r"}


@pytest.mark.parametrize("bad_line, problem", [
    ('{"prompt": "p", "chosen": "c"', "not valid JSON (Expecting ',' delimiter at column 30)"),
    ({"prompt": "p", "chosen": "c"}, "missing field 'rejected'"),
    ({"chosen": "c", "rejected": "r"}, "missing field 'prompt'"),
    ({"prompt": "p", "chosen": 3, "rejected": "r"},
     "'chosen' must be a string or a list of {role, content} messages, not number"),
    ({"prompt": [{"content": "hi"}], "chosen": "c", "rejected": "r"},
     "'prompt' message 1 needs 'role' and 'content' (found ['content'])"),
    ({"prompt": [user("hi")], "chosen": [{"role": "assistant"}], "rejected": "r"},
     "'chosen' message 1 needs 'role' and 'content'"),
    ({"prompt": "p", "chosen": [user("c")], "rejected": "r"}, "'chosen' message 1 is by 'user'"),
    ({"prompt": "p", "completion": "c", "label": "yes"},
     "an unpaired record (completion, label) in a file of paired ones (line 1 is paired)"),
    ({"prompt": "p", "chosen": "c", "rejected": "r", "label": True},
     "paired fields (chosen, rejected) and unpaired ones (label) in one record"),
    ('["p", "c", "r"]', "expected a JSON object, found list"),
])
def test_bad_records_name_the_file_and_line(tmp_path, bad_line, problem):
    path = write(tmp_path, "prefs.jsonl", [GOOD, "", bad_line])
    with pytest.raises(DataFormatError) as caught:
        read_preference_file(path)
    assert str(caught.value).startswith(f"{path}, line 3: {problem}")


def test_a_label_that_is_not_a_boolean_is_an_error(tmp_path):
    path = write(tmp_path, "prefs.jsonl", [{"prompt": "p", "completion": "c", "label": 1}])
    with pytest.raises(DataFormatError) as caught:
        read_preference_file(path)
    assert str(caught.value).startswith(f"{path}, line 1: 'label' must be true or false, not number 1")


def test_a_record_of_neither_kind_is_an_error_listing_its_keys(tmp_path):
    path = write(tmp_path, "prefs.jsonl", [{"prompt": "p", "response": "r"}])
    with pytest.raises(DataFormatError) as caught:
        read_preference_file(path)
    assert str(caught.value).startswith(f"{path}, line 1: neither a paired record (prompt, chosen, rejected)")
    assert "['prompt', 'response']" in str(caught.value)


def test_pref_kind_rejects_records_of_the_other_kind(tmp_path):
    path = write(tmp_path, "prefs.jsonl", [GOOD])
    with pytest.raises(DataFormatError) as caught:
        read_preference_file(path, "unpaired")
    assert str(caught.value).startswith(
        f"{path}, line 1: a paired record (chosen, rejected) in a file of unpaired ones (--pref-kind is unpaired)"
    )


def test_an_empty_file_is_an_error(tmp_path):
    path = write(tmp_path, "prefs.jsonl", ["", "  "])
    with pytest.raises(DataFormatError) as caught:
        read_preference_file(path)
    assert str(caught.value) == f"{path}, line 1: the file is empty"


def test_files_of_different_kinds_in_one_task_are_an_error(tmp_path):
    paired = write(tmp_path, "dpo.jsonl", [GOOD])
    unpaired = write(tmp_path, "kto.jsonl", [{"prompt": "p", "completion": "c", "label": True}])
    with pytest.raises(DataFormatError) as caught:
        pref_teacher(f"{paired},{unpaired}")
    assert str(caught.value).startswith(f"{unpaired}, line 1: unpaired records, but {paired} holds paired ones")


def test_the_teacher_needs_a_datapath():
    with pytest.raises(UserError, match="--pref-datapath"):
        build_teacher("dialogft_preferences", "train")


# --- the parlai command line --------------------------------------------------------------


def test_parlai_display_data_shows_the_chosen_replies(tmp_path):
    run = subprocess.run(
        [str(BIN / "parlai"), "display_data", "-t", "dialogft_preferences", "--pref-datapath", str(PAIRED_FIXTURE),
         "--datapath", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "好的，九点零五分有一班高铁，需要帮您预订吗？" in run.stdout
    assert "It is green." not in run.stdout  # display_data shows text and labels: the chosen side
