"""BM25 over a knowledge store (``bm25s``), its index built once and kept on disk.

Tokens are those our metrics count (:func:`~parlai_dialogft.evaluation.text.cjk_aware_tokenize`:
lowercased, punctuation dropped, each CJK character a token, Latin words whole) plus every pair
of adjacent CJK characters: Chinese has no spaces, and single characters alone (北, 京) match
nearly every entry, while pairs (北京, 酒店) carry most of what a word would, with no segmenter
to disagree with the metrics.

The index lives under ``$DIALOGFT_CACHE_DIR/knowledge/<store>-<fingerprint>/``; the
fingerprint hashes the store's source files, the rendering and the tokenizer, so a changed
file gets a new index and the stale one is removed. A cache that cannot be written is not an
error: the index is then kept in memory only.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from parlai_dialogft.data.readers.corpus_files import cache_dir
from parlai_dialogft.evaluation.text import cjk_aware_tokenize
from parlai_dialogft.knowledge.stores import Entry, Store

#: Bumped when :func:`retrieval_tokens` changes: every cached index is then rebuilt.
TOKENIZER_VERSION = "3"
_CJK = re.compile(r"[\u3005-\u3007\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _english_stopwords() -> frozenset:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


_STOPWORDS = _english_stopwords()


def retrieval_tokens(text: str) -> List[str]:
    """The metrics' tokens plus adjacent CJK pairs, without bm25s' English stopwords
    (MultiWOZ's opening hours say "from ... to ... on monday": a query's "to" must not pick them).

    >>> retrieval_tokens("故宫门票")
    ['故', '宫', '门', '票', '故宫', '宫门', '门票']
    """
    tokens = cjk_aware_tokenize(text)
    pairs = [a + b for a, b in zip(tokens, tokens[1:]) if _CJK.fullmatch(a) and _CJK.fullmatch(b)]
    return [t for t in tokens if t not in _STOPWORDS] + pairs


#: The entity's name counts this many times more than the rest of the entry: a hotel's own
#: record must outrank the ten records that list it among their nearby places.
ENTITY_WEIGHT = 2


def entry_tokens(entry: Entry) -> List[str]:
    return retrieval_tokens(entry.entity) * ENTITY_WEIGHT + retrieval_tokens(entry.text)


def index_folder(store: Store, root: Optional[Path] = None) -> Path:
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(store.name.split(",")[0]).name)[:40] or "store"
    key = hashlib.sha1(f"{store.fingerprint}|{TOKENIZER_VERSION}|{len(store)}".encode()).hexdigest()[:16]
    return (root or cache_dir() / "knowledge") / f"{label}-{key}"


class BM25Retriever:
    """``search(query, k)``: the store's ``k`` best entries for a query, best first."""

    def __init__(self, store: Store, cache_root: Optional[Path] = None):
        import bm25s

        self.store = store
        self.folder = index_folder(store, cache_root)
        self.loaded_from_cache = False
        try:
            self.bm25 = bm25s.BM25.load(str(self.folder), load_corpus=False, show_progress=False, verbosity=0)
            self.loaded_from_cache = True
        except (OSError, ValueError, KeyError):
            self.bm25 = bm25s.BM25()
            self.bm25.index([entry_tokens(e) for e in store.entries], show_progress=False)
            self._save()
        self.vocab = self.bm25.vocab_dict

    def _save(self) -> None:
        """Write the index beside older ones of the same store, atomically, and drop those."""
        parent = self.folder.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=self.folder.name + ".tmp", dir=parent))
            self.bm25.save(str(partial), show_progress=False)
            try:
                os.rename(partial, self.folder)
            except OSError:  # another process saved it first
                shutil.rmtree(partial, ignore_errors=True)
            stem = self.folder.name.rsplit("-", 1)[0]
            for old in parent.glob(f"{stem}-*"):
                if old.name != self.folder.name and ".tmp" not in old.name:
                    shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass

    def search_many(self, queries: Sequence[str], k: int) -> List[List[Tuple[Entry, float]]]:
        """Each query's best ``k`` entries with their scores; entries sharing no token are left out."""
        k = min(k, len(self.store))
        tokenized = [[t for t in retrieval_tokens(q) if t in self.vocab] for q in queries]
        results: List[List[Tuple[Entry, float]]] = [[] for _ in queries]
        asked = [i for i, tokens in enumerate(tokenized) if tokens]
        if not asked or k <= 0:
            return results
        docs, scores = self.bm25.retrieve([tokenized[i] for i in asked], k=k, show_progress=False, n_threads=1)
        for row, i in enumerate(asked):
            results[i] = [(self.store.entries[int(d)], float(s)) for d, s in zip(docs[row], scores[row]) if s > 0]
        return results

    def search(self, query: str, k: int) -> List[Entry]:
        return [entry for entry, _score in self.search_many([query], k)[0]]


_RETRIEVERS: dict = {}


def retriever_for(spec: str, flag: str = "--knowledge-file") -> BM25Retriever:
    """One retriever per store and process (agents and teachers are cloned many times)."""
    from parlai_dialogft.knowledge.stores import load_store

    store = load_store(spec, flag)
    cached = _RETRIEVERS.get(spec)
    if cached is None or cached.store.fingerprint != store.fingerprint:
        cached = _RETRIEVERS[spec] = BM25Retriever(store)
    return cached
