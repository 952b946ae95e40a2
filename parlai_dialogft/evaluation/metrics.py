"""Reply-quality metrics that are correct for Chinese and English.

One entry point, :func:`compute`::

    >>> from parlai_dialogft.evaluation.metrics import compute
    >>> compute(["我想订一间房"], [["我想订一间双人房", "请帮我订房"]])["rouge-1"]  # doctest: +SKIP

Every metric is built from per-example pieces (:func:`score_example`) that add up, so the
same numbers come out whether they are computed here on a list or accumulated example by
example inside ParlAI (:mod:`parlai_dialogft.evaluation.teacher_metrics`).

What each key means (tokens are those of :mod:`parlai_dialogft.evaluation.text`):

``bleu-1`` .. ``bleu-4``
    ParlAI-style BLEU, in [0, 1]: NLTK sentence BLEU with uniform weights up to order k,
    smoothing method1 (epsilon 1e-12), averaged over replies. Tokens:
    :func:`~parlai_dialogft.evaluation.text.cjk_aware_tokenize`. On English these equal ParlAI's own
    ``bleu-k``. Sentence-averaged BLEU is *not* the BLEU papers report; that is:
``sacrebleu``
    Corpus BLEU in [0, 100], equal to ``sacrebleu.corpus_bleu`` with its defaults (exp
    smoothing, case-sensitive) and tokenizer ``13a`` for English, ``zh`` for Chinese.
    Accumulated as n-gram match counts and lengths, so it is a true corpus score.
``rouge-1``, ``rouge-2``, ``rouge-L``
    ROUGE F-measure in [0, 1] from rouge-score's ``RougeScorer`` (best over references,
    averaged over replies), with :func:`~parlai_dialogft.evaluation.text.rouge_tokenize`, which
    equals rouge-score's default tokenizer on English.
``f1``, ``precision``, ``recall``
    SQuAD-style token overlap (multiset intersection) with the best reference, averaged
    over replies; as ParlAI, each of the three is maximised over references separately.
``accuracy``
    1 when the reply's tokens equal some reference's tokens (ParlAI's exact match).
``dist-1``, ``dist-2``
    Distinct n-grams over *all* replies divided by the number of n-grams in all replies
    (Li et al., 2016), i.e. ParlAI's ``interdistinct-n`` with CJK-aware tokens.
``len``
    Mean reply length in tokens.
``rep``
    Mean over replies of the share of a reply's bigrams that repeat an earlier bigram of
    the same reply, ``1 - distinct bigrams / bigrams`` (seq-rep-2 of Welleck et al., 2020).
    0 for a reply without repetition or shorter than two tokens; "哈哈哈哈" scores 2/3.

``lang`` is ``"en"``, ``"zh"`` or ``"auto"``. With ``"auto"`` the language is decided per
example from its references (the reference, not a possibly garbled reply, says what
language is being scored), which is also what the ParlAI teacher does.

Heavy libraries (nltk, rouge-score, sacrebleu) are imported on first use.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple, Union

from parlai_dialogft.evaluation.text import (
    RougeTokenizer,
    cjk_aware_tokenize,
    resolve_lang,
)

MAX_ORDER = 4
DISTINCT_ORDERS = (1, 2)
REP_ORDER = 2
SACREBLEU_TOKENIZERS = {"en": "13a", "zh": "zh"}

BLEU_METRICS = tuple(f"bleu-{k}" for k in range(1, MAX_ORDER + 1))
ROUGE_METRICS = ("rouge-1", "rouge-2", "rouge-L")
DISTINCT_METRICS = tuple(f"dist-{n}" for n in DISTINCT_ORDERS)
# Per-reply values; their corpus value is the mean over replies.
AVERAGED_METRICS = (
    BLEU_METRICS
    + ROUGE_METRICS
    + ("f1", "precision", "recall", "accuracy", "len", "rep")
)
CORPUS_METRICS = ("sacrebleu",) + DISTINCT_METRICS
METRIC_NAMES = AVERAGED_METRICS + CORPUS_METRICS

References = Union[str, Sequence[str]]
Ngram = Tuple[str, ...]


def ngrams(tokens: Sequence[str], n: int) -> List[Ngram]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


# ---------------------------------------------------------------- corpus BLEU


@dataclass(frozen=True)
class BleuStats:
    """Sufficient statistics of corpus BLEU; sums over examples, scores once at the end.

    The same numbers sacrebleu keeps per segment: reply length, closest reference length,
    and clipped matches / candidates per n-gram order.
    """

    sys_len: int = 0
    ref_len: int = 0
    correct: Tuple[int, ...] = (0,) * MAX_ORDER
    total: Tuple[int, ...] = (0,) * MAX_ORDER

    def __add__(self, other: "BleuStats") -> "BleuStats":
        return BleuStats(
            self.sys_len + other.sys_len,
            self.ref_len + other.ref_len,
            tuple(a + b for a, b in zip(self.correct, other.correct)),
            tuple(a + b for a, b in zip(self.total, other.total)),
        )

    def score(self) -> float:
        """Corpus BLEU in [0, 100], by sacrebleu's own formula and defaults."""
        from sacrebleu.metrics.bleu import BLEU

        return BLEU.compute_bleu(
            list(self.correct),  # compute_bleu may edit these lists in place
            list(self.total),
            self.sys_len,
            self.ref_len,
            smooth_method="exp",
        ).score


