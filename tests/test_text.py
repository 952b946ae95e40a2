"""Tokenisation for scoring: one token per CJK character, English as the standard tools."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parlai_dialogft.evaluation.text import (
    LANGS,
    cjk_aware_tokenize,
    detect_lang,
    resolve_lang,
    rouge_tokenize,
)


class TestDetectLang:
    @pytest.mark.parametrize(
        "text",
        ["我想订一间双人房。", "我在 Starbucks 等你", "iPhone14很好用", "好的 OK"],
    )
    def test_mostly_chinese_text_is_zh(self, text):
        assert detect_lang(text) == "zh"

    @pytest.mark.parametrize(
        "text",
        ["I need a hotel in the east.", "Let's meet at 星巴克 at 5pm", "", "123 :)"],
    )
    def test_mostly_latin_text_and_text_without_letters_is_en(self, text):
        assert detect_lang(text) == "en"

    def test_auto_resolves_by_detection_and_explicit_langs_pass_through(self):
        assert resolve_lang("auto", "你好") == "zh"
        assert resolve_lang("en", "你好") == "en"
        with pytest.raises(ValueError, match="lang must be"):
            resolve_lang("fr", "bonjour")


class TestCjkAwareTokenize:
    def test_each_chinese_character_is_a_token_and_punctuation_goes(self):
        assert cjk_aware_tokenize("好的，请问您几点到？") == [
            "好", "的", "请", "问", "您", "几", "点", "到",
        ]

    def test_latin_words_and_numbers_inside_chinese_stay_whole_and_lowercased(self):
        assert cjk_aware_tokenize("我买了iPhone14，花了5000元") == [
            "我", "买", "了", "iphone14", "花", "了", "5000", "元",
        ]

    def test_english_follows_parlai_normalisation(self):
        # Lowercase, ASCII punctuation to spaces, articles dropped (ParlAI/SQuAD).
        assert cjk_aware_tokenize("The hotel's price is $120, isn't it?") == [
            "hotel", "s", "price", "is", "120", "isn", "t", "it",
        ]

    def test_articles_are_kept_in_chinese_text_where_a_is_a_name(self):
        assert cjk_aware_tokenize("A座在三楼", lang="zh") == ["a", "座", "在", "三", "楼"]
        assert cjk_aware_tokenize("A座在三楼", lang="en") == ["座", "在", "三", "楼"]

    def test_unicode_punctuation_is_not_a_token(self):
        assert cjk_aware_tokenize("“Hello” — he said…") == ["hello", "he", "said"]

    def test_kana_is_split_but_hangul_words_stay_whole(self):
        assert cjk_aware_tokenize("ありがとう") == ["あ", "り", "が", "と", "う"]
        assert cjk_aware_tokenize("감사 합니다") == ["감사", "합니다"]

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.sampled_from("我想订一间房，。！A1b ?-")), st.sampled_from(LANGS))
    def test_a_token_with_a_cjk_character_is_that_character_alone(self, text, lang):
        for token in cjk_aware_tokenize(text, lang):
            if any(ch in "我想订一间房" for ch in token):
                assert len(token) == 1, token
            assert not any(ch in token for ch in "，。！?-"), token  # punctuation is gone

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=string.printable))
    def test_ascii_english_equals_parlai_normalize_answer(self, text):
        from parlai.core.metrics import normalize_answer

        assert cjk_aware_tokenize(text, lang="en") == normalize_answer(text).split()


class TestRougeTokenize:
    def test_chinese_characters_survive_unlike_rouge_score(self):
        from rouge_score.tokenize import tokenize

        assert tokenize("你好，世界", None) == []  # why this module exists
        assert rouge_tokenize("你好，世界") == ["你", "好", "世", "界"]

    def test_articles_are_kept_as_rouge_score_does(self):
        assert rouge_tokenize("The cat, a dog!") == ["the", "cat", "a", "dog"]

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.characters(exclude_categories=["Cs"], max_codepoint=0x2E7F)))
    def test_text_without_cjk_equals_rouge_score_default_tokenizer(self, text):
        from rouge_score.tokenize import tokenize

        assert rouge_tokenize(text) == tokenize(text, None)
