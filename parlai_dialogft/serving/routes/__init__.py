"""The HTTP routes, one :class:`fastapi.APIRouter` per concern; :func:`~..app.create_app` includes them.

* :mod:`.openai_api`  ``POST /v1/chat/completions`` (plain and streamed) and ``GET /v1/models``
* :mod:`.feedback`    ``POST /v1/feedback``: ratings and chosen drafts for logged replies
* :mod:`.pages`       ``GET /`` (the chat page) and ``GET /dashboard`` (live evaluation)
* :mod:`.operations`  ``GET /healthz`` and ``GET /metrics``, for load balancers and Prometheus

Each route takes what it shares with the others (settings, batcher, metrics, log) as a
:class:`~parlai_dialogft.serving.state.ServingState` dependency; the API's routers require
the API key (:func:`~parlai_dialogft.serving.state.require_key`), the pages and operations
show no conversation and need none.
"""
