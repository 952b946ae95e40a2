"""The human-evaluation web app: worker pages, their JSON API, and the admin pages.

    GET  /start?worker=ID&token=T | ?PROLIFIC_PID=.. | ?workerId=..   [&task=pairwise|chat|turns]
                                   -> a session, then the worker page (/work#s=SESSION, /turns#s=SESSION)
    GET  /work                     the worker page (static/work.html + page.js, judgment.js, work.js)
    GET  /turns                    the per-turn page (static/turns.html + page.js, judgment.js, turns.js)
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

The routes are one :class:`fastapi.APIRouter` per concern, in :mod:`.routes` (the pages,
the worker's API, the two judgment tasks, the chat, the admin); what they share is a
:class:`~.state.StudyState`, handed out as a FastAPI dependency (:mod:`.state`). Here: the
app that includes them, its security headers, and how errors become ``{"error": ...}``.

Request bodies are pydantic models (:class:`~.routes.judgments.Answer`,
:class:`~.routes.chat.ChatTurn`, ...), read after the caller is authenticated: a body of the
wrong shape is a 400 whose message names the field (``choice: Input should be 'left' or
'right'``). What depends on the study (the known problems and ratings, the 1-5 range, a
justification's length) is checked where the study's settings are, in :mod:`.work_queue`
and :mod:`.live_chat`, with a 422.
"""

from __future__ import annotations

from typing import Mapping, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from parlai_dialogft.human_eval.db import Database
from parlai_dialogft.human_eval.live_chat import ChatModel
from parlai_dialogft.human_eval.routes import admin, chat, judgments, pages, worker
from parlai_dialogft.human_eval.state import AppSettings, StudyState
from parlai_dialogft.human_eval.work_queue import Refused
from parlai_dialogft.serving.guard import BodyLimitMiddleware, BodyTooLarge

# Only our own files may run or style the page: an injected <script> or onerror= is inert.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(database: Database, settings: AppSettings,
               models: Optional[Mapping[str, ChatModel]] = None) -> FastAPI:
    """The study's app over ``database``; ``models`` (name -> model) offer the live chat."""
    app = FastAPI(title="dialogft_human_eval", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.study = StudyState.build(database, settings, models)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.middleware("http")(_security_headers)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for routes in (pages, worker, judgments, chat, admin):
        app.include_router(routes.router)
    return app


async def _security_headers(request: Request, call_next):
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _refused(_request: Request, exc: Refused) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


async def _too_large(_request: Request, exc: BodyTooLarge) -> JSONResponse:
    return JSONResponse({"error": f"request body over {exc.limit:,} bytes"}, status_code=413,
                        headers={"Connection": "close"})


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = {404: f"no such page: {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return JSONResponse({"error": message}, status_code=exc.status_code)
