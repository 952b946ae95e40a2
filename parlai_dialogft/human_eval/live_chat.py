"""Live model chat: a worker talks with a model for N turns, marks each bot turn, then rates it.

The model is served the way ``parlai dialogft_serve`` serves it: a ParlAI agent behind the
serving layer's :class:`~parlai_dialogft.serving.replier.Replier` and
:class:`~parlai_dialogft.serving.batcher.MicroBatcher`, so concurrent workers share
generation calls and each conversation is rebuilt from the database on every turn (nothing
is kept in the agent between requests).

A turn is: the worker's message (which must carry the problems they marked on the previous
bot turn, or ``["none"]``), then the model's reply. The chat ends with the problems of the
last bot turn and the final 1-5 ratings. Which model a worker meets is blind: the least-used
one when the chat starts.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Sequence

from parlai_dialogft.human_eval import qc
from parlai_dialogft.human_eval.db import Database, new_id
from parlai_dialogft.human_eval.questions import NONE_PROBLEM, RATING_SCALE
from parlai_dialogft.human_eval.work_queue import Refused
from parlai_dialogft.utils.errors import UserError

#: ``messages`` (OpenAI-style role/content dicts, the worker last) -> the model's reply.
ChatModel = Callable[[List[Dict[str, str]]], str]

MAX_MESSAGE_CHARS = 2000

log = logging.getLogger(__name__)


class ServedModel:
    """A ParlAI agent as a :data:`ChatModel`, through the serving layer's batcher."""

    def __init__(self, agent, max_batch: int = 8, timeout_s: float = 300.0):
        from parlai_dialogft.serving.batcher import MicroBatcher
        from parlai_dialogft.serving.replier import Replier

        self.timeout_s = timeout_s
        self._batcher = MicroBatcher(Replier(agent, max_batch), max_batch=max_batch, max_wait_s=0.01,
                                     name="dialogft-human-eval").start()

    def __call__(self, messages: List[Dict[str, str]]) -> str:
        from parlai_dialogft.serving.protocol import ChatMessage, to_prompt

        prompt = to_prompt([ChatMessage(role=m["role"], content=m["content"]) for m in messages])
        return self._batcher.submit(prompt).result(self.timeout_s).text

    def close(self) -> None:
        self._batcher.close(30)


@dataclass(frozen=True)
class ChatSettings:
    turns: int = 5  # worker messages (and model replies) per chat
    problem_keys: Sequence[str] = ()
    rating_keys: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.turns < 1:
            raise UserError(f"--he-chat-turns {self.turns}: must be at least 1")


