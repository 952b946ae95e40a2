"""The built-in pages: the chat page, and the live-evaluation dashboard with the JSON it plots.

    GET /                   static/index.html (?q=hello sends a first message)
    GET /dashboard          static/dashboard.html: plots drawn in inline SVG by its own script
                            (no CDN: a server on loopback or behind a firewall reaches nothing)
    GET /dashboard/series   :meth:`~parlai_dialogft.serving.live_eval.LiveEvaluation.series`,
                            polled by the page

:data:`dashboard_router` is included only when the server measures its replies (a
:class:`~parlai_dialogft.serving.live_eval.LiveEvaluation`). Like ``/metrics``, no page
needs an API key: the chat page asks for one itself, the dashboard shows aggregates only,
never a conversation.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, JSONResponse

from parlai_dialogft.serving.state import ServingState, serving_state

router = APIRouter()
dashboard_router = APIRouter()


def _page(name: str) -> str:
    return resources.files("parlai_dialogft.serving").joinpath(f"static/{name}").read_text("utf-8")


@router.get("/", include_in_schema=False)
def chat_page() -> HTMLResponse:
    return HTMLResponse(_page("index.html"))


@dashboard_router.get("/dashboard", include_in_schema=False)
def dashboard_page() -> HTMLResponse:
    return HTMLResponse(_page("dashboard.html"), headers={"Cache-Control": "no-cache"})


@dashboard_router.get("/dashboard/series")
def dashboard_series(state: ServingState = Depends(serving_state)) -> JSONResponse:
    return JSONResponse(state.live.series(), headers={"Cache-Control": "no-store"})
