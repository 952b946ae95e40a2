"""``dialogft_serve`` in the test process: a model trained to be served, its app running on
a free loopback port, and a small HTTP client for the OpenAI-shaped API, ``/metrics`` and
``/v1/feedback``. The apps are real uvicorn servers, spoken to over HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from types import SimpleNamespace

#: Random-init GPT-2 echoes the context's last token, so different requests get different
#: replies: a reply delivered to the wrong client would show.
PROMPTS = [f"request {i} : {word}" for i, word in enumerate(
    ("hello table hotel train 你好 thanks book cheap centre seven two help "
     "restaurant ticket 北京 火车票 today need find which sure like would can").split() * 2)][:32]
#: What conftest's ``profiled_model_file`` trains on: episodes of growing contexts (lengths vary).
PROFILED_TASK = "integration_tests:multiturn"


def train_served_model(hf_model: str, root, task: str = "integration_tests", label_truncate: int = 16) -> str:
    """``root/m/model``: ``hf_model`` trained two steps on ``task`` (data in ``root/data``),
    seeded as :func:`tests.support.agents.train_briefly` is: the same model in every run."""
    from parlai.scripts.train_model import TrainModel

    from tests.support.agents import reseed

    reseed(0)
    mf = str(root / "m" / "model")
    TrainModel.main(task=task, model="dialogft_agent", hf_model=hf_model, model_file=mf, max_train_steps=2,
                    batchsize=4, validation_max_exs=4, short_final_eval=True, datapath=str(root / "data"),
                    label_truncate=label_truncate, seed=0)
    return mf


def serving_agent(model_file, *args):
    """The agent as `parlai dialogft_serve -mf MODEL ARGS` builds it."""
    from parlai.core.agents import create_agent

    from parlai_dialogft.scripts.dialogft_serve import DialogftServe

    opt = DialogftServe.setup_args().parse_args(["-mf", model_file, "--datapath", os.path.dirname(model_file), *args])
    return create_agent(opt, requireModelExists=True)


@contextmanager
def running_app(agent, generate=None, log_db=None, **settings):
    """``dialogft_serve``'s app around ``agent`` (``generate`` wraps its replier), logging to
    ``log_db`` if given: ``(url, app, server, log_db)``."""
    from parlai_dialogft.serving.app import create_app
    from parlai_dialogft.serving.options import ServeSettings
    from parlai_dialogft.serving.replier import Replier
    from parlai_dialogft.serving.server import bound_port, running
    from parlai_dialogft.serving.store import ConversationStore

    settings = ServeSettings(model_name="m", **settings)
    replier = Replier(agent, settings.max_batch)
    store = ConversationStore(log_db) if log_db else None
    app = create_app(settings, generate(replier) if generate else replier, store)
    with running(app, shutdown_timeout_s=10) as server:
        yield SimpleNamespace(url=f"http://127.0.0.1:{bound_port(server)}", app=app, server=server, log_db=log_db)


def serving(model_file, generate=None, log_db=None, **settings):
    """`parlai dialogft_serve -mf MODEL`, in this process."""
    return running_app(serving_agent(model_file), generate, log_db, **settings)


def serving_hf_model(hf_model, log_db, datapath, **settings):
    """`parlai dialogft_serve -m dialogft_agent --hf-model FOLDER`, in this process, logging
    to ``log_db``."""
    from parlai.core.agents import create_agent

    from parlai_dialogft.scripts.dialogft_serve import DialogftServe

    opt = DialogftServe.setup_args().parse_args(["-m", "dialogft_agent", "--hf-model", hf_model,
                                                 "--datapath", datapath, "--label-truncate", "24"])
    return running_app(create_agent(opt), log_db=log_db, **settings)


# --- a small HTTP client ---------------------------------------------------------------------


def http(url, method="GET", body=None, headers=None, timeout=60):
    """(status, headers, text); ``body`` a dict (JSON), bytes, or an iterator (sent chunked)."""
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def chat(base, messages, **extra):
    """A chat completion that must succeed: the response as JSON."""
    status, _, text = http(base + "/v1/chat/completions", "POST", {"model": "m", "messages": messages, **extra},
                           timeout=120)
    assert status == 200, text
    return json.loads(text)


def ask(base, text):
    return chat(base, [{"role": "user", "content": text}])["choices"][0]["message"]["content"]


def contents(reply):
    """The text of each choice (draft) of a chat completion."""
    return [choice["message"]["content"] for choice in reply["choices"]]


def feedback(base, **body):
    """``POST /v1/feedback`` that must succeed: the response as JSON."""
    status, _, text = http(base + "/v1/feedback", "POST", body, timeout=120)
    assert status == 200, text
    return json.loads(text)


def metrics(base):
    """``/metrics``: {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    _, _, text = http(base + "/metrics")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def log_preferences(log_db, out_dir):
    """`parlai dialogft_log_preferences` as a user runs it: (exit status, output)."""
    done = subprocess.run([sys.executable, "-m", "parlai", "dialogft_log_preferences", "--serve-log", log_db,
                           "--out-dir", out_dir], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"))
    return done.returncode, done.stdout + done.stderr
