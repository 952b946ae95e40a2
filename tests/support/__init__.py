"""What the tests share, and nothing else: a test module imports from here (and gets
fixtures from ``tests/conftest.py`` by name), never from another test module.

Read first :mod:`.models` (the tiny models every model test runs on) and :mod:`.agents`
(a dialogft_agent built, fed and trained as ParlAI does). Then, by what a test drives:

* :mod:`.processes`: commands in a fresh shell, a ``parlai`` server on a free port;
* :mod:`.serving`: ``dialogft_serve`` in the test process and an HTTP client for it;
* :mod:`.human_eval`: pairings, per-turn items and a study app for the human-eval tests;
* :mod:`.browser`: headless Chromium over the DevTools protocol;
* :mod:`.distributed` and :mod:`.rank_weights_agent`: multi-process training runs, and the
  agent and teacher ParlAI loads in them by module path;
* :mod:`.files`, :mod:`.schemas`, :mod:`.strategies`: checks on written files, old SQLite
  schemas, Hypothesis strategies.

This package imports nothing at import time: subprocesses load
``tests.support.rank_weights_agent`` through it.
"""
