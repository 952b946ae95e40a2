"""Inside ParlAI: our metrics aggregate exactly and a mixin teacher reports them."""

from __future__ import annotations

import copy
import functools
import os
import operator
import pickle

import pytest
from parlai.core.loader import register_teacher
from parlai.core.message import Message
from parlai.core.metrics import (
    AverageMetric,
    F1Metric,
    aggregate_named_reports,
    aggregate_unnamed_reports,
)
from parlai.core.teachers import DialogTeacher

from parlai_dialogft.evaluation.metrics import METRIC_NAMES, compute
from parlai_dialogft.evaluation.teacher_metrics import (
    DialogueMetricsMixin,
    DialogueTeacherMetrics,
    DistinctMetric,
    example_metrics,
    selected_metrics,
)

# (what the user says, the gold reply). The tiny teacher's agent is repeat_query, which
# replies with what the user said: replies are near-misses of the gold ones.
EXAMPLES = [
    ("好的，请问您想住哪个区？", "好的，请问您想住在哪个区？"),
    ("推荐您去全聚德吃烤鸭。", "推荐您去全聚德，那里的烤鸭很有名。"),
    ("地址是王府井大街。", "地址是王府井大街88号。"),
    ("哈哈哈哈哈", "不客气，祝您旅途愉快！"),
    ("门票是免费的。", "不需要门票，是免费开放。"),
]
REPLIES = [text for text, _ in EXAMPLES]
GOLD = [label for _, label in EXAMPLES]


class _TinyTeacher(DialogTeacher):
    def __init__(self, opt, shared=None):
        opt = copy.deepcopy(opt)
        # Under datapath: streaming teachers cache "<datafile>.lengths" next to it.
        opt["datafile"] = os.path.join(opt["datapath"], opt["datatype"].split(":")[0])
        super().__init__(opt, shared)

    def setup_data(self, datafile):
        for text, label in EXAMPLES:
            yield {"text": text, "labels": [label]}, True


@register_teacher("tiny_zh_metrics_test")
class TinyChineseTeacher(DialogueMetricsMixin, _TinyTeacher):
    pass


@register_teacher("tiny_plain_metrics_test")
class TinyPlainTeacher(_TinyTeacher):
    """ParlAI's own metrics, for contrast."""


@pytest.fixture(autouse=True)
def _datapath(tmp_path, monkeypatch):
    """ParlAI scripts write under --datapath; keep it out of the source tree."""
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("PARLAI_DATAPATH", str(tmp_path / "data"))


def evaluate(task: str, **kwargs):
    from parlai.scripts.eval_model import EvalModel

    return EvalModel.main(task=task, model="repeat_query", datatype="valid", **kwargs)


class TestMetricAggregation:
    def test_summing_example_metrics_equals_compute_on_the_list(self):
        per_example = [example_metrics(r, [g], "auto") for r, g in EXAMPLES]
        expected = compute(REPLIES, GOLD)
        for name in METRIC_NAMES:
            total = functools.reduce(operator.add, (m[name] for m in per_example))
            assert total.value() == pytest.approx(expected[name]), name

    def test_reports_from_two_processes_combine_into_the_corpus_value(self):
        # As in distributed eval: each worker's report is pickled, gathered and added.
        workers = [DialogueTeacherMetrics(), DialogueTeacherMetrics()]
        for i, (reply, gold) in enumerate(EXAMPLES):
            workers[i % 2].evaluate_response(Message({"text": reply}), [gold])
        gathered = [pickle.loads(pickle.dumps(w.report())) for w in workers]
        report = aggregate_unnamed_reports(gathered)
        expected = compute(REPLIES, GOLD)
        assert report["exs"].value() == len(EXAMPLES)
        for name in METRIC_NAMES:
            assert report[name].value() == pytest.approx(expected[name]), name

    def test_distinct_stays_exact_when_chunks_are_merged(self):
        replies = [[("w", i % 7), ("w", i)] for i in range(3 * DistinctMetric.MAX_CHUNKS)]
        total = functools.reduce(operator.add, (DistinctMetric(r) for r in replies))
        all_ngrams = [g for r in replies for g in r]
        assert total.value() == len(set(all_ngrams)) / len(all_ngrams)

    def test_adding_does_not_change_the_operands(self):
        first, second = DistinctMetric([("a",)]), DistinctMetric([("b",), ("a",)])
        first + second
        assert first.value() == 1.0 and second.value() == 1.0

    def test_a_multitask_report_mixing_our_teacher_and_a_plain_one_adds_up(self):
        ours = DialogueTeacherMetrics()
        ours.evaluate_response(Message({"text": "好的，请问您几点到？"}), ["好的，请问您几点到？"])
        plain = {"f1": F1Metric(0.5), "bleu-4": AverageMetric(0.25)}
        report = aggregate_named_reports(
            {"ours": ours.report(), "plain": plain}, micro_average=True
        )
        assert report["f1"].value() == pytest.approx(0.75)
        assert report["bleu-4"].value() == pytest.approx((1 + 0.25) / 2)


