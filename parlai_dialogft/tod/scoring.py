"""One dialogue the end-to-end teacher saw, scored as the field scores it.

The teacher keeps, per system turn, the reply users saw, the belief state (the agent's own
calls accumulated, or the gold one for a reply-only model) and the last answer the reply was
written after. Here the reply is delexicalized with that answer's values
(:func:`.delex.delexicalize_reply`: ``[hotel_name]`` where the answer's name stands) and scored
against the corpus dialogue: MultiWOZ Inform and Success
(:mod:`parlai_dialogft.evaluation.task_success`), CrossWOZ Inform
(:mod:`parlai_dialogft.evaluation.crosswoz_inform`). Corpus BLEU and Combined need every
dialogue at once: ``parlai dialogft_task_score`` reads the file :func:`write_predictions` writes.
"""

from __future__ import annotations

import functools
import re
from typing import Dict, List, Mapping, Sequence

from parlai_dialogft.data.readers.corpus_files import corpus_dir, load_json
from parlai_dialogft.tod import calls, delex
from parlai_dialogft.tod.database import open_database

# The upstream files the splits come from: train/valid are cut from val, test is test.
FILES = {"multiwoz": ("multiwoz21_convlab2", ("val.json.zip", "test.json.zip")),
         "crosswoz": ("crosswoz", ("val.json.zip", "test.json.zip"))}


@functools.lru_cache(maxsize=None)
def corpus(source: str) -> Dict[str, Mapping]:
    folder, names = FILES[source]
    dialogues: Dict[str, Mapping] = {}
    for name in names:
        dialogues.update(load_json(corpus_dir(folder) / name))
    return dialogues


@functools.lru_cache(maxsize=None)
def _query(source: str):
    return open_database(source).query


def _with_domains(dialogue: Sequence[Mapping]) -> List[tuple]:
    """(turn, domain of the answer it was written after, that answer, its call) per turn."""
    out, domain, result, call = [], "", {}, {}
    for turn in dialogue:
        if turn["call"]:
            call, result = turn["call"], turn["result"]
            domain = calls.action_and_domain(call)[1]
        out.append((turn, domain, result, call))
    return out


@functools.lru_cache(maxsize=None)
def _entity_names() -> List[tuple]:
    """(pattern, placeholder) for every MultiWOZ venue name and train id, longest first.

    A reply may name an entity the last answer did not give (an earlier one, a user's pick): it
    is still an offer, and the scorer must see it. Names under five characters (``ask``, a
    restaurant) are left out: they are ordinary words more often than names.
    """
    db = open_database("multiwoz")
    names = {}
    for domain in ("restaurant", "hotel", "attraction"):
        for row in db.query(domain, {}):
            name = " ".join(str(row.get("name", "")).split())
            if len(name) >= 5:
                names.setdefault(name.casefold(), delex.placeholder(domain, "name"))
    pairs = sorted(names.items(), key=lambda item: -len(item[0]))
    return [(re.compile(rf"(?<![\w\[]){re.escape(name)}(?![\w\]])", re.IGNORECASE), f"[{placeholder}]")
            for name, placeholder in pairs] + [(re.compile(r"\bTR\d{4}\b", re.IGNORECASE), f"[{delex.placeholder('train', 'id')}]")]


# Cambridge phone numbers and postcodes, as the database writes them (01223 365068, cb21tt).
_PHONE = re.compile(r"(?<![\w\[])0\d{4} ?\d{6}(?![\w\]])")
_POSTCODE = re.compile(r"(?<![\w\[])c\.? ?b\.? ?\d{1,2} ?,? ?\d ?[a-z] ?\.? ?[a-z](?![\w\]])", re.IGNORECASE)


def delexicalize(reply: str, domain: str, result: Mapping[str, str], call: Mapping[str, str]) -> str:
    """The reply with the answer's values as placeholders, then any other venue it names, and
    a phone number or postcode of the domain it talks about (one the answer did not give: an
    earlier entity's, asked for again)."""
    text = delex.delexicalize_reply(reply, domain, result, call) if domain else reply
    for pattern, placeholder in _entity_names():
        text = pattern.sub(placeholder, text)
    for pattern, kind in ((_PHONE, "phone"), (_POSTCODE, "postcode")):
        placeholder = delex.placeholder(domain, kind) if domain else None
        if placeholder:
            text = pattern.sub(f"[{placeholder}]", text)
    return text


def multiwoz_turns(dialogue: Sequence[Mapping]):
    from parlai_dialogft.evaluation.mwzeval_format import Turn

    return [Turn(response=delexicalize(turn["reply"], domain, result, call),
                 state={d: dict(s) for d, s in turn["state"].items()})
            for turn, domain, result, call in _with_domains(dialogue)]


def crosswoz_turns(dialogue: Sequence[Mapping]):
    from parlai_dialogft.evaluation.crosswoz_inform import CrossWOZTurn

    return [CrossWOZTurn(response=turn["reply"], call=call or None, result=result or None)
            for turn, _domain, result, call in _with_domains(dialogue)]


def score_dialogue(source: str, dialogue_id: str, dialogue: Sequence[Mapping]) -> Dict[str, float]:
    """``inform`` and ``success`` (MultiWOZ) or ``inform`` (CrossWOZ) of one whole dialogue, 0 or 1."""
    if source == "multiwoz":
        from parlai_dialogft.evaluation.task_success import score_multiwoz

        report = score_multiwoz({dialogue_id: multiwoz_turns(dialogue)}, {dialogue_id: corpus(source)[dialogue_id]},
                                _query(source), bootstrap_samples=0)
        score = report.dialogues[0]
        return {"inform": float(score.inform), "success": float(score.success)}
    from parlai_dialogft.evaluation.crosswoz_inform import score_crosswoz_inform

    report = score_crosswoz_inform({dialogue_id: crosswoz_turns(dialogue)}, {dialogue_id: corpus(source)[dialogue_id]},
                                   _query(source))
    return {"inform": float(report.dialogues[0].inform)}


def write_predictions(path: str, predictions: Mapping[str, list]) -> None:
    from parlai_dialogft.evaluation.mwzeval_format import write_predictions as write

    write(path, predictions)
