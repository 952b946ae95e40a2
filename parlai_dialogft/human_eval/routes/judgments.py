"""The two judgment tasks' API: the next item of the worker's queue, and the answer to it.

    GET  /api/pairwise/next[?more=1]     the next ACUTE comparison (or the stage: done, blocked, ...)
    POST /api/pairwise/{assignment_id}   :class:`Answer`
    GET  /api/turns/next[?more=1]        the next per-turn item: a context and two candidate replies
    POST /api/turns/{assignment_id}      :class:`Answer`

Both tasks are a :class:`~parlai_dialogft.human_eval.work_queue.WorkQueue`, so their routes
are the same four lines each; a worker whose link was for the other task gets a 403.
"""

from __future__ import annotations

from typing import Any, Dict, Literal

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from parlai_dialogft.human_eval.state import (
    RequestBody,
    StudyState,
    pairwise_worker,
    read_body,
    study_state,
    turns_worker,
)

router = APIRouter()


class Answer(RequestBody):
    """POST /api/pairwise/... and /api/turns/...: which side (conversation or candidate reply)
    the worker chose, and why."""

    choice: Literal["left", "right"]
    justification: str


@router.get("/api/pairwise/next")
def pairwise_next(more: int = 0, worker_id: str = Depends(pairwise_worker),
                  state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    return state.pairwise.next(worker_id, more=bool(more))


@router.post("/api/pairwise/{assignment_id}")
async def pairwise_submit(assignment_id: str, request: Request, worker_id: str = Depends(pairwise_worker),
                          state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    answer = await read_body(request, Answer)
    return await run_in_threadpool(state.pairwise.submit, worker_id, assignment_id, answer.choice,
                                   answer.justification)


@router.get("/api/turns/next")
def turns_next(more: int = 0, worker_id: str = Depends(turns_worker),
               state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    return state.turns.next(worker_id, more=bool(more))


@router.post("/api/turns/{assignment_id}")
async def turns_submit(assignment_id: str, request: Request, worker_id: str = Depends(turns_worker),
                       state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    answer = await read_body(request, Answer)
    return await run_in_threadpool(state.turns.submit, worker_id, assignment_id, answer.choice,
                                   answer.justification)
