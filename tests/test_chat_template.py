"""--hf-chat-template: multi-turn history as user/assistant messages in the model's markup."""

from __future__ import annotations

import shutil

import pytest
from parlai.core.message import Message

from tests.support.agents import make_agent

TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


@pytest.fixture
def instruct_model(tiny_models, tmp_path):
    """The tiny Qwen2 with a chat template in its tokenizer, as instruct models ship."""
    from transformers import AutoTokenizer

    folder = tmp_path / "qwen2-instruct"
    shutil.copytree(tiny_models["qwen2"], folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(folder)
    return str(folder)


def _context(agent, vec):
    return agent.dict.hf_tokenizer.decode(vec.tolist())


def test_history_becomes_alternating_user_and_assistant_messages(instruct_model):
    agent = make_agent(instruct_model, hf_chat_template=True)
    agent.observe(Message({"text": "hello", "labels": ["hi , how can I help ?"], "episode_done": False}))
    agent.self_observe(Message({"text": "hi , how can I help ?"}))
    obs = agent.observe(Message({"text": "a table for two", "labels": ["sure ."], "episode_done": True}))
    assert _context(agent, obs["text_vec"]) == (
        "<user>hello</s><assistant>hi , how can I help ?</s><user>a table for two</s><assistant>"
    )


def test_long_histories_drop_whole_old_turns_first(instruct_model):
    agent = make_agent(instruct_model, hf_chat_template=True, text_truncate=40)
    for turn in ["hello " * 10, "hi " * 10]:
        agent.observe(Message({"text": turn, "episode_done": False}))
        agent.self_observe(Message({"text": "ok ."}))
    obs = agent.observe(Message({"text": "a table for two", "episode_done": True}))
    text = _context(agent, obs["text_vec"])
    assert len(obs["text_vec"]) <= 40
    assert text.startswith("<user>") and text.endswith("<user>a table for two</s><assistant>")


def test_a_tokenizer_without_a_template_is_refused(tiny_models):
    from parlai_dialogft.model.hf_loading import HFLoadError

    with pytest.raises(HFLoadError, match="--hf-chat-template true needs a tokenizer with a chat template"):
        make_agent(tiny_models["qwen2"], hf_chat_template=True)
