"""The task-oriented readers: annotations kept raw and aligned with their turns (also through
cleaning), SGD's schemas, and MultiWOZ's splits (the official test; val cut into train/valid)."""

from __future__ import annotations

import pickle

import pytest

from parlai_dialogft.data import splits
from parlai_dialogft.data.cleaning import CleaningOptions, CleaningReport, clean_conversations, clean_text
from parlai_dialogft.data.conversation import Annotations, Conversation, Turn
from parlai_dialogft.data.readers import task_oriented
from parlai_dialogft.data.readers.corpus_files import corpus_dir, load_json
from parlai_dialogft.data.readers.task_oriented import AGENT, USER, content_key, sgd_schema

DEFAULT = CleaningOptions()

# Per source: the annotation fields of a user turn, of an agent turn, and of a dialogue.
FIELDS = {
    "multiwoz": (
        {"dialog_act", "span_info", "metadata"},
        {"dialog_act", "span_info", "metadata"},
        {"goal"},
    ),
    "crosswoz": (
        {"dialog_act", "user_state"},
        {"dialog_act", "sys_state", "sys_state_init"},
        {"goal", "final_goal", "task description", "type", "sys-usr"},
    ),
    "sgd": ({"frames"}, {"frames"}, {"services"}),
}


def conversations(source: str):
    return [c for split in task_oriented.READERS[source]().values() for c in split]


def turns(source: str, speaker: str):
    return [t for c in conversations(source) for t in c.turns if t.speaker == speaker]


def share(hits: int, total: int) -> float:
    assert total, "nothing to measure"
    return hits / total


# --- what every turn and dialogue keeps ----------------------------------------------------


@pytest.mark.parametrize("source", sorted(FIELDS))
def test_every_turn_keeps_every_upstream_field_but_its_text_and_speaker(source):
    user_fields, agent_fields, dialogue_fields = FIELDS[source]
    for conversation in conversations(source):
        assert set(conversation.annotations) == dialogue_fields, conversation.id
        for turn in conversation.turns:
            assert set(turn.annotations) == (agent_fields if turn.speaker == AGENT else user_fields), conversation.id


def test_taskmaster4_is_text_only():
    assert not any(c.annotations or any(t.annotations for t in c.turns) for c in conversations("taskmaster4"))


# --- alignment with the text, corpus by corpus ---------------------------------------------


def test_multiwoz_belief_states_are_on_agent_turns_and_spans_name_their_own_turns_words():
    assert all(turn.annotations["metadata"] == {} for turn in turns("multiwoz", USER))
    assert all({"restaurant", "hotel", "train"} <= set(turn.annotations["metadata"]) for turn in turns("multiwoz", AGENT))
    # Users' span values are sometimes normalised ("dontcare", "2" for "two"); against the
    # turn two later (same speaker) about 7 % match.
    for speaker, least in ((USER, 0.9), (AGENT, 0.99)):
        spans = [
            (value.lower(), turn.text.lower())
            for turn in turns("multiwoz", speaker)
            for _act, _slot, value, _start, _end in turn.annotations["span_info"]
        ]
        assert len(spans) > 10_000
        assert share(sum(value in text for value, text in spans), len(spans)) > least


def test_sgd_slot_spans_cut_their_values_out_of_their_own_turns_text():
    checked = 0
    for source_turn in turns("sgd", USER) + turns("sgd", AGENT):
        for frame in source_turn.annotations["frames"]:
            values = {v for action in frame["actions"] for v in action["values"]}
            values |= {v for vs in frame.get("state", {}).get("slot_values", {}).values() for v in vs}
            for slot in frame["slots"]:
                assert source_turn.text[slot["start"] : slot["exclusive_end"]] in values, source_turn.text
                checked += 1
    assert checked > 50_000


def test_sgd_service_calls_are_agent_turns_with_results_that_answer_them():
    assert all("state" in f for t in turns("sgd", USER) for f in t.annotations["frames"])
    assert not any("service_call" in f for t in turns("sgd", USER) for f in t.annotations["frames"])
    calls = [f for t in turns("sgd", AGENT) for f in t.annotations["frames"] if "service_call" in f]
    assert len(calls) > 10_000 and all(isinstance(f["service_results"], list) for f in calls)
    answered = [f for f in calls if f["service_results"]]
    assert share(len(answered), len(calls)) > 0.95
    matching = [
        all(result.get(k) == v for k, v in f["service_call"]["parameters"].items())
        for f in answered
        for result in f["service_results"]
    ]
    assert share(sum(matching), len(matching)) > 0.95


