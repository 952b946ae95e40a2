"""Who a worker is: start links, platform ids, sessions and completion codes.

Three ways in, none tied to one platform:

* a lab link ``/start?worker=ID&token=SECRET`` (made by ``--he-make-links N``): the token
  proves the worker is who the link was given to;
* Prolific's study URL parameters ``?PROLIFIC_PID=...`` -> worker ``prolific:PID``;
* MTurk's external-question parameters ``?workerId=...`` -> worker ``mturk:ID``.

Platform ids are taken as the platform sends them (the platform, not us, authenticates its
workers); a platform can be turned off with ``--he-platforms``. Whichever way in, ``/start``
issues a random session token, and every API call must carry it: the token, not anything
the page sends, decides whose data a request may touch.

At the end the worker gets a completion code: the platform's study code if one is configured
(``--he-completion-codes prolific=C1AB2CD``), else a code drawn for that worker and stored,
which an admin can check against what the worker submits.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Tuple

from parlai_dialogft.human_eval.db import Database
from parlai_dialogft.human_eval.work_queue import Refused
from parlai_dialogft.utils.errors import UserError

PLATFORMS = ("link", "prolific", "mturk")
_PLATFORM_PARAM = {"prolific": "PROLIFIC_PID", "mturk": "workerId"}
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True)
class RecruitSettings:
    platforms: Tuple[str, ...] = PLATFORMS
    completion_codes: Mapping[str, str] = field(default_factory=dict)  # platform -> fixed code

    def __post_init__(self) -> None:
        for name in tuple(self.platforms) + tuple(self.completion_codes):
            if name not in PLATFORMS:
                raise UserError(f"--he-platforms/--he-completion-codes: unknown platform {name!r} "
                                f"(one of {', '.join(PLATFORMS)})")


def parse_codes(text: Optional[str]) -> Dict[str, str]:
    """``prolific=C1AB2CD,mturk=DONE42`` -> {"prolific": "C1AB2CD", "mturk": "DONE42"}."""
    codes: Dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        platform, sep, code = item.partition("=")
        if not sep or not code.strip():
            raise UserError(f"--he-completion-codes: {item!r} is not PLATFORM=CODE")
        codes[platform.strip()] = code.strip()
    return codes


def identify(params: Mapping[str, str], settings: RecruitSettings) -> Tuple[str, str, Optional[str]]:
    """(worker_id, platform, link token) from the start URL's query parameters."""
    for platform, param in _PLATFORM_PARAM.items():
        if params.get(param):
            if platform not in settings.platforms:
                raise Refused(403, f"{platform} workers are not accepted in this study")
            if not _ID.match(params[param]):
                raise Refused(400, f"{param} is not a valid id")
            return f"{platform}:{params[param]}", platform, None
    if params.get("worker") and "link" in settings.platforms:
        return params["worker"], "link", params.get("token") or ""
    raise Refused(400, "this link is incomplete: open the exact link you were given")


def start_session(db: Database, params: Mapping[str, str], protocol: str, settings: RecruitSettings) -> Tuple[str, str]:
    """(session token, worker_id) for a start link; platform workers are created on first visit."""
    worker_id, platform, token = identify(params, settings)
    session = secrets.token_urlsafe(24)
    with db.write() as conn:
        row = conn.execute("SELECT platform, token FROM workers WHERE worker_id = ?", (worker_id,)).fetchone()
        if platform == "link":
            # The same answer for an unknown worker and a wrong token: links cannot be probed.
            if row is None or row["token"] is None or not hmac.compare_digest(row["token"], token or ""):
                raise Refused(403, "this link is not valid")
        elif row is None:
            conn.execute("INSERT INTO workers (worker_id, platform, created) VALUES (?, ?, ?)",
                         (worker_id, platform, time.time()))
        conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (session, worker_id, protocol, time.time()))
    return session, worker_id


def session_worker(db: Database, authorization: Optional[str]) -> Tuple[str, str]:
    """(worker_id, protocol) of the ``Authorization: Bearer SESSION`` header, or 401."""
    scheme, _, session = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not session.strip():
        raise Refused(401, "no session: open your start link again")
    found = db.rows("SELECT worker_id, protocol FROM sessions WHERE session = ?", (session.strip(),))
    if not found:
        raise Refused(401, "this session is not valid: open your start link again")
    return found[0]["worker_id"], found[0]["protocol"]


def completion_code(db: Database, worker_id: str, settings: RecruitSettings) -> Dict[str, str]:
    """The code to show a worker who finished, and the platform it is meant for."""
    with db.write() as conn:
        row = conn.execute("SELECT platform, completion_code FROM workers WHERE worker_id = ?", (worker_id,)).fetchone()
        code = settings.completion_codes.get(row["platform"]) or row["completion_code"]
        if code is None:
            code = secrets.token_hex(4).upper()
        conn.execute("UPDATE workers SET completion_code = ? WHERE worker_id = ?", (code, worker_id))
    answer = {"code": code, "platform": row["platform"]}
    if row["platform"] == "prolific":
        answer["url"] = f"https://app.prolific.com/submissions/complete?cc={code}"
    return answer
