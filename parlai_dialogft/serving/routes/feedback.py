"""``POST /v1/feedback``: a user's rating of a logged reply, or the draft they chose.

    POST /v1/feedback   {"id": "chatcmpl-...", "rating": "up"|"down", "choice": 1, "comment": "..."}
                        (rating, choice or both: thumbs on a draft, the draft chosen)

Needs ``--serve-log-db`` (404 ``feedback_disabled`` without it): feedback is stored with the
reply it is about (:mod:`parlai_dialogft.serving.store`), and later read as preference data
(:mod:`parlai_dialogft.serving.preferences`). A rating is also counted in /metrics and, with
live evaluation, on the dashboard.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from parlai_dialogft.serving import protocol
from parlai_dialogft.serving.protocol import ApiError, FeedbackRequest
from parlai_dialogft.serving.state import ServingState, read_json, require_key, serving_state
from parlai_dialogft.serving.store import NoSuchDraft

router = APIRouter(dependencies=[Depends(require_key)])


@router.post("/v1/feedback")
async def feedback(request: Request, state: ServingState = Depends(serving_state)) -> dict:
    store = state.store
    if store is None:
        raise ApiError(404, "feedback is off: start the server with --serve-log-db PATH",
                       "feedback_disabled")
    given = protocol.parse(FeedbackRequest, await read_json(request))
    try:
        known = await run_in_threadpool(store.add_feedback, given.id, given.rating, given.comment, given.choice)
    except NoSuchDraft as exc:
        raise ApiError(400, f"invalid request: choice: {exc}", "invalid_request", param="choice") from None
    if not known:
        raise ApiError(404, f"no logged reply has the id {given.id!r}", "reply_not_found", param="id")
    if given.rating is not None:
        state.metrics.feedback.labels(given.rating).inc()
        if state.live is not None:
            state.live.observe_feedback(given.rating)
    answer = {"id": given.id, "rating": given.rating, "status": "recorded"}
    if given.choice is not None:
        answer["choice"] = given.choice
    return answer
