"""The built-in live-evaluation dashboard: a page and the JSON it plots.

    GET /dashboard          static/dashboard.html: plots drawn in inline SVG by its own script
                            (no CDN: a server on loopback or behind a firewall reaches nothing)
    GET /dashboard/series   :meth:`~.live_eval.LiveEvaluation.series`, polled by the page

Like ``/metrics``, neither needs an API key: both show aggregates only, never a conversation.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from parlai_dialogft.serving.live_eval import LiveEvaluation


def add_dashboard_routes(app: FastAPI, live: LiveEvaluation) -> None:
    @app.get("/dashboard", include_in_schema=False)
    def dashboard_page() -> HTMLResponse:
        page = resources.files("parlai_dialogft.serving").joinpath("static/dashboard.html").read_text("utf-8")
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/dashboard/series")
    def dashboard_series() -> JSONResponse:
        return JSONResponse(live.series(), headers={"Cache-Control": "no-store"})
