"""Our language-aware metrics inside ParlAI: Metric classes and a teacher mixin.

ParlAI teachers score replies in ``TeacherMetrics.evaluate_response``, with English-only
normalisation. Put :class:`DialogueMetricsMixin` first among a teacher's bases and the
teacher records the metrics of :mod:`parlai_dialogft.evaluation.metrics` instead, under the same
names where ParlAI has them (``f1``, ``bleu-1``..``bleu-4``, ``accuracy``, ``precision``,
``recall``) and under new ones where it does not (``rouge-1/2/L``, ``sacrebleu``,
``dist-1``, ``dist-2``, ``len``, ``rep``)::

    class CustomerServiceTeacher(DialogueMetricsMixin, DialogTeacher):
        metrics_lang = "zh"  # optional; "auto" detects per example

Every name works as ``--validation-metric`` (``-vmt sacrebleu -vmm max``).

Which metrics are recorded follows ``--metrics`` (``-mcs``), which in ParlAI both selects
and displays metrics: ``default`` and ``all`` mean all of ours, so ``parlai eval_model``
shows them without any flag; ``bleu`` (bleu-1..4 and sacrebleu), ``rouge`` and
``distinct`` (dist-1, dist-2) select groups; other names select themselves. As in ParlAI,
f1, precision, recall and accuracy are always recorded. ParlAI's English-only
``interdistinct-n`` and ``intradistinct-n`` are not computed: ``dist-n`` is
``interdistinct-n`` with CJK-aware tokens.

This module imports ParlAI, hence torch; :mod:`parlai_dialogft.evaluation.metrics` does not.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Set

from parlai.core.message import Message
from parlai.core.metrics import AverageMetric, Metric, SumMetric, TeacherMetrics

from parlai_dialogft.evaluation.metrics import (
    BLEU_METRICS,
    DISTINCT_METRICS,
    DISTINCT_ORDERS,
    METRIC_NAMES,
    ROUGE_METRICS,
    BleuStats,
    Ngram,
    distinct,
    score_example,
)

# ParlAI's TeacherMetrics records these whatever --metrics says; so do we.
ALWAYS_RECORDED = frozenset({"f1", "precision", "recall", "accuracy"})
METRIC_GROUPS = {
    "default": METRIC_NAMES,
    "all": METRIC_NAMES,
    "bleu": BLEU_METRICS + ("sacrebleu",),
    "rouge": ROUGE_METRICS,
    "distinct": DISTINCT_METRICS,
}


class CorpusBleuMetric(Metric):
    """Corpus BLEU (sacrebleu) that sums match counts and lengths, never averages scores."""

    __slots__ = ("_stats",)

    def __init__(self, stats: BleuStats):
        self._stats = stats

    @property
    def macro_average(self) -> bool:
        # Across tasks of a multitask run, average the per-task corpus scores, as ParlAI
        # does for its own averaged metrics; ``--aggregate-micro`` pools the statistics.
        return True

    def __add__(self, other: Optional["CorpusBleuMetric"]) -> "CorpusBleuMetric":
        if other is None:
            return self
        return CorpusBleuMetric(self._stats + other._stats)

    def value(self) -> float:
        return self._stats.score()


class DistinctMetric(Metric):
    """dist-n over every reply seen, kept as the n-grams themselves, never as averages.

    ParlAI adds a metric to its running total once per example and keeps the old value
    alive (it is also the example's "recent" metric), so ``__add__`` must not mutate.
    Merging whole sets on every add would cost O(examples x vocabulary); instead each
    metric keeps a tuple of frozen chunks, merged into one only every ``MAX_CHUNKS`` adds.
    """

    __slots__ = ("_chunks", "_total")
    MAX_CHUNKS = 64

    def __init__(self, ngrams: Iterable[Ngram] = ()):
        ngrams = list(ngrams)
        self._chunks = (frozenset(ngrams),)
        self._total = len(ngrams)

    @classmethod
    def _from_parts(cls, chunks: tuple, total: int) -> "DistinctMetric":
        metric = cls.__new__(cls)
        if len(chunks) > cls.MAX_CHUNKS:
            chunks = (frozenset().union(*chunks),)
        metric._chunks = chunks
        metric._total = total
        return metric

    @property
    def macro_average(self) -> bool:
        return True  # see CorpusBleuMetric

    def __add__(self, other: Optional["DistinctMetric"]) -> "DistinctMetric":
        if other is None:
            return self
        return self._from_parts(self._chunks + other._chunks, self._total + other._total)

    def value(self) -> float:
        return distinct(len(frozenset().union(*self._chunks)), self._total)


def example_metrics(prediction: str, labels: List[str], lang: str) -> Dict[str, Metric]:
    """One reply's contribution to every metric, as ParlAI Metric objects."""
    scores = score_example(prediction, labels, lang)
    metrics: Dict[str, Metric] = {
        name: AverageMetric(value) for name, value in scores.averaged.items()
    }
    metrics["sacrebleu"] = CorpusBleuMetric(scores.bleu)
    for n in DISTINCT_ORDERS:
        metrics[f"dist-{n}"] = DistinctMetric(scores.reply_ngrams[n])
    return metrics


def selected_metrics(metrics_list: str) -> Set[str]:
    """Which of our metrics a ``--metrics`` value asks for."""
    selected = set(ALWAYS_RECORDED)
    for name in (metrics_list or "default").split(","):
        name = name.strip()
        selected.update(METRIC_GROUPS.get(name, (name,)))
    return selected & set(METRIC_NAMES)


class DialogueTeacherMetrics(TeacherMetrics):
    """ParlAI's TeacherMetrics with our metrics in place of its English-only ones."""

    def __init__(
        self,
        metrics_list: str = "default",
        shared: Optional[dict] = None,
        lang: str = "auto",
    ) -> None:
        super().__init__(metrics_list=metrics_list, shared=shared)
        self.lang = lang
        self._selected = selected_metrics(metrics_list)

    def evaluate_response(self, observation: Message, labels: List[str]) -> None:
        # Replaces ParlAI's version rather than extending it: calling it as well would
        # record f1/bleu twice under one name, mixing English-only and our values.
        self.add("exs", SumMetric(1))
        prediction = observation.get("text", None)
        if prediction is not None and labels:
            scored = example_metrics(prediction, list(labels), self.lang)
            for name, metric in scored.items():
                if name in self._selected:
                    self.add(name, metric)
        self._update_ranking_metrics(observation, labels)
        self._consume_user_metrics(observation)

    def _consume_user_metrics(self, observation) -> None:
        # ParlAI renames an agent's metric to USER_<name> when the name is one of the
        # teacher's (so a model cannot overwrite its own score); extend that to our names,
        # which ParlAI does not know. Without it an agent reporting e.g. "len" as an
        # AverageMetric would be added to our running total.
        user_metrics = observation.get("metrics") if observation else None
        if not user_metrics:
            return
        renamed = {
            (f"USER_{name}" if name in METRIC_NAMES else name): value
            for name, value in user_metrics.items()
        }
        super()._consume_user_metrics({"metrics": renamed})


class DialogueMetricsMixin:
    """Make a ParlAI teacher record our language-aware metrics; list it before the teacher.

    ``metrics_lang`` ("auto", "en" or "zh") fixes the language of a monolingual task;
    "auto" decides per example from its labels.
    """

    metrics_lang: str = "auto"

    def __init__(self, opt, shared=None, *args, **kwargs):
        # ParlAI's Teacher.__init__ creates ``self.metrics`` only if it does not exist yet;
        # clones share the parent's running totals through shared["metrics"].
        if not hasattr(self, "metrics"):
            self.metrics = DialogueTeacherMetrics(
                metrics_list=opt.get("metrics", "default"),
                shared=shared.get("metrics") if shared else None,
                lang=self.metrics_lang,
            )
        super().__init__(opt, shared, *args, **kwargs)
