"""Fast-ACUTE: self-chats of each model on the same openers, paired up for ACUTE-Eval.

    parlai dialogft_fast_acute --fa-model-files a=/runs/a/model,b=/runs/b/model \\
        --fa-task dialogft_chitchat --fa-num-chats 20 --fa-turns 6 --fa-out /tmp/fa

1. Openers: the first message of each episode of ``--fa-task`` (ParlAI's own
   ``load_openers``), or the lines of ``--fa-openers-file``; ``--fa-num-chats`` of them are
   drawn with ``--fa-seed`` and written to ``openers.txt``.
2. For each model, ParlAI's ``self_chat`` script runs in this process with
   ``--seed-messages-from-file openers.txt`` and a self-chat world that takes the openers
   in order (:mod:`parlai_dialogft.human_eval.selfchat_world`), so chat i of every model
   opens with line i; logs go to ``self_chats/<name>.jsonl`` in ParlAI's Conversations
   format (with its ``.metadata``).
3. ``pairings.jsonl``: the onboarding pairings (built in, see
   :mod:`parlai_dialogft.human_eval.onboarding`), then, for every two models, their
   conversations that began with the same opener, side by side, in ParlAI's ACUTE shape.
   The web app (``parlai dialogft_human_eval --he-pairings``) adds an attention check per
   pairing itself.

Which side is judged: the self-chat's first speaker says the opener, words that are not
the model's, so by default the second speaker (``--fa-speaker-index 1``) is the one named
after the model and highlighted; the other is ``other_speaker``, as in ParlAI.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict, deque
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from parlai_dialogft.human_eval import formats
from parlai_dialogft.human_eval.onboarding import onboarding_pairings
from parlai_dialogft.utils.errors import UserError


@dataclass
class FastAcuteOptions:
    #: Comma-separated model files, each ``path`` or ``name=path`` (name: the folder's name).
    model_files: str
    #: Output folder.
    out: str
    #: ParlAI task whose episodes' first messages open the self-chats.
    task: Optional[str] = "dialogft_chitchat"
    #: Split the openers come from (not train: the models have seen it).
    datatype: str = "valid"
    #: A file of openers, one a line; replaces ``task``.
    openers_file: Optional[str] = None
    #: Self-chats per model (= comparisons per pair of models).
    num_chats: int = 10
    #: Exchanges (one message of each speaker) per self-chat, the opener's included.
    turns: int = 6
    #: Seed of the openers' draw and of self_chat.
    seed: int = 42
    #: Which self-chat speaker is judged (0 says the opener).
    speaker_index: int = 1
    #: Put the built-in onboarding pairings first in pairings.jsonl.
    onboarding: bool = True
    #: Keep an existing self_chats/<name>.jsonl instead of chatting again.
    reuse_chats: bool = False
    #: ParlAI data folder (openers' task data).
    datapath: Optional[str] = None
    #: Generation overrides passed to self_chat (None: the model's own).
    inference: Optional[str] = None
    beam_size: Optional[int] = None
    beam_min_length: Optional[int] = None

    def __post_init__(self):
        for flag, value in (("--fa-num-chats", self.num_chats), ("--fa-turns", self.turns)):
            if value < 1:
                raise UserError(f"{flag} {value}: must be at least 1")
        if self.speaker_index not in (0, 1):
            raise UserError(f"--fa-speaker-index {self.speaker_index}: must be 0 or 1")
        if not self.out:
            raise UserError("--fa-out is required: the folder for chats and pairings")
        if not self.openers_file and not self.task:
            raise UserError("give --fa-task or --fa-openers-file: where the openers come from")


def parse_models(spec: Optional[str]) -> List[Tuple[str, str]]:
    """``a/model,b=/x/model,c=zoo:dialogft/NAME`` -> [(name, path)], names unique, files present."""
    items = [s.strip() for s in (spec or "").split(",") if s.strip()]
    if len(items) < 2:
        raise UserError("--fa-model-files: give at least two model files, comma-separated")
    models = []
    for item in items:
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        zoo = path.startswith("zoo:")  # ParlAI installs the entry when self_chat loads it
        name = name.strip() or (path.rsplit("/", 1)[-1] if zoo else Path(path).parent.name or Path(path).name)
        if not zoo and not Path(path).is_file():
            raise UserError(f"--fa-model-files: {path}: no such model file")
        if any(ch in name for ch in ",:/ ") or name in (formats.OTHER_SPEAKER, "context"):
            raise UserError(f"--fa-model-files: model name {name!r} is not usable; write name=path")
        models.append((name, path))
    names = [n for n, _ in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"--fa-model-files: the name {duplicates[0]!r} is given twice; write name=path for each")
    return models


def load_openers(options: FastAcuteOptions) -> List[str]:
    """Every distinct opener of the openers file or of the task's ``datatype`` split."""
    if options.openers_file:
        path = Path(options.openers_file)
        if not path.is_file():
            raise UserError(f"--fa-openers-file {path}: no such file")
        openers = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not openers:
            raise UserError(f"--fa-openers-file {path}: no openers in the file")
        return list(dict.fromkeys(openers))
    from parlai.core.params import ParlaiParser
    from parlai.tasks.self_chat.worlds import load_openers as parlai_load_openers

    kwargs: Dict[str, Any] = {"task": options.task, "datatype": options.datatype}
    if options.datapath:
        kwargs["datapath"] = options.datapath
    opt = ParlaiParser(True, False).parse_kwargs(**kwargs)
    openers = parlai_load_openers(opt) or []
    # One line per opener in openers.txt: a line break inside would split it.
    openers = list(dict.fromkeys(" ".join(o.split()) for o in openers if o.strip()))
    if not openers:
        raise UserError(f"--fa-task {options.task}: its {options.datatype} split has no first messages to open chats")
    return openers


