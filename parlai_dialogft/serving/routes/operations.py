"""For operators: is the server up (``GET /healthz``), and how is it doing (``GET /metrics``).

    GET  /healthz   {"status": "ok", "model", "queue_depth", "auth_required", "feedback"};
                    503 with "status": "shutting_down" once the batcher is closed
    GET  /metrics   Prometheus text format (:mod:`parlai_dialogft.serving.metrics`)

Neither needs an API key: a load balancer and a Prometheus scraper send none, and neither
shows a conversation.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from parlai_dialogft.serving.state import ServingState, serving_state

router = APIRouter()


@router.get("/healthz")
def healthz(state: ServingState = Depends(serving_state)) -> JSONResponse:
    batcher, settings = state.batcher, state.settings
    body = {"status": "shutting_down" if batcher.closed else "ok", "model": settings.model_name,
            "queue_depth": batcher.depth, "auth_required": bool(settings.api_keys),
            "feedback": state.store is not None}
    return JSONResponse(body, status_code=503 if batcher.closed else 200)


@router.get("/metrics")
def prometheus(state: ServingState = Depends(serving_state)) -> Response:
    content, content_type = state.metrics.render()
    return Response(content, media_type=content_type)
