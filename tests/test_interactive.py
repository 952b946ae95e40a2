"""`parlai interactive -mf MODEL` with a person typing: Chinese, empty lines, long input, reset."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.support.agents import train_briefly
from tests.support.models import TEXTS

#: The tiny model is trained to give this one reply to anything (cleaning keeps "，？" in Chinese).
REPLY = "好的，请问您几点出发？"
LONG_LINE = "我想订一张明天去北京的火车票。" * 100  # far over --text-truncate 256 tokens


@pytest.fixture(scope="module")
def model_file(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("interactive")
    pairs = root / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"prompt": t, "completion": "好的，请问您几点出发？"}, ensure_ascii=False) + "\n" for t in TEXTS[:8]),
        encoding="utf-8",
    )
    mf = str(root / "m" / "model")
    train_briefly(
        tiny_models["t5"], mf, str(root / "data"), steps=40, task="dialogft_files",
        files_datapath=str(pairs), validation_every_n_steps=1000,
    )
    return mf


def _chat(model_file, lines):
    return subprocess.run(
        [sys.executable, "-m", "parlai", "interactive", "-mf", model_file],
        input="".join(line + "\n" for line in lines), capture_output=True, text=True, encoding="utf-8", timeout=300,
    )


def _replies(stdout):
    return re.findall(r"\[\w+\]: (.*)", stdout)


def test_a_chat_with_chinese_empty_long_and_reset_lines_runs_to_exit(model_file):
    chat = _chat(model_file, ["", "你好，我想订火车票", "", LONG_LINE, "[RESET]", "谢谢", "[EXIT]"])
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert "Traceback" not in chat.stderr
    out = chat.stdout
    # One reply per real message: the Chinese line, the long line, the line after the reset.
    assert _replies(out) == [REPLY] * 3
    assert out.count("[dialogft] empty message ignored") == 2
    notice = re.search(r"\[dialogft\] your message is ([\d,]+) tokens; the model reads only its last 256 ", out)
    assert notice and int(notice.group(1).replace(",", "")) > 256
    assert "[dialogft] new conversation: the earlier turns are forgotten." in out


def test_an_empty_first_line_no_longer_crashes(model_file):
    # ParlAI alone: KeyError 'text' in TorchAgent.self_observe, as no history exists yet.
    chat = _chat(model_file, ["", "   ", "hello", "[EXIT]"])
    assert chat.returncode == 0 and "Traceback" not in chat.stderr
    assert _replies(chat.stdout) == [REPLY]


def test_reset_clears_the_history_and_only_human_messages_are_commands(model_file):
    from parlai.core.agents import create_agent_from_model_file

    agent = create_agent_from_model_file(model_file, {"interactive_mode": True})
    for text in ("你好", "[RESET]", "谢谢"):
        agent.observe({"id": "localHuman", "text": text, "episode_done": False})
        agent.act()
    assert agent.history.get_history_str() == f"谢谢\n{REPLY}"

    # A model partner (self_chat) or a teacher is never policed: its text goes to the model.
    agent.reset()
    agent.observe({"id": "DialogftAgent", "text": "[RESET]", "episode_done": False})
    agent.act()
    assert agent.history.get_history_str().startswith("[RESET]")


def test_with_a_task_database_the_call_and_its_result_are_shown_before_the_reply(model_file):
    chat = subprocess.run(
        [sys.executable, "-m", "parlai", "interactive", "-mf", model_file, "--task-db", "multiwoz"],
        input="I need a cheap hotel in the north\n[EXIT]\n", capture_output=True, text=True, encoding="utf-8", timeout=300,
    )
    assert chat.returncode == 0, chat.stderr[-2000:]
    lines = chat.stdout.splitlines()
    call = next(i for i, line in enumerate(lines) if line.startswith("[dialogft] call: "))
    # This model answers everything with one Chinese line: it writes no call, and is told so.
    assert lines[call] == "[dialogft] call: (none: the model wrote no call)"
    assert lines[call + 1] == "[dialogft] result: (none)"
    assert _replies("\n".join(lines[call + 2:])) == [REPLY]
