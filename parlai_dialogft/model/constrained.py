"""Constrained decoding: a grammar per batch row, its token mask applied to the search's scores.

A :class:`Grammar` is a grammar in llguidance's Lark dialect (``%json {...}`` embeds a JSON
Schema); :func:`json_schema_grammar` builds one from a schema. Before each search step the
row's :class:`RowConstraint` sets the score of every token the grammar cannot take next to
minus infinity; after the step it is told the token chosen. When the grammar is complete,
END is the only token left, so a constrained text always parses (unless the search was cut
by a length limit first).

The engine is llguidance (``pip install 'parlai_dialogft[structured]'``), chosen over
xgrammar and outlines-core by ``bench/constrained.py`` (docs/serving.md): correct on our
byte-level BPE tokenizers for every schema tried, one wheel with no dependencies, and a
grammar language that embeds JSON Schema (which the task format's call needs). Without it,
:func:`require_engine` raises :class:`ConstraintEngineMissing` saying how to install it.

One hypothesis per row: a row's grammar state follows the tokens its search chose, so beam
search (whose hypotheses are reordered each step) is not constrained here; callers decode
constrained rows greedily or by sampling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Tuple

from parlai_dialogft.utils.errors import UserError

INSTALL = "pip install 'parlai_dialogft[structured]' (or: pip install llguidance)"


class ConstraintEngineMissing(UserError, ImportError):
    """Constrained decoding was asked for and llguidance is not installed."""


class GrammarError(UserError):
    """A grammar (or the JSON Schema inside it) that the engine cannot compile."""


def require_engine():
    try:
        import llguidance
        import llguidance.hf
        import llguidance.torch
    except ImportError:
        raise ConstraintEngineMissing(
            f"constrained decoding (tools, response_format) needs llguidance: {INSTALL}") from None
    return llguidance


def engine_available() -> bool:
    try:
        require_engine()
    except ConstraintEngineMissing:
        return False
    return True


def lark_json(schema: Any) -> str:
    """``%json {...}``: a JSON Schema as a Lark rule body, its JSON compact (no whitespace
    between tokens: a model that likes spaces could otherwise write them until its length limit)."""
    if isinstance(schema, dict):
        schema = {"x-guidance": {"whitespace_flexible": False}, **schema}
    return "%json " + json.dumps(schema, ensure_ascii=False)


def lark_literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class Grammar:
    """A Lark grammar (llguidance's dialect) whose ``start`` rule is the whole text."""

    lark: str

    def check(self) -> None:
        """Raise :class:`GrammarError` when the engine cannot compile it (a bad schema inside)."""
        ll = require_engine()
        problem = ll.LLMatcher.validate_grammar(ll.LLMatcher.grammar_from_lark(self.lark))
        if problem:
            raise GrammarError(problem.strip().splitlines()[0])


def json_schema_grammar(schema: Any, prefix: str = "") -> Grammar:
    """JSON text valid under ``schema`` (compact: no whitespace between tokens), after ``prefix``."""
    head = f"{lark_literal(prefix)} " if prefix else ""
    return Grammar(f"start: {head}value\nvalue: {lark_json(schema)}\n")


_TOKENIZERS: Dict[Tuple[int, int, int], Any] = {}


def engine_tokenizer(hf_tokenizer, vocab_size: int, eos: int):
    """llguidance's view of ``hf_tokenizer`` for a model scoring ``vocab_size`` tokens (built once)."""
    ll = require_engine()
    key = (id(hf_tokenizer), vocab_size, eos)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = ll.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size, eos_token=eos)
    return _TOKENIZERS[key]


class RowConstraint:
    """One row's grammar state: :meth:`mask` before a step, :meth:`advance` after it."""

    def __init__(self, grammar: Grammar, hf_tokenizer, eos: int):
        self.grammar = grammar
        self._tokenizer, self._eos = hf_tokenizer, eos
        self._matcher = None
        self._bitmask = None
        self.error = ""

    def _ready(self, vocab_size: int):
        if self._matcher is None:
            ll = require_engine()
            tokenizer = engine_tokenizer(self._tokenizer, vocab_size, self._eos)
            self._matcher = ll.LLMatcher(tokenizer, ll.LLMatcher.grammar_from_lark(self.grammar.lark), log_level=1)
            self._bitmask = ll.torch.allocate_token_bitmask(1, vocab_size)
        return self._matcher

    def mask(self, scores) -> None:
        """``scores`` (a tensor (V,) or (1, V)), in place: minus infinity for every token the grammar refuses."""
        import llguidance.torch as llt
        import torch  # grammars are built and checked without it (serving/tools.py); rows are masked with it

        row = scores.view(1, -1)
        matcher = self._ready(row.shape[-1])
        if matcher.is_error():  # cannot happen while every token chosen was allowed; end the row
            row.fill_(float("-inf"))
            row[0, self._eos] = 0
            return
        llt.fill_next_token_bitmask(matcher, self._bitmask, 0)
        if row.device.type != "cpu" or row.dtype != torch.float32:
            masked = row.float().cpu()
            llt.apply_token_bitmask_inplace(masked, self._bitmask)
            row.copy_(masked.to(row.device, row.dtype))
        else:
            llt.apply_token_bitmask_inplace(row, self._bitmask)

    def reset(self) -> None:
        """Back to the start (the search runs again from its first step)."""
        self._matcher, self.error = None, ""

    def advance(self, token: int) -> None:
        if token == self._eos or self._matcher is None:
            return
        if not self._matcher.consume_token(token):
            self.error = self._matcher.get_error() or f"token {token} refused"
