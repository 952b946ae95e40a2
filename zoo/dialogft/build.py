"""``zoo:dialogft/tiny_t5``: the offline default ``--hf-model``.

A small T5 (random init) with a byte-level BPE tokenizer trained on the shipped chit-chat
and SGD-train text, built on first use into ``DATAPATH/models/dialogft/tiny_t5``. It is not
pretrained: it exists so that the main job runs on a fresh machine without the hub.
Versioned with ParlAI's build marker; bump ``VERSION`` when the recipe changes.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Iterator

import parlai.core.build_data as build_data

VERSION = "v2"  # v2: the tokenizer ends encoder inputs with </s>
CORPORA = Path(__file__).resolve().parents[2] / "parlai_dialogft" / "corpora"
#: Text the tokenizer may learn from: never dialogft_customer's validation or test data.
TOKENIZER_SOURCES = ("chatterbot_corpus", "kdconv", "topical_chat", "sgd/train")
MAX_TEXTS = 200_000


def _strings(node) -> Iterator[str]:
    if isinstance(node, str):
        if len(node) > 1:
            yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _load(path: Path):
    if path.suffix == ".yml":
        import yaml

        return yaml.safe_load(path.read_text(encoding="utf-8"))
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def corpus_texts(root: Path = CORPORA, sources=TOKENIZER_SOURCES) -> Iterator[str]:
    count = 0
    for source in sources:
        for path in sorted((root / source).rglob("*")):
            if not (path.name.endswith((".json", ".json.gz", ".yml"))):
                continue
            for text in _strings(_load(path)):
                yield text
                count += 1
                if count >= MAX_TEXTS:
                    return


def download(datapath: str) -> None:
    from parlai_dialogft.tiny import build_tiny_model

    out = os.path.join(datapath, "models", "dialogft", "tiny_t5")
    if build_data.built(out, VERSION):
        return
    texts = list(corpus_texts())
    if not texts:
        raise FileNotFoundError(f"no training text found under {CORPORA}; is the package complete?")
    build_tiny_model(out, "t5", texts, vocab_size=4000, d_model=128, layers=2)
    build_data.mark_done(out, VERSION)
