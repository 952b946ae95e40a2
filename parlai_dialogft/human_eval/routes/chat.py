"""The live chat's API (:mod:`parlai_dialogft.human_eval.live_chat`).

    GET  /api/chat                    the worker's chat (started on the first call)
    POST /api/chat/{chat_id}/message  :class:`ChatTurn`
    POST /api/chat/{chat_id}/finish   :class:`ChatFinish`
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from parlai_dialogft.human_eval.state import RequestBody, StudyState, chat_worker, read_body, study_state

router = APIRouter()


class ChatTurn(RequestBody):
    """POST /api/chat/{chat_id}/message: the worker's message; from the second turn on, with
    the problems they marked on the model's last reply (absent on the first turn)."""

    text: str
    problems: Optional[List[str]] = None


class ChatFinish(RequestBody):
    """POST /api/chat/{chat_id}/finish: the last reply's problems and the final ratings."""

    problems: Optional[List[str]] = None
    ratings: Dict[str, int]


@router.get("/api/chat")
def chat_current(worker_id: str = Depends(chat_worker), state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    return state.chats.current(worker_id)


@router.post("/api/chat/{chat_id}/message")
async def chat_message(chat_id: str, request: Request, worker_id: str = Depends(chat_worker),
                       state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    turn = await read_body(request, ChatTurn)
    return await run_in_threadpool(state.chats.send, worker_id, chat_id, turn.text, turn.problems)


@router.post("/api/chat/{chat_id}/finish")
async def chat_finish(chat_id: str, request: Request, worker_id: str = Depends(chat_worker),
                      state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    end = await read_body(request, ChatFinish)
    return await run_in_threadpool(state.chats.finish, worker_id, chat_id, end.problems, end.ratings)
