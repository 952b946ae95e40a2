"""What the workers are asked: ACUTE-Eval questions, live-chat problem categories and ratings.

The pairwise wordings are the optimized questions of Li, Weston and Roller (2019),
"ACUTE-EVAL: Improved Dialogue Evaluation with Optimized Questions and Multi-turn
Comparisons" (arXiv:1909.03087), as ParlAI's ``acute_eval/fast_eval.py`` ships them: the
exact words matter, since the paper chose them for agreement between annotators.
``parlai_type`` is ParlAI's name for the same question (``--acute-eval-type``).

Every table can be replaced by a JSON or YAML file (:func:`load_questions`,
:func:`load_problem_categories`, :func:`load_chat_ratings`)::

    # questions.yaml
    engagingness:
      question: Who would you prefer to talk to for a long conversation?
      s1_choice: I would prefer to talk to <Speaker 1>
      s2_choice: I would prefer to talk to <Speaker 2>
    empathy:
      question: Which speaker understands the other's feelings better?
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping

import yaml

from parlai_dialogft.utils.errors import UserError

# key -> {"question", "s1_choice", "s2_choice", "parlai_type"}; "<Speaker 1>" / "<Speaker 2>"
# are replaced by the page with the names it shows (left / right).
ACUTE_QUESTIONS: Dict[str, Dict[str, str]] = {
    "engagingness": {
        "question": "Who would you prefer to talk to for a long conversation?",
        "s1_choice": "I would prefer to talk to <Speaker 1>",
        "s2_choice": "I would prefer to talk to <Speaker 2>",
        "parlai_type": "engaging",
    },
    "interestingness": {
        "question": (
            "If you had to say one of these speakers is interesting and one is boring, "
            "who would you say is more interesting?"
        ),
        "s1_choice": "<Speaker 1> is more interesting",
        "s2_choice": "<Speaker 2> is more interesting",
        "parlai_type": "interesting",
    },
    "humanness": {
        "question": "Which speaker sounds more human?",
        "s1_choice": "<Speaker 1> sounds more human",
        "s2_choice": "<Speaker 2> sounds more human",
        "parlai_type": "human",
    },
    "knowledgeability": {
        "question": (
            "If you had to say that one speaker is more knowledgeable and one is more "
            "ignorant, who is more knowledgeable?"
        ),
        "s1_choice": "<Speaker 1> is more knowledgeable",
        "s2_choice": "<Speaker 2> is more knowledgeable",
        "parlai_type": "knowledge",
    },
}

# Per bot turn in a live chat, the worker ticks any of these, or "none".
# key -> {"name", "description"} (ParlAI's model_chat annotations_config has the same shape).
NONE_PROBLEM = "none"
PROBLEM_CATEGORIES: Dict[str, Dict[str, str]] = {
    "contradiction": {"name": "Contradiction", "description": "contradicts itself or what was said earlier"},
    "repetition": {"name": "Repetition", "description": "repeats itself or the partner"},
    "off_topic": {"name": "Off topic", "description": "ignores what the partner said"},
    "nonsense": {"name": "Makes no sense", "description": "ungrammatical, garbled or meaningless"},
    "incorrect": {"name": "Factually wrong", "description": "states something false"},
    "offensive": {"name": "Offensive", "description": "rude, unsafe or inappropriate"},
}

#: The live chat's final rating scale, ends included (live_chat refuses anything else).
RATING_SCALE = (1, 5)

# Final 1-5 ratings after a live chat: key -> {"question", "low", "high"} (the scale's ends).
CHAT_RATINGS: Dict[str, Dict[str, str]] = {
    "engagingness": {
        "question": "How much did you enjoy talking to this partner?",
        "low": "not at all",
        "high": "very much",
    },
    "humanness": {
        "question": "How human did this partner sound?",
        "low": "clearly a machine",
        "high": "like a person",
    },
    "fluency": {
        "question": "How fluent and natural were this partner's messages?",
        "low": "hard to read",
        "high": "perfectly natural",
    },
    "consistency": {
        "question": "How consistent was this partner over the conversation?",
        "low": "contradicted itself often",
        "high": "never contradicted itself",
    },
}

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def _read_mapping(path: str | Path) -> Mapping[str, Any]:
    """A JSON (``.json``) or YAML (anything else) file whose top level is a mapping."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:  # json.JSONDecodeError is a ValueError
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {first_line}") from None
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path}: expected a non-empty mapping of key -> entry at the top level")
    return data


def _entries(path: str | Path, required: tuple, optional: Mapping[str, str]) -> Dict[str, Dict[str, str]]:
    """Validate ``key -> {field: str}`` entries: keys are identifiers, required fields present."""
    table: Dict[str, Dict[str, str]] = {}
    for key, entry in _read_mapping(path).items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise UserError(f"{path}: key {key!r} must be lower-case letters, digits and _ (it names CSV columns)")
        if not isinstance(entry, dict):
            raise UserError(f"{path}: {key}: expected a mapping with {', '.join(required)}")
        for field in required:
            if not isinstance(entry.get(field), str) or not entry[field].strip():
                raise UserError(f"{path}: {key}: '{field}' is missing or empty")
        unknown = set(entry) - set(required) - set(optional)
        if unknown:
            raise UserError(f"{path}: {key}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        table[key] = {**optional, **{k: str(v) for k, v in entry.items()}}
    return table


def load_questions(path: str | Path | None = None) -> Dict[str, Dict[str, str]]:
    """ACUTE questions from ``path`` (JSON/YAML), or a copy of :data:`ACUTE_QUESTIONS` when None."""
    if path is None:
        return {k: dict(v) for k, v in ACUTE_QUESTIONS.items()}
    table = _entries(
        path,
        required=("question",),
        optional={"s1_choice": "<Speaker 1>", "s2_choice": "<Speaker 2>", "parlai_type": ""},
    )
    return table


def load_problem_categories(path: str | Path | None = None) -> Dict[str, Dict[str, str]]:
    """Problem categories from ``path``, or :data:`PROBLEM_CATEGORIES`; ``none`` is reserved."""
    if path is None:
        return {k: dict(v) for k, v in PROBLEM_CATEGORIES.items()}
    table = _entries(path, required=("name",), optional={"description": ""})
    if NONE_PROBLEM in table:
        raise UserError(f"{path}: '{NONE_PROBLEM}' is reserved for 'no problem' and is always offered")
    return table


def load_chat_ratings(path: str | Path | None = None) -> Dict[str, Dict[str, str]]:
    """Final 1-5 rating questions from ``path``, or :data:`CHAT_RATINGS`."""
    if path is None:
        return {k: dict(v) for k, v in CHAT_RATINGS.items()}
    return _entries(path, required=("question",), optional={"low": "1", "high": "5"})


def question_keys(table: Mapping[str, Any]) -> List[str]:
    """Keys in file order (the order the page asks them)."""
    return list(table)
