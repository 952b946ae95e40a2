"""OpenAI's API: ``POST /v1/chat/completions`` and ``GET /v1/models``, as OpenAI's clients call them.

    GET  /v1/models             the served models (-mf's, then each --serve-lora's), OpenAI's list format
    GET  /v1/models/{name}      one of them
    POST /v1/chat/completions   OpenAI's request; "stream": true answers server-sent events;
                                "n": 2 asks for two drafts (choices), up to --serve-max-n;
                                fields it cannot honour are a 400 naming them (protocol.py)

A reply is measured (/metrics, live evaluation) and logged (``--serve-log-db``) before its
response is sent, or before its last chunk when streamed.

Streaming (``"stream": true``): the response starts at once with the role chunk; the reply's
text follows as the search decodes it (:mod:`parlai_dialogft.serving.streaming`: one-draft
replies of greedy or sampled decoding; a beam's reply, or several drafts, at the end), then
the finish reason. The time from the request to its first content chunk is
``dialogft_time_to_first_token_seconds``.

With ``tools`` (:mod:`parlai_dialogft.serving.tools`) a choice may be a call: its message has
``tool_calls`` and ``finish_reason`` is ``"tool_calls"``; streamed, the call follows as OpenAI's
tool-call deltas once it is decoded. ``response_format`` and forced calls are decoded under a
grammar (:mod:`parlai_dialogft.model.constrained`).

With ``--task-db`` each reply (of a request without tools) is a task-oriented round (:mod:`parlai_dialogft.serving.replier`):
the content is the reply alone (the call is never streamed), and each choice carries the
round's ``tod_call`` and ``tod_result`` (:func:`~parlai_dialogft.serving.protocol.round_fields`;
streamed, on its last chunk).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from concurrent.futures import Future
from typing import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from parlai_dialogft.serving import protocol, tools
from parlai_dialogft.serving.protocol import ApiError, ChatRequest
from parlai_dialogft.serving.replier import Reply
from parlai_dialogft.serving.state import ServingState, read_json, reply_of, require_key, serving_state
from parlai_dialogft.serving.streaming import ReplyChannel

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_key)])


@router.get("/v1/models")
def list_models(state: ServingState = Depends(serving_state)) -> dict:
    return {"object": "list",
            "data": [protocol.model_card(name, state.started) for name in state.settings.served_models]}


@router.get("/v1/models/{name:path}")
def get_model(name: str, state: ServingState = Depends(serving_state)) -> dict:
    state.check_model(name)
    return protocol.model_card(name, state.started)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, state: ServingState = Depends(serving_state)) -> Response:
    start = time.perf_counter()
    settings, metrics, store, live = state.settings, state.metrics, state.store, state.live
    chat = protocol.parse(ChatRequest, await read_json(request))
    state.check_model(chat.model)
    if chat.n > settings.max_n:
        raise ApiError(400, f"invalid request: n: {chat.n} drafts asked for; this server gives at most "
                       f"{settings.max_n} (--serve-max-n)", "invalid_request", param="n")
    # The request's line to the search: its text as decoded (streamed only), and its cancel.
    channel = ReplyChannel(asyncio.get_running_loop() if chat.stream else None)
    prompt = protocol.to_prompt(chat.messages, chat.reply_limit, chat.decoding, chat.stops, channel)
    prompt = _with_tools(chat, prompt)
    model = chat.model or settings.model_name
    if model != settings.model_name:  # a --serve-lora model: generated with its adapter (adapters.py)
        prompt = dataclasses.replace(prompt, adapter=model)
    cid, created = protocol.new_completion_id(), int(time.time())

    async def record(reply: Reply) -> None:
        metrics.prompt_tokens.inc(reply.prompt_tokens)
        metrics.generated_tokens.inc(reply.completion_tokens)
        if live is not None and reply.drafts[0].tool_call is None:  # a call is no reply to measure
            live.observe_reply(prompt, reply, chat.messages[-1].text)
        if store is not None:
            messages = [m.model_dump() for m in chat.messages]
            drafts = [(d.text, d.finish_reason, d.completion_tokens, *_logged_call(d)) for d in reply.drafts]
            await run_in_threadpool(store.log_reply, cid, model, messages, reply.text,
                                    reply.finish_reason, reply.prompt_tokens, reply.completion_tokens,
                                    time.perf_counter() - start, drafts)

    if chat.stream:
        future = state.submit(prompt)  # before the response starts: a full queue is still a 429
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        events = _stream(cid, model, created, channel, future, record, include_usage,
                         lambda: metrics.time_to_first_token.observe(time.perf_counter() - start))
        # no-cache and no proxy buffering: each event should reach the client as sent.
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    reply = await state.generate(prompt, request)
    await record(reply)
    return JSONResponse(protocol.completion(cid, model,
                                            [(d.text, d.finish_reason) for d in reply.drafts],
                                            reply.prompt_tokens, reply.completion_tokens, created,
                                            [protocol.round_fields(d.tod_round) for d in reply.drafts],
                                            [d.tool_call for d in reply.drafts]))


def _with_tools(chat: ChatRequest, prompt: protocol.Prompt) -> protocol.Prompt:
    """The prompt of a tools request (serving/tools.py), or of a ``response_format`` schema;
    400s for bad schemas, tool choices and tool messages."""
    round_ = tools.tool_round(chat)
    if round_ is not None:
        history, text = tools.format_turns(chat.messages, round_.tools)
        if round_.forced or round_.reply_grammar is not None:
            _constrainable(chat)
        return dataclasses.replace(prompt, history=history, text=text, tool_round=round_)
    schema = tools.read_response_format(chat.response_format)
    if schema is None:
        return prompt
    _constrainable(chat)
    return dataclasses.replace(prompt, response_schema=schema,
                               decoding=dataclasses.replace(prompt.decoding, constrained=True))


def _constrainable(chat: ChatRequest) -> None:
    from parlai_dialogft.model.constrained import ConstraintEngineMissing, require_engine

    try:
        require_engine()
    except ConstraintEngineMissing as error:
        raise ApiError(400, f"invalid request: {error}", "constrained_decoding_unavailable",
                       param="response_format" if chat.response_format else "tool_choice") from None
    if chat.n > 1 and not chat.decoding.sample:
        raise ApiError(400, "invalid request: n: several drafts of a constrained output need sampling "
                       "(temperature > 0): constrained decoding follows one hypothesis per draft, never a beam",
                       "invalid_request", param="n")


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
            reply = reply_of(reply_future)
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
            if draft.tool_call is not None:
                for delta in protocol.tool_call_deltas(draft.tool_call):
                    yield event(protocol.chunk(cid, model, created, delta, index=index))
            yield event(protocol.chunk(cid, model, created, {}, draft.finish_reason, index=index,
                                       extra=protocol.round_fields(draft.tod_round)))
        if include_usage:
            yield event({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [], "usage": protocol.usage(reply.prompt_tokens, reply.completion_tokens)})
        yield "data: [DONE]\n\n"
        finished = True
    finally:
        if not finished:  # the client went (or the server stops): no more work for this reply
            channel.cancel()
            reply_future.cancel()


def _logged_call(draft) -> tuple:
    """(call, answer) of a draft for the log: the tool call it is (OpenAI's JSON), or its task round's."""
    if draft.tool_call is not None:
        call = draft.tool_call
        return json.dumps({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}},
                          ensure_ascii=False), ""
    return draft.tod_round if draft.tod_round is not None else ("", "")
