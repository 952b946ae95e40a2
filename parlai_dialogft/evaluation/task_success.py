"""MultiWOZ end-to-end metrics: Inform, Success, BLEU and Combined, per dialogue and corpus.

The definitions are those of the standardized evaluation of Nekvinda & Dušek (2021), "Shades
of BLEU, Flavours of Success: The Case of MultiWOZ" (GEM 2021), as their ``mwzeval`` computes
them (https://github.com/Tomiinek/MultiWOZ_Evaluation, read for the rules, not copied):

**Inform** (per dialogue, 0 or 1): for every domain of the goal (:mod:`.multiwoz_goals`) the
entities the system offered fit the goal. Going through the system turns, a turn offers
entities of a goal domain when the domain is one of the turn's active domains and the reply
names a venue (``NAME`` for restaurant, hotel, attraction; ``TRAINID`` for train). The
entities offered are then *all* the database rows that fit the turn's belief state for that
domain; they replace those offered before unless those are all among them (the last offer
counts, a narrowing does not). A domain is informed when the rows offered last are a
non-empty subset of the rows that fit the goal's constraints; taxi, police and hospital
always are, as is a domain whose goal names the venue, and a train that was never offered
when the user did not ask for its id.

**Success** (per dialogue, 0 or 1): Inform, and for every domain of the goal each requested
slot class (``PHONE``, ``ADDRESS``, ``POST``, ``REFERENCE``, ``TRAINID``) appears in some
reply while the domain is active; ``REFERENCE`` counts only once a booking was made in that
domain (:func:`.multiwoz_goals.booked_domains`).

**Active domains**: a turn's own (the format's ``active_domains``) when every turn of the
predictions has them, else estimated from the belief states (:func:`estimate_active_domains`:
the domain whose state changed; when several did, the one already active, else the one with
most slots). **States**: the predicted ones when every turn has one, else (or with
``gold_states=True``) the corpus's annotated states.

**BLEU**: ``sacrebleu.corpus_bleu`` (its defaults: ``13a`` tokens, exp smoothing) of the
normalized delexicalized replies (:func:`.multiwoz_normalize.normalize_response`) against
the normalized gold replies, delexicalized from the corpus's span annotations
(:func:`parlai_dialogft.tod.delex.gold_replies`). sacrebleu is the reference implementation
and what the standardized evaluation uses; :class:`~.metrics.BleuStats` (sacrebleu's own
statistics, additive per dialogue) gives the bootstrap interval.

**Combined** = (Inform + Success) / 2 + BLEU, rates in percent.

Intervals: Wilson 95% for Inform and Success (dialogues are the trials), percentile bootstrap
over dialogues for BLEU and Combined. Only whole dialogues are scored: predictions with a
turn too many or too few for a dialogue raise :class:`PredictionError` naming it.

The database is passed in: ``query(domain, constraints) -> rows`` (MultiWOZ slot names, as
:meth:`parlai_dialogft.tod.database.TaskDatabase.query`); rows are told apart by ``trainID``
for trains and ``name`` otherwise.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from parlai_dialogft.evaluation.metrics import BleuStats, bleu_stats
from parlai_dialogft.evaluation.multiwoz_goals import (
    NO_ENTITY_DOMAINS,
    REQUESTABLE_CLASSES,
    VENUE_DOMAINS,
    DomainGoal,
    booked_domains,
    parse_goal,
)
from parlai_dialogft.evaluation.multiwoz_normalize import State, normalize_response
from parlai_dialogft.evaluation.mwzeval_format import Turn, dialogue_key
from parlai_dialogft.evaluation.mwzeval_format import gold_states as annotated_states
from parlai_dialogft.tod.calls import BOOK_PREFIX
from parlai_dialogft.tod.delex import gold_replies
from parlai_dialogft.utils.errors import UserError

Query = Callable[[str, Mapping[str, str]], List[Dict[str, str]]]
Interval = Tuple[float, float]
_VENUE_CLASS = {"restaurant": "NAME", "hotel": "NAME", "attraction": "NAME", "train": "TRAINID"}


class PredictionError(UserError):
    """Predictions that do not fit the corpus: an unknown dialogue, a turn too many or too few."""

    def __init__(self, dialogue: str, problem: str):
        self.dialogue = dialogue
        super().__init__(f"dialogue {dialogue!r}: {problem}")


# -- one dialogue ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredTurn:
    """What the scorer reads of a system turn."""

    response: str  # normalized: placeholders as slot classes (NAME, PHONE, ...)
    state: State
    active_domains: Sequence[str]
    booked_domains: Sequence[str] = ()


@dataclass
class DialogueScore:
    dialogue: str
    inform: bool
    success: bool
    # domain -> {"inform", "success", "offered": rows offered last, "missing": requested classes never given}
    domains: Dict[str, Dict[str, object]] = field(default_factory=dict)


def _venue_id(domain: str, row: Mapping[str, object]) -> str:
    key = "trainID" if domain == "train" else "name"
    value = row.get(key, row.get("id"))
    return str(value).strip().lower() if value is not None else repr(sorted(row.items()))


class Scorer:
    """Inform and Success of dialogues against a database ``query`` (results cached)."""

    def __init__(self, query: Query):
        self.query = query
        self._venues: Dict[Tuple[str, FrozenSet], FrozenSet[str]] = {}

    def venues(self, domain: str, slots: Mapping[str, str]) -> FrozenSet[str]:
        """The ids of the rows that fit ``slots`` (booking details and ``dontcare`` ignored)."""
        constraints = {k: v for k, v in slots.items() if not k.startswith(BOOK_PREFIX) and v != "dontcare"}
        key = (domain, frozenset(constraints.items()))
        if key not in self._venues:
            self._venues[key] = frozenset(_venue_id(domain, row) for row in self.query(domain, constraints))
        return self._venues[key]

    def score(self, dialogue: str, goal: Mapping[str, DomainGoal], turns: Sequence[ScoredTurn]) -> DialogueScore:
        offered: Dict[str, FrozenSet[str]] = {d: frozenset() for d in goal}
        provided: Dict[str, set] = {d: set() for d in goal}
        for turn in turns:
            for domain in goal:
                if domain not in turn.active_domains:
                    continue
                if _VENUE_CLASS.get(domain, "\0") in turn.response:
                    now = self.venues(domain, turn.state[domain]) if domain in turn.state else frozenset()
                    if not offered[domain] or not offered[domain] <= now:
                        offered[domain] = now
                for cls in REQUESTABLE_CLASSES:
                    if cls in turn.response and (cls != "REFERENCE" or domain in turn.booked_domains):
                        provided[domain].add(cls)

        informed = {}
        for domain, spec in goal.items():
            if "name" in spec.informable or domain in NO_ENTITY_DOMAINS:
                informed[domain] = True
            elif domain == "train" and not offered[domain] and "TRAINID" not in spec.requestable:
                informed[domain] = True
            elif domain in VENUE_DOMAINS and offered[domain]:
                informed[domain] = offered[domain] <= self.venues(domain, spec.informable)
            else:
                informed[domain] = False
        inform = all(informed.values())
        succeeded = {d: inform and spec.requestable <= provided[d] for d, spec in goal.items()}
        domains = {
            d: {"inform": informed[d], "success": succeeded[d], "offered": len(offered[d]),
                "missing": sorted(spec.requestable - provided[d])}
            for d, spec in goal.items()
        }
        return DialogueScore(dialogue, inform, inform and all(succeeded.values()), domains)


def estimate_active_domains(states: Sequence[State]) -> List[List[str]]:
    """Per turn, the one domain the reply is most likely about, from how the state changed.

    A domain whose slots changed becomes active; when several changed, the active one stays
    if it is among them, else the one with most slots. When none changed the active domain
    stays, except after a turn where several changed: then another of those takes over.
    Before any change no domain is active.
    """
    active: List[List[str]] = []
    current: Optional[str] = None
    before: State = {}
    changed_before: List[str] = []
    for state in states:
        changed = [d for d in state if set(state[d].items()) - set(before.get(d, {}).items())]
        if not changed and current is None:
            active.append([])
            continue
        if not changed:
            others = [d for d in changed_before if d in state and d != current]
            if len(changed_before) > 1 and others:
                current = others[0]
        elif current not in changed:
            current = max(changed, key=lambda d: len(state[d]))
        before, changed_before = state, changed
        active.append([current])
    return active


# -- the corpus -----------------------------------------------------------------------------------


def wilson(successes: int, trials: int, z: float = 1.959964) -> Interval:
    """Wilson score interval of a proportion, in percent."""
    if trials == 0:
        return (0.0, 0.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (100 * max(0.0, centre - half), 100 * min(1.0, centre + half))


@dataclass
class Report:
    inform: float  # percent of dialogues
    success: float
    bleu: float
    combined: float
    inform_interval: Interval
    success_interval: Interval
    bleu_interval: Interval
    combined_interval: Interval
    per_domain: Dict[str, Dict[str, float]]  # domain -> {"inform", "success"} in percent, "dialogues"
    dialogues: List[DialogueScore]
    turns: int
    settings: Dict[str, object]
    unknown_placeholders: Dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        def interval(pair: Interval) -> str:
            return f"[{pair[0]:.1f}, {pair[1]:.1f}]"

        lines = [
            f"{len(self.dialogues)} dialogues, {self.turns} turns; states: {self.settings['states']}, "
            f"active domains: {self.settings['active_domains']}",
            "| metric | value | 95% interval |",
            "|---|---|---|",
            f"| Inform | {self.inform:.1f} | {interval(self.inform_interval)} |",
            f"| Success | {self.success:.1f} | {interval(self.success_interval)} |",
            f"| BLEU | {self.bleu:.2f} | {interval(self.bleu_interval)} |",
            f"| Combined | {self.combined:.2f} | {interval(self.combined_interval)} |",
        ]
        lines += ["", "| domain | dialogues | Inform | Success |", "|---|---|---|---|"]
        for domain, rates in sorted(self.per_domain.items()):
            lines.append(f"| {domain} | {rates['dialogues']:.0f} | {rates['inform']:.1f} | {rates['success']:.1f} |")
        if self.unknown_placeholders:
            lines.append(f"\nplaceholders not in the vocabulary (dropped): {self.unknown_placeholders}")
        return "\n".join(lines)


def _check_whole(predictions: Mapping[str, Sequence[Turn]], corpus: Mapping[str, Mapping]) -> None:
    for key, turns in predictions.items():
        if key not in corpus:
            raise PredictionError(key, "not in the dialogues scored against (wrong split?)")
        expected = len(corpus[key]["log"]) // 2
        if len(turns) != expected:
            raise PredictionError(key, f"{len(turns)} turns predicted, the dialogue has {expected} system turns")


def _bootstrap(
    flags: Sequence[Tuple[bool, bool]], stats: Sequence[BleuStats], samples: int, seed: int
) -> Tuple[Interval, Interval]:
    """Percentile intervals of BLEU and Combined, resampling whole dialogues."""
    import numpy as np

    if not flags or samples <= 0:
        return (0.0, 0.0), (0.0, 0.0)
    table = np.array([[s.sys_len, s.ref_len, *s.correct, *s.total] for s in stats], dtype=np.int64)
    rates = 100.0 * np.array(flags, dtype=np.float64)  # (dialogues, 2): inform, success
    rng = np.random.default_rng(seed)
    n, order = len(flags), len(stats[0].correct)
    bleus, combined = [], []
    for _ in range(samples):
        picks = rng.integers(0, n, size=n)
        total = table[picks].sum(axis=0).tolist()
        bleu = BleuStats(total[0], total[1], tuple(total[2:2 + order]), tuple(total[2 + order:])).score()
        inform, success = rates[picks].mean(axis=0)
        bleus.append(bleu)
        combined.append((inform + success) / 2 + bleu)
    low, high = 2.5, 97.5
    return (
        (float(np.percentile(bleus, low)), float(np.percentile(bleus, high))),
        (float(np.percentile(combined, low)), float(np.percentile(combined, high))),
    )


def score_multiwoz(
    predictions: Mapping[str, Sequence[Turn]],
    dialogues: Mapping[str, Mapping],
    query: Query,
    gold_states: bool = False,
    bootstrap_samples: int = 1000,
    seed: int = 0,
) -> Report:
    """Score ``predictions`` (dialogue id -> system turns) against MultiWOZ ``dialogues``.

    ``dialogues`` is the corpus's JSON (id -> ``{"goal", "log"}``); ids may be written as in
    the corpus or as the format's keys. Every predicted dialogue must have exactly one turn per
    system turn.
    """
    import sacrebleu

    corpus = {dialogue_key(k): v for k, v in dialogues.items()}
    predictions = {dialogue_key(k): list(v) for k, v in predictions.items()}
    _check_whole(predictions, corpus)
    use_gold_states = gold_states or any(t.state is None for turns in predictions.values() for t in turns)
    use_own_domains = all(t.active_domains is not None for turns in predictions.values() for t in turns)

    scorer = Scorer(query)
    unknown: Counter = Counter()
    scores, flags, stats = [], [], []
    hyps, refs = [], []
    for key, turns in predictions.items():
        log = corpus[key]["log"]
        states = annotated_states(log) if use_gold_states else [t.state or {} for t in turns]
        actives = [t.active_domains for t in turns] if use_own_domains else estimate_active_domains(states)
        responses = [normalize_response(t.response, unknown) for t in turns]
        references = [normalize_response(r) for r in gold_replies(log)]
        scored = [ScoredTurn(r, s, a or (), b) for r, s, a, b in zip(responses, states, actives, booked_domains(log))]
        score = scorer.score(key, parse_goal(corpus[key]["goal"]), scored)
        scores.append(score)
        flags.append((score.inform, score.success))
        stats.append(sum((bleu_stats(h, [r], "en") for h, r in zip(responses, references)), BleuStats()))
        hyps += responses
        refs += references

    n = len(scores)
    informed = sum(s.inform for s in scores)
    succeeded = sum(s.success for s in scores)
    inform = 100 * informed / n if n else 0.0
    success = 100 * succeeded / n if n else 0.0
    bleu = sacrebleu.corpus_bleu(hyps, [refs]).score if hyps else 0.0
    bleu_interval, combined_interval = _bootstrap(flags, stats, bootstrap_samples, seed)
    return Report(
        inform=inform,
        success=success,
        bleu=bleu,
        combined=(inform + success) / 2 + bleu,
        inform_interval=wilson(informed, n),
        success_interval=wilson(succeeded, n),
        bleu_interval=bleu_interval,
        combined_interval=combined_interval,
        per_domain=_per_domain(scores),
        dialogues=scores,
        turns=len(hyps),
        settings={
            "states": "gold (corpus annotations)" if use_gold_states else "predicted",
            "active_domains": "predicted" if use_own_domains else "estimated from the states",
            "bleu": f"sacrebleu {sacrebleu.__version__} corpus_bleu, 13a, exp smoothing, against gold replies delexicalized from span_info",
            "bootstrap_samples": bootstrap_samples,
            "seed": seed,
        },
        unknown_placeholders=dict(unknown.most_common()),
    )


def _per_domain(scores: Sequence[DialogueScore]) -> Dict[str, Dict[str, float]]:
    totals: Counter = Counter()
    informs: Counter = Counter()
    successes: Counter = Counter()
    for score in scores:
        for domain, result in score.domains.items():
            totals[domain] += 1
            informs[domain] += result["inform"]
            successes[domain] += result["success"]
    return {
        d: {"dialogues": totals[d], "inform": 100 * informs[d] / totals[d], "success": 100 * successes[d] / totals[d]}
        for d in sorted(totals)
    }
