"""Knowledge metrics: knowledge F1, retrieval recall@k, and whether named entities exist.

* **knowledge F1** (``knowledge_f1``): token F1 of the reply against the knowledge it should
  use, the best over the gold facts, as ParlAI's Wizard of Wikipedia reports it (there against
  the one checked sentence). Tokens are :func:`~parlai_dialogft.evaluation.text.cjk_aware_tokenize`'s,
  as for ``f1``; the ``entity | attribute`` separators are punctuation and do not count.
* **recall@k** (``knowledge_recall@k``): the share of an example's gold facts (KdConv) or gold
  entities (CrossWOZ) among the ``k`` retrieved entries, averaged over examples with gold.
* **entity exists** (``entity_exists``): for CrossWOZ, over the replies the gold reply's
  dialogue acts say should name an entity, the share that name one the database has.

Standard library only (plus the text module): cheap to import.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence

from parlai_dialogft.evaluation.metrics import precision_recall_f1
from parlai_dialogft.evaluation.text import cjk_aware_tokenize
from parlai_dialogft.knowledge.stores import Entry


def knowledge_f1(reply: str, facts: Sequence[str]) -> Optional[float]:
    """Best token F1 of ``reply`` against one of ``facts``; None without facts."""
    facts = [f for f in facts if f.strip()]
    if not facts:
        return None
    tokens = cjk_aware_tokenize(reply)
    return max(precision_recall_f1(tokens, cjk_aware_tokenize(fact))[2] for fact in facts)


def recall_at_k(retrieved: Sequence[Entry], gold_facts: Sequence[str] = (), gold_entities: Sequence[str] = ()) -> Optional[float]:
    """Share of the gold found among ``retrieved``: facts by their text, else entities by name.

    None when the example has no gold (it is left out of the average).
    """
    if gold_facts:
        found = {e.text for e in retrieved}
        return sum(fact in found for fact in gold_facts) / len(gold_facts)
    if gold_entities:
        found = {e.entity for e in retrieved}
        return sum(name in found for name in gold_entities) / len(gold_entities)
    return None


class EntityIndex:
    """The entity names of a database, to find which of them a reply names (longest match)."""

    def __init__(self, names: Iterable[str], min_chars: int = 2):
        self.names = frozenset(n for n in names if len(n) >= min_chars)
        self.min_chars = min_chars
        self.max_chars = max((len(n) for n in self.names), default=0)

    def mentions(self, text: str) -> List[str]:
        """The names in ``text``, left to right, longest first at each position, not overlapping."""
        found: List[str] = []
        i = 0
        while i < len(text):
            for width in range(min(self.max_chars, len(text) - i), self.min_chars - 1, -1):
                if text[i : i + width] in self.names:
                    found.append(text[i : i + width])
                    i += width
                    break
            else:
                i += 1
        return found

    def names_one(self, text: str) -> bool:
        return bool(self.mentions(text))
