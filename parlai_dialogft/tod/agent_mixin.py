"""``--task-db multiwoz`` on ``dialogft_agent``: call the database, then reply from its answer.

A model trained on ``-t dialogft_customer:system`` (ParlAI's ``TodSystemTeacher`` format) reads
``USER: ...`` and writes ``APICALL: api_name = find_hotel ; area = north``; it then reads the
database's ``APIRESP: count = 3 ; name = ...`` and writes ``SYSTEM: ...``. With ``--task-db``
the agent plays the whole round itself for every plain user turn, so the scripts that only know
"text in, reply out" (``eval_model`` on the end-to-end teacher, ``interactive``, and
``dialogft_serve``) run the loop without a world of their own:

1. the user's turn gets ``USER: `` (and a new conversation ParlAI's empty ``APIS: `` grounding);
2. the model writes the call (a reply that is not a call counts as no call), greedily under a
   grammar of the calls the database answers where llguidance is installed
   (``--task-call-grammar``, :mod:`.call_grammar`);
3. the database answers it (:meth:`~.database.TaskDatabase.answer`: bound parameters, bad calls
   logged and answered ``count = 0``);
4. the model reads call and answer after the history and writes the reply (its first tokens
   forced to ``SYSTEM:``); the user sees it without ``SYSTEM: ``, and a booking reference in
   it only if the booking exists (:mod:`.references`); the message carries ``tod_call`` and
   ``tod_result`` for scorers and displays, and the history keeps all four turns.

Messages that already speak the format (a ``-t dialogft_customer:system`` teacher's
``USER: ...`` with a gold ``APICALL`` label) are left to ParlAI: that is teacher forcing.

Two hooks are for ``dialogft_serve``, whose requests carry their whole conversation:
:meth:`TodLoopMixin.restore_rounds` writes a request's earlier turns into a fresh history in
the format, and ``round_step`` (:data:`CALL_STEP`, :data:`REPLY_STEP`, None outside
``batch_act``) tells a watcher of the search which of the round's two generations runs, so
that only the reply is streamed, without its ``SYSTEM: ``.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

from parlai.core.message import Message
from parlai.core.tod import tod_core

from parlai_dialogft.tod import calls, references

logger = logging.getLogger(__name__)

USER, SYSTEM, SCHEMAS = tod_core.STANDARD_USER_UTTERANCE, tod_core.STANDARD_SYSTEM_UTTERANCE, tod_core.STANDARD_API_SCHEMAS
# What a turn of the format starts with; a plain user turn starts with none of these.
FORMAT_PREFIXES = tuple(p.strip() for p in (USER, SYSTEM, SCHEMAS, calls.CALL, calls.RESP, tod_core.STANDARD_GOAL))


@dataclass(frozen=True)
class RoundStep:
    """One of a round's two generations, as a watcher of the search should treat its text."""

    name: str
    shown: bool  # the user sees this generation's text (the reply), or not (the call)
    hidden_prefix: str = ""  # what the text starts with that the user does not see


CALL_STEP = RoundStep("call", shown=False)
CALL_GRAMMAR_MODES = ("auto", "schema", "none")
REPLY_STEP = RoundStep("reply", shown=True, hidden_prefix=SYSTEM.strip())


def speaks_format(text: str) -> bool:
    return text.lstrip().startswith(FORMAT_PREFIXES)


def add_task_db_args(parser) -> None:
    group = parser.add_argument_group("dialogft_agent: task-oriented loop")
    group.add_argument(
        "--task-db",
        type=str,
        default="none",
        help="the database the model calls: multiwoz (English), crosswoz (Chinese), a SQLite file of "
        "your own (shop.sqlite: each table answers find_<table>, read-only), or several comma-separated "
        "(a call goes to the one with its domain); for a model trained on -t dialogft_customer:system. "
        "none: plain replies",
    )
    group.add_argument(
        "--tools", type=str, default=None,
        help="a JSON list of OpenAI tool definitions the loop runs itself, each with an \"endpoint\" "
        "(http(s) URL: the arguments are POSTed as JSON) or \"python\" (module:function); calls naming "
        "no tool go to --task-db",
    )
    group.add_argument("--tools-timeout", type=float, default=10.0, help="seconds to wait for a --tools endpoint")
    group.add_argument(
        "--task-call-grammar", choices=CALL_GRAMMAR_MODES, default="auto",
        help="schema: the call is decoded greedily under a grammar of the calls --task-db and --tools answer "
        "(known functions, slots in order, few-valued slots closed to their values; needs llguidance, "
        "the structured extra); none: as the model writes it, with the model's decoding; auto: schema where "
        "llguidance is installed",
    )


