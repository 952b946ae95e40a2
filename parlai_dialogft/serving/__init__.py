"""Talking to a trained model: ``parlai interactive`` in a terminal and ``parlai dialogft_serve``.

:mod:`.interactive_chat` is what the agent does differently when a person types in
``parlai interactive``. The rest is ``dialogft_serve``, a trained dialogft_agent behind an
OpenAI-compatible HTTP API, one job per module, so each can be read (and tested) alone:

* :mod:`.protocol`  the chat-completions wire format and how messages become a ParlAI history
* :mod:`.replier`   the ParlAI agent: a batch of prompts in, a batch of replies out (:mod:`.replies`)
* :mod:`.tools`     function calling and ``response_format``: checks, the task format, call grammars
* :mod:`.tool_replier` a tools request's round: the call for the client to run, or the reply
* :mod:`.batcher`   micro-batching in one worker thread that owns the model (no web imports)
* :mod:`.continuous` continuous batching: requests join the running greedy search between steps
* :mod:`.streaming` the search's tokens as each row's text, per step; ending a row's search early
* :mod:`.metrics`   the Prometheus registry and the middleware that counts requests
* :mod:`.live_eval` each reply and request measured (length, repetition, generic replies,
  language, drift against the training profile, feedback) for /metrics and the dashboard
* :mod:`.adapters`  --serve-lora: several LoRA models on one base, split by adapter per batch
* :mod:`.store`     opt-in SQLite log of replies, their drafts and user feedback, with retention
* :mod:`.preferences` the log as preference data (TRL's paired and unpaired JSONL)
* :mod:`.guard`     API keys, loopback detection and the request-size limit
* :mod:`.options`   the ``--serve-*`` flags and their validation
* :mod:`.app`       the FastAPI app: the batcher's life, the middleware, the error format, the routers
* :mod:`.routes`    one router per concern: :mod:`.routes.openai_api` (/v1/chat/completions,
  /v1/models), :mod:`.routes.feedback` (/v1/feedback), :mod:`.routes.pages` (the chat page,
  /dashboard), :mod:`.routes.operations` (/healthz, /metrics)
* :mod:`.state`     what the routes share (:class:`~.state.ServingState`: settings, batcher,
  metrics, log) and the API-key check, as FastAPI dependencies

Read :mod:`.app`, then :mod:`.routes.openai_api`, to follow a request from HTTP to the batcher.
Only :mod:`.app`, :mod:`.state` and :mod:`.routes` import FastAPI; only :mod:`.replier`, :mod:`.streaming`,
:mod:`.continuous` and :mod:`.adapters` touch ParlAI, torch or peft (:mod:`.tool_replier` through the replier).
"""
