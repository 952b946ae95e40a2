"""Crowdsourced human evaluation: ACUTE-Eval pairwise comparisons, live model chat, Fast-ACUTE and their analysis.

Read :mod:`.db` first (the SQLite schema: pairings, assignments, judgments, chats), then
:mod:`.tasks` (which pairing a worker sees next) and :mod:`.app` (the web app for workers
and the admin). :mod:`.turn_items` and :mod:`.turn_tasks` are the per-turn task (which next
reply is better), and :mod:`.preferences` turns its judgments into DPO pairs.
:mod:`.live_chat` lets workers chat with served models; :mod:`.questions`
says what they are asked; :mod:`.qc`, :mod:`.onboarding` and :mod:`.recruit` decide who may
judge and which answers count; :mod:`.fast_acute` builds pairings from self-chats;
:mod:`.formats` reads and writes ParlAI's files; :mod:`.analysis`, :mod:`.stats` and
:mod:`.plots` turn judgments into win rates with confidence intervals.
"""
