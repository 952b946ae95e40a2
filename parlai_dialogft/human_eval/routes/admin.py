"""The admin's page and API; every route needs the admin token (:func:`~..state.require_admin`).

    GET    /admin?token=ADMIN               the page: progress, workers, flags, blocklist, latest judgments
    GET    /admin/api/progress              items and judgments so far, per task
    GET    /admin/api/workers               every worker with their counts, and the flags raised
    GET    /admin/api/judgments[?limit=50]  the latest ACUTE judgments
    GET    /admin/api/blocklist             blocked workers and why
    POST   /admin/api/blocklist             :class:`BlockRequest`
    DELETE /admin/api/blocklist/{worker_id}
    POST   /admin/api/links                 :class:`LinksRequest`: new lab workers and their start links
    GET    /admin/api/export/{name}         pairwise.csv, pairwise.json, chats.csv or chats.json
"""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any, Dict, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field, StringConstraints

from parlai_dialogft.human_eval import db as dbmod
from parlai_dialogft.human_eval.routes.pages import static_file
from parlai_dialogft.human_eval.state import RequestBody, StudyState, read_body, require_admin, study_state
from parlai_dialogft.human_eval.work_queue import Refused

router = APIRouter(dependencies=[Depends(require_admin)])


class BlockRequest(RequestBody):
    """POST /admin/api/blocklist."""

    worker_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    reason: Optional[str] = None  # empty or absent: "blocked by an admin"


class LinksRequest(RequestBody):
    """POST /admin/api/links: how many lab links to make."""

    count: int = Field(ge=1, le=1000)


@router.get("/admin", include_in_schema=False)
def admin_page() -> Response:
    return static_file("admin.html")


@router.get("/admin/api/progress")
def progress(state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    database = state.database
    count = lambda sql: database.rows(sql)[0]["n"]  # noqa: E731
    return {
        "pairings": {r["kind"]: r["n"] for r in database.rows("SELECT kind, count(*) n FROM pairings GROUP BY kind")},
        "judgments": count("SELECT count(*) n FROM judgments WHERE is_onboarding = 0 AND is_attention_check = 0"),
        "judgments_per_pair": database.rows(
            "SELECT p.pair_id, p.model_a, p.model_b, count(j.judgment_id) n FROM pairings p LEFT JOIN judgments j "
            "USING (pair_id) WHERE p.kind = 'task' GROUP BY p.pair_id ORDER BY p.pair_id"),
        "turn_items": {r["kind"]: r["n"] for r in database.rows(
            "SELECT kind, count(*) n FROM turn_items GROUP BY kind")},
        "turn_judgments": count("SELECT count(*) n FROM turn_judgments WHERE is_onboarding = 0 "
                                "AND is_attention_check = 0"),
        "chats_finished": count("SELECT count(*) n FROM chats WHERE finished IS NOT NULL"),
        "chats_open": count("SELECT count(*) n FROM chats WHERE finished IS NULL"),
        "workers": count("SELECT count(*) n FROM workers"),
        "blocked": count("SELECT count(*) n FROM blocklist"),
    }


@router.get("/admin/api/workers")
def workers(state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    rows = state.database.rows(
        "SELECT w.worker_id, w.platform, w.onboarding, w.turn_onboarding, w.finished, w.completion_code, "
        "b.reason AS blocked, (SELECT count(*) FROM judgments j WHERE j.worker_id = w.worker_id) AS judgments, "
        "(SELECT count(*) FROM turn_judgments t WHERE t.worker_id = w.worker_id) AS turn_judgments, "
        "(SELECT count(*) FROM chats c WHERE c.worker_id = w.worker_id AND c.finished IS NOT NULL) AS chats "
        "FROM workers w LEFT JOIN blocklist b USING (worker_id) ORDER BY w.created")
    flags = state.database.rows("SELECT worker_id, kind, detail FROM flags ORDER BY created")
    return {"workers": rows, "flags": flags}


@router.get("/admin/api/judgments")
def judgments(limit: int = 50, state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    return {"judgments": state.database.rows(
        "SELECT judgment_id, worker_id, question, winner, left_model, justification, duration_s, "
        "is_onboarding, is_attention_check, passed_check FROM judgments ORDER BY created DESC LIMIT ?",
        (max(1, min(limit, 1000)),))}


@router.get("/admin/api/blocklist")
def blocklist(state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    return {"blocklist": state.database.rows("SELECT worker_id, reason, created FROM blocklist ORDER BY created")}


@router.post("/admin/api/blocklist")
async def block(request: Request, state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    blocking = await read_body(request, BlockRequest)
    state.database.block(blocking.worker_id, blocking.reason or "blocked by an admin")
    return {"blocked": blocking.worker_id}


@router.delete("/admin/api/blocklist/{worker_id}")
def unblock(worker_id: str, state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    if not state.database.unblock(worker_id):
        raise Refused(404, f"{worker_id} is not blocked")
    return {"unblocked": worker_id}


@router.post("/admin/api/links")
async def links(request: Request, state: StudyState = Depends(study_state)) -> Dict[str, Any]:
    count = (await read_body(request, LinksRequest)).count
    base = str(request.base_url).rstrip("/")
    return {"links": [{**w, "url": f"{base}/start?worker={w['worker_id']}&token={w['token']}"}
                      for w in state.database.create_link_workers(count)]}


@router.get("/admin/api/export/{name}")
def export(name: str, state: StudyState = Depends(study_state)) -> Response:
    kind, _, fmt = name.partition(".")
    if kind not in ("pairwise", "chats") or fmt not in ("csv", "json"):
        raise Refused(404, "exports: pairwise.csv, pairwise.json, chats.csv, chats.json")
    records = (dbmod.pairwise_records if kind == "pairwise" else dbmod.chat_records)(state.database.path)
    if fmt == "json":
        return JSONResponse(records)
    return Response(_csv(records), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _csv(records) -> str:
    out = io.StringIO()
    if records:
        writer = csv.DictWriter(out, fieldnames=list(records[0]))
        writer.writeheader()
        for record in records:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in record.items()})
    return out.getvalue()
