"""ParlAI's file formats for human evaluation: ACUTE pairings, conversation logs, ACUTE results.

* ACUTE pairings JSONL (``parlai/crowdsourcing/tasks/acute_eval``): one comparison per line,
  ``{"is_onboarding", "speakers_to_eval": [m1, m2], "correct_answer"?, "dialogue_dicts":
  [d1, d2]}`` where ``d1`` is ``m1``'s conversation: ``{"speakers": [...], "id"?,
  "dialogue": [{"id": speaker, "text": ...}, ...]}``. :func:`read_pairings` checks every
  line and names ``FILE, line N`` in its one-line errors; extra keys (``tags``,
  ``dialogue_ids``, ...) are kept.
* ParlAI ``Conversations`` JSONL, as ``parlai self_chat --outfile x.jsonl`` and the world
  logger write it: ``{"dialog": [[act, act], ...], "context": [...]}``
  (:func:`read_conversations`, :func:`acute_dialogue`).
* The output of ParlAI's ``acute_eval/analysis.py`` (``AcuteAnalyzer.save_results``), one
  "run" per question: ``<question>.full.csv``, ``.significance.csv``, ``.grid.csv``,
  ``.grid.winners_as_rows.csv``, ``.ratings_per_worker.csv``, ``.all_convo_pairs.txt``
  (:func:`write_parlai_acute_results`), so scripts written for ParlAI's files read ours.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from parlai_dialogft.human_eval import stats
from parlai_dialogft.utils.errors import UserError
from parlai_dialogft.utils.jsonl import read_jsonl, write_jsonl

# ParlAI's name for the speaker who is not evaluated in a self-chat.
OTHER_SPEAKER = "other_speaker"


# ----------------------------------------------------------------------------- pairings
def _check_dialogue_dict(where: str, i: int, model: str, d: Any) -> None:
    if not isinstance(d, dict):
        raise UserError(f"{where}: dialogue_dicts[{i}] must be an object")
    dialogue = d.get("dialogue")
    if not isinstance(dialogue, list) or not dialogue:
        raise UserError(f"{where}: dialogue_dicts[{i}].dialogue must be a non-empty list of turns")
    for t, turn in enumerate(dialogue):
        if not isinstance(turn, dict) or not isinstance(turn.get("id"), str) or not isinstance(turn.get("text"), str):
            raise UserError(f"{where}: dialogue_dicts[{i}].dialogue[{t}] needs string 'id' and 'text'")
    speakers = d.get("speakers")
    if speakers is not None and (not isinstance(speakers, list) or not all(isinstance(s, str) for s in speakers)):
        raise UserError(f"{where}: dialogue_dicts[{i}].speakers must be a list of strings")
    if not any(turn["id"] == model for turn in dialogue):
        raise UserError(
            f"{where}: dialogue_dicts[{i}] has no turn by {model!r} (speakers_to_eval[{i}]): "
            "the speaker to highlight must speak in its conversation"
        )


def validate_pairing(pairing: Any, where: str) -> Dict[str, Any]:
    """Check one ACUTE pairing; returns it with ``is_onboarding`` filled in. ``where`` prefixes errors."""
    if not isinstance(pairing, dict):
        raise UserError(f"{where}: a pairing must be a JSON object")
    speakers = pairing.get("speakers_to_eval")
    if (
        not isinstance(speakers, list) or len(speakers) != 2
        or not all(isinstance(s, str) and s for s in speakers)
    ):
        raise UserError(f"{where}: speakers_to_eval must be a list of two model names")
    if speakers[0] == speakers[1]:
        raise UserError(f"{where}: speakers_to_eval names {speakers[0]!r} twice; a comparison needs two models")
    dialogues = pairing.get("dialogue_dicts")
    if not isinstance(dialogues, list) or len(dialogues) != 2:
        raise UserError(f"{where}: dialogue_dicts must be a list of two conversations")
    for i in (0, 1):
        _check_dialogue_dict(where, i, speakers[i], dialogues[i])
    onboarding = pairing.get("is_onboarding", False)
    if not isinstance(onboarding, bool):
        raise UserError(f"{where}: is_onboarding must be true or false")
    answer = pairing.get("correct_answer")
    if answer is not None and answer not in speakers:
        raise UserError(f"{where}: correct_answer {answer!r} is not one of speakers_to_eval {speakers}")
    if onboarding and answer is None:
        raise UserError(f"{where}: an onboarding pairing needs a correct_answer")
    return {**pairing, "is_onboarding": onboarding}


def jsonl_records(path: str | Path, missing: str) -> Iterator[Tuple[str, int, Any]]:
    """``(where, line number, value)`` for each non-blank line of a JSONL file (:func:`read_jsonl`).

    ``where`` is ``FILE, line N``, as :class:`~parlai_dialogft.utils.errors.DataFormatError`
    names a line: the prefix of every error about it. A missing file is the one-line error
    ``missing`` (which names the flag or what the file should be); a file without a line
    holds no records, and the caller says whether that is a mistake.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(missing)
    for number, value in read_jsonl(path, allow_empty=True):
        yield f"{path}, line {number}", number, value


