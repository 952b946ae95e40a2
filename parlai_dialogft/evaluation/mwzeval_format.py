"""Predictions in the standardized MultiWOZ evaluation's input format, read and written.

The format of https://github.com/Tomiinek/MultiWOZ_Evaluation (Nekvinda & Dušek, 2021), in
which published systems share their outputs::

    {"pmul4648": [{"response": "[restaurant_name] is a nice place .",
                   "state": {"restaurant": {"food": "indian", "bookday": "monday"}},
                   "active_domains": ["restaurant"]},
                  ...],
     ...}

Keys are dialogue ids lowercased without ``.json``; one turn per system turn of the
dialogue. ``response`` is the delexicalized reply; ``state`` (optional) the belief state
after the user's turn, in MultiWOZ 2.2's slot names; ``active_domains`` (optional) the
domains the reply is about. A published system's file and ours go through the same
:func:`read_predictions` and the same scorer.

In memory, a dialogue is a list of :class:`Turn`, states in MultiWOZ 2.1's ``semi`` names
plus ``book_*`` (:mod:`parlai_dialogft.tod.calls`); :func:`write_predictions` writes 2.2's
names back, so reading what was written gives the same turns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

from parlai_dialogft.evaluation.multiwoz_normalize import State, mwzeval_slot, normalize_state
from parlai_dialogft.tod.calls import multiwoz_state
from parlai_dialogft.tod.delex import gold_replies
from parlai_dialogft.utils.errors import DataFormatError

Predictions = Dict[str, List["Turn"]]


@dataclass
class Turn:
    """One system turn: the delexicalized reply, and what the system believed, when known."""

    response: str
    state: Optional[State] = None
    active_domains: Optional[List[str]] = None


def dialogue_key(dialogue_id: str) -> str:
    """``"PMUL4648.json"`` -> ``"pmul4648"``: the format's keys."""
    key = dialogue_id.strip().lower()
    return key[: -len(".json")] if key.endswith(".json") else key


def parse_predictions(data: object, source: str = "predictions") -> Predictions:
    """Check the format's shape and read it; a mistake raises :class:`DataFormatError`."""
    if not isinstance(data, dict):
        raise DataFormatError(source, None, "expected a JSON object: dialogue id -> list of turns")
    predictions: Predictions = {}
    for raw_id, turns in data.items():
        key = dialogue_key(str(raw_id))
        if not isinstance(turns, list):
            raise DataFormatError(source, None, f"dialogue {key!r}: expected a list of turns")
        read = []
        for index, turn in enumerate(turns):
            where = f"dialogue {key!r}, turn {index}"
            if not isinstance(turn, dict) or not isinstance(turn.get("response"), str):
                raise DataFormatError(source, None, f"{where}: expected an object with a \"response\" string")
            state = turn.get("state")
            if state is not None and not (isinstance(state, dict) and all(isinstance(s, dict) for s in state.values())):
                raise DataFormatError(source, None, f"{where}: \"state\" must map domain -> slot -> value")
            domains = turn.get("active_domains")
            if domains is not None and not (isinstance(domains, list) and all(isinstance(d, str) for d in domains)):
                raise DataFormatError(source, None, f"{where}: \"active_domains\" must be a list of domain names")
            read.append(Turn(
                turn["response"],
                normalize_state(state) if state is not None else None,
                [d.strip().lower() for d in domains] if domains is not None else None,
            ))
        predictions[key] = read
    return predictions


def read_predictions(path: Union[str, Path]) -> Predictions:
    """A predictions file in the format; not JSON or the wrong shape -> one line naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DataFormatError(path, None, f"cannot read it ({err.strerror or err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, f"not valid JSON ({err.msg})") from None
    return parse_predictions(data, str(path))


def to_mwzeval(predictions: Mapping[str, Sequence[Turn]]) -> Dict[str, List[dict]]:
    """The JSON-ready form, states in MultiWOZ 2.2's slot names; absent fields left out."""
    out: Dict[str, List[dict]] = {}
    for key, turns in predictions.items():
        rows = []
        for turn in turns:
            row: dict = {"response": turn.response}
            if turn.state is not None:
                row["state"] = {d: {mwzeval_slot(s): v for s, v in slots.items()} for d, slots in turn.state.items()}
            if turn.active_domains is not None:
                row["active_domains"] = list(turn.active_domains)
            rows.append(row)
        out[dialogue_key(key)] = rows
    return out


def write_predictions(path: Union[str, Path], predictions: Mapping[str, Sequence[Turn]]) -> None:
    Path(path).write_text(json.dumps(to_mwzeval(predictions), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def gold_states(log: Sequence[Mapping]) -> List[State]:
    """The annotated belief state of each system turn, ``dontcare`` left out as 2.2's are."""
    return [
        normalize_state(multiwoz_state(turn.get("metadata") or {}), keep_dontcare=False)
        for index, turn in enumerate(log) if index % 2 == 1
    ]


def gold_predictions(dialogues: Mapping[str, Mapping], states: bool = True) -> Predictions:
    """The corpus's own system turns in the format: delexicalized replies, annotated states."""
    gold: Predictions = {}
    for dialogue_id, dialogue in dialogues.items():
        log = dialogue["log"]
        turn_states = gold_states(log) if states else [None] * (len(log) // 2)
        gold[dialogue_key(dialogue_id)] = [Turn(r, s) for r, s in zip(gold_replies(log), turn_states)]
    return gold
