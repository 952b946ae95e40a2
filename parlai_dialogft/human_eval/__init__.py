"""Crowdsourced human evaluation: ACUTE-Eval pairwise comparisons, per-turn choices, live model chat, Fast-ACUTE and their analysis.

Read in this order:

* :mod:`.db` – the SQLite file: pairings and per-turn items, assignments, judgments,
  workers, chats.
* :mod:`.work_queue` – the protocol both judgment tasks are built on: how items are loaded
  (practice, real, attention checks), which a worker sees next, what an answer is checked
  against and when a worker is blocked; :class:`~.work_queue.QueueSettings`.
* The two tasks over it, each a pair of modules of the same shape: :mod:`.formats` reads
  ACUTE pairings (and ParlAI's conversation logs and analysis files) and :mod:`.tasks` is
  the ACUTE comparison; :mod:`.turn_items` reads per-turn items (a context and two next
  replies) and :mod:`.turn_tasks` is the per-turn choice. :mod:`.preferences` turns
  per-turn judgments into DPO pairs.
* :mod:`.live_chat` – workers chat with served models, mark each reply, then rate them.
* :mod:`.questions` says what workers are asked; :mod:`.qc`, :mod:`.onboarding` and
  :mod:`.recruit` decide who may judge and which answers count.
* :mod:`.app` – the web app for workers and the admin: :mod:`.state` is what its routes
  share, :mod:`.routes` the routes, one router per concern; ``static/`` the pages
  (``page.js`` and ``judgment.js`` shared by both task pages).
* :mod:`.fast_acute` (with :mod:`.selfchat_world`) builds pairings from self-chats.
* :mod:`.analysis`, :mod:`.stats` and :mod:`.plots` turn judgments into win rates with
  confidence intervals, tables and a report.
"""