def read_pairings(path: str | Path) -> List[Dict[str, Any]]:
    """Every pairing of an ACUTE pairings JSONL file, checked (blank lines skipped)."""
    path = Path(path)
    records = jsonl_records(path, f"{path}: no such pairings file")
    pairings = [validate_pairing(obj, where) for where, _, obj in records]
    if not pairings:
        raise UserError(f"{path}: no pairings in the file")
    return pairings


def write_pairings(path: str | Path, pairings: Sequence[Mapping[str, Any]]) -> Path:
    """Write pairings as JSONL, each checked first (a bad one is a bug: it raises before writing)."""
    checked = [validate_pairing(dict(p), f"pairing {i}") for i, p in enumerate(pairings)]
    return write_jsonl(path, checked)


# ----------------------------------------------------------------------------- conversation logs
def read_conversations(path: str | Path) -> List[Dict[str, Any]]:
    """Episodes of a ParlAI ``Conversations`` JSONL file (``dialog``: a list of turns of acts)."""
    episodes = []
    for where, _, episode in jsonl_records(path, f"{path}: no such conversation log"):
        dialog = episode.get("dialog") if isinstance(episode, dict) else None
        if not isinstance(dialog, list):
            raise UserError(f"{where}: expected a ParlAI conversation with a 'dialog' list")
        for t, turn in enumerate(dialog):
            if not isinstance(turn, list) or not all(isinstance(a, dict) for a in turn):
                raise UserError(f"{where}: dialog[{t}] must be a list of acts (objects)")
            for act in turn:
                if not isinstance(act.get("id"), str) or not isinstance(act.get("text", ""), str):
                    raise UserError(f"{where}: dialog[{t}] has an act without a string 'id' and 'text'")
        episodes.append(episode)
    return episodes


def acute_dialogue(episode: Mapping[str, Any], model: str, speaker_index: int = 0,
                   dialogue_id: Optional[str] = None) -> Dict[str, Any]:
    """One logged episode as an ACUTE ``dialogue_dict``.

    In a self-chat both sides are the same model: the side at ``speaker_index`` of each
    turn becomes ``model`` (the one the worker judges), the other ``other_speaker``, as in
    ParlAI's Fast-ACUTE. Acts with id ``context`` (self-chat seeds) are kept apart.
    """
    dialogue: List[Dict[str, str]] = []
    context: List[Dict[str, Any]] = list(episode.get("context") or [])
    speakers: List[str] = []
    for turn in episode["dialog"]:
        for position, act in enumerate(turn):
            if act.get("id") == "context":
                context.append(act)
                continue
            speaker = model if position == speaker_index else OTHER_SPEAKER
            if speaker not in speakers:
                speakers.append(speaker)
            dialogue.append({"id": speaker, "text": str(act.get("text", "")).strip()})
    out: Dict[str, Any] = {"speakers": speakers, "dialogue": dialogue}
    if dialogue_id is not None:
        out["id"] = dialogue_id
    if context:
        out["context"] = context
    return out


# ----------------------------------------------------------------------------- ParlAI ACUTE results
def _matchup(record: Mapping[str, Any]) -> str:
    return f"{record['model_a']}__vs__{record['model_b']}"


def _loser(record: Mapping[str, Any]) -> str:
    return record["model_b"] if record["winner"] == record["model_a"] else record["model_a"]


def _significance_level(p: float):
    """ParlAI's stars and labels for a p-value."""
    if p < 0.001:
        return "***", "p<.001"
    if p < 0.01:
        return "**", "p<.01"
    if p < 0.05:
        return "*", "p<.05"
    return "", "p>.05"


