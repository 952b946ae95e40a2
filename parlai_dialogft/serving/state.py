"""What the routes share: one :class:`ServingState` per app, and the FastAPI dependencies that hand it out.

:func:`~.app.create_app` builds the state (the settings, the batcher, the metrics, the optional
conversation log and live evaluation) and keeps it as ``app.state.serving``; a route asks for
it with ``state: ServingState = Depends(serving_state)``, and a router that needs an API key
lists :func:`require_key` in its ``dependencies``. Getting a prompt generated (queueing it,
429 when the queue is full, giving up when the client goes) is :meth:`ServingState.generate`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Optional

from fastapi import Depends, Request

from parlai_dialogft.serving.batcher import Closed, MicroBatcher, QueueFull
from parlai_dialogft.serving.guard import bearer_token, key_matches
from parlai_dialogft.serving.live_eval import LiveEvaluation
from parlai_dialogft.serving.metrics import ServingMetrics
from parlai_dialogft.serving.options import ServeSettings
from parlai_dialogft.serving.protocol import ApiError, Prompt
from parlai_dialogft.serving.replier import Reply
from parlai_dialogft.serving.store import ConversationStore

log = logging.getLogger(__name__)


@dataclass
class ServingState:
    settings: ServeSettings
    batcher: MicroBatcher[Prompt, Reply]  # or its subclass ContinuousBatcher
    metrics: ServingMetrics
    store: Optional[ConversationStore] = None  # --serve-log-db: replies and feedback
    live: Optional[LiveEvaluation] = None  # measures each reply for /metrics and /dashboard
    started: int = field(default_factory=lambda: int(time.time()))  # the models' "created"

    def check_model(self, name: Optional[str]) -> None:
        """404 unless ``name`` (a request's ``model``; None: the default) is served here."""
        served = self.settings.served_models
        if name is not None and name not in served:
            raise ApiError(404, f"the model {name!r} does not exist: this server serves "
                           f"{', '.join(map(repr, served))} (GET /v1/models)", "model_not_found",
                           param="model")

    def submit(self, prompt: Prompt) -> "Future[Reply]":
        """Queue ``prompt`` (429 when the queue is full); its channel closes when it is done."""
        try:
            future = self.batcher.submit(prompt)
        except QueueFull as exc:
            raise ApiError(429, f"server busy: {exc}; retry in {exc.retry_after_s} s (--serve-max-queue "
                           f"{self.settings.max_queue})", "queue_full", type="rate_limit_error",
                           headers={"Retry-After": str(exc.retry_after_s)}) from None
        except Closed:
            raise ApiError(503, "the server is shutting down", "shutting_down", type="server_error") from None
        channel = prompt.channel
        metrics = self.metrics

        def done(_future: "Future[Reply]") -> None:  # the worker thread, or the loop when dropped
            if channel is not None:
                metrics.observe_search(channel.steps, channel.ended_by)
                channel.close()

        future.add_done_callback(done)
        return future

    async def generate(self, prompt: Prompt, request: Request) -> Reply:
        """The reply to ``prompt``; 499 if the client disconnects first (the prompt is dropped)."""
        reply = asyncio.wrap_future(self.submit(prompt))
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
        return reply_of(reply)


async def serving_state(request: Request) -> ServingState:
    """The app's :class:`ServingState` (a dependency: ``Depends(serving_state)``)."""
    return request.app.state.serving


async def require_key(request: Request, state: ServingState = Depends(serving_state)) -> None:
    """401 unless the request bears one of ``--serve-api-keys`` (none set: everyone may call)."""
    keys = state.settings.api_keys
    if not keys:
        return
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise ApiError(401, "missing API key: send the header 'Authorization: Bearer KEY'",
                       "missing_api_key", headers={"WWW-Authenticate": "Bearer"})
    if not key_matches(token, keys):
        raise ApiError(401, "incorrect API key", "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


async def read_json(request: Request) -> object:
    """The request's body as JSON; 400 when it is empty or not JSON."""
    body = await request.body()
    if not body.strip():
        raise ApiError(400, "empty request body: send a JSON object", "invalid_json")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}", "invalid_json") from None


def reply_of(reply: "asyncio.Future[Reply]") -> Reply:
    """A finished generation's reply; a 500 naming the error if the model failed."""
    try:
        return reply.result()
    except Exception as exc:  # noqa: BLE001 - the model failed; the client gets a 500 saying so
        log.exception("generation failed")
        raise ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", "generation_failed",
                       type="server_error") from None


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone. The body is read by now, so the next ASGI message
    can only be ``http.disconnect`` (uvicorn sends it when the connection closes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
