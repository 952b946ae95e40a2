"""Task-oriented dialogue: the system tracks what the user wants, calls a database, replies from the result.

We speak ParlAI's contract (``parlai.core.tod``): a round is a user turn, the system's
``APICALL: api_name = find_hotel ; area = north``, the database's ``APIRESP: count = 3 ; name =
...`` and the system's reply. Read first:

* :mod:`.calls` — how a dataset's belief state becomes a call, and a call's text both ways;
* :mod:`.database` — the shipped MultiWOZ and CrossWOZ databases in SQLite, queried with bound
  parameters only, and the answer to a call;
* :mod:`.episodes` — SGD, MultiWOZ and CrossWOZ as ParlAI ``TodStructuredEpisode`` s;
* :mod:`.loop` — the agent's call → result → reply step in ``eval_model``, ``interactive``
  and ``dialogft_serve``.
"""
