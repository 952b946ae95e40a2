"""The database as ParlAI's API responder: ``APICALL: ...`` in, ``APIRESP: ...`` out.

For ParlAI's model-to-model world (``parlai.scripts.tod_world_script``)::

    parlai tod_world_script --api-resp-model parlai_dialogft.tod.api_agent:DatabaseApiAgent \\
        --tod-database multiwoz --system-model ... --user-model ...

Where ParlAI's ``StandaloneApiAgent`` replays the responses a dataset recorded (and knows
nothing about a call it never saw), this agent answers any call from the shipped database
(:mod:`.database`), books, and keeps the bookings to check a reference against.
"""

from __future__ import annotations

from typing import Optional

from parlai.core.agents import Agent
from parlai.core.message import Message
from parlai.core.opt import Opt
from parlai.core.params import ParlaiParser

from parlai_dialogft.tod import calls
from parlai_dialogft.tod.database import DATASETS, TaskDatabase, open_database


class DatabaseApiAgent(Agent):
    """Answers the system's API calls from a task database; one set of bookings per copy."""

    @classmethod
    def add_cmdline_args(cls, parser: ParlaiParser, partial_opt: Optional[Opt] = None) -> ParlaiParser:
        group = parser.add_argument_group("Task database API responder")
        group.add_argument(
            "--tod-database", type=str, default="multiwoz", choices=sorted(DATASETS),
            help="the shipped database that answers the calls: multiwoz (find and book, English) "
            "or crosswoz (find, Chinese)",
        )
        return parser

    def __init__(self, opt: Opt, shared=None):
        super().__init__(opt, shared)
        self.id = "DatabaseApiAgent"
        if shared is not None:  # TodWorld's batch copies: the same entities, bookings of their own
            self.database: TaskDatabase = shared["database"].fork()
        else:
            self.database = open_database(opt.get("tod_database") or "multiwoz")

    def share(self):
        shared = super().share()
        shared["database"] = self.database
        return shared

    def act(self) -> Message:
        text = ((self.observation or {}).get("text") or "").strip()
        call = calls.parse_call(text) if text.startswith(calls.CALL.strip()) else {}
        if not call:  # no call this turn (or not a call at all): the empty response, as ParlAI's
            return Message({"id": self.id, "text": calls.RESP, "episode_done": False})
        return Message({"id": self.id, "text": calls.resp_text(self.database.answer(call)), "episode_done": False})
