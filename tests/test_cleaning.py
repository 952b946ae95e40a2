"""The cleaning step every dialogft teacher shares: specs first, then properties."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parlai_dialogft.data.cleaning import (
    CleaningOptions,
    CleaningReport,
    clean_conversations,
    clean_text,
    clean_turns,
)
from parlai_dialogft.data.conversation import Conversation, Turn
from tests.support.strategies import ADVERSARIAL

DEFAULT = CleaningOptions()
MASKING = CleaningOptions(mask_pii=True)


def conversation(*turns, cid="c1"):
    return Conversation(cid, "test", "en", tuple(Turn(s, t) for s, t in turns))


# --- text ---------------------------------------------------------------------------------


def test_full_width_letters_and_digits_become_ascii():
    assert clean_text("ＡＢＣ　１２３", DEFAULT) == "ABC 123"


def test_nfkc_keeps_full_width_punctuation_in_cjk_text_and_folds_the_rest():
    assert clean_text("你好，请问？", DEFAULT) == "你好，请问？"
    assert clean_text("房间ＡＢＣ１２３号（免费）：有ＷＩＦＩ！", DEFAULT) == "房间ABC123号（免费）：有WIFI！"
    assert clean_text("ｈｉ，ｔｈｅｒｅ！", DEFAULT) == "hi,there!"  # no CJK: punctuation folds too
    assert clean_text("ｶﾀｶﾅ｡", DEFAULT) == "カタカナ。"  # half-width forms are compatibility forms
    assert clean_text("你好,请问?", DEFAULT) == "你好,请问?"  # ASCII punctuation is left as typed


FULL_WIDTH = set("，。！？：；（）【】、《》“”")


@pytest.mark.parametrize("reader", ["task_oriented.read_crosswoz", "chitchat.read_kdconv"])
def test_real_chinese_turns_keep_every_punctuation_mark(reader):
    import importlib

    module, function = reader.split(".")
    split = getattr(importlib.import_module(f"parlai_dialogft.data.readers.{module}"), function)()
    turns = [turn.text for conversation in split["valid"][:30] for turn in conversation.turns]
    punctuated = [text for text in turns if FULL_WIDTH & set(text)]
    assert len(punctuated) > 100
    for text in punctuated:
        cleaned = clean_text(text, DEFAULT)
        assert [c for c in cleaned if c in FULL_WIDTH] == [c for c in text if c in FULL_WIDTH], text


def test_control_and_invisible_characters_are_removed_but_emoji_joiners_kept():
    assert clean_text("a\x00b\x1bc\u200bd\ufeffe", DEFAULT) == "abcde"
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"
    assert clean_text(family, DEFAULT) == family


def test_whitespace_runs_collapse_but_line_breaks_and_indentation_stay():
    text = "  Here   is\t code: \r\n\r\n\r\n\r\n    def f():\n\t\treturn 1   \n"
    assert clean_text(text, DEFAULT) == "Here is code:\n\n    def f():\n\t\treturn 1"


def test_pii_is_kept_unless_masking_is_asked_for():
    text = "write to jane.doe@example.com or call +1 (555) 123-4567"
    assert clean_text(text, DEFAULT) == text
    report = CleaningReport()
    assert clean_text(text, MASKING, report) == "write to <email> or call <phone>"
    assert (report["masked_emails"], report["masked_phones"]) == (1, 1)


def test_phone_masking_works_next_to_chinese_text_and_spares_short_numbers():
    assert clean_text("电话13812345678，2019年见", MASKING) == "电话<phone>，2019年见"
    assert clean_text("table for 2 at 7:30, room 1204", MASKING) == "table for 2 at 7:30, room 1204"


# --- conversations ------------------------------------------------------------------------


def test_an_empty_turn_is_dropped_and_the_same_speaker_turns_around_it_merge():
    report = CleaningReport()
    turns = clean_turns(
        conversation(("user", "hi"), ("agent", " \u200b "), ("user", "anyone?"), ("agent", "yes")).turns,
        DEFAULT,
        report,
    )
    assert [(t.speaker, t.text) for t in turns] == [("user", "hi\nanyone?"), ("agent", "yes")]
    assert (report["empty_turns"], report["merged_turns"]) == (1, 1)


def test_a_conversation_is_cut_before_an_over_long_turn():
    report = CleaningReport()
    options = CleaningOptions(max_turn_chars=10)
    turns = clean_turns(
        conversation(("user", "hi"), ("agent", "hello"), ("user", "x" * 11), ("agent", "ok")).turns,
        options,
        report,
    )
    assert [t.text for t in turns] == ["hi", "hello"]
    assert (report["long_turns"], report["cut_turns"]) == (1, 1)


def test_exact_duplicates_and_one_speaker_conversations_are_dropped_and_counted():
    report = CleaningReport()
    kept = clean_conversations(
        [
            conversation(("user", "hi"), ("agent", "hello"), cid="a"),
            conversation(("user", "hi "), ("agent", "hello"), cid="b"),  # same once cleaned
            conversation(("user", "hi"), ("agent", ""), cid="c"),
        ],
        DEFAULT,
        report,
    )
    assert [c.id for c in kept] == ["a"]
    assert (report["duplicates"], report["single_speaker"], report["empty_turns"]) == (1, 1, 1)
    assert report.summary() == (
        "1 turns normalised; 1 empty turns dropped; 1 one-speaker conversations dropped; "
        "1 duplicate conversations dropped"
    )


def test_deduplication_can_be_turned_off():
    same = [conversation(("user", "hi"), ("agent", "hello"), cid=c) for c in "ab"]
    kept = clean_conversations(same, CleaningOptions(dedup=False), CleaningReport())
    assert len(kept) == 2


# --- properties ---------------------------------------------------------------------------

OPTIONS = st.builds(
    CleaningOptions,
    normalize=st.sampled_from(["nfkc", "nfc", "none"]),
    max_turn_chars=st.sampled_from([0, 5, 2000]),
    mask_pii=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(ADVERSARIAL, OPTIONS)
def test_cleaning_is_idempotent(text, options):
    once = clean_text(text, options)
    assert clean_text(once, options) == once


@settings(max_examples=300, deadline=None)
@given(ADVERSARIAL, OPTIONS)
def test_clean_text_is_trimmed_encodable_and_free_of_control_characters(text, options):
    cleaned = clean_text(text, options)
    cleaned.encode("utf-8")  # no lone surrogates
    assert cleaned == cleaned.strip()
    assert "\n\n\n" not in cleaned and "\r" not in cleaned
    assert all(
        ch in "\n\t\u200d" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs") for ch in cleaned
    )
    if options.normalize != "none":
        assert unicodedata.is_normalized(options.normalize.upper(), cleaned)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=50), st.from_regex(r"[a-z]{1,8}\.[a-z]{1,8}@[a-z]{2,8}\.(com|cn)", fullmatch=True))
def test_masked_text_keeps_no_email_address(prefix, email):
    cleaned = clean_text(f"{prefix} {email} ", MASKING)
    assert email not in cleaned and not re.search(r"\S+@\S+\.[a-z]{2,}", cleaned)


TURNS = st.lists(st.tuples(st.sampled_from(["user", "agent", "system"]), ADVERSARIAL), max_size=12)


@settings(max_examples=200, deadline=None)
@given(TURNS, OPTIONS)
def test_every_turn_is_kept_or_accounted_for(turns, options):
    report = CleaningReport()
    kept = clean_turns([Turn(s, t) for s, t in turns], options, report)
    accounted = sum(report[k] for k in ("empty_turns", "merged_turns", "long_turns", "cut_turns"))
    assert len(kept) + accounted == len(turns)
    assert all(t.text for t in kept)
    assert all(a.speaker != b.speaker for a, b in zip(kept, kept[1:]))
    if options.max_turn_chars:
        # A merge may join two short turns into a longer one, never an over-long one in.
        assert all(len(part) <= options.max_turn_chars for t in kept for part in t.text.split("\n"))


@settings(max_examples=100, deadline=None)
@given(st.lists(TURNS, max_size=6), OPTIONS)
def test_cleaned_conversations_have_two_speakers_and_no_duplicates(conversations, options):
    convs = [conversation(*turns, cid=str(i)) for i, turns in enumerate(conversations)]
    report = CleaningReport()
    kept = clean_conversations(convs, options, report)
    assert len(kept) + report["single_speaker"] + report["duplicates"] == len(convs)
    assert all(len({t.speaker for t in c.turns}) >= 2 for c in kept)
    fingerprints = [tuple((t.speaker, t.text) for t in c.turns) for c in kept]
    assert len(set(fingerprints)) == len(fingerprints)
