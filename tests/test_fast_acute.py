"""Fast-ACUTE: real self-chats of two tiny models through ParlAI's self_chat, paired for ACUTE-Eval."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from parlai_dialogft.human_eval import fast_acute, formats
from parlai_dialogft.utils.errors import UserError
from tests.support.agents import train_briefly
from tests.support.models import TEXTS


def _parlai(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "parlai", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two model files of one tiny T5, trained 1 and 3 steps (different weights)."""
    import torch

    from parlai_dialogft.model.tiny import build_tiny_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("fast_acute_models")
    hf = build_tiny_model(str(root / "t5"), "t5", TEXTS, vocab_size=300)
    files = {}
    for name, steps in (("alpha", 1), ("beta", 3)):
        files[name] = str(root / name / "model")
        train_briefly(hf, files[name], str(root / "data"), steps=steps)
    return files, str(root / "data")


@pytest.mark.slow
def test_fast_acute_end_to_end_with_two_tiny_models(two_models, tmp_path):
    files, datapath = two_models
    out = tmp_path / "fa"
    done = _parlai(
        "dialogft_fast_acute", "--fa-model-files", f"{files['alpha']},{files['beta']}",
        "--fa-task", "dialogft_chitchat", "--fa-num-chats", "3", "--fa-turns", "2",
        "--fa-out", str(out), "--fa-datapath", datapath,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 comparisons, 4 onboarding" in done.stdout

    openers = (out / "openers.txt").read_text(encoding="utf-8").splitlines()
    assert len(openers) == 3 and all(openers)

    # The logs are ParlAI's Conversations files: ParlAI's own reader opens them.
    from parlai.utils.conversations import Conversations

    for name in ("alpha", "beta"):
        log = out / "self_chats" / f"{name}.jsonl"
        assert len(Conversations(str(log))) == 3
        assert (out / "self_chats" / f"{name}.metadata").is_file()

    pairings = formats.read_pairings(out / "pairings.jsonl")
    onboarding = [p for p in pairings if p["is_onboarding"]]
    comparisons = [p for p in pairings if not p["is_onboarding"]]
    assert len(onboarding) == 4 and all(p["correct_answer"] in p["speakers_to_eval"] for p in onboarding)
    assert len(comparisons) == 3
    for p in comparisons:
        assert p["speakers_to_eval"] == ["alpha", "beta"]
        first, second = p["dialogue_dicts"]
        # Both conversations open with the same opener, drawn from the task, said by the other speaker.
        assert first["dialogue"][0] == second["dialogue"][0]
        assert first["dialogue"][0]["id"] == formats.OTHER_SPEAKER
        assert " ".join(first["dialogue"][0]["text"].split()) in openers
        # --fa-turns 2: two messages of each speaker; the judged one is named after its model.
        assert [t["id"] for t in first["dialogue"]] == ["other_speaker", "alpha"] * 2
        assert [t["id"] for t in second["dialogue"]] == ["other_speaker", "beta"] * 2
    assert sorted(" ".join(p["dialogue_dicts"][0]["dialogue"][0]["text"].split()) for p in comparisons) == sorted(openers)

    summary = json.loads((out / "fast_acute.json").read_text())
    assert summary["models"] == {"alpha": files["alpha"], "beta": files["beta"]}
    assert summary["comparison_pairings"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fa-model-files", "ONE", "--fa-out", "OUT"], "--fa-model-files: give at least two model files"),
        (["--fa-model-files", "ONE,/nope/model", "--fa-out", "OUT"], "--fa-model-files: /nope/model: no such model file"),
        (["--fa-model-files", "ONE,ONE", "--fa-out", "OUT"], "--fa-model-files: the name 'm' is given twice"),
        (["--fa-model-files", "a=ONE,b=ONE", "--fa-out", "OUT", "--fa-turns", "0"], "--fa-turns 0: must be at least 1"),
        (["--fa-model-files", "a=ONE,b=ONE", "--fa-out", "OUT", "--fa-openers-file", "EMPTY"], "no openers in the file"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, args, message):
    model = tmp_path / "m" / "model"
    model.parent.mkdir()
    model.write_text("not read before the flags are checked")
    (tmp_path / "empty.txt").write_text("\n\n")
    args = [a.replace("ONE", str(model)).replace("OUT", str(tmp_path / "out")).replace("EMPTY", str(tmp_path / "empty.txt"))
            for a in args]
    done = _parlai("dialogft_fast_acute", *args, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("dialogft_fast_acute: ") and message in last
    assert "Traceback" not in done.stderr


def test_parse_models_names_from_folders_or_explicitly(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model").write_text("x")
    assert fast_acute.parse_models(f"{tmp_path}/a/model, x={tmp_path}/b/model") == [
        ("a", f"{tmp_path}/a/model"), ("x", f"{tmp_path}/b/model")]
    with pytest.raises(UserError, match="not usable"):
        fast_acute.parse_models(f"other_speaker={tmp_path}/a/model,{tmp_path}/b/model")


def test_draw_openers_is_seeded_and_uses_every_opener_before_repeating():
    openers = ["o1", "o2", "o3"]
    drawn = fast_acute.draw_openers(openers, 5, seed=1)
    assert drawn == fast_acute.draw_openers(openers, 5, seed=1)
    assert sorted(drawn[:3]) == openers and len(drawn) == 5


def _episode(opener, reply="r"):
    return {"dialog": [[{"id": "m_1", "text": opener}, {"id": "m_2", "text": reply}]]}


def test_conversations_are_paired_on_their_opener_not_their_position():
    first = [_episode("hi"), _episode("hello"), _episode("hi"), _episode("only here")]
    second = [_episode("hello"), _episode("hi"), _episode("hi"), _episode("elsewhere")]
    assert fast_acute.pair_by_opener(first, second) == [(0, 1), (1, 0), (2, 2)]
    pairings = fast_acute.build_pairings({"b": second, "a": first}, speaker_index=1)
    assert len(pairings) == 3 and pairings[0]["speakers_to_eval"] == ["a", "b"]
    assert pairings[0]["dialogue_ids"] == ["a:0", "b:1"]
    for p in pairings:
        formats.validate_pairing(p, "built")
