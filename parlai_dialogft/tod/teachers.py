"""The customer corpora as ParlAI task-oriented teachers, and the end-to-end teacher that scores the loop.

:class:`CustomerTodParser` is ParlAI's ``TodStructuredDataParser`` over our shipped SGD,
MultiWOZ and CrossWOZ (:mod:`.episodes`): mixed with ParlAI's own ``TodSystemTeacher``,
``TodUserSimulatorTeacher`` and the dump agents, ParlAI's training, metrics (``SlotMetrics``:
joint goal accuracy and slot F1 on each call) and ``tod_world_script`` run on it offline.

:class:`EndToEndTeacherBase` gives plain user turns and gold replies, one whole dialogue an
episode, for an agent that runs the loop itself (``--task-db``, :mod:`.agent_mixin`). It keeps
the agent's calls, accumulates them into a belief state, and scores: joint goal accuracy and
slot F1 on the state, call exact match, and, at the end of each dialogue, MultiWOZ's Inform and
Success (:mod:`parlai_dialogft.evaluation.task_success`). A reply-only model writes no calls:
it is scored with the gold state (the policy setting, its best case).
"""

from __future__ import annotations

from typing import Dict, List

from parlai.core.metrics import AverageMetric
from parlai.core.teachers import DialogTeacher
from parlai.core.tod.teacher_metrics import SlotMetrics
from parlai.core.tod.tod_agents import TodStructuredDataParser
from parlai.utils.data import DatatypeHelper

from parlai_dialogft.data.dialog_teacher import LANGS, opt_value
from parlai_dialogft.tod import calls, episodes, scoring
from parlai_dialogft.utils.errors import UserError

DEFAULT_SOURCES = {"en": ("sgd", "multiwoz"), "zh": ("crosswoz",), "all": episodes.SOURCES}


def add_source_args(parser) -> None:
    group = parser.add_argument_group("dialogft_customer task-oriented teachers")
    group.add_argument("--customer-lang", choices=LANGS, default="en",
                       help="en (SGD, MultiWOZ), zh (CrossWOZ) or all, when --customer-sources is all; "
                       "also -t dialogft_customer:system:lang=zh")
    group.add_argument("--customer-sources", default="all",
                       help="comma-separated among " + ", ".join(episodes.SOURCES) + ", or all; "
                       "also -t dialogft_customer:system:sources=multiwoz")
    group.add_argument("--customer-sgd-services", choices=("all", "seen", "unseen"), default="all",
                       help="SGD dialogues whose services all appear in the train schema (seen), the others "
                       "(unseen: a service the model never saw), or all")


def chosen_sources(opt) -> List[str]:
    lang = opt_value(opt, "customer_lang", "lang", "en")
    requested = opt_value(opt, "customer_sources", "sources", "all")
    if lang not in LANGS:
        raise UserError(f"--customer-lang: one of {', '.join(LANGS)}, not {lang!r}")
    names = list(DEFAULT_SOURCES[lang]) if requested in ("", "all") else requested.split(",")
    unknown = [n for n in names if n not in episodes.SOURCES]
    if unknown:
        raise UserError(
            f"--customer-sources: {', '.join(unknown)} has no calls or belief states for the task-oriented "
            f"teachers; choose from {', '.join(episodes.SOURCES)}"
        )
    if requested not in ("", "all"):
        return names  # named sources are what was asked for, whatever their language
    return [n for n in names if lang == "all" or episodes.LANGUAGES[n] == lang]


class CustomerTodParser(TodStructuredDataParser):
    @classmethod
    def add_cmdline_args(cls, parser, partial_opt=None):
        parser = super().add_cmdline_args(parser, partial_opt)
        add_source_args(parser)
        return parser

    def __init__(self, opt, shared=None):
        self.fold = DatatypeHelper.fold(opt["datatype"])
        opt["datafile"] = self.fold
        self.sources = chosen_sources(opt)
        super().__init__(opt, shared)

    def setup_episodes(self, fold):
        services = self.opt.get("customer_sgd_services") or "all"
        return [episode for source in self.sources for episode in episodes.episodes(source, fold)
                if services == "all" or source != "sgd" or episodes.sgd_seen(episode) == (services == "seen")]

    def get_id_task_prefix(self):
        return "DialogftCustomer"


