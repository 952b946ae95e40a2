"""Multi-LoRA serving: two LoRA models trained to differ, served on one base model, each
request answered with the adapter its ``model`` names, exactly as each model served alone.

The two are trained from the same tiny base on different tasks (their greedy replies differ);
then requests for both, interleaved and concurrent, must be split by adapter inside each
micro-batch and come back equal to what ``dialogft_serve -mf`` of that model alone answers.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from parlai_dialogft.serving.adapters import AdapterRouter, parse_serve_lora, serve_adapters
from parlai_dialogft.serving.guard import GuardError
from tests.support.agents import train_briefly
from tests.support.models import TEXTS
from tests.support.processes import parlai_server
from tests.support.serving import chat, http, serving_agent

LORA = dict(lora_r=4, lora_alpha=16.0, lora_dropout=0.0, learningrate=1e-2, label_truncate=16)
ASKED = list(dict.fromkeys(TEXTS)) + ["1 2 3", "4 0", "5"]


@pytest.fixture(scope="module")
def lora_models(context_models, tmp_path_factory):
    """(a, b): LoRA models of one tiny GPT-2 (whose replies depend on the context), trained on
    different tasks; and a full fine-tune of it."""
    root = tmp_path_factory.mktemp("lora_serving")
    data, base = str(root / "data"), context_models["gpt2"]
    a, b, full = (str(root / name / "model") for name in ("a", "b", "full"))
    train_briefly(base, a, data, steps=12, task="integration_tests:multiturn", **LORA)
    train_briefly(base, b, data, steps=12, task="integration_tests:reverse", **LORA)
    train_briefly(base, full, data, steps=2, task="integration_tests:reverse", label_truncate=16)
    return a, b, full


@contextmanager
def served(model_file, name, lora=(), batch_wait_s=0.0):
    """``dialogft_serve -mf model_file --serve-model-name name [--serve-lora ...]``, in this process;
    yields (url, micro-batches: the set of adapters in each, calls: the same per generation call)."""
    from parlai_dialogft.serving.app import create_app
    from parlai_dialogft.serving.options import ServeSettings
    from parlai_dialogft.serving.replier import Replier
    from parlai_dialogft.serving.server import bound_port, running

    settings = ServeSettings(model_name=name, max_batch=16, batch_wait_s=batch_wait_s, lora=tuple(lora))
    agent = serving_agent(model_file)
    replier = Replier(agent, settings.max_batch)
    batches, calls = [], []

    def recorded_replier(prompts):
        calls.append({p.adapter for p in prompts})
        return replier(prompts)

    router = AdapterRouter(recorded_replier, serve_adapters(agent, name, settings.lora))

    def generate(prompts):
        batches.append({p.adapter for p in prompts})
        return router(prompts)

    with running(create_app(settings, generate)) as server:
        yield f"http://127.0.0.1:{bound_port(server)}", batches, calls


def reply_of(url, model, text):
    return chat(url, [{"role": "user", "content": text}], model=model)["choices"][0]["message"]["content"]


@pytest.fixture(scope="module")
def alone(lora_models):
    """Each model's replies, served alone (no --serve-lora)."""
    a, b, _ = lora_models
    replies = {}
    for name, model_file in (("a", a), ("b", b)):
        with served(model_file, name) as (url, _, _):
            replies[name] = [reply_of(url, name, text) for text in ASKED]
    differ = sum(x != y for x, y in zip(replies["a"], replies["b"]))
    assert differ >= len(ASKED) // 2, replies  # trained to differ: a mix-up would show
    return replies


def test_two_adapters_on_one_base_reply_as_each_model_alone(lora_models, alone):
    a, b, _ = lora_models
    asks = [(name, text) for text in ASKED for name in ("a", "b")]  # interleaved
    with served(a, "a", lora=[("b", b)], batch_wait_s=0.05) as (url, batches, calls):
        status, _, body = http(url + "/v1/models")
        assert status == 200 and [m["id"] for m in json.loads(body)["data"]] == ["a", "b"]
        one_by_one = {name: [reply_of(url, name, text) for text in ASKED] for name in ("a", "b")}
        start = threading.Barrier(len(asks))

        def client(ask):
            start.wait(timeout=30)  # all in flight together: micro-batches mix the two
            return reply_of(url, *ask)

        with ThreadPoolExecutor(len(asks)) as pool:
            together = list(pool.map(client, asks, timeout=120))
        _, _, stream = http(url + "/v1/chat/completions", "POST",
                            {"model": "b", "messages": [{"role": "user", "content": ASKED[2]}], "stream": True})
        status, _, body = http(url + "/v1/chat/completions", "POST",
                               {"model": "c", "messages": [{"role": "user", "content": "hi"}]})
    assert one_by_one == alone
    chunks = [json.loads(line[len("data: "):]) for line in stream.split("\n\n") if line and "[DONE]" not in line]
    assert {c["model"] for c in chunks} == {"b"}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == alone["b"][2]
    assert together == [alone[name][ASKED.index(text)] for name, text in asks]
    # b's requests were routed to its adapter (prompt.adapter "b"), a's to the -mf model's (None)
    assert any(batch == {None, "b"} for batch in batches), batches  # some micro-batch mixed both ...
    assert all(len(call) == 1 for call in calls), calls  # ... yet no generation call did
    assert status == 404 and "'a', 'b'" in json.loads(body)["error"]["message"]