class TestDialogueTeacherMetrics:
    def test_an_agents_metric_under_our_name_is_kept_apart(self):
        metrics = DialogueTeacherMetrics()
        observation = Message(
            {
                "text": "好的",
                "metrics": {
                    "len": AverageMetric(99),
                    "bleu-4": AverageMetric(1),
                    "ppl": AverageMetric(3),
                },
            }
        )
        metrics.evaluate_response(observation, ["好的"])
        report = metrics.report()
        assert report["len"].value() == 2  # ours: two characters
        assert report["USER_len"].value() == 99
        assert report["USER_bleu-4"].value() == 1
        assert report["ppl"].value() == 3  # the agent's own metrics pass through

    @pytest.mark.parametrize(
        "metrics_list, expected",
        [
            ("default", set(METRIC_NAMES)),
            ("all", set(METRIC_NAMES)),
            ("bleu", {"bleu-1", "bleu-2", "bleu-3", "bleu-4", "sacrebleu"}),
            ("rouge,len", {"rouge-1", "rouge-2", "rouge-L", "len"}),
            ("ppl,token_acc", set()),
        ],
    )
    def test_metrics_flag_selects_ours_and_f1_family_always(self, metrics_list, expected):
        always = {"f1", "precision", "recall", "accuracy"}
        assert selected_metrics(metrics_list) == expected | always


class TestMixinTeacherThroughEvalModel:
    def test_report_holds_our_metrics_and_equals_compute(self, capsys):
        report = evaluate("tiny_zh_metrics_test")
        expected = compute(REPLIES, GOLD)
        assert report["exs"].value() == len(EXAMPLES)
        for name in METRIC_NAMES:
            assert report[name].value() == pytest.approx(expected[name]), name
        assert expected["rouge-L"] > 0.5 and expected["sacrebleu"] > 20  # not degenerate
        printed = capsys.readouterr().out
        for name in ("sacrebleu", "rouge-L", "dist-2", "rep"):
            assert name in printed  # shown by default, no --metrics flag needed

    def test_batched_eval_with_teacher_clones_gives_the_same_numbers(self):
        single = evaluate("tiny_zh_metrics_test")
        batched = evaluate("tiny_zh_metrics_test", batchsize=2)
        for name in METRIC_NAMES:
            assert batched[name].value() == pytest.approx(single[name].value()), name

    def test_parlais_own_teacher_scores_chinese_as_nothing(self):
        # The problem the mixin solves: whole sentences are single tokens.
        report = evaluate("tiny_plain_metrics_test")
        assert report["f1"].value() == 0
        assert "rouge-L" not in report

    def test_metrics_flag_narrows_what_is_recorded(self):
        report = evaluate("tiny_zh_metrics_test", metrics="bleu")
        assert "sacrebleu" in report and "bleu-4" in report
        assert "rouge-L" not in report and "dist-1" not in report

    def test_our_names_work_as_validation_metric(self, tmp_path):
        from parlai.scripts.train_model import TrainModel

        valid, _test = TrainModel.main(
            task="tiny_zh_metrics_test",
            model="repeat_query",
            model_file=str(tmp_path / "model"),
            num_epochs=1,
            validation_every_n_epochs=1,
            validation_metric="sacrebleu",
            validation_metric_mode="max",
        )
        expected = compute(REPLIES, GOLD)["sacrebleu"]
        assert valid["sacrebleu"].value() == pytest.approx(expected)
