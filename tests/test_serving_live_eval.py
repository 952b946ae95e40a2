"""Live evaluation of a served model: reply length, repetition, generic replies, language mix,
input drift against the training profile, feedback; as Prometheus series and dashboard points.

The measurements are checked on inputs whose answer is known by construction (a reply that
repeats, contexts longer than any training context); the server tests send real requests to
a tiny model over HTTP and read ``/metrics`` and ``/dashboard/series`` back.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from types import SimpleNamespace

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from parlai_dialogft.serving.live_eval import (
    PERCENTILES,
    GenericReplies,
    LiveEvalSettings,
    LiveEvaluation,
    ProfileError,
    TrainingProfile,
    context_stats,
    episode_contexts,
    find_profile,
    profile_path,
    repeated_ngram_share,
)
from parlai_dialogft.serving.protocol import Prompt
from tests.support.serving import PROFILED_TASK as TASK  # episodes of growing contexts: lengths that vary
from tests.support.serving import chat, http, metrics, serving_agent


# --- the pieces ------------------------------------------------------------------------------


def test_a_reply_is_generic_once_it_occurs_more_than_the_threshold_in_the_window():
    generic = GenericReplies(window=4, threshold=2)
    flags = [generic.add(text) for text in ("I see.", "i see", "Book it", "I SEE!")]
    assert flags == [False, False, False, True]  # normalised alike; the third "i see" is over 2
    assert generic.share() == 3 / 4
    flags = [generic.add(text) for text in ("a", "b", "c")]  # three of the four "i see"s slide out
    assert flags == [False, False, False] and generic.share() == 0.0


def test_repetition_is_the_share_of_repeated_bigrams():
    assert repeated_ngram_share("the cat sat on the mat") == 0.0
    # 好的好的好的: five bigrams (好的, 的好, 好的, 的好, 好的), of which the last three repeat
    assert repeated_ngram_share("好的好的好的") == pytest.approx(3 / 5)
    assert repeated_ngram_share("ok") == 0.0


def test_context_tokens_and_unknown_tokens_are_counted_per_turn():
    vocab = {"hello": 5, "there": 6}
    tokenize = lambda text: [vocab.get(word, 2) for word in text.split()]  # noqa: E731 - 2 is <unk>
    assert context_stats(["hello there", "hello zebra quagga"], tokenize, unk_id=2) == (5, 2)
    assert context_stats(["hello zebra"], tokenize, unk_id=None) == (2, 0)  # no unknown token: never counted


def test_each_training_example_s_context_is_the_episode_so_far():
    acts = [{"text": "a", "labels": ["b"]}, {"text": "c", "labels": ["d"], "episode_done": True},
            {"text": "e", "eval_labels": ["f"], "episode_done": True}]
    assert list(episode_contexts(acts)) == [["a"], ["a", "b", "c"], ["e"]]


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=300))
def test_the_profile_keeps_the_percentiles_numpy_computes(lengths):
    profile = TrainingProfile.from_contexts(lengths, unknown=3)
    assert profile.context_percentiles == pytest.approx(numpy.percentile(lengths, range(PERCENTILES)))
    assert profile.unknown_token_share == pytest.approx(3 / max(sum(lengths), 1))
    assert profile.rank(max(lengths) + 1) == 1.0 and profile.rank(min(lengths) - 1) == 0.0
    ranks = [profile.rank(n) for n in sorted(lengths)]
    assert ranks == sorted(ranks) and 0 < ranks[0] and ranks[-1] < 1


def test_a_profile_round_trips_and_a_broken_one_names_its_file(tmp_path):
    profile = TrainingProfile.from_contexts([3, 9, 4, 40], unknown=1, task="t")
    model_file = str(tmp_path / "model")
    profile.save(profile_path(model_file))
    assert find_profile(model_file) == profile
    assert find_profile(str(tmp_path / "other")) is None  # no profile: drift without it
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": 1, "context_percentiles": [1, 2]}')
    with pytest.raises(ProfileError, match="broken.json"):
        find_profile(model_file, str(broken))
    with pytest.raises(ProfileError, match="--serve-train-profile .*missing.json"):
        find_profile(model_file, str(tmp_path / "missing.json"))


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def reply(text, tokens):
    return SimpleNamespace(text=text, drafts=[SimpleNamespace(completion_tokens=tokens)])


def samples_of(registry):
    from prometheus_client import generate_latest

    found = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_each_reply_is_measured_into_the_series_and_the_dashboard_points():
    clock = Clock(1000.0)
    profile = TrainingProfile.from_contexts(list(range(1, 101)), unknown=0)  # contexts of 1..100 tokens
    live = LiveEvaluation(LiveEvalSettings(generic_window=10, generic_threshold=1, interval_s=10),
                          tokenize=lambda text: [2 if w == "??" else 7 for w in text.split()], unk_id=2,
                          profile=profile, clock=clock)
    registry = CollectorRegistry()
    live.attach(registry)

    live.observe_reply(Prompt((), "a b ??"), reply("ok ok ok", 4), "a b ??")
    live.observe_reply(Prompt((("x " * 50, "y " * 50),), "z " * 100), reply("ok ok ok", 6), "你好 hello")
    clock.now = 1012.0  # the next interval
    live.observe_reply(Prompt((), "w"), reply("sure", 2), "w")
    live.observe_feedback("up")
    live.observe_feedback("down")
    live.observe_feedback(None)  # a choice without thumbs: no rating

    s = samples_of(registry)
    assert value(s, "dialogft_live_replies_total") == 3
    assert value(s, "dialogft_reply_tokens_sum") == 12 and value(s, "dialogft_reply_tokens_count") == 3
    assert value(s, "dialogft_reply_repeated_ngram_share_sum") == pytest.approx(2 * repeated_ngram_share("ok ok ok"))
    assert value(s, "dialogft_generic_replies_total") == 1  # the second "ok ok ok" (threshold 1)
    assert value(s, "dialogft_generic_reply_share") == pytest.approx(2 / 3)
    assert value(s, "dialogft_request_language_total", lang="zh") == 1
    assert value(s, "dialogft_request_language_total", lang="en") == 2
    assert value(s, "dialogft_context_tokens_sum") == 3 + 200 + 1
    assert value(s, "dialogft_context_unknown_tokens_total") == 1
    # 200 tokens: longer than every training context; 3 and 1 tokens: low in the distribution
    assert value(s, "dialogft_context_train_rank_count") == 3
    assert value(s, "dialogft_context_train_rank_bucket", le="0.1") == 2
    assert value(s, "dialogft_context_train_rank_bucket", le="0.99") == 2
    assert value(s, "dialogft_train_context_tokens", quantile="0.5") == pytest.approx(50.5)
    assert value(s, "dialogft_train_profile_loaded") == 1

    series = live.series()
    first, second = series["points"]
    assert (first["t"], second["t"]) == (1000.0, 1010.0)
    assert first["replies"] == 2 and first["reply_tokens"] == 5.0 and first["generic_share"] == 0.5
    assert first["zh_share"] == 0.5 and first["unknown_token_share"] == pytest.approx(1 / 203)
    assert first["over_train_p99"] == 0.5 and first["feedback_rate"] == 0.0 and first["thumbs_up_share"] is None
    assert second["feedback_rate"] == 2.0 and second["thumbs_up_share"] == 0.5
    assert series["profile"]["context_p99"] == pytest.approx(profile.quantile(0.99))
    json.dumps(series)  # the page reads it as JSON


def test_without_a_profile_the_drift_against_training_is_absent_and_said_so():
    live = LiveEvaluation(LiveEvalSettings(), tokenize=lambda text: [1] * len(text.split()), unk_id=None)
    registry = CollectorRegistry()
    live.attach(registry)
    live.observe_reply(Prompt((), "a b"), reply("fine", 1), "a b")
    s = samples_of(registry)
    assert value(s, "dialogft_train_profile_loaded") == 0
    assert value(s, "dialogft_context_tokens_sum") == 2
    assert not any(name.startswith(("dialogft_context_train_rank", "dialogft_train_context")) for name, _ in s)
    point = live.series()["points"][0]
    assert point["context_train_rank"] is None and point["context_tokens"] == 2
    assert live.series()["profile"] is None


@pytest.mark.parametrize("field,value_,flag", [("generic_window", 0, "--serve-generic-window"),
                                               ("generic_threshold", 0, "--serve-generic-threshold"),
                                               ("interval_s", 0, "--serve-live-interval-s"),
                                               ("points", 1, "--serve-live-points")])
def test_bad_live_evaluation_flags_are_refused_naming_the_flag(field, value_, flag):
    from parlai_dialogft.serving.guard import GuardError

    with pytest.raises(GuardError, match=flag):
        LiveEvalSettings(**{field: value_})


# --- conftest's profiled_model_file, its training contexts, a server ---------------------------


def training_contexts(model_file):
    """The training contexts, read with ParlAI's teacher here (not through the script)."""
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    opt = ParlaiParser(True, False).parse_kwargs(task=TASK, datatype="train:ordered",
                                                 datapath=os.path.join(os.path.dirname(model_file), "..", "data"))
    teacher = create_task_agent_from_taskname(opt)[0]
    return teacher, list(episode_contexts(teacher.act() for _ in range(teacher.num_examples())))