def draw_openers(openers: List[str], count: int, seed: int) -> List[str]:
    """``count`` openers drawn without replacement while they last (seeded)."""
    rng = random.Random(seed)
    drawn: List[str] = []
    while len(drawn) < count:
        batch = list(openers)
        rng.shuffle(batch)
        drawn.extend(batch[: count - len(drawn)])
    return drawn


def run_self_chat(model_file: str, openers_path: Path, outfile: Path, options: FastAcuteOptions) -> None:
    """ParlAI's self_chat script, in this process, on the openers file."""
    import torch
    from parlai.scripts.self_chat import SelfChat

    from parlai_dialogft.human_eval.selfchat_world import TASK

    torch.manual_seed(options.seed)  # sampling decoders draw from torch's generator
    kwargs: Dict[str, Any] = dict(
        model_file=model_file, task=TASK, seed_messages_from_file=str(openers_path),
        num_self_chats=options.num_chats, selfchat_max_turns=options.turns, outfile=str(outfile),
        save_format="conversations", display_examples=False, seed=options.seed,
    )
    for key in ("inference", "beam_size", "beam_min_length", "datapath"):
        if getattr(options, key) is not None:
            kwargs[key] = getattr(options, key)
    SelfChat.main(**kwargs)


def opener_of(episode: Dict[str, Any]) -> str:
    for turn in episode["dialog"]:
        for act in turn:
            if act.get("id") != "context":
                return " ".join(str(act.get("text", "")).split())
    return ""


def pair_by_opener(first: List[Dict[str, Any]], second: List[Dict[str, Any]]) -> List[Tuple[int, int]]:
    """Index pairs of conversations that began with the same opener, in ``first``'s order.

    The self-chats take the openers in order, so this pairs chat i with chat i; matching on
    the text is what makes a comparison fair, so it is checked rather than assumed (logs
    from elsewhere, ``--fa-reuse-chats``, may be in another order).
    """
    waiting: Dict[str, deque] = defaultdict(deque)
    for j, episode in enumerate(second):
        waiting[opener_of(episode)].append(j)
    pairs = []
    for i, episode in enumerate(first):
        queue = waiting.get(opener_of(episode))
        if queue:
            pairs.append((i, queue.popleft()))
    return pairs


def build_pairings(chats: Dict[str, List[Dict[str, Any]]], speaker_index: int) -> List[Dict[str, Any]]:
    """ACUTE pairings for every two models (names sorted), one per shared opener."""
    pairings = []
    for a, b in combinations(sorted(chats), 2):
        for i, j in pair_by_opener(chats[a], chats[b]):
            pairings.append({
                "is_onboarding": False,
                "speakers_to_eval": [a, b],
                "dialogue_ids": [f"{a}:{i}", f"{b}:{j}"],
                "tags": ["fast_acute"],
                "dialogue_dicts": [
                    formats.acute_dialogue(chats[a][i], a, speaker_index, dialogue_id=f"{a}:{i}"),
                    formats.acute_dialogue(chats[b][j], b, speaker_index, dialogue_id=f"{b}:{j}"),
                ],
            })
    return pairings


def run(options: FastAcuteOptions) -> Dict[str, Any]:
    """Everything: openers, self-chats, pairings; returns the summary written to ``fast_acute.json``."""
    models = parse_models(options.model_files)
    out = Path(options.out)
    (out / "self_chats").mkdir(parents=True, exist_ok=True)
    openers = draw_openers(load_openers(options), options.num_chats, options.seed)
    openers_path = out / "openers.txt"
    openers_path.write_text("".join(o + "\n" for o in openers), encoding="utf-8")

    chats: Dict[str, List[Dict[str, Any]]] = {}
    logs: Dict[str, str] = {}
    for name, model_file in models:
        log = out / "self_chats" / f"{name}.jsonl"
        if not (options.reuse_chats and log.is_file()):
            run_self_chat(model_file, openers_path, log, options)
        if not log.is_file():
            raise UserError(f"--fa-model-files: self_chat of {name} ({model_file}) wrote no log at {log}")
        chats[name] = formats.read_conversations(log)
        logs[name] = str(log)

    pairings = build_pairings(chats, options.speaker_index)
    if not pairings:
        raise UserError("no two models' self-chats began with the same opener: nothing to compare")
    onboarding = onboarding_pairings() if options.onboarding else []
    pairings_path = formats.write_pairings(out / "pairings.jsonl", onboarding + pairings)
    summary = {
        "models": {name: path for name, path in models},
        "self_chats": logs,
        "openers": str(openers_path),
        "pairings": str(pairings_path),
        "onboarding_pairings": len(onboarding),
        "comparison_pairings": len(pairings),
        "options": asdict(options),
    }
    (out / "fast_acute.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary
