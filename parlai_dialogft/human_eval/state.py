"""What the web app's routes share: one :class:`StudyState` per app, and the FastAPI dependencies that hand it out.

:func:`~.app.create_app` builds the state (the settings, the two work queues, the live chats,
the tasks the study offers) and keeps it as ``app.state.study``; a route asks for it with
``state: StudyState = Depends(study_state)``. A worker's route asks for the worker with
``worker_id: str = Depends(pairwise_worker)`` (or :data:`turns_worker`, :data:`chat_worker`,
:func:`any_worker`); the admin router lists :func:`require_admin` in its ``dependencies``.
Both checks run before a route reads its body (:func:`read_body`), so a stranger learns
nothing from a body's errors.
"""

from __future__ import annotations

import hmac
import json
import random
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Type, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from parlai_dialogft.human_eval import qc, recruit
from parlai_dialogft.human_eval.db import Database
from parlai_dialogft.human_eval.live_chat import ChatModel, ChatSettings, LiveChats
from parlai_dialogft.human_eval.tasks import Assigner, TaskSettings
from parlai_dialogft.human_eval.turn_tasks import TurnAssigner
from parlai_dialogft.human_eval.work_queue import Refused
from parlai_dialogft.utils.errors import UserError


@dataclass
class AppSettings:
    admin_token: str
    questions: Dict[str, Dict[str, str]]
    problem_categories: Dict[str, Dict[str, str]] = field(default_factory=dict)
    chat_ratings: Dict[str, Dict[str, str]] = field(default_factory=dict)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    qc: qc.QcSettings = field(default_factory=qc.QcSettings)
    chat_turns: int = 5
    recruit: recruit.RecruitSettings = field(default_factory=recruit.RecruitSettings)
    max_body_bytes: int = 64 * 1024
    seed: Optional[int] = None

    def __post_init__(self) -> None:
        if len(self.admin_token) < 16:
            raise ValueError("the admin token must be at least 16 characters")
        unknown = [q for q in self.tasks.questions if q not in self.questions]
        if unknown:
            raise UserError(f"--he-questions: unknown question {unknown[0]!r} (known: {', '.join(self.questions)})")


@dataclass
class StudyState:
    database: Database
    settings: AppSettings
    pairwise: Assigner  # the ACUTE comparisons
    turns: TurnAssigner  # the per-turn items
    chats: LiveChats
    protocols: List[str]  # the tasks this study offers ("pairwise", "chat", "turns"); the first is /start's default

    @classmethod
    def build(cls, database: Database, settings: AppSettings,
              models: Optional[Mapping[str, ChatModel]] = None) -> "StudyState":
        """The queues over ``database`` (one random source, seeded by ``settings.seed``), and
        the tasks offered: those with items loaded, and the chat when there are models."""
        rng = random.Random(settings.seed)
        chat_settings = ChatSettings(settings.chat_turns, tuple(settings.problem_categories),
                                     tuple(settings.chat_ratings))
        has_pairwise = bool(database.rows("SELECT 1 FROM pairings WHERE kind = 'task' LIMIT 1"))
        has_turns = bool(database.rows("SELECT 1 FROM turn_items WHERE kind = 'task' LIMIT 1"))
        offered = (("pairwise", has_pairwise), ("chat", bool(models)), ("turns", has_turns))
        return cls(database=database, settings=settings,
                   pairwise=Assigner(database, settings.tasks, settings.qc, rng),
                   turns=TurnAssigner(database, settings.tasks, settings.qc, rng),
                   chats=LiveChats(database, models or {}, chat_settings, settings.qc),
                   protocols=[protocol for protocol, on in offered if on])


def study_state(request: Request) -> StudyState:
    return request.app.state.study


# --- who is asking ------------------------------------------------------------------------------


class Session(NamedTuple):
    worker_id: str
    protocol: str  # the task the worker's start link was for


def session(request: Request, state: StudyState = Depends(study_state)) -> Session:
    """The worker of the request's ``Authorization: Bearer SESSION``, or 401."""
    return Session(*recruit.session_worker(state.database, request.headers.get("authorization")))


def any_worker(started: Session = Depends(session)) -> str:
    return started.worker_id


def worker_of(protocol: str) -> Callable[[Session], str]:
    """A dependency: the session's worker, 403 unless their link was for ``protocol``."""

    def worker(started: Session = Depends(session)) -> str:
        if started.protocol != protocol:  # one link, one task: its completion code means one thing
            raise Refused(403, f"this link is for the {started.protocol} task")
        return started.worker_id

    return worker


pairwise_worker = worker_of("pairwise")
turns_worker = worker_of("turns")
chat_worker = worker_of("chat")


def require_admin(request: Request, state: StudyState = Depends(study_state)) -> None:
    """401 unless the request carries the admin token (``Authorization: Bearer`` or ``?token=``)."""
    header = request.headers.get("authorization") or ""
    given = header[7:].strip() if header.lower().startswith("bearer ") else request.query_params.get("token", "")
    if not given or not hmac.compare_digest(given.encode(), state.settings.admin_token.encode()):
        raise Refused(401, "admin pages need the admin token (Authorization: Bearer TOKEN, or ?token=)")


# --- request bodies -----------------------------------------------------------------------------


class RequestBody(BaseModel):
    """The base of every request body model."""

    # strict: 5, not "5" or 5.0 or true. Unknown fields are ignored, as before these models: a
    # client may send one body to several routes, and a misspelt required field is still missing.
    model_config = ConfigDict(extra="ignore", strict=True)


Body = TypeVar("Body", bound=BaseModel)


async def read_body(request: Request, model: Type[Body]) -> Body:
    """The JSON body as ``model``, or a 400 naming the field; read once the caller is known."""
    try:
        payload = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise Refused(400, "send a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
                    for error in exc.errors()[:3]]
        raise Refused(400, "invalid request: " + "; ".join(problems)) from None
