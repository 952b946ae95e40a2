"""The web app's routes, one :class:`fastapi.APIRouter` per concern; :func:`~..app.create_app` includes them.

* :mod:`.pages`      ``GET /start`` (a link becomes a session), the worker pages ``/work`` and
  ``/turns``, and their files under ``/static/``
* :mod:`.worker`     ``GET /api/me`` and ``GET /api/done``: what every worker's page asks, whatever the task
* :mod:`.judgments`  ``/api/pairwise/...`` and ``/api/turns/...``: the next item of a work queue, and its answer
* :mod:`.chat`       ``/api/chat/...``: the live chat with a model
* :mod:`.admin`      ``/admin`` and ``/admin/api/...``: progress, workers, blocklist, links, exports

What they share (the settings, the queues, the chats, who is asking) comes from
:mod:`~parlai_dialogft.human_eval.state` as FastAPI dependencies.
"""