def test_the_profile_script_profiles_the_task_the_model_was_trained_on(profiled_model_file, tiny_models):
    from transformers import AutoTokenizer

    profile = TrainingProfile.load(profile_path(profiled_model_file))
    teacher, contexts = training_contexts(profiled_model_file)
    assert profile.task == TASK and profile.examples == teacher.num_examples() == len(contexts)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    lengths = [context_stats(turns, lambda t: tokenizer(t, add_special_tokens=False)["input_ids"], None)[0]
               for turns in contexts]
    assert profile.context_percentiles == pytest.approx(numpy.percentile(lengths, range(PERCENTILES)))
    assert profile.context_percentiles[0] < profile.context_percentiles[-1]  # episodes grow: lengths vary


def test_the_profile_script_says_what_to_give_when_the_model_names_no_task(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "parlai", "dialogft_train_profile", "-mf", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2 and "names no task: give the training task with -t" in proc.stderr


@contextmanager
def live_server(model_file, **live_settings):
    from parlai_dialogft.serving.app import create_app
    from parlai_dialogft.serving.live_eval import tokenizer_of
    from parlai_dialogft.serving.options import ServeSettings
    from parlai_dialogft.serving.replier import Replier
    from parlai_dialogft.serving.server import bound_port, running
    from parlai_dialogft.serving.store import ConversationStore

    agent = serving_agent(model_file)
    settings = ServeSettings(model_name="m", max_batch=4)
    live = LiveEvaluation(LiveEvalSettings(**live_settings), *tokenizer_of(agent), profile=find_profile(model_file))
    store = ConversationStore(os.path.join(os.path.dirname(model_file), f"log{id(live)}.db"))
    app = create_app(settings, Replier(agent, settings.max_batch), store, live)
    with running(app) as server:
        yield f"http://127.0.0.1:{bound_port(server)}"


def test_a_served_model_exports_its_live_evaluation(profiled_model_file):
    teacher, contexts = training_contexts(profiled_model_file)
    # requests shaped as training contexts (digits, 1 to 4 turns), then ones far longer than
    # any, and Chinese sentences (the task has none: longer in tokens than any of its contexts)
    like_training = contexts[::7][:12]
    too_long = [[" ".join(str(i % 10) for i in range(400))] for _ in range(4)]
    chinese = [["你好，请问有什么可以帮您？"], ["我想订一张明天去北京的火车票。"]]
    drifted = len(too_long) + len(chinese)
    again = [contexts[0]] * 5  # greedy decoding: the same reply five times, generic from the fourth
    with live_server(profiled_model_file, generic_window=50, generic_threshold=3, interval_s=3600) as url:
        ids = []
        for turns in like_training + too_long + chinese + again:
            roles = ["user", "assistant"] * len(turns)
            messages = [{"role": role, "content": text} for role, text in zip(roles, turns)]
            ids.append(chat(url, messages)["id"])
        for cid, rating in zip(ids, ("up", "up", "down")):
            assert http(url + "/v1/feedback", "POST", {"id": cid, "rating": rating})[0] == 200
        s = metrics(url)
        status, _, body = http(url + "/dashboard/series")
    n = len(like_training) + len(too_long) + len(chinese) + len(again)
    assert s[("dialogft_live_replies_total", ())] == n
    assert s[("dialogft_reply_tokens_count", ())] == n
    assert s[("dialogft_request_language_total", (("lang", "zh"),))] == len(chinese)
    assert s[("dialogft_request_language_total", (("lang", "en"),))] == n - len(chinese)
    assert s[("dialogft_feedback_total", (("rating", "up"),))] == 2
    # the long and the Chinese contexts are past the training p99; the training-shaped ones are not
    assert s[("dialogft_context_train_rank_bucket", (("le", "0.99"),))] == len(like_training) + len(again)
    assert s[("dialogft_context_train_rank_bucket", (("le", "+Inf"),))] == n
    assert s[("dialogft_train_profile_loaded", ())] == 1
    assert status == 200
    (point,) = json.loads(body)["points"]  # one interval of an hour
    assert point["replies"] == n and point["over_train_p99"] == pytest.approx(drifted / n)
    assert point["feedback_rate"] == pytest.approx(3 / n) and point["thumbs_up_share"] == pytest.approx(2 / 3)
    assert point["zh_share"] == pytest.approx(len(chinese) / n)
    assert s[("dialogft_generic_replies_total", ())] >= 2  # at least the last two of `again`
    assert s[("dialogft_generic_replies_total", ())] == pytest.approx(point["generic_share"] * n)


# --- the Grafana dashboard in examples/ -------------------------------------------------------

GRAFANA = os.path.join(os.path.dirname(__file__), "..", "examples", "grafana", "dialogft_serving.json")
SERIES_NAME = re.compile(r"\bdialogft_[a-z0-9_]+\b")


def test_every_grafana_panel_queries_series_the_server_exports(profiled_model_file):
    with open(GRAFANA, encoding="utf-8") as f:
        dashboard = json.load(f)
    with live_server(profiled_model_file) as url:
        cid = chat(url, [{"role": "user", "content": "1"}])["id"]
        assert http(url + "/v1/feedback", "POST", {"id": cid, "rating": "up"})[0] == 200
        _, _, text = http(url + "/metrics")
    exported = {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}

    queried = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            names = set(SERIES_NAME.findall(expr))
            assert names, f"{panel['title']}: {expr} names no dialogft series"
            assert names <= exported, f"{panel['title']}: {sorted(names - exported)} not on /metrics"
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
            queried |= names
    # the other way round: every live-evaluation series has a panel
    registry = CollectorRegistry()
    LiveEvaluation(LiveEvalSettings(), lambda text: [], None, TrainingProfile.from_contexts([1, 2], 0)).attach(registry)
    families = {family.name for family in registry.collect()}
    assert families and all(any(name.startswith(family) for name in queried) for family in families), (
        sorted(f for f in families if not any(name.startswith(f) for name in queried)))


def test_a_missing_training_profile_stops_the_server_with_one_line(profiled_model_file, tmp_path):
    missing = str(tmp_path / "missing.json")
    proc = subprocess.run([sys.executable, "-m", "parlai", "dialogft_serve", "-mf", profiled_model_file,
                           "--serve-train-profile", missing], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"dialogft_serve: --serve-train-profile {missing}: no such file"