def _backends(task_db: str, tools: Optional[str], timeout: float):
    """What the loop's calls go to: --task-db's databases, --tools' functions before them."""
    from parlai_dialogft.tod.database import open_databases

    databases = open_databases(task_db) if task_db != "none" else None
    if not tools:
        return databases
    from parlai_dialogft.tod.server_tools import ToolsAndDatabases, load_tools

    return ToolsAndDatabases(load_tools(tools), databases, timeout)


def call_grammar_of(backend, mode: str):
    """The grammar the call step is decoded under (None: none), per ``--task-call-grammar``."""
    from parlai_dialogft.model.constrained import engine_available, require_engine

    if mode == "none" or backend is None:
        return None
    if mode == "auto" and not engine_available():
        logger.info("--task-call-grammar auto: llguidance is not installed; calls are decoded unconstrained")
        return None
    require_engine()  # schema without llguidance: say how to install it
    from parlai_dialogft.tod.call_grammar import call_grammar

    grammar = call_grammar(backend.signatures())
    grammar.check()  # a --tools schema the engine cannot compile: one error now, not at the first call
    return grammar


def without_prefix(text: str, prefix: str) -> str:
    text = text.strip()
    return text[len(prefix.strip()):].strip() if text.startswith(prefix.strip()) else text


class GrammarWatcher:
    """A :class:`~parlai_dialogft.model.fast_search.StepWatcher` that masks rows by their grammar,
    around the watcher already there (the serving stream's), which keeps seeing every step."""

    def __init__(self, constraints: Sequence, inner, factory):
        self.constraints, self.inner = list(constraints), inner
        self.factory = inner.factory if inner is not None else factory

    def ending(self, ts, live):
        return self.inner.ending(ts, live) if self.inner is not None else [False] * len(live)

    def constrain(self, ts, logprobs, live, ended) -> None:
        inner = getattr(self.inner, "constrain", None)
        if inner is not None:
            inner(ts, logprobs, live, ended)
        for row, constraint in enumerate(self.constraints):
            if constraint is not None and live[row] and not ended[row]:
                constraint.mask(logprobs[row])

    def stepped(self, ts, tokens, live, ended) -> None:
        if self.inner is not None:
            self.inner.stepped(ts, tokens, live, ended)
        for row, constraint in enumerate(self.constraints):
            if constraint is not None and live[row] and not ended[row]:
                constraint.advance(tokens[row])

    def abandon(self) -> None:
        if self.inner is not None:
            self.inner.abandon()
        for constraint in self.constraints:
            if constraint is not None:
                constraint.reset()


