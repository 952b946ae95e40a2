"""parlai dialogft_self_play: the reference is chosen, the model's own reply rejected (SPIN)."""

from __future__ import annotations

import json
import subprocess
import sys

from parlai_dialogft.evaluation.report_eval import Sample
from parlai_dialogft.training.self_play import EMPTY, NEAR_EQUAL, Summary, pairs


def test_pairs_are_trl_records_and_near_equal_or_empty_replies_are_skipped():
    samples = [
        Sample(["hello", "hi , how can I help ?", "a table for two"], "at what time ?", "which restaurant ?"),
        Sample(["我想订酒店"], "好的，请问您想住哪里？", "好的，请问您想住哪里"),  # F1 1.0 by character
        Sample(["thanks"], "you are welcome .", "   "),
    ]
    summary = Summary()
    records = list(pairs(samples, max_f1=0.8, summary=summary))
    assert records == [{
        "prompt": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi , how can I help ?"},
                   {"role": "user", "content": "a table for two"}],
        "chosen": [{"role": "assistant", "content": "at what time ?"}],
        "rejected": [{"role": "assistant", "content": "which restaurant ?"}],
    }]
    assert summary.written == 1 and summary.skipped == {NEAR_EQUAL: 1, EMPTY: 1}


def test_the_command_writes_pairs_the_preference_teacher_reads(context_models, tmp_path):
    """End to end on a tiny model that answers each sentence with the next one, on data
    whose reference is the sentence after that: the model's own replies (the next
    sentence) are the rejected side of pairs that -t dialogft_preferences serves."""
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    from tests.support.agents import train_briefly
    from tests.support.models import TEXTS

    data = tmp_path / "dialogues.jsonl"
    lines = list(dict.fromkeys(TEXTS))
    data.write_text("".join(json.dumps({"prompt": a, "completion": b}, ensure_ascii=False) + "\n"
                            for a, b in zip(lines, lines[2:])), encoding="utf-8")
    mf = tmp_path / "m" / "model"
    train_briefly(context_models["t5"], str(mf), str(tmp_path / "data"), steps=1, learningrate=1e-6)
    out = tmp_path / "pairs.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "parlai", "dialogft_self_play", "-mf", str(mf), "-t",
         f"dialogft_files:files_datapath={data}", "--out", str(out), "--sp-max-exs", "5", "--sp-batchsize", "4"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert f"{out}: {len(records)} pairs written" in done.stdout
    assert "dialogft_self_play: train:evalmode: 5/5 examples" in done.stdout  # progress, not a silent minute
    assert len(records) >= 4, done.stdout[-2000:]
    reference, model_says = dict(zip(lines, lines[2:])), dict(zip(lines, lines[1:]))
    for r in records:
        prompt = r["prompt"][-1]["content"]
        assert r["chosen"][0]["content"] == reference[prompt]
    # Sampled, yet the model's own answer: the next sentence, for most prompts.
    assert sum(r["rejected"][0]["content"] == model_says[r["prompt"][-1]["content"]] for r in records) >= 3

    opt = ParlaiParser(True, False).parse_args(["-t", "dialogft_preferences", "--pref-datapath", str(out), "-dt", "train:evalmode"])
    teacher = create_task_agent_from_taskname(opt)[0]
    assert teacher.num_examples() == len(records)


def test_bad_flags_are_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "parlai", "dialogft_self_play", "-mf", str(tmp_path / "nope"),
                           "-t", "dialogft_customer", "--out", str(tmp_path / "p.jsonl")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == f"dialogft_self_play: -mf {tmp_path / 'nope'}: no such model file"