@pytest.mark.parametrize("split", splits.SPLITS)
def test_sgd_schema_describes_every_service_and_method_its_split_uses(split):
    schema = sgd_schema(split)
    assert all(name == service["service_name"] for name, service in schema.items())
    for conversation in task_oriented.read_sgd()[split]:
        assert set(conversation.annotations["services"]) <= set(schema), conversation.id
        for turn in conversation.turns:
            for frame in turn.annotations["frames"]:
                if "service_call" in frame:
                    intents = {i["name"] for i in schema[frame["service"]]["intents"]}
                    assert frame["service_call"]["method"] in intents
    sgd_schema(split)["x"] = {}  # a fresh copy: changing one changes no other
    assert "x" not in sgd_schema(split)


def test_sgd_schema_names_the_splits_it_has():
    with pytest.raises(ValueError, match="SGD has no split 'dev'; it has train, valid, test"):
        sgd_schema("dev")


def test_crosswoz_acts_name_what_their_turn_says_and_agent_turns_hold_the_system_state():
    for speaker in (USER, AGENT):
        names = [
            value in turn.text
            for turn in turns("crosswoz", speaker)
            for intent, _domain, slot, value in turn.annotations["dialog_act"]
            if intent == "Inform" and slot == "名称"
        ]
        assert len(names) > 1000 and share(sum(names), len(names)) > 0.99
    for turn in turns("crosswoz", AGENT):
        assert {"景点", "餐馆", "酒店"} <= set(turn.annotations["sys_state"])


def test_crosswoz_gold_has_an_entry_per_agent_turn_named_by_its_acts():
    from parlai_dialogft.knowledge.gold import crosswoz_turn_gold

    gold = crosswoz_turn_gold()
    for conversation in conversations("crosswoz"):
        agent_turns = [t for t in conversation.turns if t.speaker == AGENT]
        assert len(gold[conversation.id]) == len(agent_turns)
        for turn, turn_gold in zip(agent_turns, gold[conversation.id]):
            assert set(turn_gold.named) <= {act[3] for act in turn.annotations["dialog_act"]}
    assert sum(bool(g.named) for entries in gold.values() for g in entries) > 4000


# --- cleaning keeps the alignment ----------------------------------------------------------


@pytest.mark.parametrize("source", sorted(FIELDS))
def test_cleaning_keeps_each_turns_own_annotations(source):
    for split in task_oriented.READERS[source]().values():
        raw = {c.id: c for c in split}
        report = CleaningReport()
        for cleaned in clean_conversations(split, DEFAULT, report):
            kept = [t for t in raw[cleaned.id].turns if clean_text(t.text, DEFAULT)]  # SGD has 2 empty turns
            assert [t.speaker for t in cleaned.turns] == [t.speaker for t in kept]
            assert all(c.annotations is k.annotations for c, k in zip(cleaned.turns, kept))
            assert cleaned.annotations is raw[cleaned.id].annotations
            if source == "multiwoz":  # span_info indexes words: cleaning changes spaces only
                assert [t.text.split() for t in cleaned.turns] == [t.text.split() for t in kept]
        assert not report["annotated_merges"]


def annotated(*turns_):
    return Conversation(
        "c1", "test", "en",
        tuple(Turn(s, t, annotations={"act": i}) for i, (s, t) in enumerate(turns_)),
        annotations={"goal": "book"},
    )


def test_a_merge_would_misalign_annotations_so_the_conversation_is_dropped_and_counted():
    turns_ = (("user", "hi"), ("agent", " \u200b "), ("user", "a table for two"), ("agent", "done"))
    report = CleaningReport()
    assert clean_conversations([annotated(*turns_)], DEFAULT, report) == []
    assert report["annotated_merges"] == 1 and report["merged_turns"] == 1
    assert "1 annotated conversations dropped" in report.summary()
    plain = Conversation("c1", "test", "en", tuple(Turn(s, t) for s, t in turns_))
    (merged,) = clean_conversations([plain], DEFAULT, CleaningReport())  # no annotations: merged
    assert [t.text for t in merged.turns] == ["hi\na table for two", "done"]