class TodLoopMixin:
    """Mix in before ``TorchGeneratorAgent``; inert unless ``--task-db`` names a database."""

    @classmethod
    def add_cmdline_args(cls, parser, partial_opt=None):
        parser = super().add_cmdline_args(parser, partial_opt=partial_opt)
        add_task_db_args(parser)
        return parser

    def __init__(self, opt, shared=None):
        super().__init__(opt, shared)
        self.task_db = None
        self._booked = False  # a booking was confirmed earlier in this conversation
        self.call_grammar = None  # a model.constrained.Grammar of the calls task_db answers
        self.round_step: Optional[RoundStep] = None  # which generation of a round batch_act runs
        # Training teaches the format from a teacher's turns; the loop is for evaluation and chat.
        datatype = opt.get("datatype", "")
        self._tod_training = datatype.startswith("train") and "evalmode" not in datatype and not opt.get("interactive_mode")
        name = opt.get("task_db") or "none"
        if name == "none" and not opt.get("tools"):
            return
        if shared and shared.get("task_db") is not None:
            self.task_db = shared["task_db"]  # the model's copies call one database, as one user would
            self.call_grammar = shared.get("call_grammar")
        else:
            self.task_db = _backends(name, opt.get("tools"), opt.get("tools_timeout", 10.0))
            self.call_grammar = call_grammar_of(self.task_db, opt.get("task_call_grammar") or "auto")

    def share(self):
        shared = super().share()
        shared["task_db"] = self.task_db
        shared["call_grammar"] = self.call_grammar
        return shared

    # --- one user turn in ----------------------------------------------------------------

    def plays_round(self, text) -> bool:
        """Whether a turn with this text becomes a round: a plain user turn, with --task-db, not in training."""
        return (self.task_db is not None and not self._tod_training and isinstance(text, str) and bool(text.strip())
                and not speaks_format(text))

    def observe(self, observation):
        text = observation.get("text")
        if not self.plays_round(text):
            return super().observe(observation)
        observation = Message(observation)
        if not self.history.history_strings:
            self._ground()
            self._booked = False
        observation["tod_booked_before"] = self._booked  # this conversation's, for the reply's check
        observation.force_set("text", USER + text.strip())
        for key in ("labels", "eval_labels"):
            if key in observation:  # the model writes "SYSTEM: ..."; so does its gold, for ppl
                observation.force_set(key, [SYSTEM + label for label in observation[key]])
        observation["tod_round"] = True
        return super().observe(observation)

    def _ground(self) -> None:
        """A conversation starts as the teacher's do: the (empty) schema grounding turn."""
        self.history.update_history(Message({"text": SCHEMAS, "episode_done": False}))
        self.history.add_reply(SCHEMAS)

    def restore_rounds(self, turns: Sequence[Tuple[str, str]]) -> None:
        """Earlier (user turn, reply) pairs into a fresh history: the grounding, then
        ``USER: ...`` and ``SYSTEM: ...`` per turn; the next :meth:`observe` plays its round.

        A request to ``dialogft_serve`` carries what was said, not the calls made nor the
        database's answers, and they are not made again (a second ``book_`` call would book
        twice): the history of earlier turns is their words, from which the model writes the
        next call, itself the whole state of its domain. Turns of one conversation rebuilt
        this way are two lines where the teacher's are four (``APICALL``/``APIRESP`` between).
        """
        self._ground()
        # An earlier reply that names a booking of ours: a confirmation may speak of it.
        self._booked = any(self.task_db.bookings(named.upper()) for _, reply in turns
                           for named in references.REFERENCE.findall(reply))
        for user, reply in turns:
            self.history.update_history(Message({"text": USER + user.strip(), "episode_done": False}))
            self.history.add_reply(SYSTEM + reply.strip())

    # --- call, answer, reply -----------------------------------------------------------------

    def batch_act(self, observations):
        rounds = [i for i, obs in enumerate(observations) if obs.get("tod_round") and obs.get("text_vec") is not None]
        if not rounds:
            return super().batch_act(observations)
        first = [self._call_step(obs) if i in rounds else obs for i, obs in enumerate(observations)]
        with self._generating(CALL_STEP), self._constraining_calls(first, rounds):
            written = super().batch_act(first)
        found = {}
        answers = {}
        for i in rounds:
            call = self._read_call(written[i].get("text") or "")
            answers[i] = self._answer(call)
            found[i] = (calls.call_text(call), calls.resp_text(answers[i]))  # "APICALL: " as the teacher writes no call
        # Only the rounds generate again; the other rows' replies are the first pass's.
        replies = list(written)
        with self._generating(REPLY_STEP):
            for i, reply in zip(rounds, super().batch_act([self._reply_step(observations[i], *found[i]) for i in rounds])):
                replies[i] = reply
        for i in rounds:
            reply = replies[i]
            text = without_prefix(reply.get("text") or "", SYSTEM)
            booked_before = bool(observations[i].get("tod_booked_before"))
            reply.force_set("text", references.checked(text, answers[i], self.task_db, booked_before))
            reply["tod_call"], reply["tod_result"] = found[i]
            if "beam_texts" in reply:
                reply.force_set("beam_texts", [(without_prefix(t, SYSTEM), s) for t, s in reply["beam_texts"]])
        return replies

    @contextmanager
    def _generating(self, step: RoundStep) -> Iterator[None]:
        self.round_step = step
        # n-gram blocking keeps replies from repeating themselves; a call repeats " = yes ; "
        # by design (internet = yes ; parking = yes), so the call is written without it.
        blocking = (self.beam_block_ngram, self.beam_context_block_ngram)
        if step is CALL_STEP:
            self.beam_block_ngram = self.beam_context_block_ngram = -1
        try:
            yield
        finally:
            self.round_step = None
            self.beam_block_ngram, self.beam_context_block_ngram = blocking

    @contextmanager
    def _constraining_calls(self, observations: Sequence[Message], rounds: Sequence[int]) -> Iterator[None]:
        """The call step greedy, each round's row under :attr:`call_grammar` (other rows free).

        A grammar follows one hypothesis per row, so the call is decoded greedily whatever the
        model's decoding (its reply keeps it); the batch-wide greedy step
        (:mod:`parlai_dialogft.model.fast_search`) masks each row before every step. Where
        that step cannot run (token details asked for, a replaced search), ParlAI's loop
        decodes the call unconstrained.
        """
        if self.call_grammar is None:
            yield
            return
        from parlai_dialogft.model import fast_search
        from parlai_dialogft.model.constrained import RowConstraint

        valid = [i for i, obs in enumerate(observations) if self.is_valid(obs)]  # batchify's rows, in order
        constraints = [RowConstraint(self.call_grammar, self.dict.hf_tokenizer, self.END_IDX) if i in rounds else None
                       for i in valid]
        inner = fast_search.watcher_of(self)
        saved = (self.opt.get("inference"), self.opt.get("beam_size"), self.beam_size)
        self.opt["inference"], self.opt["beam_size"], self.beam_size = "greedy", 1, 1  # the search factory reads opt
        setattr(self, fast_search.WATCHER, GrammarWatcher(constraints, inner, self._treesearch_factory))
        try:
            yield
        finally:
            self.opt["inference"], self.opt["beam_size"], self.beam_size = saved
            if inner is None:
                delattr(self, fast_search.WATCHER)
            else:
                setattr(self, fast_search.WATCHER, inner)

    def get_prefix_tokens(self, batch):
        """The reply step starts with ``SYSTEM:``: what follows an answer is a reply, never a
        second call (a model early in training writes ``APICALL:`` there too)."""
        if self.round_step is not REPLY_STEP or batch.text_vec is None:
            return super().get_prefix_tokens(batch)
        import torch

        prefix = self.dict.txt2vec(SYSTEM.strip())
        return torch.tensor([prefix] * batch.batchsize, dtype=torch.long, device=batch.text_vec.device)

    def _call_step(self, obs: Message) -> Message:
        """The observation without its labels: the call is written, never scored against the reply."""
        step = Message({k: v for k, v in obs.items() if k not in ("labels", "eval_labels", "labels_vec", "eval_labels_vec")})
        return step

    def _read_call(self, text: str) -> calls.Call:
        if not text.strip().startswith(calls.CALL.strip()):
            return {}
        return getattr(self.task_db, "parse_call", calls.parse_call)(text)  # --tools reads JSON values whole

    def _answer(self, call: calls.Call) -> dict:
        if not call:
            return {}
        return self.task_db.answer(call)

    def _reply_step(self, obs: Message, call_text: str, resp_text: str) -> Message:
        """``obs`` with the call and the database's answer after its history, vectorised anew."""
        history = self.build_history()
        history.history_strings = [obs.get("full_text") or obs["text"]]
        history.history_raw_strings = list(history.history_strings)
        history.history_vecs = [history.parse(history.history_strings[0])]
        history.add_reply(call_text)
        history.add_reply(resp_text)
        derived = ("full_text", "labels_choice", "eval_labels_choice")  # vectorize writes these anew
        step = Message({k: v for k, v in obs.items() if not k.endswith("_vec") and k not in derived})
        return self.vectorize(step, history, text_truncate=self.text_truncate, label_truncate=self.label_truncate)

    # --- the history keeps the whole round -----------------------------------------------------

    def self_observe(self, self_message):
        obs = self.observation
        if obs is None or not obs.get("tod_round") or obs.get("episode_done") or "tod_call" not in self_message:
            return super().self_observe(self_message)
        self.history.add_reply(self_message["tod_call"])
        self.history.add_reply(self_message["tod_result"])
        self._booked = self._booked or calls.parse_resp(self_message["tod_result"]).get("booking") == "confirmed"
        message = Message(self_message)
        message.force_set("text", SYSTEM + (self_message.get("text") or ""))
        return super().self_observe(message)
