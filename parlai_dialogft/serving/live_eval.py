"""Live evaluation of the served model: how its replies and its users' requests look, now.

Latency and thumbs say whether users wait and whether they like it; these series say why a
model that tested well may be going wrong in production, without references to score against:

* **reply length** (model tokens of the reply, draft 0): ``dialogft_reply_tokens`` histogram;
* **repetition within replies**: the share of a reply's word bigrams that repeat an earlier one
  (``rep`` of the offline report, :func:`~parlai_dialogft.evaluation.metrics.repetition_rate` on
  CJK-aware tokens): ``dialogft_reply_repeated_ngram_share`` histogram (``_sum/_count`` = mean);
* **generic replies**: a reply is generic when its text (normalised: lowercase, no punctuation)
  occurs more than ``--serve-generic-threshold`` times among the last ``--serve-generic-window``
  replies, itself included: ``dialogft_generic_replies_total`` (flagged on arrival) and
  ``dialogft_generic_reply_share`` (the window's share now);
* **language mix of requests**: ``dialogft_request_language_total{lang="zh"|"en"}``, from the
  newest message (:func:`~parlai_dialogft.evaluation.text.detect_lang`);
* **input drift against the training data**: the context (every turn of the request, each
  tokenised alone by the model's tokenizer, before truncation) in ``dialogft_context_tokens``,
  its unknown tokens in ``dialogft_context_unknown_tokens_total`` (share =
  ``rate(..._unknown_tokens_total) / rate(dialogft_context_tokens_sum)``), and, when the model
  has a training profile (:class:`TrainingProfile`, ``MODEL.train_profile.json`` written by
  ``parlai dialogft_train_profile``), where each context's length falls in the training
  distribution: ``dialogft_context_train_rank`` (its mid-rank among the training contexts'
  lengths, :meth:`TrainingProfile.rank`: spread over [0, 1] with mean 0.5 while requests look
  like training, 1 past the longest) beside the training
  percentiles ``dialogft_train_context_tokens{quantile}`` and the training contexts' unknown-token
  share ``dialogft_train_unknown_token_share``. Without a profile these three are absent and
  ``dialogft_train_profile_loaded`` is 0; everything else works the same;
* **feedback**: ``dialogft_live_replies_total`` is the denominator of the feedback rate
  (``dialogft_feedback_total`` from :mod:`.metrics`, counted per rating).

The same numbers, per ``--serve-live-interval-s`` interval, feed the built-in dashboard
(:meth:`LiveEvaluation.series`, served as ``GET /dashboard/series``). Only draft 0 of a reply
(what a one-choice client sees) is evaluated. No web framework and no torch here.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from parlai_dialogft.evaluation.metrics import REP_ORDER, repetition_rate
from parlai_dialogft.evaluation.text import cjk_aware_tokenize, detect_lang
from parlai_dialogft.serving.guard import GuardError
from parlai_dialogft.utils.errors import UserError

PROFILE_SUFFIX = ".train_profile.json"
PROFILE_FORMAT = 1
#: The profile keeps the 0th..100th percentiles of training context lengths (101 numbers).
PERCENTILES = 101
REPLY_TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTEXT_TOKEN_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
SHARE_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
TRAIN_SHARE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1.0)
TRAIN_QUANTILES = (0.5, 0.9, 0.99)
LANGS = ("en", "zh")

Tokenize = Callable[[str], Sequence[int]]


class ProfileError(UserError):
    """A training profile that cannot be read; the message names the file."""


# --- the training profile ------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingProfile:
    """What the training contexts looked like, to compare requests with.

    ``context_percentiles[k]`` is the k-th percentile (k = 0..100) of training context
    lengths in tokens (every turn of an example's context tokenised alone, as
    :func:`context_stats` counts requests); ``unknown_token_share`` is the share of those
    tokens that were the tokenizer's unknown token.
    """

    context_percentiles: Tuple[float, ...]
    unknown_token_share: float
    examples: int
    task: str = ""

    def __post_init__(self) -> None:
        values = self.context_percentiles
        if len(values) != PERCENTILES or any(b < a for a, b in zip(values, values[1:])):
            raise ValueError(f"context_percentiles: {PERCENTILES} non-decreasing numbers expected")

    @classmethod
    def from_contexts(cls, lengths: Sequence[int], unknown: int, task: str = "") -> "TrainingProfile":
        """From every training context's length and the unknown tokens among them all."""
        if not lengths:
            raise ValueError("no training contexts to profile")
        ordered = sorted(lengths)
        percentiles = tuple(float(_quantile(ordered, k / (PERCENTILES - 1))) for k in range(PERCENTILES))
        return cls(percentiles, unknown / max(sum(ordered), 1), len(ordered), task)

    def rank(self, tokens: int) -> float:
        """Where a context of ``tokens`` falls among the training contexts, in [0, 1]: the share
        of them shorter plus half the share as long (the mid-rank, read off the percentiles).

        Half the ties, so that training-like requests average 0.5 even when many training
        contexts have the same length; 1 only past the longest, 0 below the shortest.
        """
        below = bisect.bisect_left(self.context_percentiles, tokens)
        at_or_below = bisect.bisect_right(self.context_percentiles, tokens)
        return (below + at_or_below) / 2 / PERCENTILES

    def quantile(self, q: float) -> float:
        return _quantile(self.context_percentiles, q)

    def save(self, path: str) -> None:
        body = {"format": PROFILE_FORMAT, **asdict(self)}
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(body, f, indent=1)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> "TrainingProfile":
        try:
            with open(path, encoding="utf-8") as f:
                body = json.load(f)
            if body.get("format") != PROFILE_FORMAT:
                raise ValueError(f"format {body.get('format')!r}, expected {PROFILE_FORMAT}")
            return cls(tuple(float(v) for v in body["context_percentiles"]), float(body["unknown_token_share"]),
                       int(body["examples"]), str(body.get("task", "")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ProfileError(f"{path}: not a training profile ({type(exc).__name__}: {exc}); "
                               f"rewrite it with parlai dialogft_train_profile") from None


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def profile_path(model_file: str) -> str:
    """Where a model's profile lives: beside its weights, ``MODEL.train_profile.json``."""
    return model_file + PROFILE_SUFFIX


def find_profile(model_file: Optional[str], explicit: Optional[str] = None) -> Optional[TrainingProfile]:
    """``explicit`` (must exist), else ``MODEL.train_profile.json`` when there is one, else None."""
    if explicit:
        if not os.path.isfile(explicit):
            raise ProfileError(f"--serve-train-profile {explicit}: no such file")
        return TrainingProfile.load(explicit)
    if model_file and os.path.isfile(profile_path(model_file)):
        return TrainingProfile.load(profile_path(model_file))
    return None


# --- what is measured per request ----------------------------------------------------------


def prompt_turns(prompt) -> List[str]:
    """Every turn a :class:`~.protocol.Prompt` holds, oldest first (its contexts and replies)."""
    return [text for pair in prompt.history for text in pair] + [prompt.text]


def context_stats(turns: Iterable[str], tokenize: Tokenize, unk_id: Optional[int]) -> Tuple[int, int]:
    """(tokens, unknown tokens) of a context: each turn tokenised alone, nothing truncated."""
    tokens = unknown = 0
    for turn in turns:
        ids = tokenize(turn)
        tokens += len(ids)
        if unk_id is not None:
            unknown += sum(1 for i in ids if i == unk_id)
    return tokens, unknown


def episode_contexts(acts: Iterable[Mapping]) -> Iterator[List[str]]:
    """Each training example's context, as the model read it: the episode's earlier texts
    and labels, then its text (a teacher's acts in order, as ``train:ordered`` gives them)."""
    turns: List[str] = []
    for act in acts:
        text = act.get("text")
        if text is not None:
            yield turns + [text]
            labels = act.get("labels") or act.get("eval_labels") or [""]
            turns += [text, labels[0]]
        if act.get("episode_done"):
            turns = []


def repeated_ngram_share(text: str) -> float:
    return repetition_rate(cjk_aware_tokenize(text), REP_ORDER)


class GenericReplies:
    """The last ``window`` replies' texts, counted: which occur more than ``threshold`` times."""

    def __init__(self, window: int, threshold: int):
        self.window, self.threshold = window, threshold
        self._recent: Deque[str] = deque()
        self._counts: Counter = Counter()

    @staticmethod
    def key(text: str) -> str:
        return " ".join(cjk_aware_tokenize(text))

    def add(self, text: str) -> bool:
        """Count ``text``; True when it is generic now (counted with itself)."""
        key = self.key(text)
        if len(self._recent) == self.window:
            old = self._recent.popleft()
            self._counts[old] -= 1
            if not self._counts[old]:
                del self._counts[old]
        self._recent.append(key)
        self._counts[key] += 1
        return self._counts[key] > self.threshold

    def share(self) -> float:
        """Share of the window's replies whose text occurs more than ``threshold`` times in it."""
        if not self._recent:
            return 0.0
        return sum(n for n in self._counts.values() if n > self.threshold) / len(self._recent)


# --- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveEvalSettings:
    generic_window: int = 1000
    generic_threshold: int = 5
    interval_s: float = 10.0
    points: int = 360
    profile: Optional[str] = None  # an explicit --serve-train-profile

    def __post_init__(self) -> None:
        for flag, value, least in (("--serve-generic-window", self.generic_window, 1),
                                   ("--serve-generic-threshold", self.generic_threshold, 1),
                                   ("--serve-live-points", self.points, 2)):
            if value < least:
                raise GuardError(f"{flag} {value}: must be at least {least}")
        if not self.interval_s > 0:
            raise GuardError(f"--serve-live-interval-s {self.interval_s}: must be more than 0")


def add_live_eval_args(parser) -> None:
    group = parser.add_argument_group("dialogft_serve: live evaluation (/metrics and /dashboard)")
    group.add_argument("--serve-generic-window", type=int, default=1000,
                       help="a reply is generic when its text occurs more than --serve-generic-threshold "
                       "times among this many latest replies")
    group.add_argument("--serve-generic-threshold", type=int, default=5,
                       help="see --serve-generic-window")
    group.add_argument("--serve-live-interval-s", type=float, default=10.0,
                       help="the dashboard's plots have one point per this many seconds")
    group.add_argument("--serve-live-points", type=int, default=360,
                       help="points the dashboard keeps per series (default: an hour of 10 s points)")
    group.add_argument("--serve-train-profile", type=str, default=None,
                       help="the training profile to measure input drift against (default: "
                       "MODEL.train_profile.json when it exists; write one with parlai dialogft_train_profile)")


def live_settings_from_opt(opt) -> LiveEvalSettings:
    return LiveEvalSettings(generic_window=opt.get("serve_generic_window", 1000),
                            generic_threshold=opt.get("serve_generic_threshold", 5),
                            interval_s=opt.get("serve_live_interval_s", 10.0),
                            points=opt.get("serve_live_points", 360),
                            profile=opt.get("serve_train_profile"))


# --- the evaluator -------------------------------------------------------------------------


@dataclass
class _Interval:
    """What one dashboard interval saw; :meth:`point` turns it into the plotted values."""

    start: float
    replies: int = 0
    reply_tokens: int = 0
    repetition: float = 0.0
    generic: int = 0
    langs: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(LANGS, 0))
    context_tokens: int = 0
    unknown: int = 0
    train_rank: float = 0.0
    over_train_p99: int = 0
    feedback: Dict[str, int] = field(default_factory=lambda: {"up": 0, "down": 0})

    def point(self, profiled: bool) -> dict:
        n = self.replies
        rated = self.feedback["up"] + self.feedback["down"]

        def per_reply(value: float) -> Optional[float]:
            return value / n if n else None

        return {
            "t": self.start, "replies": n,
            "reply_tokens": per_reply(self.reply_tokens),
            "repeated_ngram_share": per_reply(self.repetition),
            "generic_share": per_reply(self.generic),
            "zh_share": per_reply(self.langs["zh"]),
            "context_tokens": per_reply(self.context_tokens),
            "unknown_token_share": self.unknown / self.context_tokens if self.context_tokens else None,
            "context_train_rank": per_reply(self.train_rank) if profiled else None,
            "over_train_p99": per_reply(self.over_train_p99) if profiled else None,
            "feedback_rate": per_reply(rated),
            "thumbs_up_share": self.feedback["up"] / rated if rated else None,
            "feedback": rated,
        }


class LiveEvaluation:
    """Per-reply measurements, exported to Prometheus and kept per interval for the dashboard.

    ``tokenize`` must be safe to call from the server's request threads (give it a tokenizer
    of its own, not the one the model's worker thread uses: see :func:`tokenizer_of`).
    """

    def __init__(self, settings: LiveEvalSettings, tokenize: Tokenize, unk_id: Optional[int],
                 profile: Optional[TrainingProfile] = None, clock: Callable[[], float] = time.time):
        self.settings, self.profile = settings, profile
        self._tokenize, self._unk_id, self._clock = tokenize, unk_id, clock
        self._lock = threading.Lock()
        self._generic = GenericReplies(settings.generic_window, settings.generic_threshold)
        self._intervals: Deque[_Interval] = deque(maxlen=settings.points)
        self._series: Dict[str, object] = {}

    def attach(self, registry) -> None:
        """Create the Prometheus series in the server's registry (once)."""
        from prometheus_client import Counter as PCounter
        from prometheus_client import Gauge, Histogram

        r = registry
        s = self._series
        s["replies"] = PCounter("dialogft_live_replies", "replies evaluated (draft 0 of each)", registry=r)
        s["reply_tokens"] = Histogram("dialogft_reply_tokens", "model tokens per reply",
                                      buckets=REPLY_TOKEN_BUCKETS, registry=r)
        s["repetition"] = Histogram("dialogft_reply_repeated_ngram_share",
                                    f"share of a reply's word {REP_ORDER}-grams that repeat an earlier one",
                                    buckets=SHARE_BUCKETS, registry=r)
        s["generic"] = PCounter("dialogft_generic_replies", "replies whose text occurs more than "
                                "--serve-generic-threshold times in the last --serve-generic-window", registry=r)
        generic_share = Gauge("dialogft_generic_reply_share", "share of the window's replies that are generic",
                              registry=r)
        generic_share.set_function(self._generic_share)
        s["lang"] = PCounter("dialogft_request_language", "requests by the language of their newest message",
                             ["lang"], registry=r)
        for lang in LANGS:
            s["lang"].labels(lang)  # present at 0: shares work from the start
        s["context_tokens"] = Histogram("dialogft_context_tokens", "tokens of a request's context, untruncated",
                                        buckets=CONTEXT_TOKEN_BUCKETS, registry=r)
        s["unknown"] = PCounter("dialogft_context_unknown_tokens",
                                "the tokenizer's unknown token in request contexts", registry=r)
        Gauge("dialogft_train_profile_loaded", "1 when drift is measured against a training profile",
              registry=r).set(1 if self.profile else 0)
        if self.profile is None:
            return
        s["train_rank"] = Histogram("dialogft_context_train_rank", "the request context's length as a "
                                     "mid-rank among training contexts' (mean 0.5 while they look alike)",
                                     buckets=TRAIN_SHARE_BUCKETS, registry=r)
        quantiles = Gauge("dialogft_train_context_tokens", "training context length percentiles (tokens)",
                          ["quantile"], registry=r)
        for q in TRAIN_QUANTILES:
            quantiles.labels(str(q)).set(self.profile.quantile(q))
        Gauge("dialogft_train_unknown_token_share", "share of unknown tokens in training contexts",
              registry=r).set(self.profile.unknown_token_share)

    def _generic_share(self) -> float:
        with self._lock:
            return self._generic.share()

    def observe_reply(self, prompt, reply, request_text: str) -> None:
        """One answered request: its :class:`~.protocol.Prompt`, its :class:`~.replier.Reply`, and
        the newest message's text (the request's language)."""
        text, reply_tokens = reply.text, reply.drafts[0].completion_tokens
        tokens, unknown = context_stats(prompt_turns(prompt), self._tokenize, self._unk_id)
        repetition = repeated_ngram_share(text)
        lang = detect_lang(request_text)
        train_rank = self.profile.rank(tokens) if self.profile else None
        over_p99 = bool(self.profile and tokens > self.profile.quantile(0.99))
        with self._lock:
            generic = self._generic.add(text)
            now = self._current()
            now.replies += 1
            now.reply_tokens += reply_tokens
            now.repetition += repetition
            now.generic += generic
            now.langs[lang] += 1
            now.context_tokens += tokens
            now.unknown += unknown
            if train_rank is not None:
                now.train_rank += train_rank
                now.over_train_p99 += over_p99
        if self._series:
            s = self._series
            s["replies"].inc()
            s["reply_tokens"].observe(reply_tokens)
            s["repetition"].observe(repetition)
            if generic:
                s["generic"].inc()
            s["lang"].labels(lang).inc()
            s["context_tokens"].observe(tokens)
            s["unknown"].inc(unknown)
            if train_rank is not None:
                s["train_rank"].observe(train_rank)

    def observe_feedback(self, rating: Optional[str]) -> None:
        if rating not in ("up", "down"):
            return
        with self._lock:
            self._current().feedback[rating] += 1

    def _current(self) -> _Interval:
        """The interval now (under the lock): a new one once the clock has left the last."""
        width = self.settings.interval_s
        start = math.floor(self._clock() / width) * width
        if not self._intervals or self._intervals[-1].start != start:
            self._intervals.append(_Interval(start))
        return self._intervals[-1]

    def series(self) -> dict:
        """The dashboard's data: one point per interval that saw a reply or feedback, oldest first."""
        with self._lock:
            points = [interval.point(self.profile is not None) for interval in self._intervals]
            generic_share = self._generic.share()
        profile = None
        if self.profile is not None:
            profile = {"examples": self.profile.examples, "task": self.profile.task,
                       "unknown_token_share": self.profile.unknown_token_share,
                       **{f"context_p{round(q * 100)}": self.profile.quantile(q) for q in TRAIN_QUANTILES}}
        return {"interval_s": self.settings.interval_s, "now": self._clock(),
                "generic_window": self.settings.generic_window,
                "generic_threshold": self.settings.generic_threshold,
                "generic_share_now": generic_share, "profile": profile, "points": points}


def tokenizer_of(agent) -> Tuple[Tokenize, Optional[int]]:
    """A tokenizer for request threads, and its unknown token's id (None: it has none).

    A copy of the agent's HF tokenizer: the model's worker thread keeps using its own at the
    same time, and a fast tokenizer's settings are not safe to share across threads. A
    byte-level BPE (GPT-2, Qwen, the tiny test models) never produces its unknown token, so
    its unknown-token share is always 0.
    """
    import copy

    tokenizer = copy.deepcopy(agent.dict.hf_tokenizer)

    def tokenize(text: str) -> List[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return tokenize, tokenizer.unk_token_id
