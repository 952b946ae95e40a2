"""--pref-keep-start: -mf never holds weights whose held-out gold perplexity is worse than the start's."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from parlai.core.message import Message

from tests.support.agents import make_agent

PAIRS = [
    ("hello , how can I help you today ?", "I need a hotel in the north .", "thanks , that is all I need ."),
    ("what time would you like to leave ?", "after five , please .", "hello ."),
]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def guarded(tiny_models, tmp_path):
    data = tmp_path / "pairs.txt"  # fromfile reads the same file for every split: it is the held-out set too
    data.write_text("".join(f"text:{p}\tlabels:{c}\trejected:{r}\tepisode_done:True\n" for p, c, r in PAIRS))
    model_file = tmp_path / "m" / "model"
    model_file.parent.mkdir()
    agent = make_agent(tiny_models["t5"], task="fromfile:parlaiformat", fromfile_datapath=str(data), datatype="train",
                       pref_loss="simpo", model_file=str(model_file))
    return agent, model_file


def test_the_start_is_measured_and_saved_before_the_first_step(guarded):
    agent, model_file = guarded
    start = json.loads((model_file.parent / "model.pref_start.json").read_text())["start_ppl"]
    assert start == pytest.approx(agent._heldout_gold_ppl(), rel=1e-6)
    assert model_file.is_file()  # the start's weights, until a model no worse replaces them


def test_a_model_whose_gold_perplexity_got_worse_is_refused_and_one_no_worse_is_kept(guarded):
    agent, model_file = guarded
    start_weights = {k: v.clone() for k, v in agent.model.state_dict().items()}
    saved_start = _digest(model_file)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in agent.model.parameters():
            p.add_(torch.randn(p.shape, generator=generator))
    assert agent._heldout_gold_ppl() > agent.pref_guard.start_ppl
    agent.save(str(model_file))
    assert _digest(model_file) == saved_start  # refused: -mf still holds the start
    agent.save(str(model_file) + ".checkpoint")  # resuming state is never held back
    assert (model_file.parent / "model.checkpoint").is_file()

    agent.model.load_state_dict(start_weights)
    assert agent._heldout_gold_ppl() == pytest.approx(agent.pref_guard.start_ppl, rel=1e-6)
    before = model_file.stat().st_mtime_ns
    agent.save(str(model_file))
    assert model_file.stat().st_mtime_ns != before  # no worse than the start: saved
    decisions = json.loads((model_file.parent / "model.pref_start.json").read_text())["decisions"]
    assert [d["kept"] for d in decisions] == [False, True]


def test_it_can_be_turned_off(tiny_models, tmp_path):
    data = tmp_path / "pairs.txt"
    data.write_text("".join(f"text:{p}\tlabels:{c}\trejected:{r}\tepisode_done:True\n" for p, c, r in PAIRS))
    model_file = tmp_path / "m" / "model"
    model_file.parent.mkdir()
    agent = make_agent(tiny_models["t5"], task="fromfile:parlaiformat", fromfile_datapath=str(data), datatype="train",
                       pref_loss="simpo", model_file=str(model_file), pref_keep_start=False)
    assert agent.pref_guard is None and not model_file.exists()


def test_the_held_out_examples_are_those_parlai_validates_on(tiny_models, tmp_path, guarded):
    """With --evaltask, ParlAI validates on that task: the start is measured on its examples."""
    pairs_agent, _ = guarded
    model_file = tmp_path / "e" / "model"
    model_file.parent.mkdir()
    from parlai.core.agents import create_agent
    from parlai.scripts.train_model import setup_args  # --evaltask is train_model's

    opt = setup_args().parse_kwargs(
        model="dialogft_agent", hf_model=tiny_models["t5"], datapath="/tmp/dialogft-test-data",
        task="fromfile:parlaiformat", evaltask="integration_tests", fromfile_datapath=pairs_agent.opt["fromfile_datapath"],
        datatype="train", pref_loss="simpo", model_file=str(model_file), pref_select_exs=5)
    agent = create_agent(opt, requireModelExists=False)
    texts = [ex["text"] for ex in agent._heldout_examples()]
    assert len(texts) == 5 and not any(p in texts for p, _, _ in PAIRS)
    assert agent.pref_guard.start_ppl != pytest.approx(pairs_agent.pref_guard.start_ppl)


def test_held_out_examples_of_a_dialogue_keep_its_earlier_turns(guarded):
    """As ParlAI's validation reads them: each turn after the earlier ones and their gold replies."""
    agent, _ = guarded
    examples = agent._teacher_examples(("valid",), lambda obs: True, limit=3, task="integration_tests:multiturn")
    first, second = examples[0], examples[1]
    assert not first["episode_done"]
    alone = agent.clone()
    alone.reset()
    single = alone.observe(Message({"text": second["text"], "eval_labels": second["eval_labels"], "episode_done": True}))
    assert len(second["text_vec"]) > len(single["text_vec"])
    seen = agent.dict.vec2txt(second["text_vec"].tolist())
    assert first["text"] in seen and first["eval_labels"][0] in seen and second["text"] in seen