def _cell(value: Any) -> Any:
    """pandas' CSV spelling: NaN and None are empty, floats in full precision."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
    return path


def parlai_significance_rows(records: Sequence[Mapping[str, Any]], question_text: str) -> List[Dict[str, Any]]:
    """One row per matchup with ParlAI's columns (``p`` is the exact two-sided binomial test)."""
    by_matchup: Dict[str, List[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        by_matchup[_matchup(r)].append(r)
    rows = []
    for matchup in sorted(by_matchup):
        group = by_matchup[matchup]
        model1, model2 = group[0]["model_a"], group[0]["model_b"]
        wins1 = sum(r["winner"] == model1 for r in group)
        wins2 = len(group) - wins1
        p = stats.binomial_test(wins1, len(group))
        stars, level = _significance_level(p)
        per_pair: Dict[str, List[str]] = defaultdict(list)
        for r in group:
            per_pair[r["pair_id"]].append(r["winner"])
        agreements = [a for a in map(stats.majority_agreement, per_pair.values()) if a is not None]
        rows.append({
            "question": question_text, "matchup": matchup,
            "model1": model1, "numwins1": wins1, "winrate1": wins1 / len(group),
            "model2": model2, "numwins2": wins2, "winrate2": wins2 / len(group),
            "numratings": len(group), "sigf": level, "stars": stars, "p": p,
            "agree": sum(agreements) / len(agreements) if agreements else math.nan,
        })
    return rows


def parlai_win_grid(records: Sequence[Mapping[str, Any]]):
    """(ordering, grid): ``grid[loser][winner]`` = share of their matchup the winner won.

    ParlAI orders models by their mean win fraction, lowest first. Unlike ParlAI's pivot,
    a compared pair whose winner never won shows 0 rather than an empty cell, and a model
    that never won stays in the table; empty cells are pairs never compared (and the diagonal).
    """
    totals: Counter = Counter()
    wins: Counter = Counter()
    models = set()
    for r in records:
        totals[(r["model_a"], r["model_b"])] += 1
        wins[(r["winner"], _loser(r))] += 1
        models.update((r["model_a"], r["model_b"]))
    grid: Dict[str, Dict[str, float]] = {m: {} for m in models}
    for (a, b), n in totals.items():
        grid[b][a] = wins[(a, b)] / n
        grid[a][b] = wins[(b, a)] / n
    mean_win = {}
    for w in models:
        fractions = [grid[loser][w] for loser in models if w in grid[loser]]
        mean_win[w] = sum(fractions) / len(fractions) if fractions else 0.0
    ordering = sorted(models, key=lambda m: (mean_win[m], m))
    return ordering, grid


def _dialogue_text(dialogue: Sequence[Mapping[str, str]]) -> str:
    return "\n".join(f"[{t['id']}]: {t['text']}" for t in dialogue)


def write_parlai_acute_results(
    records: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    question_texts: Optional[Mapping[str, str]] = None,
    pairing_lookup: Optional[Callable[[str], Optional[Mapping[str, Any]]]] = None,
) -> List[Path]:
    """Write ParlAI's ``AcuteAnalyzer.save_results`` files, one run per question key.

    ``records`` are the judgments to count (the caller has removed onboarding, attention
    checks and failed workers, as ParlAI does before saving). ``question_texts`` maps a
    question key to the wording shown; ``pairing_lookup(pair_id)`` returns the pairing, for
    ``all_convo_pairs.txt`` (skipped when None, as ParlAI skips it without a pairings file).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    question_texts = question_texts or {}
    by_question: Dict[str, List[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        by_question[r["question"]].append(r)
    written: List[Path] = []
    for run_id in sorted(by_question):
        group = by_question[run_id]
        text = question_texts.get(run_id, run_id)
        written.append(_write_csv(
            out / f"{run_id}.full.csv",
            ["run_id", "worker", "worker_name", "time_taken", "question", "unit_id", "task_start",
             "correct", "winner", "loser", "eval_choice_0", "eval_choice_1", "reason",
             "is_onboarding", "matchup", "pairing_id"],
            ([run_id, r["worker_id"], r["worker_id"], r["duration_s"], text, r["judgment_id"], "",
              -1, r["winner"], _loser(r), r["model_a"], r["model_b"], r["justification"],
              bool(r["is_onboarding"]), _matchup(r), r["pair_id"]] for r in group),
        ))
        significance = parlai_significance_rows(group, text)
        columns = ["question", "matchup", "model1", "numwins1", "winrate1", "model2", "numwins2",
                   "winrate2", "numratings", "sigf", "stars", "p", "agree"]
        written.append(_write_csv(out / f"{run_id}.significance.csv", columns,
                                  ([row[c] for c in columns] for row in significance)))
        ordering, grid = parlai_win_grid(group)
        written.append(_write_csv(out / f"{run_id}.grid.csv", ["loser"] + ordering,
                                  ([loser] + [grid[loser].get(w) for w in ordering] for loser in ordering)))
        written.append(_write_csv(out / f"{run_id}.grid.winners_as_rows.csv", ["winner"] + ordering,
                                  ([w] + [grid[loser].get(w) for loser in ordering] for w in ordering)))
        per_worker = Counter(r["worker_id"] for r in group)
        written.append(_write_csv(out / f"{run_id}.ratings_per_worker.csv", ["worker", "run_id"],
                                  sorted(per_worker.items(), key=lambda kv: (-kv[1], kv[0]))))
        if pairing_lookup is not None:
            written.append(_write_convo_pairs(out / f"{run_id}.all_convo_pairs.txt", group, text, pairing_lookup))
    return written


def _write_convo_pairs(path: Path, records, question_text: str, lookup) -> Path:
    blocks = []
    for r in records:
        pairing = lookup(r["pair_id"])
        if not pairing:
            continue
        by_model = dict(zip(pairing["speakers_to_eval"], pairing["dialogue_dicts"]))
        loser = _loser(r)
        blocks.append(
            f"CONVO PAIR ID: {r['pair_id']}\n\n"
            f"WINNING DIALOGUE: {r['winner']}\n{_dialogue_text(by_model[r['winner']]['dialogue'])}\n\n"
            f"LOSING DIALOGUE: {loser}\n{_dialogue_text(by_model[loser]['dialogue'])}\n\n"
            f"QUESTION: {question_text}\nWORKER'S CHOICE: {r['winner']}\nREASON: {r['justification']}\n\n\n\n"
        )
    path.write_text("".join(blocks), encoding="utf-8")
    return path