@functools.lru_cache(maxsize=None)
def _sacrebleu_tokenizer(lang: str):
    if SACREBLEU_TOKENIZERS[lang] == "zh":
        from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

        return TokenizerZh()
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def _closest_ref_len(hyp_len: int, ref_lens: Sequence[int]) -> int:
    # sacrebleu's rule: the closest length; on a tie, the shorter reference.
    return min(ref_lens, key=lambda ref_len: (abs(hyp_len - ref_len), ref_len))


def bleu_stats(hypothesis: str, references: Sequence[str], lang: str) -> BleuStats:
    """One segment's statistics, exactly as ``sacrebleu.BLEU`` collects them."""
    tokenize = _sacrebleu_tokenizer(lang)

    def counts(text: str) -> Tuple[Counter, int]:
        # sacrebleu right-strips, tokenizes, then splits on whitespace.
        tokens = tokenize(text.rstrip()).split()
        grams = Counter(g for n in range(1, MAX_ORDER + 1) for g in ngrams(tokens, n))
        return grams, len(tokens)

    ref_max: Counter = Counter()
    ref_lens = []
    for ref in references:
        grams, length = counts(ref)
        ref_lens.append(length)
        for gram, count in grams.items():
            ref_max[gram] = max(ref_max[gram], count)  # clip by the most generous ref

    hyp_grams, hyp_len = counts(hypothesis)
    correct = [0] * MAX_ORDER
    total = [0] * MAX_ORDER
    for gram, count in hyp_grams.items():
        total[len(gram) - 1] += count
        correct[len(gram) - 1] += min(count, ref_max[gram])
    return BleuStats(
        hyp_len, _closest_ref_len(hyp_len, ref_lens), tuple(correct), tuple(total)
    )


# ---------------------------------------------------------------- per-reply scores


def sentence_bleu(hyp_tokens: List[str], ref_tokens: List[List[str]], k: int) -> float:
    """ParlAI's ``BleuMetric.compute`` on already-normalised tokens."""
    from nltk.translate import bleu_score as nltkbleu

    return nltkbleu.sentence_bleu(
        ref_tokens,
        hyp_tokens,
        weights=[1 / k] * k,
        smoothing_function=nltkbleu.SmoothingFunction(epsilon=1e-12).method1,
    )


def precision_recall_f1(
    hyp_tokens: Sequence[str], ref_tokens: Sequence[str]
) -> Tuple[float, float, float]:
    """SQuAD token overlap; 0 when nothing overlaps, even both empty (as ParlAI)."""
    same = sum((Counter(hyp_tokens) & Counter(ref_tokens)).values())
    if same == 0:
        return 0.0, 0.0, 0.0
    precision = same / len(hyp_tokens)
    recall = same / len(ref_tokens)
    return precision, recall, 2 * precision * recall / (precision + recall)


@functools.lru_cache(maxsize=None)
def _rouge_scorer():
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=RougeTokenizer())


def rouge_f(hypothesis: str, references: Sequence[str]) -> Dict[str, float]:
    """ROUGE-1/2/L F-measure against the best reference (per ROUGE type)."""
    scores = _rouge_scorer().score_multi(list(references), hypothesis)
    return {
        "rouge-1": scores["rouge1"].fmeasure,
        "rouge-2": scores["rouge2"].fmeasure,
        "rouge-L": scores["rougeL"].fmeasure,
    }


def repetition_rate(tokens: Sequence[str], n: int = REP_ORDER) -> float:
    grams = ngrams(tokens, n)
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


@dataclass
class ExampleScores:
    """Everything one (reply, references) pair contributes to the corpus metrics."""

    averaged: Dict[str, float]  # AVERAGED_METRICS -> this reply's value
    bleu: BleuStats
    reply_ngrams: Dict[int, List[Ngram]] = field(default_factory=dict)  # for dist-n


def as_reference_list(references: References) -> List[str]:
    if isinstance(references, str):
        return [references]
    references = list(references)
    if not references:
        raise ValueError("every reply needs at least one reference")
    return references


def score_example(
    hypothesis: str, references: References, lang: str = "auto"
) -> ExampleScores:
    """Score one reply against its reference(s)."""
    refs = as_reference_list(references)
    lang = resolve_lang(lang, " ".join(refs))

    hyp_tokens = cjk_aware_tokenize(hypothesis, lang)
    ref_tokens = [cjk_aware_tokenize(r, lang) for r in refs]

    averaged: Dict[str, float] = {}
    for k in range(1, MAX_ORDER + 1):
        averaged[f"bleu-{k}"] = sentence_bleu(hyp_tokens, ref_tokens, k)
    averaged.update(rouge_f(hypothesis, refs))
    overlaps = [precision_recall_f1(hyp_tokens, r) for r in ref_tokens]
    averaged["precision"] = max(p for p, _, _ in overlaps)
    averaged["recall"] = max(r for _, r, _ in overlaps)
    averaged["f1"] = max(f for _, _, f in overlaps)
    averaged["accuracy"] = float(any(hyp_tokens == r for r in ref_tokens))
    averaged["len"] = float(len(hyp_tokens))
    averaged["rep"] = repetition_rate(hyp_tokens)

    return ExampleScores(
        averaged=averaged,
        bleu=bleu_stats(hypothesis, refs, lang),
        reply_ngrams={n: ngrams(hyp_tokens, n) for n in DISTINCT_ORDERS},
    )


def distinct(unique: int, total: int) -> float:
    return unique / total if total else 0.0


def compute(
    hypotheses: Sequence[str],
    references: Sequence[References],
    lang: str = "auto",
) -> Dict[str, float]:
    """All of :data:`METRIC_NAMES` for a list of replies.

    ``references[i]`` is the reference of ``hypotheses[i]``: a string, or a list of
    strings when there are several.
    """
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("hypotheses and references are lists, one entry per reply")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references"
        )
    if not hypotheses:
        raise ValueError("nothing to score: no hypotheses")

    examples = [score_example(h, r, lang) for h, r in zip(hypotheses, references)]

    result = {
        name: sum(e.averaged[name] for e in examples) / len(examples)
        for name in AVERAGED_METRICS
    }
    result["sacrebleu"] = sum((e.bleu for e in examples), BleuStats()).score()
    for n in DISTINCT_ORDERS:
        all_grams = [g for e in examples for g in e.reply_ngrams[n]]
        result[f"dist-{n}"] = distinct(len(set(all_grams)), len(all_grams))
    return result