def test_an_empty_turn_without_a_merge_and_a_cut_keep_the_other_turns_annotations():
    conversation = annotated(("user", "hi"), ("agent", "hello"), ("user", "x" * 50), ("agent", ""))
    (cut,) = clean_conversations([conversation], CleaningOptions(max_turn_chars=20), CleaningReport())
    assert [dict(t.annotations) for t in cut.turns] == [{"act": 0}, {"act": 1}]
    (dropped_end,) = clean_conversations([conversation], DEFAULT, CleaningReport())
    assert [t.annotations["act"] for t in dropped_end.turns] == [0, 1, 2]
    assert dropped_end.annotations == {"goal": "book"}


# --- the data model ------------------------------------------------------------------------


def test_annotations_are_read_only_pickle_as_json_and_leave_equality_to_the_text():
    conversation = task_oriented.read_multiwoz()["valid"][0]
    turn = conversation.turns[1]
    assert isinstance(turn.annotations, Annotations)
    with pytest.raises(TypeError):
        turn.annotations["metadata"] = {}  # type: ignore[index]
    again = pickle.loads(pickle.dumps(conversation, protocol=pickle.HIGHEST_PROTOCOL))
    assert again == conversation and again.annotations == conversation.annotations
    assert [dict(t.annotations) for t in again.turns] == [dict(t.annotations) for t in conversation.turns]
    assert Turn(turn.speaker, turn.text) == turn and hash(Turn(turn.speaker, turn.text)) == hash(turn)
    assert "metadata" not in repr(turn)
    assert not Turn("user", "hi").annotations and Turn("user", "hi").annotations == {}
    assert pickle.loads(pickle.dumps(Turn("user", "hi"))).annotations == {}


def test_turns_cached_before_annotations_existed_read_as_unannotated():
    old = object.__new__(Turn)  # what unpickling a turn from an older cache builds
    old.__dict__.update(speaker="user", text="hi", knowledge=())
    assert old.annotations == {} and old == Turn("user", "hi")


# --- MultiWOZ's splits ---------------------------------------------------------------------

MULTIWOZ = corpus_dir("multiwoz21_convlab2")
TEST_COPIES_OF_VAL = {"PMUL3596", "PMUL1978"}  # official test dialogues with a val dialogue's text


def ids(conversations_):
    return [c.id for c in conversations_]


def test_multiwoz_test_is_the_official_test_less_its_copies_of_val_dialogues():
    by_split = task_oriented.read_multiwoz()
    official = (MULTIWOZ / "testListFile").read_text().split()
    assert len(official) == 1000
    assert set(ids(by_split["test"])) == set(official) - TEST_COPIES_OF_VAL
    seen = set(ids(by_split["train"]) + ids(by_split["valid"]))
    assert not seen & set(official)
    assert {c.origin for c in by_split["test"]} == {"test"}
    train_texts = {content_key(c) for c in by_split["train"]}
    test = load_json(MULTIWOZ / "test.json.zip")
    for copy in TEST_COPIES_OF_VAL:
        assert tuple(" ".join(t["text"].split()).casefold() for t in test[copy]["log"]) in train_texts


def test_multiwoz_train_and_valid_keep_their_val_dialogues_and_train_gains_the_old_test_share():
    val = load_json(MULTIWOZ / "val.json.zip")
    before = splits.assign(  # the split of val before the official test shipped
        val.items(), lambda item: item[0], lambda item: tuple(" ".join(t["text"].split()).casefold() for t in item[1]["log"])
    )
    before = {name: [dialogue_id for dialogue_id, _ in items] for name, items in before.items()}
    by_split = task_oriented.read_multiwoz()
    assert ids(by_split["train"]) == before["train"] + before["test"]  # old train first, in its order
    assert ids(by_split["valid"]) == before["valid"]
    assert {c.origin for c in by_split["train"] + by_split["valid"]} == {"val"}
    assert [len(before[s]) for s in splits.SPLITS] == [780, 101, 118]
    assert [len(by_split[s]) for s in splits.SPLITS] == [898, 101, 998]
