"""Continuous batching (parlai_dialogft/model/continuous.py): rows that join a running batch
between steps, and leave it when done, get the replies ParlAI gives each context alone.

The reference is the agent's own ``batch_act`` on one context at a time (greedy search, the
model's settings). On the context models (replies that depend on the context, checked
first) a reply must not depend on when it joined, on its neighbours' lengths, or on rows
that left before it.
"""

from __future__ import annotations

import pytest
import torch
from parlai.core.message import Message

from parlai_dialogft.model.continuous import ContinuousGreedy, Unsupported, unsupported
from tests.support.agents import all_different, make_agent

CONTEXTS = [
    "hello , how can I help you today ?",
    "我想订一张明天去北京的火车票。",
    "can you find me a cheap hotel in the centre ? I would like to book a table for two at seven .",
    "thanks , that is all I need .",
    "hello , how can I help you today ?",  # a repeat: equal rows must not mix either
    "好的，请问您几点出发？",
]


class Watcher:
    """Records each row's tokens; ends a row when told to before a given step."""

    def __init__(self, end_at=None):
        self.tokens, self.end_at = {}, dict(end_at or {})

    def ending(self, owner, ts):
        return self.end_at.get(owner) == ts

    def stepped(self, owner, token, ts, ended):
        self.tokens.setdefault(owner, []).append(token)


def alone(agent, text):
    """The agent's reply to ``text`` as a one-context ``batch_act``."""
    slot = agent.clone()
    observation = slot.observe(Message({"text": text, "episode_done": True}))
    return agent.batch_act([observation])[0]["text"]


def batch(agent, texts):
    return agent.batchify([agent.clone().observe(Message({"text": t, "episode_done": True})) for t in texts])


def run(engine, agent, schedule):
    """``schedule``: (steps to run first, contexts to admit then) ...; then step until empty.
    Returns owner (context index) -> Finished."""
    done, owner = {}, 0
    for steps, texts in schedule:
        for _ in range(steps):
            done.update((f.owner, f) for f in engine.step())
        owners = list(range(owner, owner + len(texts)))
        owner += len(texts)
        done.update((f.owner, f) for f in engine.admit(batch(agent, texts), owners))
    while engine.size:
        done.update((f.owner, f) for f in engine.step())
    return done


# Staggered joins: rows join a batch whose rows are 0, 1, 2 and 5 steps in, in groups of one
# and of two, and the first rows leave while later ones run.
SCHEDULES = {
    "staggered": [(0, CONTEXTS[:1]), (1, CONTEXTS[1:3]), (2, CONTEXTS[3:4]), (3, CONTEXTS[4:])],
    "all at once": [(0, CONTEXTS)],
}


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2", "t5"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_rows_that_join_and_leave_get_the_replies_they_get_alone(context_models, arch, schedule):
    agent = make_agent(context_models[arch], inference="greedy", label_truncate=40)
    agent.model.eval()
    expected = [alone(agent, text) for text in CONTEXTS]
    all_different(expected[:4])
    engine = ContinuousGreedy(agent, Watcher())
    done = run(engine, agent, SCHEDULES[schedule])
    assert [done[i].text for i in range(len(CONTEXTS))] == expected
    steps = [done[i].steps for i in range(len(CONTEXTS))]
    assert len(set(steps)) > 1, steps  # rows really leave at different steps


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_a_row_at_the_step_limit_ends_as_parlai_ends_it(context_models, arch):
    agent = make_agent(context_models[arch], inference="greedy", label_truncate=3)
    agent.model.eval()
    texts = [CONTEXTS[0], CONTEXTS[1], CONTEXTS[3]]  # replies longer than 3 tokens
    expected = [alone(agent, text) for text in texts]
    done = run(ContinuousGreedy(agent, Watcher()), agent, [(0, texts[:1]), (1, texts[1:])])
    assert [done[i].text for i in range(3)] == expected
    assert [done[i].steps for i in range(3)] == [3, 3, 3]
    assert [done[i].tokens for i in range(3)] == [2, 2, 2]  # ParlAI writes END over the third


