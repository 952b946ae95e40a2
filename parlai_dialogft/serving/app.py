"""The HTTP routes: OpenAI's chat completions, feedback, health, metrics and the chat page.

    GET  /                      the chat page (static/index.html; ?q=hello sends a first message)
    GET  /healthz               {"status": "ok", ...}; 503 while shutting down
    GET  /metrics               Prometheus text format
    GET  /dashboard             live-evaluation plots (dashboard.py; with a LiveEvaluation)
    GET  /v1/models             the served models (-mf's, then each --serve-lora's), OpenAI's list format
    POST /v1/chat/completions   OpenAI's request; "stream": true answers server-sent events;
                                "n": 2 asks for two drafts (choices), up to --serve-max-n;
                                fields it cannot honour are a 400 naming them (protocol.py)
    POST /v1/feedback           {"id": "chatcmpl-...", "rating": "up"|"down", "choice": 1, "comment": "..."}
                                (rating, choice or both: thumbs on a draft, the draft chosen)

Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with a 4xx/5xx
status, so OpenAI client libraries raise their usual exceptions with our message.

The app owns the batcher (:class:`~.continuous.ContinuousBatcher` where the model's search
allows it and ``--serve-batching`` is ``continuous``, else :class:`~.batcher.MicroBatcher`):
started at startup, and closed at shutdown,
after uvicorn has let in-flight requests finish, so every accepted request is answered (and
logged: a reply is written to the log before its response is sent).

Back-pressure: with ``--serve-max-queue`` requests already waiting, the next gets 429 with a
``Retry-After`` (seconds: the batcher's estimate), which OpenAI's clients honour when they retry.

Streaming (``"stream": true``): the response starts at once with the role chunk; the reply's
text follows as the search decodes it (:mod:`.streaming`: one-draft replies of greedy or
sampled decoding; a beam's reply, or several drafts, at the end), then the finish reason.
The time from the request to its first content chunk is ``dialogft_time_to_first_token_seconds``.

A client that disconnects while its request waits for a batch cancels it: it is dropped
before generation. If its batch is already generating, its rows are ended at the next search
step (the rest of the batch goes on); the reply is discarded and not logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from concurrent.futures import Future
from contextlib import asynccontextmanager
from importlib import resources
from typing import AsyncIterator, Awaitable, Callable, List, Optional, Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from parlai_dialogft.serving import protocol
from parlai_dialogft.serving.batcher import Closed, MicroBatcher, QueueFull
from parlai_dialogft.serving.continuous import ContinuousBatcher, continuous_engine
from parlai_dialogft.serving.dashboard import add_dashboard_routes
from parlai_dialogft.serving.guard import BodyLimitMiddleware, BodyTooLarge, bearer_token, key_matches
from parlai_dialogft.serving.live_eval import LiveEvaluation
from parlai_dialogft.serving.metrics import MetricsMiddleware, ServingMetrics
from parlai_dialogft.serving.options import ServeSettings
from parlai_dialogft.serving.protocol import ApiError, ChatRequest, FeedbackRequest, Prompt
from parlai_dialogft.serving.replier import Reply
from parlai_dialogft.serving.store import ConversationStore, NoSuchDraft
from parlai_dialogft.serving.streaming import ReplyChannel

log = logging.getLogger(__name__)

Generate = Callable[[Sequence[Prompt]], List[Reply]]


def create_app(settings: ServeSettings, generate: Generate,
               store: Optional[ConversationStore] = None, live: Optional[LiveEvaluation] = None) -> FastAPI:
    """``generate`` is called in the batcher's thread only (a :class:`~.replier.Replier`);
    ``live`` measures each reply (live_eval.py) for /metrics and /dashboard."""
    metrics = ServingMetrics()
    batching = dict(max_batch=settings.max_batch, max_wait_s=settings.batch_wait_s,
                    max_queue=settings.max_queue, on_batch=metrics.observe_batch)
    engine = continuous_engine(generate) if settings.batching == "continuous" else None
    batcher: MicroBatcher[Prompt, Reply] = (
        ContinuousBatcher(generate, engine, **batching) if engine is not None else MicroBatcher(generate, **batching))
    metrics.watch_queue(lambda: batcher.depth)
    if store is not None:
        metrics.watch_store(store.aggregates)
    if live is not None:
        live.attach(metrics.registry)
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            # Answers what is still queued; bounded, as uvicorn's own wait was.
            if not await run_in_threadpool(batcher.close, settings.shutdown_timeout_s):
                log.warning("shutdown: generation still running after %.0f s (--serve-shutdown-timeout)",
                            settings.shutdown_timeout_s)
            if store is not None:
                store.close()

    # No /docs: FastAPI's pages load Swagger from a CDN, and the schema would not show our
    # hand-checked bodies anyway.
    app = FastAPI(title="dialogft_serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every answer
    app.state.batcher = batcher
    app.state.metrics = metrics
    _add_error_handlers(app)
    if live is not None:
        add_dashboard_routes(app, live)

    def require_key(request: Request) -> None:
        if not settings.api_keys:
            return
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise ApiError(401, "missing API key: send the header 'Authorization: Bearer KEY'",
                           "missing_api_key", headers={"WWW-Authenticate": "Bearer"})
        if not key_matches(token, settings.api_keys):
            raise ApiError(401, "incorrect API key", "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    authorized = [Depends(require_key)]

    def check_model(name: Optional[str]) -> None:
        if name is not None and name not in settings.served_models:
            raise ApiError(404, f"the model {name!r} does not exist: this server serves "
                           f"{', '.join(map(repr, settings.served_models))} (GET /v1/models)", "model_not_found",
                           param="model")

    def submit(prompt: Prompt) -> "Future[Reply]":
        """Queue ``prompt`` (429 when the queue is full); its channel closes when it is done."""
        try:
            future = batcher.submit(prompt)
        except QueueFull as exc:
            raise ApiError(429, f"server busy: {exc}; retry in {exc.retry_after_s} s (--serve-max-queue "
                           f"{settings.max_queue})", "queue_full", type="rate_limit_error",
                           headers={"Retry-After": str(exc.retry_after_s)}) from None
        except Closed:
            raise ApiError(503, "the server is shutting down", "shutting_down", type="server_error") from None
        channel = prompt.channel

        def done(_future: "Future[Reply]") -> None:  # the worker thread, or the loop when dropped
            if channel is not None:
                metrics.observe_search(channel.steps, channel.ended_by)
                channel.close()

        future.add_done_callback(done)
        return future

    async def generate_one(prompt: Prompt, request: Request) -> Reply:
        reply = asyncio.wrap_future(submit(prompt))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({reply, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not reply.done():
            # Cancelling the wrapper cancels the batcher's future: dropped if still queued;
            # if generating, the channel ends its rows at the next search step.
            if prompt.channel is not None:
                prompt.channel.cancel()
            reply.cancel()
            raise ApiError(499, "the client closed the connection", "client_closed_request")
        return _result(reply)

    @app.get("/", include_in_schema=False)
    def chat_page() -> HTMLResponse:
        page = resources.files("parlai_dialogft.serving").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(page)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        body = {"status": "shutting_down" if batcher.closed else "ok", "model": settings.model_name,
                "queue_depth": batcher.depth, "auth_required": bool(settings.api_keys),
                "feedback": store is not None}
        return JSONResponse(body, status_code=503 if batcher.closed else 200)

    @app.get("/metrics")
    def prometheus() -> Response:
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    @app.get("/v1/models", dependencies=authorized)
    def list_models() -> dict:
        return {"object": "list", "data": [protocol.model_card(name, started) for name in settings.served_models]}

    @app.get("/v1/models/{name:path}", dependencies=authorized)
    def get_model(name: str) -> dict:
        check_model(name)
        return protocol.model_card(name, started)

    @app.post("/v1/chat/completions", dependencies=authorized)
    async def chat_completions(request: Request) -> Response:
        start = time.perf_counter()
        chat = protocol.parse(ChatRequest, await _read_json(request))
        check_model(chat.model)
        if chat.n > settings.max_n:
            raise ApiError(400, f"invalid request: n: {chat.n} drafts asked for; this server gives at most "
                           f"{settings.max_n} (--serve-max-n)", "invalid_request", param="n")
        # The request's line to the search: its text as decoded (streamed only), and its cancel.
        channel = ReplyChannel(asyncio.get_running_loop() if chat.stream else None)
        prompt = protocol.to_prompt(chat.messages, chat.reply_limit, chat.decoding, chat.stops, channel)
        model = chat.model or settings.model_name
        if model != settings.model_name:  # a --serve-lora model: generated with its adapter (adapters.py)
            prompt = dataclasses.replace(prompt, adapter=model)
        cid, created = protocol.new_completion_id(), int(time.time())

        async def record(reply: Reply) -> None:
            metrics.prompt_tokens.inc(reply.prompt_tokens)
            metrics.generated_tokens.inc(reply.completion_tokens)
            if live is not None:
                live.observe_reply(prompt, reply, chat.messages[-1].text)
            if store is not None:
                messages = [m.model_dump() for m in chat.messages]
                drafts = [(d.text, d.finish_reason, d.completion_tokens) for d in reply.drafts]
                await run_in_threadpool(store.log_reply, cid, model, messages, reply.text,
                                        reply.finish_reason, reply.prompt_tokens, reply.completion_tokens,
                                        time.perf_counter() - start, drafts)

        if chat.stream:
            future = submit(prompt)  # before the response starts: a full queue is still a 429
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            events = _stream(cid, model, created, channel, future, record, include_usage,
                             lambda: metrics.time_to_first_token.observe(time.perf_counter() - start))
            # no-cache and no proxy buffering: each event should reach the client as sent.
            return StreamingResponse(events, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        reply = await generate_one(prompt, request)
        await record(reply)
        return JSONResponse(protocol.completion(cid, model,
                                                [(d.text, d.finish_reason) for d in reply.drafts],
                                                reply.prompt_tokens, reply.completion_tokens, created))

    @app.post("/v1/feedback", dependencies=authorized)
    async def feedback(request: Request) -> dict:
        if store is None:
            raise ApiError(404, "feedback is off: start the server with --serve-log-db PATH",
                           "feedback_disabled")
        given = protocol.parse(FeedbackRequest, await _read_json(request))
        try:
            known = await run_in_threadpool(store.add_feedback, given.id, given.rating, given.comment, given.choice)
        except NoSuchDraft as exc:
            raise ApiError(400, f"invalid request: choice: {exc}", "invalid_request", param="choice") from None
        if not known:
            raise ApiError(404, f"no logged reply has the id {given.id!r}", "reply_not_found", param="id")
        if given.rating is not None:
            metrics.feedback.labels(given.rating).inc()
            if live is not None:
                live.observe_feedback(given.rating)
        answer = {"id": given.id, "rating": given.rating, "status": "recorded"}
        if given.choice is not None:
            answer["choice"] = given.choice
        return answer

    return app


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone. The body is read by now, so the next ASGI message
    can only be ``http.disconnect`` (uvicorn sends it when the connection closes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _read_json(request: Request) -> object:
    body = await request.body()
    if not body.strip():
        raise ApiError(400, "empty request body: send a JSON object", "invalid_json")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}", "invalid_json") from None


def _result(reply: "asyncio.Future[Reply]") -> Reply:
    try:
        return reply.result()
    except Exception as exc:  # noqa: BLE001 - the model failed; the client gets a 500 saying so
        log.exception("generation failed")
        raise ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", "generation_failed",
                       type="server_error") from None


async def _stream(cid: str, model: str, created: int, channel: ReplyChannel, future: "Future[Reply]",
                  record: Callable[[Reply], Awaitable[None]], include_usage: bool,
                  first_token: Callable[[], None]) -> AsyncIterator[str]:
    """OpenAI's chunk sequence per choice: role, content pieces, finish reason; then [usage], ``[DONE]``.

    Choice 0's text arrives as the search decodes it (``channel``); what the finished reply
    has beyond what was streamed (all of it for a beam search, or whitespace held back)
    follows in pieces once it is done. Further drafts (``n`` > 1) follow whole, in pieces,
    each marked with its ``index``. If the client goes, the response is cancelled and the
    channel tells the search to end the request's rows.
    """

    def event(payload: dict) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def content(piece: str, index: int) -> str:
        return event(protocol.chunk(cid, model, created, {"content": piece}, index=index))

    reply_future = asyncio.wrap_future(future)
    finished = False
    try:
        yield event(protocol.chunk(cid, model, created, {"role": "assistant", "content": ""}))
        sent = ""
        async for delta in channel.deltas():
            if not sent:
                first_token()
            sent += delta
            yield content(delta, 0)
        try:
            await asyncio.wait({reply_future})
            reply = _result(reply_future)
        except ApiError as error:  # 200 is sent already: OpenAI's clients raise on an error event
            finished = True
            yield event(error.body())
            return
        await record(reply)  # logged before its last chunk, as a whole reply before its response
        for index, draft in enumerate(reply.drafts):
            if index:
                yield event(protocol.chunk(cid, model, created, {"role": "assistant", "content": ""}, index=index))
            rest = draft.text
            if index == 0:
                if not draft.text.startswith(sent):
                    log.warning("%s: streamed text %r is not where the reply %r starts", cid, sent, draft.text)
                rest = draft.text[len(sent):] if draft.text.startswith(sent) else ""
                if rest and not sent:
                    first_token()
            for piece in protocol.pieces(rest):
                yield content(piece, index)
            yield event(protocol.chunk(cid, model, created, {}, draft.finish_reason, index=index))
        if include_usage:
            yield event({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [], "usage": protocol.usage(reply.prompt_tokens, reply.completion_tokens)})
        yield "data: [DONE]\n\n"
        finished = True
    finally:
        if not finished:  # the client went (or the server stops): no more work for this reply
            channel.cancel()
            reply_future.cancel()


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
