"""What every worker's page asks, whatever its task: who the worker is, and their completion code.

    GET /api/me     the worker's task, the questions, problem categories and ratings to show
    GET /api/done   the completion code, once the worker has finished
"""

from __future__ import annotations

from typing import Any, Dict

from fastapi import APIRouter, Depends

from parlai_dialogft.human_eval import recruit
from parlai_dialogft.human_eval.questions import NONE_PROBLEM
from parlai_dialogft.human_eval.state import Session, StudyState, any_worker, session, study_state
from parlai_dialogft.human_eval.work_queue import Refused

router = APIRouter()


@router.get("/api/me")
def me(started: Session = Depends(session), state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    settings = state.settings
    return {"worker_id": started.worker_id, "protocol": started.protocol,
            "questions": {k: settings.questions[k] for k in settings.tasks.questions},
            "min_justification_chars": settings.qc.min_justification_chars,
            "min_seconds": settings.qc.min_seconds,
            "problems": [{"key": k, **v} for k, v in settings.problem_categories.items()]
            + [{"key": NONE_PROBLEM, "name": "No problem", "description": ""}],
            "ratings": [{"key": k, **v} for k, v in settings.chat_ratings.items()]}


@router.get("/api/done")
def done(worker_id: str = Depends(any_worker), state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    (row,) = state.database.rows("SELECT finished FROM workers WHERE worker_id = ?", (worker_id,))
    if row["finished"] is None:
        raise Refused(409, "not finished yet")
    return recruit.completion_code(state.database, worker_id, state.settings.recruit)
