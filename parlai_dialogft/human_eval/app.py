"""The human-evaluation web app: worker pages, their JSON API, and the admin pages.

    GET  /start?worker=ID&token=T | ?PROLIFIC_PID=.. | ?workerId=..   [&task=pairwise|chat|turns]
                                   -> a session, then the worker page (/work#s=SESSION, /turns#s=SESSION)
    GET  /work                     the worker page (static/work.html + work.js)
    GET  /turns                    the per-turn page (static/turns.html + turns.js)
    GET  /api/me                   the worker's protocol, the questions and categories to show
    GET  /api/pairwise/next[?more=1]   the next comparison (or the stage: done, blocked, ...)
    POST /api/pairwise/{assignment_id} {"choice": "left"|"right", "justification": "..."}
    GET  /api/turns/next[?more=1]  the next per-turn item: a context and two candidate replies
    POST /api/turns/{assignment_id}    {"choice": "left"|"right", "justification": "..."}
    GET  /api/chat                 the worker's live chat (started on first call)
    POST /api/chat/{chat_id}/message   {"text": "...", "problems": [...] for the last bot turn}
    POST /api/chat/{chat_id}/finish    {"problems": [...], "ratings": {"key": 1..5}}
    GET  /api/done                 the completion code, once the worker has finished
    GET  /admin?token=ADMIN        progress, workers, flags, blocklist, latest judgments
    GET  /admin/api/...            the same as JSON; exports as CSV/JSON (Bearer ADMIN or ?token=)

Every /api call needs ``Authorization: Bearer SESSION`` and acts only on that session's
worker; another worker's ids answer 404, as unknown ones do. Pages put all text into the
DOM with ``textContent`` and a Content-Security-Policy forbids inline scripts, so HTML in a
conversation or a justification is shown as text, never run. Errors are
``{"error": "message"}`` with a 4xx status; the page shows the message.

Request bodies are pydantic models (:class:`PairwiseAnswer`, :class:`ChatTurn`, ...), read
after the caller is authenticated: a body of the wrong shape is a 400 whose message names
the field (``choice: Input should be 'left' or 'right'``). What depends on the study (the
known problems and ratings, the 1-5 range, a justification's length) is checked where the
study's settings are, in :mod:`.tasks` and :mod:`.live_chat`, with a 422.
"""

from __future__ import annotations

import csv
import hmac
import html
import io
import json
import random
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any, Dict, List, Literal, Mapping, Optional, Type, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from parlai_dialogft.human_eval import db as dbmod
from parlai_dialogft.human_eval import qc, recruit
from parlai_dialogft.human_eval.live_chat import ChatModel, ChatSettings, LiveChats
from parlai_dialogft.human_eval.questions import NONE_PROBLEM
from parlai_dialogft.human_eval.tasks import Assigner, TaskSettings
from parlai_dialogft.human_eval.turn_tasks import TurnAssigner
from parlai_dialogft.human_eval.work_queue import Refused
from parlai_dialogft.serving.guard import BodyLimitMiddleware, BodyTooLarge
from parlai_dialogft.utils.errors import UserError

STATIC = ("page.js", "work.html", "work.js", "turns.html", "turns.js", "admin.html", "admin.js", "style.css")
_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
# Only our own files may run or style the page: an injected <script> or onerror= is inert.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class _Body(BaseModel):
    # strict: 5, not "5" or 5.0 or true. Unknown fields are ignored, as before these models: a
    # client may send one body to several routes, and a misspelt required field is still missing.
    model_config = ConfigDict(extra="ignore", strict=True)


class PairwiseAnswer(_Body):
    """POST /api/pairwise/{assignment_id}: which side the worker chose, and why."""

    choice: Literal["left", "right"]
    justification: str


class TurnAnswer(_Body):
    """POST /api/turns/{assignment_id}: which candidate reply the worker chose, and why."""

    choice: Literal["left", "right"]
    justification: str


