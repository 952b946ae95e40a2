"""Task-oriented dialogue: the system tracks what the user wants, calls a database, replies from the result.

We speak ParlAI's contract (``parlai.core.tod``): a round is a user turn, the system's
``APICALL: api_name = find_hotel ; area = north``, the database's ``APIRESP: count = 3 ; name =
...`` and the system's reply. Read first:

* :mod:`.calls` — how a dataset's belief state becomes a call, and a call's text both ways;
* :mod:`.database` — the shipped MultiWOZ and CrossWOZ databases in SQLite, queried with bound
  parameters only, and the answer to a call (:mod:`.multiwoz_db`, :mod:`.crosswoz_db` hold
  each dataset's query rules, :mod:`.user_db` those of a user's own SQLite file);
* :mod:`.functions` — OpenAI function calls and results in the call format, and
  :mod:`.server_tools` — a user's own functions (``--tools``) the loop runs over HTTP or in Python;
* :mod:`.episodes` — SGD, MultiWOZ and CrossWOZ as ParlAI ``TodStructuredEpisode`` s, and
  :mod:`.teachers` — ParlAI's TOD teachers over them, plus the end-to-end teacher;
* :mod:`.agent_mixin` — the agent's call → answer → reply round in ``eval_model``,
  ``interactive`` and ``dialogft_serve`` (``--task-db``), whose replies name a booking
  reference only if the booking exists (:mod:`.references`), its calls decoded under a
  grammar of what the database answers (:mod:`.call_grammar`);
* :mod:`.delex` and :mod:`.scoring` — replies with placeholders, scored per dialogue;
  :mod:`.api_agent` — the database as the API agent of ParlAI's ``tod_world_script``, and
  :mod:`.simulation` — a trained user model against the system and the database.
"""