def test_the_parlai_command_serves_lora_models_side_by_side(lora_models, alone):
    a, b, _ = lora_models
    args = ["dialogft_serve", "-mf", a, "--port", "{port}", "--serve-model-name", "a", "--serve-lora", f"b={b}"]
    with parlai_server(args, "/healthz") as (base, proc):
        status, _, body = http(base + "/v1/models/b")
        assert status == 200 and json.loads(body)["id"] == "b"
        answer = chat(base, [{"role": "user", "content": ASKED[0]}], model="b")
        assert answer["model"] == "b" and answer["choices"][0]["message"]["content"] == alone["b"][0]
        assert reply_of(base, "a", ASKED[1]) == alone["a"][1]
        proc.terminate()
        proc.wait(timeout=60)


def test_models_that_cannot_share_a_base_are_refused_naming_the_flag(lora_models, tiny_models, tmp_path):
    a, b, full = lora_models
    agent = serving_agent(a)
    with pytest.raises(GuardError, match=f"--serve-lora f={full}: not a LoRA model"):
        serve_adapters(agent, "a", [("f", full)])
    other = str(tmp_path / "llama" / "model")  # a LoRA model of another base
    train_briefly(tiny_models["llama"], other, str(tmp_path / "data"), steps=1, **LORA)
    with pytest.raises(GuardError, match=f"--serve-lora o={other}: its (base weights|tokenizer) differ"):
        serve_adapters(agent, "a", [("o", other)])
    with pytest.raises(GuardError, match="--serve-lora nope=.*no trained model there"):
        serve_adapters(agent, "a", [("nope", str(tmp_path / "nope"))])


@pytest.mark.parametrize("values,says", [
    (["b"], "give NAME=MODEL_FILE"),
    (["=x"], "give NAME=MODEL_FILE"),
    (["b c=x"], "letters, digits"),
    (["a=x"], "served already"),
    (["b=x", "b=y"], "served already"),
])
def test_bad_serve_lora_values_are_refused(values, says):
    with pytest.raises(GuardError, match=says):
        parse_serve_lora(values, "a")


def test_a_base_without_adapters_serves_lora_models_and_itself(context_models, tmp_path):
    """-m dialogft_agent --hf-model BASE --serve-lora a=A: the base's own requests run with the
    adapters off, a's with its adapter on; each as served alone. (T5: its tokenizer has a pad
    token, so building the agent adds no embedding row and the base weights stay the base's.)"""
    from parlai.core.agents import create_agent

    from parlai_dialogft.scripts.dialogft_serve import DialogftServe

    base = context_models["t5"]
    a = str(tmp_path / "a" / "model")
    train_briefly(base, a, str(tmp_path / "data"), steps=12, task="integration_tests:reverse", **LORA)

    def base_agent():
        opt = DialogftServe.setup_args().parse_args(["-m", "dialogft_agent", "--hf-model", base, "--label-truncate",
                                                     "16", "--datapath", str(tmp_path / "data")])
        return create_agent(opt, requireModelExists=False)

    from parlai_dialogft.serving.app import create_app
    from parlai_dialogft.serving.options import ServeSettings
    from parlai_dialogft.serving.replier import Replier
    from parlai_dialogft.serving.server import bound_port, running

    def replies(agent, lora, asks):
        settings = ServeSettings(model_name="base", max_batch=8, lora=tuple(lora))
        generate = AdapterRouter(Replier(agent, 8), serve_adapters(agent, "base", settings.lora))
        with running(create_app(settings, generate)) as server:
            url = f"http://127.0.0.1:{bound_port(server)}"
            return [reply_of(url, model, text) for model, text in asks]

    base_alone = replies(base_agent(), (), [("base", text) for text in ASKED])
    with served(a, "a") as (url, _, _):
        a_alone = [reply_of(url, "a", text) for text in ASKED]
    assert sum(x != y for x, y in zip(base_alone, a_alone)) >= len(ASKED) // 2, (base_alone, a_alone)
    together = replies(base_agent(), [("a", a)], [(model, text) for text in ASKED for model in ("base", "a")])
    assert together == [reply for pair in zip(base_alone, a_alone) for reply in pair]