class ChatTurn(_Body):
    """POST /api/chat/{chat_id}/message: the worker's message; from the second turn on, with
    the problems they marked on the model's last reply (absent on the first turn)."""

    text: str
    problems: Optional[List[str]] = None


class ChatFinish(_Body):
    """POST /api/chat/{chat_id}/finish: the last reply's problems and the final ratings."""

    problems: Optional[List[str]] = None
    ratings: Dict[str, int]


class BlockRequest(_Body):
    """POST /admin/api/blocklist."""

    worker_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    reason: Optional[str] = None  # empty or absent: "blocked by an admin"


class LinksRequest(_Body):
    """POST /admin/api/links: how many lab links to make."""

    count: int = Field(ge=1, le=1000)


Body = TypeVar("Body", bound=BaseModel)


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


def create_app(database: dbmod.Database, settings: AppSettings,
               models: Optional[Mapping[str, ChatModel]] = None) -> FastAPI:
    rng = random.Random(settings.seed)
    assigner = Assigner(database, settings.tasks, settings.qc, rng)
    turns = TurnAssigner(database, settings.tasks, settings.qc, rng)
    chat_settings = ChatSettings(settings.chat_turns, tuple(settings.problem_categories), tuple(settings.chat_ratings))
    chats = LiveChats(database, models or {}, chat_settings, settings.qc)
    has_pairwise = bool(database.rows("SELECT 1 FROM pairings WHERE kind = 'task' LIMIT 1"))
    has_turns = bool(database.rows("SELECT 1 FROM turn_items WHERE kind = 'task' LIMIT 1"))
    protocols = [p for p, on in (("pairwise", has_pairwise), ("chat", bool(models)), ("turns", has_turns)) if on]

    app = FastAPI(title="dialogft_human_eval", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(Refused)
    async def refused(_request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse({"error": f"request body over {exc.limit:,} bytes"}, status_code=413,
                            headers={"Connection": "close"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: f"no such page: {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return JSONResponse({"error": message}, status_code=exc.status_code)

    def worker(request: Request, protocol: Optional[str] = None) -> str:
        worker_id, started_for = recruit.session_worker(database, request.headers.get("authorization"))
        if protocol and started_for != protocol:  # one link, one task: its completion code means one thing
            raise Refused(403, f"this link is for the {started_for} task")
        return worker_id

    def admin(request: Request) -> None:
        header = request.headers.get("authorization") or ""
        given = header[7:].strip() if header.lower().startswith("bearer ") else request.query_params.get("token", "")
        if not given or not hmac.compare_digest(given.encode(), settings.admin_token.encode()):
            raise Refused(401, "admin pages need the admin token (Authorization: Bearer TOKEN, or ?token=)")

    async def body(request: Request, model: Type[Body]) -> Body:
        """The JSON body as ``model``; called after the auth check, so a stranger learns nothing."""
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

    # --- worker pages -------------------------------------------------------------------------

    @app.get("/start", include_in_schema=False)
    def start(request: Request) -> Response:
        params = dict(request.query_params)
        protocol = params.get("task") or (protocols[0] if protocols else "pairwise")
        try:
            if protocol not in protocols:
                raise Refused(404, f"this study has no {protocol!r} task")
            session, _ = recruit.start_session(database, params, protocol, settings.recruit)
        except Refused as exc:
            return HTMLResponse(_message_page(exc.message), status_code=exc.status)
        # The session goes in the fragment: browsers never send it to a server or a Referer.
        page = "/turns" if protocol == "turns" else "/work"
        return RedirectResponse(f"{page}#s={session}", status_code=303)

    @app.get("/work", include_in_schema=False)
    def work_page() -> Response:
        return _static("work.html")

    @app.get("/turns", include_in_schema=False)
    def turns_page() -> Response:
        return _static("turns.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            raise Refused(404, f"no such file: {name}")
        return _static(name)

    @app.get("/api/me")
    def me(request: Request) -> Dict[str, Any]:
        worker_id, protocol = recruit.session_worker(database, request.headers.get("authorization"))
        return {"worker_id": worker_id, "protocol": protocol,
                "questions": {k: settings.questions[k] for k in settings.tasks.questions},
                "min_justification_chars": settings.qc.min_justification_chars,
                "min_seconds": settings.qc.min_seconds,
                "problems": [{"key": k, **v} for k, v in settings.problem_categories.items()]
                + [{"key": NONE_PROBLEM, "name": "No problem", "description": ""}],
                "ratings": [{"key": k, **v} for k, v in settings.chat_ratings.items()]}

    @app.get("/api/pairwise/next")
    def pairwise_next(request: Request, more: int = 0) -> Dict[str, Any]:
        return assigner.next(worker(request, "pairwise"), more=bool(more))

    @app.post("/api/pairwise/{assignment_id}")
    async def pairwise_submit(assignment_id: str, request: Request) -> Dict[str, Any]:
        who = worker(request, "pairwise")
        answer = await body(request, PairwiseAnswer)
        return await run_in_threadpool(assigner.submit, who, assignment_id, answer.choice, answer.justification)

    @app.get("/api/turns/next")
    def turns_next(request: Request, more: int = 0) -> Dict[str, Any]:
        return turns.next(worker(request, "turns"), more=bool(more))

    @app.post("/api/turns/{assignment_id}")
    async def turns_submit(assignment_id: str, request: Request) -> Dict[str, Any]:
        who = worker(request, "turns")
        answer = await body(request, TurnAnswer)
        return await run_in_threadpool(turns.submit, who, assignment_id, answer.choice, answer.justification)

    @app.get("/api/chat")
    def chat_current(request: Request) -> Dict[str, Any]:
        return chats.current(worker(request, "chat"))

    @app.post("/api/chat/{chat_id}/message")
    async def chat_message(chat_id: str, request: Request) -> Dict[str, Any]:
        who = worker(request, "chat")
        turn = await body(request, ChatTurn)
        return await run_in_threadpool(chats.send, who, chat_id, turn.text, turn.problems)

    @app.post("/api/chat/{chat_id}/finish")
    async def chat_finish(chat_id: str, request: Request) -> Dict[str, Any]:
        who = worker(request, "chat")
        end = await body(request, ChatFinish)
        return await run_in_threadpool(chats.finish, who, chat_id, end.problems, end.ratings)

    @app.get("/api/done")
    def done(request: Request) -> Dict[str, Any]:
        worker_id = worker(request)
        (row,) = database.rows("SELECT finished FROM workers WHERE worker_id = ?", (worker_id,))
        if row["finished"] is None:
            raise Refused(409, "not finished yet")
        return recruit.completion_code(database, worker_id, settings.recruit)

    # --- admin --------------------------------------------------------------------------------

    @app.get("/admin", include_in_schema=False)
    def admin_page(request: Request) -> Response:
        admin(request)
        return _static("admin.html")

    @app.get("/admin/api/progress")
    def progress(request: Request) -> Dict[str, Any]:
        admin(request)
        count = lambda sql: database.rows(sql)[0]["n"]  # noqa: E731
        return {
            "pairings": {r["kind"]: r["n"] for r in database.rows("SELECT kind, count(*) n FROM pairings GROUP BY kind")},
            "judgments": count("SELECT count(*) n FROM judgments WHERE is_onboarding = 0 AND is_attention_check = 0"),
            "judgments_per_pair": database.rows(
                "SELECT p.pair_id, p.model_a, p.model_b, count(j.judgment_id) n FROM pairings p LEFT JOIN judgments j "
                "USING (pair_id) WHERE p.kind = 'task' GROUP BY p.pair_id ORDER BY p.pair_id"),
            "turn_items": {r["kind"]: r["n"] for r in database.rows(
                "SELECT kind, count(*) n FROM turn_items GROUP BY kind")},
            "turn_judgments": count("SELECT count(*) n FROM turn_judgments WHERE is_onboarding = 0 "
                                    "AND is_attention_check = 0"),
            "chats_finished": count("SELECT count(*) n FROM chats WHERE finished IS NOT NULL"),
            "chats_open": count("SELECT count(*) n FROM chats WHERE finished IS NULL"),
            "workers": count("SELECT count(*) n FROM workers"),
            "blocked": count("SELECT count(*) n FROM blocklist"),
        }

    @app.get("/admin/api/workers")
    def workers(request: Request) -> Dict[str, Any]:
        admin(request)
        rows = database.rows(
            "SELECT w.worker_id, w.platform, w.onboarding, w.turn_onboarding, w.finished, w.completion_code, "
            "b.reason AS blocked, (SELECT count(*) FROM judgments j WHERE j.worker_id = w.worker_id) AS judgments, "
            "(SELECT count(*) FROM turn_judgments t WHERE t.worker_id = w.worker_id) AS turn_judgments, "
            "(SELECT count(*) FROM chats c WHERE c.worker_id = w.worker_id AND c.finished IS NOT NULL) AS chats "
            "FROM workers w LEFT JOIN blocklist b USING (worker_id) ORDER BY w.created")
        flags = database.rows("SELECT worker_id, kind, detail FROM flags ORDER BY created")
        return {"workers": rows, "flags": flags}

    @app.get("/admin/api/judgments")
    def judgments(request: Request, limit: int = 50) -> Dict[str, Any]:
        admin(request)
        return {"judgments": database.rows(
            "SELECT judgment_id, worker_id, question, winner, left_model, justification, duration_s, "
            "is_onboarding, is_attention_check, passed_check FROM judgments ORDER BY created DESC LIMIT ?",
            (max(1, min(limit, 1000)),))}

    @app.get("/admin/api/blocklist")
    def blocklist(request: Request) -> Dict[str, Any]:
        admin(request)
        return {"blocklist": database.rows("SELECT worker_id, reason, created FROM blocklist ORDER BY created")}

    @app.post("/admin/api/blocklist")
    async def block(request: Request) -> Dict[str, Any]:
        admin(request)
        blocking = await body(request, BlockRequest)
        database.block(blocking.worker_id, blocking.reason or "blocked by an admin")
        return {"blocked": blocking.worker_id}

    @app.delete("/admin/api/blocklist/{worker_id}")
    def unblock(worker_id: str, request: Request) -> Dict[str, Any]:
        admin(request)
        if not database.unblock(worker_id):
            raise Refused(404, f"{worker_id} is not blocked")
        return {"unblocked": worker_id}

    @app.post("/admin/api/links")
    async def links(request: Request) -> Dict[str, Any]:
        admin(request)
        count = (await body(request, LinksRequest)).count
        base = str(request.base_url).rstrip("/")
        return {"links": [{**w, "url": f"{base}/start?worker={w['worker_id']}&token={w['token']}"}
                          for w in database.create_link_workers(count)]}

    @app.get("/admin/api/export/{name}")
    def export(name: str, request: Request) -> Response:
        admin(request)
        kind, _, fmt = name.partition(".")
        if kind not in ("pairwise", "chats") or fmt not in ("csv", "json"):
            raise Refused(404, "exports: pairwise.csv, pairwise.json, chats.csv, chats.json")
        records = (dbmod.pairwise_records if kind == "pairwise" else dbmod.chat_records)(database.path)
        if fmt == "json":
            return JSONResponse(records)
        return Response(_csv(records), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return app


def _static(name: str) -> Response:
    text = resources.files("parlai_dialogft.human_eval").joinpath("static", name).read_text("utf-8")
    return Response(text, media_type=_TYPES[name.rsplit(".", 1)[1]])


def _message_page(message: str) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Human evaluation</title>"
            "<link rel='stylesheet' href='/static/style.css'></head><body><main class='narrow'>"
            f"<p class='notice' id='message'>{html.escape(message)}</p></main></body></html>")


def _csv(records) -> str:
    out = io.StringIO()
    if records:
        writer = csv.DictWriter(out, fieldnames=list(records[0]))
        writer.writeheader()
        for record in records:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in record.items()})
    return out.getvalue()