# --- the loop, scored ---------------------------------------------------------------------------


def flat(state: calls.State) -> Dict[str, str]:
    """domain -> slot -> value as ``domain-slot`` -> value, for ParlAI's ``SlotMetrics``."""
    return {f"{domain}-{slot}": value for domain, slots in state.items() for slot, value in slots.items()}


class EndToEndTeacherBase(CustomerTodParser, DialogTeacher):
    """User turn in, gold reply as the label, the gold call and state beside it."""

    def __init__(self, opt, shared=None):
        super().__init__(opt, shared)
        self._predicted: calls.State = {}
        self._dialogue: List[dict] = []
        self._predictions: Dict[str, list] = {}

    @classmethod
    def add_cmdline_args(cls, parser, partial_opt=None):
        parser = super().add_cmdline_args(parser, partial_opt)
        parser.add_argument_group("dialogft_customer:end_to_end").add_argument(
            "--tod-predictions", type=str, default=None,
            help="write the MultiWOZ dialogues' delexicalized replies and states here, in the standardized "
            "evaluation's format, for parlai dialogft_task_score (corpus BLEU and Combined)")
        return parser

    def _get_agent_type_suffix(self):
        return "EndToEndTeacher"

    def setup_data(self, fold):
        for episode in self.generate_episodes():  # ParlAI's order: DialogTeacher reads before self.episodes exists
            state: calls.State = {}
            rounds = [r for r in episode.rounds if r.user_utt != "[DONE]"]
            for i, r in enumerate(rounds):
                state = calls.accumulate(state, r.api_call_machine)
                yield {
                    "text": r.user_utt,
                    "labels": [r.sys_utt],
                    "tod_gold_call": dict(r.api_call_machine),
                    "tod_gold_result": dict(r.api_resp_machine),
                    "tod_gold_state": {d: dict(s) for d, s in state.items()},
                    "tod_source": episode.extras.get("source", ""),
                    "dialogue_id": episode.extras.get("dialogue_id", ""),
                    "tod_last": i == len(rounds) - 1,
                }, i == 0

    def custom_evaluation(self, teacher_action, labels, model_response):
        if teacher_action.get("tod_gold_state") is None:
            return
        gold_call, gold_state = teacher_action["tod_gold_call"], teacher_action["tod_gold_state"]
        if "tod_call" in model_response:  # the agent ran the loop: its own calls and answers
            call = calls.parse_call(model_response["tod_call"])
            result = calls.parse_resp(model_response.get("tod_result", ""))
            self._predicted = calls.accumulate(self._predicted, call)
            state = self._predicted
            if gold_call:
                self.metrics.add("call_em", AverageMetric(call == gold_call))
            for key, value in SlotMetrics(flat(gold_state), flat(state)).report().items():
                self.metrics.add(key, value)
        else:  # reply-only: scored with the gold state and answer (the policy setting, its best case)
            call, result, state = gold_call, teacher_action["tod_gold_result"], gold_state
        self._dialogue.append({"reply": model_response.get("text") or "", "call": call, "result": result, "state": state})
        if teacher_action.get("tod_last"):
            self._score_dialogue(teacher_action)
            self._dialogue, self._predicted = [], {}

    def _score_dialogue(self, last_action) -> None:
        """Inform and Success of one whole dialogue, as :mod:`~.task_success` and
        :mod:`~.crosswoz_inform` define them; the turns also go to ``--tod-predictions``."""
        source, dialogue_id = last_action["tod_source"], last_action["dialogue_id"]
        if source not in ("multiwoz", "crosswoz"):
            return
        scores = scoring.score_dialogue(source, dialogue_id, self._dialogue)
        for key, value in scores.items():
            self.metrics.add(key, AverageMetric(value))
        if source == "multiwoz" and self.opt.get("tod_predictions"):
            self._predictions[dialogue_id] = scoring.multiwoz_turns(self._dialogue)
            scoring.write_predictions(self.opt["tod_predictions"], self._predictions)
