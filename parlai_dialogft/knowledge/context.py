"""How knowledge enters a model's context: ``knowledge: FACT`` lines before the turn's text.

One format everywhere: the teachers' ``--qa-knowledge``/``--customer-knowledge gold|retrieved``,
``dialogft_agent --knowledge-retriever`` in ``train_model``, ``eval_model``, ``interactive``
and ``dialogft_serve``. A plain line prefix (not a special token) works with every tokenizer,
seq2seq or decoder-only, and reads well in ``display_data``::

    knowledge: 故宫 | 门票 | 60
    knowledge: 故宫 | 电话 | 010-85007938
    故宫的门票多少钱？

Only the newest turn carries knowledge: :func:`strip_knowledge` removes it from earlier turns
of the history, so the context the model reads is the same whether the history was kept by
ParlAI (training, ``interactive``) or rebuilt from a request (``dialogft_serve``).
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

PREFIX = "knowledge: "


def with_knowledge(text: str, facts: Iterable[str]) -> str:
    """``text`` with one ``knowledge: FACT`` line per fact in front (facts on one line each)."""
    lines = [PREFIX + " ".join(fact.split()) for fact in facts if fact and fact.strip()]
    return "\n".join(lines + [text]) if lines else text


def strip_knowledge(text: str) -> str:
    """``text`` without its leading ``knowledge:`` lines (the inverse of :func:`with_knowledge`)."""
    lines = text.split("\n")
    start = 0
    while start < len(lines) - 1 and lines[start].startswith(PREFIX):
        start += 1
    return "\n".join(lines[start:])


def has_knowledge(text: str) -> bool:
    return text.startswith(PREFIX)


def query_of(text: str, previous: Optional[str] = None) -> str:
    """What a turn retrieves with: its own text and the turn before it (the model's last reply).

    KdConv and CrossWOZ users often say "it" or "that hotel" for the entity the previous reply
    named; the previous turn brings the name into the query.
    """
    parts: Sequence[str] = [strip_knowledge(previous)] if previous else []
    return "\n".join([*parts, strip_knowledge(text)])
