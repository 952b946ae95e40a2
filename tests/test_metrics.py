"""compute(): equal to the field's tools on English, and meaningful on Chinese."""

from __future__ import annotations

import subprocess
import sys

import pytest

from parlai_dialogft.evaluation.metrics import METRIC_NAMES, compute

# MultiWOZ-style replies (detokenized), model-like hypotheses.
EN_HYPS = [
    "I can help you with that. What is your price range?",
    "The Allenbell is cheap and has free wifi and parking.",
    "What day will you be staying?",
    "I have booked it for you, the reference number is 7GAWK763.",
    "Is there anything else I can help you with?",
]
EN_REFS = [
    "I can help you with that. What price range are you looking for?",
    "If you'd like something cheap, I recommend the Allenbell.",
    "What day will you be staying and how many nights?",
    "Booking was successful. Reference number is: 7GAWK763.",
    "Can I help you with anything else today?",
]

# CrossWOZ / KdConv-style replies.
ZH_HYPS = [
    "推荐您去讲礼驴肉馆用餐，人均消费68元。",
    "周边的景点有小汤山镇。",
    "地址是小汤山镇讲礼村。",
    "它位于北京798艺术区，创办于2003年。",
    "不需要门票，是免费开放的。",
]
ZH_REFS = [
    "抱歉，消费价格没有符合您要求的，推荐您去人均消费68元的讲礼驴肉馆用餐。",
    "周边的景点有小汤山镇, 小汤山现代农业科技示范园。",
    "地址是在小汤山镇讲礼村讲礼大队对面。",
    "有些了解，它位于北京798艺术区，创办于2003年。",
    "我知道，不需要，是免费开放。",
]


def test_compute_returns_every_documented_metric():
    assert set(compute(EN_HYPS, EN_REFS)) == set(METRIC_NAMES)


