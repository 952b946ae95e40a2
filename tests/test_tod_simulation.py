"""The simulated user: ParlAI's model-to-model world runs shipped goals against the database.

Tiny T5 models, a few steps trained on ``dialogft_customer:user_simulator`` and
``dialogft_customer:system``, show the whole chain runs, from the shell and from
:func:`~parlai_dialogft.tod.simulation.simulate` alike; being a few steps old they hit no goal,
so the goal metric is shown to discriminate with scripted agents (tests/support/tod_agents.py):
a user who says its goal calls, a system that calls what it heard, one that never calls.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from parlai.core.tod.tod_core import STANDARD_GOAL, STANDARD_USER_UTTERANCE, SerializationHelpers

from parlai_dialogft.tod import calls, episodes
from parlai_dialogft.tod.simulation import simulate
from tests.support.agents import train_briefly
from tests.support.processes import BIN, fresh_shell

DATAPATH = "/tmp/dialogft-test-data"
N, SEED = 4, 0
SCRIPTED = "tests.support.tod_agents"


def shipped_goals(source: str, count: int, seed: int):
    """The goal turns of ``count`` test dialogues, shuffled with ``seed`` as ``--n-shot`` takes them."""
    sample = list(episodes.episodes(source, "test"))
    random.Random(seed).shuffle(sample)
    return [STANDARD_GOAL + episode.goal_calls_utt for episode in sample[:count]]


def goal_calls(goal_turn: str):
    return SerializationHelpers.str_to_goals(goal_turn[len(STANDARD_GOAL):])


def scripted(system: str, database: str = "multiwoz", **options):
    return simulate("", "", database, system_model=f"{SCRIPTED}:{system}", user_model=f"{SCRIPTED}:GoalSayingUser",
                    episodes=N, seed=SEED, datapath=DATAPATH, **options)


def logged(world_logs) -> list:
    """Each dialogue of ``--world-logs``: its rounds, each a list of (speaker, text)."""
    lines = Path(f"{world_logs}_conversations.jsonl").read_text(encoding="utf-8").splitlines()
    return [[[(turn["id"], turn["text"]) for turn in round_] for round_ in json.loads(line)["dialog"]] for line in lines]


@pytest.mark.parametrize("database", ["multiwoz", "crosswoz"])
def test_the_goal_metric_tells_a_system_that_calls_what_was_asked_from_one_that_never_calls(database, tmp_path):
    oracle = scripted("OracleSystem", database, batchsize=2, world_logs=str(tmp_path / "oracle"))
    mute = scripted("MuteSystem", database, batchsize=2)
    goals = shipped_goals(database, N, SEED)
    assert [m["goal"]["text"] for m in oracle["tod_metrics"]] == [m["goal"]["text"] for m in mute["tod_metrics"]] == goals
    for hit, missed, goal in zip(oracle["tod_metrics"], mute["tod_metrics"], goals):
        count = len(goal_calls(goal))
        assert hit["all_goals_hit"] == hit["synthetic_task_success"] == hit["all_goals_fractional_hit"] == 1
        assert hit["all_goals_hit_turn_count"] == hit["api_call_attempts"] == count  # one call a goal, in order
        assert missed["all_goals_hit"] == missed["synthetic_task_success"] == missed["all_goals_fractional_hit"] == 0
        assert missed["api_call_attempts"] == missed["all_goals_hit_turn_count"] == 0
        # the same dialogues but for the calls: each goal said, then [DONE]
        assert hit["rounds_count_all_conversations"] == missed["rounds_count_all_conversations"] == count + 1
        assert hit["done_seen"] == missed["done_seen"] == 1
    assert oracle["all_goals_hit"] == oracle["synthetic_task_success"] == 1
    assert mute["all_goals_hit"] == mute["synthetic_task_success"] == 0
    # the database answered every call the oracle made
    rounds = [round_ for dialogue in logged(tmp_path / "oracle") for round_ in dialogue[1:] if len(round_) == 4]
    assert len(rounds) == sum(len(goal_calls(goal)) for goal in goals)
    for (_, said), (_, call), (answerer, answer), _reply in rounds:
        assert calls.parse_call(call) == calls.parse_api_text(said, STANDARD_USER_UTTERANCE)
        assert answerer == "DatabaseApiAgent" and calls.parse_resp(answer)


def test_single_goal_episodes_give_the_user_one_goal_call_each():
    report = scripted("OracleSystem", single_goal=True)
    first_calls = [call for goal in shipped_goals("multiwoz", N, SEED) for call in goal_calls(goal)][:N]
    assert [goal_calls(m["goal"]["text"]) for m in report["tod_metrics"]] == [[call] for call in first_calls]
    assert all(m["all_goals_hit"] == 1 and m["all_goals_hit_turn_count"] == 1 for m in report["tod_metrics"])


def gold_hit_rate(source: str, permissive: bool = False) -> float:
    """How many dialogues' own calls hit all their goals, by the world metrics' match."""
    from parlai.core.tod.world_metrics_handlers import goals_hit_helper

    dialogues = episodes.episodes(source, "test")
    return sum(goals_hit_helper(e.goal_calls_machine, [r.api_call_machine for r in e.rounds if r.api_call_machine],
                                permissive)[0].value() for e in dialogues) / len(dialogues)


def test_the_corpus_own_calls_meet_the_exact_goal_match_in_few_dialogues():
    """docs/task.md's caveat: the dialogues' calls carry slots the goals lack and spell values
    apart, so even the corpus scores low on ParlAI's exact match."""
    assert 0.3 < gold_hit_rate("multiwoz") < 0.45 < gold_hit_rate("multiwoz", permissive=True) < 0.65
    assert 0.1 < gold_hit_rate("crosswoz") < 0.25