class LiveChats:
    def __init__(self, db: Database, models: Mapping[str, ChatModel], settings: ChatSettings,
                 qc_settings: qc.QcSettings):
        self.db, self.models, self.settings, self.qc = db, dict(models), settings, qc_settings

    def current(self, worker_id: str) -> Dict[str, object]:
        """The worker's open chat (started if none), as the page needs it: no model name."""
        if not self.models:
            raise Refused(404, "this study has no live chat")
        reason = self.db.blocked_reason(worker_id)
        if reason:
            return {"stage": "blocked", "reason": reason}
        with self.db.write() as db:
            chat = db.execute("SELECT * FROM chats WHERE worker_id = ? AND finished IS NULL ORDER BY created LIMIT 1",
                              (worker_id,)).fetchone()
            if chat is None:
                if db.execute("SELECT 1 FROM chats WHERE worker_id = ?", (worker_id,)).fetchone():
                    return {"stage": "done"}
                used = {name: 0 for name in self.models}
                for row in db.execute("SELECT model, count(*) FROM chats GROUP BY model"):
                    if row[0] in used:
                        used[row[0]] = row[1]
                model = min(used, key=lambda name: (used[name], name))
                chat_id = new_id("chat")
                db.execute("INSERT INTO chats (chat_id, worker_id, model, target_turns, created) VALUES (?, ?, ?, ?, ?)",
                           (chat_id, worker_id, model, self.settings.turns, time.time()))
            else:
                chat_id = chat["chat_id"]
        return {"stage": "chat", **self._view(chat_id)}

    def _view(self, chat_id: str) -> Dict[str, object]:
        (chat,) = self.db.rows("SELECT * FROM chats WHERE chat_id = ?", (chat_id,))
        turns = self.db.rows("SELECT idx, speaker, text, problems FROM chat_turns WHERE chat_id = ? ORDER BY idx",
                             (chat_id,))
        return {"chat_id": chat_id, "turns": self.settings.turns,
                "messages": [{"speaker": t["speaker"], "text": t["text"],
                              "problems": json.loads(t["problems"]) if t["problems"] else None} for t in turns]}

    def _own(self, db, worker_id: str, chat_id: str):
        chat = db.execute("SELECT * FROM chats WHERE chat_id = ? AND worker_id = ?", (chat_id, worker_id)).fetchone()
        if chat is None:
            raise Refused(404, "no such chat")
        if chat["finished"] is not None:
            raise Refused(409, "this chat is already finished")
        return chat

    def _check_problems(self, problems: object) -> List[str]:
        if not isinstance(problems, list) or not problems or not all(isinstance(p, str) for p in problems):
            raise Refused(422, "mark the model's last message: tick its problems, or 'none'")
        if NONE_PROBLEM in problems and len(problems) > 1:
            raise Refused(422, "'none' cannot go with other problems")
        unknown = [p for p in problems if p != NONE_PROBLEM and p not in self.settings.problem_keys]
        if unknown:
            raise Refused(422, f"unknown problem {unknown[0]!r}")
        return sorted(set(problems), key=problems.index)

    def _annotate_last(self, db, chat_id: str, problems: object) -> int:
        """Store the problems of the last bot turn; returns the next turn index."""
        last = db.execute("SELECT idx, speaker FROM chat_turns WHERE chat_id = ? ORDER BY idx DESC LIMIT 1",
                          (chat_id,)).fetchone()
        if last is not None and last["speaker"] == "human":
            raise Refused(409, "wait for the reply to your last message")
        if last is not None:
            db.execute("UPDATE chat_turns SET problems = ? WHERE chat_id = ? AND idx = ?",
                       (json.dumps(self._check_problems(problems)), chat_id, last["idx"]))
        return 0 if last is None else last["idx"] + 1

    def send(self, worker_id: str, chat_id: str, text: object, problems: object = None) -> Dict[str, object]:
        if not isinstance(text, str) or not text.strip():
            raise Refused(422, "write a message first")
        if len(text) > MAX_MESSAGE_CHARS:
            raise Refused(422, f"messages are limited to {MAX_MESSAGE_CHARS} characters")
        with self.db.write() as db:
            chat = self._own(db, worker_id, chat_id)
            idx = self._annotate_last(db, chat_id, problems)
            if idx // 2 >= chat["target_turns"]:
                raise Refused(409, "all turns are done: give your ratings")
            db.execute("INSERT INTO chat_turns VALUES (?, ?, 'human', ?, NULL, ?)", (chat_id, idx, text.strip(), time.time()))
            history = db.execute("SELECT speaker, text FROM chat_turns WHERE chat_id = ? ORDER BY idx", (chat_id,)).fetchall()
            model = chat["model"]
        # Generation happens outside the transaction: other workers keep writing meanwhile.
        messages = [{"role": "user" if t["speaker"] == "human" else "assistant", "content": t["text"]} for t in history]
        try:
            reply = self.models[model](messages)
        except Exception:  # noqa: BLE001 - the worker can send again; the chat must not stay stuck
            log.exception("the model %s failed in chat %s", model, chat_id)
            with self.db.write() as db:
                db.execute("DELETE FROM chat_turns WHERE chat_id = ? AND idx = ?", (chat_id, idx))
            raise Refused(503, "your partner could not answer just now: please send your message again") from None
        with self.db.write() as db:
            db.execute("INSERT INTO chat_turns VALUES (?, ?, 'bot', ?, NULL, ?)", (chat_id, idx + 1, reply, time.time()))
        return {"reply": reply, "turn": idx // 2 + 1, "turns": chat["target_turns"]}

    def finish(self, worker_id: str, chat_id: str, problems: object, ratings: object) -> Dict[str, object]:
        if not isinstance(ratings, dict):
            raise Refused(422, "give every rating")
        for key in self.settings.rating_keys:
            value = ratings.get(key)
            low, high = RATING_SCALE
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise Refused(422, f"rating {key!r} must be a whole number from {low} to {high}")
        extra = set(ratings) - set(self.settings.rating_keys)
        if extra:
            raise Refused(422, f"unknown rating {sorted(extra)[0]!r}")
        now = time.time()
        with self.db.write() as db:
            chat = self._own(db, worker_id, chat_id)
            idx = self._annotate_last(db, chat_id, problems)
            if idx // 2 < chat["target_turns"]:
                raise Refused(409, f"chat for {chat['target_turns']} turns before rating")
            human = [r[0] for r in db.execute("SELECT text FROM chat_turns WHERE chat_id = ? AND speaker = 'human' "
                                              "ORDER BY idx", (chat_id,))]
            duration = now - chat["created"]
            low_effort = qc.low_effort_chat(human, duration, self.qc)
            db.execute("UPDATE chats SET finished = ?, duration_s = ?, ratings = ?, low_effort = ? WHERE chat_id = ?",
                       (now, duration, json.dumps({k: ratings[k] for k in self.settings.rating_keys}),
                        int(low_effort is not None), chat_id))
            db.execute("UPDATE workers SET finished = ? WHERE worker_id = ?", (now, worker_id))
        if low_effort:
            self.db.flag(worker_id, "low_effort_chat", f"{chat_id}: {low_effort}")
        return {"recorded": True, "stage": "done"}