def test_importing_metrics_and_computing_does_not_import_torch():
    code = (
        "import sys; from parlai_dialogft.evaluation.metrics import compute; "
        "compute(['你好'], ['你好吗']); compute(['hi there'], ['hello there']); "
        "assert 'torch' not in sys.modules and 'parlai' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class TestCorpusBleuEqualsSacrebleu:
    def test_english_with_13a(self):
        import sacrebleu

        expected = sacrebleu.corpus_bleu(EN_HYPS, [EN_REFS]).score
        assert compute(EN_HYPS, EN_REFS, lang="en")["sacrebleu"] == pytest.approx(
            expected, abs=0.01
        )

    def test_chinese_with_zh(self):
        import sacrebleu

        expected = sacrebleu.corpus_bleu(ZH_HYPS, [ZH_REFS], tokenize="zh").score
        assert expected > 10  # a real, non-degenerate score to compare with
        assert compute(ZH_HYPS, ZH_REFS)["sacrebleu"] == pytest.approx(expected, abs=0.01)

    def test_a_varying_number_of_references_per_reply(self):
        import sacrebleu

        refs = [[r] for r in EN_REFS]
        refs[0].append("Sure, what price range would you like?")
        refs[2].append("Which day would you like to arrive?")
        # sacrebleu takes reference streams; None marks a missing reference.
        streams = [EN_REFS, [r[1] if len(r) > 1 else None for r in refs]]
        expected = sacrebleu.corpus_bleu(EN_HYPS, streams).score
        assert compute(EN_HYPS, refs)["sacrebleu"] == pytest.approx(expected, abs=0.01)

    def test_is_on_sacrebleus_0_to_100_scale_unlike_sentence_averaged_bleu(self):
        result = compute(EN_HYPS, EN_REFS)
        assert 1 < result["sacrebleu"] <= 100
        assert 0 < result["bleu-4"] < 1


class TestRouge:
    def test_english_equals_rouge_score_default_tokenizer(self):
        from rouge_score.rouge_scorer import RougeScorer

        scorer = RougeScorer(["rouge1", "rouge2", "rougeL"])
        scores = [scorer.score(ref, hyp) for hyp, ref in zip(EN_HYPS, EN_REFS)]
        result = compute(EN_HYPS, EN_REFS)
        pairs = [("rouge-1", "rouge1"), ("rouge-2", "rouge2"), ("rouge-L", "rougeL")]
        for ours, theirs in pairs:
            expected = sum(s[theirs].fmeasure for s in scores) / len(scores)
            assert result[ours] == pytest.approx(expected, abs=1e-9)

    def test_chinese_by_hand(self):
        # Tokens: 我 想 订 房 (4) against 我 想 订 一 间 房 (6).
        # ROUGE-1: 4 shared; P = 4/4, R = 4/6, F = 2PR/(P+R) = (4/3)/(5/3) = 0.8
        # ROUGE-2: 我想 想订 订房 vs 我想 想订 订一 一间 间房: 2 shared;
        #          P = 2/3, R = 2/5, F = (8/15)/(16/15) = 0.5
        # ROUGE-L: LCS 我想订房 = 4, same as ROUGE-1: 0.8
        result = compute(["我想订房"], ["我想订一间房"])
        assert result["rouge-1"] == pytest.approx(0.8)
        assert result["rouge-2"] == pytest.approx(0.5)
        assert result["rouge-L"] == pytest.approx(0.8)

    def test_best_reference_counts(self):
        result = compute(["我想订房"], [["完全无关", "我想订一间房"]])
        assert result["rouge-1"] == pytest.approx(0.8)


class TestTokenF1:
    def test_chinese_by_hand(self):
        # 好 的 我 帮 您 订 (6) vs 好 的 马 上 帮 您 预 订 (8); shared 好 的 帮 您 订 = 5.
        # P = 5/6, R = 5/8, F1 = 2 * 5 / (6 + 8) = 10/14
        result = compute(["好的，我帮您订。"], ["好的，马上帮您预订。"])
        assert result["f1"] == pytest.approx(10 / 14)
        assert result["precision"] == pytest.approx(5 / 6)
        assert result["recall"] == pytest.approx(5 / 8)

    def test_english_equals_parlai_f1_and_bleu(self):
        from parlai.core.metrics import BleuMetric, F1Metric

        result = compute(EN_HYPS, EN_REFS)
        f1 = sum(F1Metric.compute(h, [r]).value() for h, r in zip(EN_HYPS, EN_REFS))
        assert result["f1"] == pytest.approx(f1 / len(EN_HYPS))
        for k in range(1, 5):
            bleu = [BleuMetric.compute(h, [r], k).value() for h, r in zip(EN_HYPS, EN_REFS)]
            assert result[f"bleu-{k}"] == pytest.approx(sum(bleu) / len(bleu))

    def test_punctuation_does_not_break_exact_match(self):
        assert compute(["好的。"], ["好的！"])["accuracy"] == 1.0
        assert compute(["好的"], ["好"])["accuracy"] == 0.0


def test_chinese_scores_are_not_degenerate_where_parlais_are():
    from parlai.core.metrics import F1Metric

    # ParlAI splits on whitespace: each Chinese reply is one token, right or wrong.
    assert all(F1Metric.compute(h, [r]).value() == 0 for h, r in zip(ZH_HYPS, ZH_REFS))
    result = compute(ZH_HYPS, ZH_REFS)
    for name in ("bleu-1", "bleu-2", "bleu-4", "rouge-1", "rouge-2", "rouge-L", "f1"):
        assert 0.2 < result[name] < 1, name
    assert 0.5 < result["dist-1"] < 1 and 0.5 < result["dist-2"] <= 1
    assert result["len"] > 8  # characters, not one token per reply


class TestReplyShape:
    def test_dist_len_rep_english_by_hand(self):
        # Tokens: [i, am, fine] and [i, am, fine, thanks].
        # len = (3 + 4) / 2 = 3.5
        # dist-1: distinct {i, am, fine, thanks} = 4 of 7 unigrams
        # dist-2: distinct {i am, am fine, fine thanks} = 3 of 2 + 3 = 5 bigrams
        # rep: no bigram repeats inside either reply = 0
        result = compute(["I am fine.", "I am fine, thanks!"], ["ok", "ok"])
        assert result["len"] == 3.5
        assert result["dist-1"] == pytest.approx(4 / 7)
        assert result["dist-2"] == pytest.approx(3 / 5)
        assert result["rep"] == 0.0

    def test_rep_chinese_by_hand(self):
        # 哈哈哈哈: bigrams 哈哈 x3, 1 distinct -> 1 - 1/3 = 2/3
        # 我也是我也是: 我也 也是 是我 我也 也是, 3 distinct of 5 -> 1 - 3/5 = 2/5
        # 好: no bigram -> 0
        # rep = mean(2/3, 2/5, 0) = 16/45
        result = compute(["哈哈哈哈", "我也是我也是", "好"], ["好", "好", "好"])
        assert result["rep"] == pytest.approx(16 / 45)
        assert result["len"] == pytest.approx((4 + 6 + 1) / 3)
        # unigrams: 哈 我 也 是 好 distinct = 5 of 11
        assert result["dist-1"] == pytest.approx(5 / 11)

    def test_empty_replies_score_zero_not_nan(self):
        result = compute(["", "。"], ["好的", "谢谢"])
        assert all(value == 0 for value in result.values()), result


class TestArguments:
    def test_a_reference_string_equals_a_list_of_one(self):
        assert compute(ZH_HYPS, ZH_REFS) == compute(ZH_HYPS, [[r] for r in ZH_REFS])

    def test_lengths_must_match(self):
        with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
            compute(["a", "b"], ["a"])

    def test_a_bare_string_is_refused(self):
        with pytest.raises(TypeError, match="one entry per reply"):
            compute("hello", "hello")