@pytest.fixture(scope="module")
def tod_models(tiny_models, tmp_path_factory):
    """A tiny T5 user simulator and system, each a few steps trained on its teacher."""
    root = tmp_path_factory.mktemp("tod_models")
    files = {}
    for role, task in (("user", "dialogft_customer:user_simulator"), ("system", "dialogft_customer:system")):
        files[role] = str(root / role / "model")
        train_briefly(tiny_models["t5"], files[role], DATAPATH, steps=10, task=f"{task}:sources=multiwoz", n_shot=8,
                      episodes_randomization_seed=0, text_truncate=128, label_truncate=32)
    return files


def test_trained_user_and_system_models_talk_through_the_database_and_each_goal_is_scored(tod_models, tmp_path):
    """The module docstring's command, and simulate() with the same options: the same dialogues."""
    agents = "parlai_dialogft.tasks.dialogft_customer.agents"
    command = [
        str(BIN / "python"), "-m", "parlai.scripts.tod_world_script",
        "--user-model-file", tod_models["user"], "--system-model-file", tod_models["system"],
        "--api-resp-model", "parlai_dialogft.tod.api_agent:DatabaseApiAgent", "--tod-database", "multiwoz",
        "--goal-grounding-model", f"{agents}:GoalAgent", "--api-schema-grounding-model", f"{agents}:ApiSchemaAgent",
        "--customer-lang", "all", "--customer-sources", "multiwoz", "-dt", "test",
        "--n-shot", str(N), "--episodes-randomization-seed", str(SEED), "--num-episodes", str(N), "--max-turns", "3",
        "--report-filename", str(tmp_path / "report"), "--world-logs", str(tmp_path / "shell"), "--datapath", DATAPATH,
    ]
    run = fresh_shell(command, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    shell = json.loads((tmp_path / "report.json").read_text())["report"]
    python = simulate(tod_models["system"], tod_models["user"], "multiwoz", episodes=N, seed=SEED, max_turns=3,
                      batchsize=2, datapath=DATAPATH, world_logs=str(tmp_path / "python"))

    assert [m["goal"]["text"] for m in shell["tod_metrics"]] == shipped_goals("multiwoz", N, SEED)
    assert [m["goal"]["text"] for m in python["tod_metrics"]] == shipped_goals("multiwoz", N, SEED)
    for from_shell, from_python in zip(shell["tod_metrics"], python["tod_metrics"]):
        assert from_shell["synthetic_task_success"] == from_python["synthetic_task_success"] == from_python["all_goals_hit"]
        assert from_python["all_goals_hit"] in (0, 1)
        assert from_shell["rounds_count_all_conversations"] == from_python["rounds_count_all_conversations"] == 2
    assert logged(tmp_path / "shell") == logged(tmp_path / "python")
    for dialogue in logged(tmp_path / "python"):
        assert dialogue[0][-1][1].startswith(STANDARD_GOAL)  # the grounding round ends with the goal
        answers = [speaker for round_ in dialogue[1:] for speaker, _ in round_ if speaker == "DatabaseApiAgent"]
        assert len(answers) == 2  # every round went through the database