def test_the_watcher_sees_every_token_and_ends_a_row(context_models):
    agent = make_agent(context_models["gpt2"], inference="greedy", label_truncate=40)
    agent.model.eval()
    watcher = Watcher(end_at={1: 2})  # row 1 gets END as its third token
    done = run(ContinuousGreedy(agent, watcher), agent, [(0, CONTEXTS[:2])])
    assert watcher.tokens[1][-1] == agent.END_IDX and len(watcher.tokens[1]) == 3
    assert done[1].steps == 3 and done[1].tokens == 2
    # The other row is untouched by its neighbour's early end.
    assert done[0].text == alone(agent, CONTEXTS[0])
    assert len(watcher.tokens[0]) == done[0].steps


@pytest.mark.parametrize("opts, why", [
    (dict(inference="beam", beam_size=2), "greedy"),
    (dict(inference="greedy", beam_block_ngram=2), "greedy"),
    (dict(inference="nucleus"), "greedy"),
])
def test_searches_it_cannot_run_are_refused(tiny_models, opts, why):
    agent = make_agent(tiny_models["gpt2"], **opts)
    assert why in unsupported(agent)
    with pytest.raises(Unsupported):
        ContinuousGreedy(agent, Watcher())


def test_seq2seq_models_with_absolute_positions_are_refused(tiny_models):
    agent = make_agent(tiny_models["bart"], inference="greedy")
    assert "absolute positions" in unsupported(agent)


def test_the_cache_shrinks_when_long_rows_leave(context_models):
    """Columns that only a departed row used are dropped: the batch does not keep paying for it."""
    agent = make_agent(context_models["gpt2"], inference="greedy", label_truncate=40)
    agent.model.eval()
    engine = ContinuousGreedy(agent, Watcher(end_at={0: 1}))
    long = "can you find me a cheap hotel in the centre ? " * 3
    engine.admit(batch(agent, [long]), [0])  # the longest context, ended at its second step
    engine.admit(batch(agent, ["thanks ,"]), [1])
    wide = engine._incr_state["mask"].size(1)
    engine.step()  # row 0 leaves
    assert engine.size == 1
    mask = engine._incr_state["mask"]
    assert bool(mask[:, 0].all()) and mask.size(1) < wide
    assert all(layer.keys.size(2) == mask.size(1) for layer in engine._incr_state["cache"].layers)
    torch.testing.assert_close(engine._incr_state["positions"][0, -1], mask.sum() - 1)


# --- the server's batcher around it (serving/continuous.py) ---------------------------------------


def test_a_failed_join_or_step_answers_its_requests_and_the_batcher_goes_on(context_models):
    from parlai_dialogft.serving.continuous import ContinuousBatcher, continuous_engine
    from parlai_dialogft.serving.protocol import Prompt
    from parlai_dialogft.serving.replier import Replier

    agent = make_agent(context_models["gpt2"], inference="greedy", label_truncate=40)
    agent.model.eval()
    replier = Replier(agent, 4)
    batcher = ContinuousBatcher(replier, continuous_engine(replier), max_batch=4, max_wait_s=0.2).start()
    decoder, calls = agent.model.decoder, []

    def failing_decoder(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the running batch's second step
            raise RuntimeError("out of memory")
        return decoder(*args, **kwargs)

    try:
        expected = [alone(agent, text) for text in CONTEXTS[:2]]
        agent.model.decoder = lambda *a, **k: 1 / 0  # a join's first step fails
        with pytest.raises(ZeroDivisionError):
            batcher.submit(Prompt((), CONTEXTS[0])).result(60)
        agent.model.decoder = failing_decoder
        futures = [batcher.submit(Prompt((), text)) for text in CONTEXTS[:2]]
        for future in futures:
            with pytest.raises(RuntimeError, match="out of memory"):
                future.result(60)
        again = [batcher.submit(Prompt((), text)) for text in CONTEXTS[:2]]
        assert [future.result(60).text for future in again] == expected
    finally:
        agent.model.decoder = decoder
        batcher.close(30)
