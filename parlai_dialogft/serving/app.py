"""The FastAPI app: the batcher's life, the middleware, the error format, and the routers.

    GET  /                      the chat page (routes/pages.py; ?q=hello sends a first message)
    GET  /healthz               {"status": "ok", ...}; 503 while shutting down (routes/operations.py)
    GET  /metrics               Prometheus text format (routes/operations.py)
    GET  /dashboard             live-evaluation plots (routes/pages.py; with a LiveEvaluation)
    GET  /v1/models             the served models (-mf's, then each --serve-lora's), OpenAI's list format
    POST /v1/chat/completions   OpenAI's request; "stream": true answers server-sent events;
                                "n": 2 asks for two drafts (choices), up to --serve-max-n;
                                fields it cannot honour are a 400 naming them (routes/openai_api.py)
    POST /v1/feedback           {"id": "chatcmpl-...", "rating": "up"|"down", "choice": 1, "comment": "..."}
                                (rating, choice or both: thumbs on a draft, the draft chosen; routes/feedback.py)

Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with a 4xx/5xx
status, so OpenAI client libraries raise their usual exceptions with our message.

The app owns the batcher (:class:`~.continuous.ContinuousBatcher` where the model's search
allows it and ``--serve-batching`` is ``continuous``, else :class:`~.batcher.MicroBatcher`):
started at startup, and closed at shutdown,
after uvicorn has let in-flight requests finish, so every accepted request is answered (and
logged: a reply is written to the log before its response is sent). The routes reach it,
and the rest they share, through :class:`~.state.ServingState`.

Back-pressure: with ``--serve-max-queue`` requests already waiting, the next gets 429 with a
``Retry-After`` (seconds: the batcher's estimate), which OpenAI's clients honour when they retry.

A client that disconnects while its request waits for a batch cancels it: it is dropped
before generation. If its batch is already generating, its rows are ended at the next search
step (the rest of the batch goes on); the reply is discarded and not logged.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, List, Optional, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from parlai_dialogft.serving import protocol
from parlai_dialogft.serving.batcher import MicroBatcher
from parlai_dialogft.serving.continuous import ContinuousBatcher, continuous_engine
from parlai_dialogft.serving.guard import BodyLimitMiddleware, BodyTooLarge
from parlai_dialogft.serving.live_eval import LiveEvaluation
from parlai_dialogft.serving.metrics import MetricsMiddleware, ServingMetrics
from parlai_dialogft.serving.options import ServeSettings
from parlai_dialogft.serving.protocol import ApiError, Prompt
from parlai_dialogft.serving.replier import Reply
from parlai_dialogft.serving.routes import feedback, openai_api, operations, pages
from parlai_dialogft.serving.state import ServingState
from parlai_dialogft.serving.store import ConversationStore

log = logging.getLogger(__name__)

Generate = Callable[[Sequence[Prompt]], List[Reply]]


def create_app(settings: ServeSettings, generate: Generate,
               store: Optional[ConversationStore] = None, live: Optional[LiveEvaluation] = None) -> FastAPI:
    """``generate`` is called in the batcher's thread only (a :class:`~.replier.Replier`);
    ``live`` measures each reply (live_eval.py) for /metrics and /dashboard."""
    metrics = ServingMetrics()
    state = ServingState(settings, _batcher(settings, generate, metrics), metrics, store, live)
    metrics.watch_queue(lambda: state.batcher.depth)
    if store is not None:
        metrics.watch_store(store.aggregates)
    if live is not None:
        live.attach(metrics.registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.batcher.start()
        try:
            yield
        finally:
            # Answers what is still queued; bounded, as uvicorn's own wait was.
            if not await run_in_threadpool(state.batcher.close, settings.shutdown_timeout_s):
                log.warning("shutdown: generation still running after %.0f s (--serve-shutdown-timeout)",
                            settings.shutdown_timeout_s)
            if store is not None:
                store.close()

    # No /docs: FastAPI's pages load Swagger from a CDN, and the schema would not show our
    # hand-checked bodies anyway.
    app = FastAPI(title="dialogft_serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every answer
    app.state.serving = state
    _add_error_handlers(app)
    if live is not None:
        app.include_router(pages.dashboard_router)
    for routes in (pages, operations, openai_api, feedback):
        app.include_router(routes.router)
    return app


def _batcher(settings: ServeSettings, generate: Generate, metrics: ServingMetrics) -> MicroBatcher[Prompt, Reply]:
    """Continuous batching where the model's search allows it and the flag asks for it, else micro."""
    batching = dict(max_batch=settings.max_batch, max_wait_s=settings.batch_wait_s,
                    max_queue=settings.max_queue, on_batch=metrics.observe_batch)
    engine = continuous_engine(generate) if settings.batching == "continuous" else None
    if engine is not None:
        return ContinuousBatcher(generate, engine, **batching)
    return MicroBatcher(generate, **batching)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request: Request, exc: BodyTooLarge) -> JSONResponse:
        message = f"request body over {exc.limit:,} bytes (the server's --serve-max-body-bytes)"
        # A refused body may be partly unread (past guard.DRAIN_CAP): start the next request afresh.
        return JSONResponse(protocol.error_body(message, "request_too_large"), status_code=413,
                            headers={"Connection": "close"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = {404: f"no such endpoint: {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return JSONResponse(protocol.error_body(message, codes.get(exc.status_code, "http_error")),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(protocol.error_body(f"internal error: {type(exc).__name__}", "internal_error",
                                                type="server_error"), status_code=500)
