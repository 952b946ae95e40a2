"""The pages: ``GET /start`` turns a link into a session, then the worker's page and its files.

    GET /start?worker=ID&token=T | ?PROLIFIC_PID=.. | ?workerId=..   [&task=pairwise|chat|turns]
                         -> a session, then the worker page (/work#s=SESSION, /turns#s=SESSION)
    GET /work            the ACUTE and live-chat page (static/work.html: page.js, judgment.js, work.js)
    GET /turns           the per-turn page (static/turns.html: page.js, judgment.js, turns.js)
    GET /static/{name}   one of :data:`STATIC`, nothing else
"""

from __future__ import annotations

import html
from importlib import resources

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from parlai_dialogft.human_eval import recruit
from parlai_dialogft.human_eval.state import StudyState, study_state
from parlai_dialogft.human_eval.work_queue import Refused

# page.js: what every worker page needs (elements, the API with the session, the endings);
# judgment.js: the judgment form of both task pages.
STATIC = ("page.js", "judgment.js", "work.html", "work.js", "turns.html", "turns.js", "admin.html", "admin.js",
          "style.css")
_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}

router = APIRouter(include_in_schema=False)


@router.get("/start")
def start(request: Request, state: StudyState = Depends(study_state)) -> Response:
    params = dict(request.query_params)
    protocol = params.get("task") or (state.protocols[0] if state.protocols else "pairwise")
    try:
        if protocol not in state.protocols:
            raise Refused(404, f"this study has no {protocol!r} task")
        session, _ = recruit.start_session(state.database, params, protocol, state.settings.recruit)
    except Refused as exc:
        return HTMLResponse(_message_page(exc.message), status_code=exc.status)
    # The session goes in the fragment: browsers never send it to a server or a Referer.
    page = "/turns" if protocol == "turns" else "/work"
    return RedirectResponse(f"{page}#s={session}", status_code=303)


@router.get("/work")
def work_page() -> Response:
    return static_file("work.html")


@router.get("/turns")
def turns_page() -> Response:
    return static_file("turns.html")


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        raise Refused(404, f"no such file: {name}")
    return static_file(name)


def static_file(name: str) -> Response:
    text = resources.files("parlai_dialogft.human_eval").joinpath("static", name).read_text("utf-8")
    return Response(text, media_type=_TYPES[name.rsplit(".", 1)[1]])


def _message_page(message: str) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Human evaluation</title>"
            "<link rel='stylesheet' href='/static/style.css'></head><body><main class='narrow'>"
            f"<p class='notice' id='message'>{html.escape(message)}</p></main></body></html>")
