"""The shipped-corpus teachers as ParlAI serves them: counts, splits, languages, options."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from parlai_dialogft.data import splits
from parlai_dialogft.data.cleaning import CleaningOptions, clean_text
from parlai_dialogft.data.data_report import TEACHERS, build_teacher, count_teacher, datatype, episodes, markdown
from parlai_dialogft.data.readers import chitchat, task_oriented
from parlai_dialogft.data.readers.task_oriented import content_key
from parlai_dialogft.utils.errors import UserError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "data.md"
README = DOCS  # the counts live in docs/data.md alone; the README links to it
CJK = re.compile(r"[\u4e00-\u9fff]")

# teacher, source, lang, split, dialogues, episodes, examples (docs/data.md shows the same).
PINNED_COUNTS = [
    ('dialogft_customer', 'crosswoz', 'zh', 'train', 447, 447, 3781),
    ('dialogft_customer', 'multiwoz', 'en', 'train', 898, 898, 6656),
    ('dialogft_customer', 'sgd', 'en', 'train', 4086, 4086, 31363),
    ('dialogft_customer', 'taskmaster4', 'en', 'train', 2955, 2955, 5497),
    ('dialogft_customer', 'crosswoz', 'zh', 'valid', 53, 53, 448),
    ('dialogft_customer', 'multiwoz', 'en', 'valid', 101, 101, 709),
    ('dialogft_customer', 'sgd', 'en', 'valid', 768, 768, 5465),
    ('dialogft_customer', 'taskmaster4', 'en', 'valid', 358, 358, 657),
    ('dialogft_customer', 'crosswoz', 'zh', 'test', 500, 500, 4238),
    ('dialogft_customer', 'multiwoz', 'en', 'test', 997, 997, 7355),
    ('dialogft_customer', 'sgd', 'en', 'test', 768, 768, 4821),
    ('dialogft_customer', 'taskmaster4', 'en', 'test', 374, 374, 724),
    ('dialogft_chitchat', 'chatterbot', 'en', 'train', 754, 822, 1062),
    ('dialogft_chitchat', 'chatterbot', 'zh', 'train', 394, 408, 466),
    ('dialogft_chitchat', 'kdconv', 'zh', 'train', 405, 810, 7984),
    ('dialogft_chitchat', 'topical_chat', 'en', 'train', 474, 948, 9796),
    ('dialogft_chitchat', 'chatterbot', 'en', 'valid', 73, 80, 89),
    ('dialogft_chitchat', 'chatterbot', 'zh', 'valid', 35, 35, 35),
    ('dialogft_chitchat', 'kdconv', 'zh', 'valid', 45, 90, 887),
    ('dialogft_chitchat', 'topical_chat', 'en', 'valid', 65, 130, 1346),
    ('dialogft_chitchat', 'chatterbot', 'en', 'test', 72, 77, 83),
    ('dialogft_chitchat', 'chatterbot', 'zh', 'test', 36, 38, 49),
    ('dialogft_chitchat', 'kdconv', 'zh', 'test', 450, 900, 9287),
    ('dialogft_chitchat', 'topical_chat', 'en', 'test', 539, 1078, 11221),
    ('dialogft_qa', 'kdconv', 'zh', 'train', 405, 810, 7984),
    ('dialogft_qa', 'kdconv', 'zh', 'valid', 45, 90, 887),
    ('dialogft_qa', 'kdconv', 'zh', 'test', 450, 900, 9287),
]


@functools.lru_cache(maxsize=None)
def teacher(task: str, split: str, *flags: str):
    """Built once per test session: corpora are parsed once per process anyway."""
    return build_teacher(task, datatype(split), *flags)


@functools.lru_cache(maxsize=None)
def served(task: str, split: str, *flags: str):
    return list(episodes(teacher(task, split, *flags)))


def all_counts():
    return [
        row
        for name, task in TEACHERS
        for split in splits.SPLITS
        for row in count_teacher(name, split, teacher(task, split))
    ]


# --- counts -------------------------------------------------------------------------------


def test_counts_per_teacher_split_and_language_are_pinned():
    assert all_counts() == PINNED_COUNTS


def test_docs_and_readme_show_the_pinned_counts():
    assert markdown(PINNED_COUNTS) in DOCS.read_text(encoding="utf-8")
    assert markdown(PINNED_COUNTS) in README.read_text(encoding="utf-8")


# --- ParlAI's teacher contract ------------------------------------------------------------

EVERY_TEACHER = [task for _, task in TEACHERS] + ["dialogft_customer"]


@pytest.mark.parametrize("split", splits.SPLITS)
@pytest.mark.parametrize("task", EVERY_TEACHER)
def test_every_split_yields_multi_turn_episodes_that_end_once(task, split):
    eps = served(task, split)
    assert eps, f"{task} {split} is empty"
    for episode in eps:
        assert [m["episode_done"] for m in episode] == [False] * (len(episode) - 1) + [True]
        for message in episode:
            label = message["labels"]  # act() renames it eval_labels outside training
            assert len(label) == 1 and label[0].strip() and message["text"].strip()
    assert max(len(e) for e in eps) > 1


def test_act_walks_the_data_like_a_parlai_world():
    t = teacher("dialogft_customer", "valid")
    seen = [t.act() for _ in range(t.num_examples())]
    assert all(m["eval_labels"][0] for m in seen)
    assert sum(m["episode_done"] for m in seen) == t.num_episodes()


# --- no dialogue in two splits ------------------------------------------------------------

READERS = {**task_oriented.READERS, **chitchat.READERS}


@pytest.mark.parametrize("source", sorted(READERS))
def test_no_dialogue_is_in_two_splits(source):
    by_split = READERS[source]()
    assert set(by_split) == set(splits.SPLITS)
    for one, other in (("train", "valid"), ("train", "test"), ("valid", "test")):
        ids = {c.id for c in by_split[one]} & {c.id for c in by_split[other]}
        texts = {content_key(c) for c in by_split[one]} & {content_key(c) for c in by_split[other]}
        assert not ids and not texts, f"{source}: {one}/{other} share {len(ids)} ids, {len(texts)} texts"


def test_hash_splits_do_not_depend_on_order():
    items = [f"dlg-{i}" for i in range(1000)]
    forward = splits.assign(items, str, str)
    backward = splits.assign(reversed(items), str, str)
    assert {k: set(v) for k, v in forward.items()} == {k: set(v) for k, v in backward.items()}
    assert 700 < len(forward["train"]) < 900


# --- options ------------------------------------------------------------------------------


def test_customer_defaults_to_english_and_lang_zh_is_crosswoz():
    assert {(m["source"], m["lang"]) for e in served("dialogft_customer", "valid") for m in e} == {
        ("sgd", "en"), ("taskmaster4", "en"), ("multiwoz", "en")}
    chinese = [m for e in served("dialogft_customer:lang=zh", "valid") for m in e]
    assert {(m["source"], m["lang"]) for m in chinese} == {("crosswoz", "zh")}
    assert all(CJK.search(m["labels"][0]) for m in chinese[:50])


def test_prefixed_flag_and_named_teacher_select_sources():
    flagged = served("dialogft_customer", "valid", "--customer-lang", "all", "--customer-sources", "crosswoz,sgd")
    assert {m["source"] for e in flagged for m in e} == {"crosswoz", "sgd"}
    assert {m["source"] for e in served("dialogft_customer:multiwoz", "valid") for m in e} == {"multiwoz"}


def test_contradictory_language_and_sources_fail_naming_the_flags():
    with pytest.raises(UserError, match="--customer-lang/--customer-sources: no source"):
        build_teacher("dialogft_customer:lang=zh:sources=sgd", "valid")
    with pytest.raises(UserError, match="unknown source"):
        build_teacher("dialogft_chitchat:sources=reddit", "valid")


def test_the_model_in_customer_service_plays_the_agent():
    episode = served("dialogft_customer:multiwoz", "test")[0]
    raw = next(c for c in task_oriented.read_multiwoz()["test"] if c.id == episode[0]["dialogue_id"])
    assert [m["labels"][0] for m in episode] == [
        clean_text(t.text, CleaningOptions()) for t in raw.turns if t.speaker == "agent"
    ]


def test_chitchat_speaker_both_is_first_plus_second():
    count = lambda speaker: sum(len(e) for e in served(f"dialogft_chitchat:kdconv:speaker={speaker}", "valid"))
    assert count("both") == count("first") + count("second") > 0


def test_qa_puts_the_replys_knowledge_in_the_context_only_when_asked():
    with_knowledge = [m for e in served("dialogft_qa", "valid") for m in e]
    grounded = [m for m in with_knowledge if m["knowledge"]]
    assert grounded and all(m["text"].startswith("knowledge: ") for m in grounded)
    assert not any(m["text"].startswith("knowledge: ") for m in with_knowledge if not m["knowledge"])
    plain = [m for e in served("dialogft_qa:knowledge=false", "valid") for m in e]
    assert len(plain) == len(with_knowledge) and not any("knowledge: " in m["text"] for m in plain)


def test_cleaning_flags_reach_every_teacher():
    masked = served("dialogft_customer:sgd", "valid", "--clean-mask-pii", "true")
    assert any("<phone>" in m["labels"][0] for e in masked for m in e)
    nfc = served("dialogft_customer:lang=zh", "valid", "--clean-normalize", "nfc")
    assert any("，" in m["labels"][0] for e in nfc for m in e)


# --- the scripts users run ----------------------------------------------------------------


@pytest.mark.parametrize("task", ["dialogft_customer", "dialogft_customer:lang=zh", "dialogft_chitchat", "dialogft_qa"])
def test_display_data_runs(task, capsys):
    from parlai.scripts.display_data import DisplayData

    DisplayData.main(task=task, num_examples=3, datatype="valid")
    out = capsys.readouterr().out
    assert "NEW EPISODE" in out


def test_display_data_runs_on_a_user_file(tmp_path, capsys):
    from parlai.scripts.display_data import DisplayData

    path = tmp_path / "faq.csv"
    path.write_text("prompt,response\n你好,你好，请问有什么可以帮您？\n", encoding="utf-8")
    DisplayData.main(task="dialogft_files", files_datapath=str(path), num_examples=1)
    assert "请问有什么可以帮您" in capsys.readouterr().out
