"""Greedy search over the whole batch (parlai_dialogft/model/fast_search.py) gives ParlAI's results.

The reference is ParlAI's own ``TorchGeneratorAgent._generate`` (one ``GreedySearch`` per
example, advanced one by one), called on the same agent and batch. On the context models
(replies that depend on the context, checked first) both must give the same replies, the
same scores, and searches with the same finished hypotheses: what ``eval_step`` reads.
"""

from __future__ import annotations

import pytest
import torch
from parlai.core.torch_generator_agent import TorchGeneratorAgent

from parlai_dialogft.model import fast_search
from tests.support.agents import all_different, batch_of, make_agent

ARCHS = ["t5", "bart", "gpt2", "llama", "qwen2"]
CONTEXTS = [
    "hello , how can I help you today ?",
    "我想订一张明天去北京的火车票。",
    "can you find me a cheap hotel in the centre ? I would like to book a table for two at seven .",
    "hello , how can I help you today ?",  # a repeat: rows must not mix even when equal
]


def _both(agent, texts, max_ts):
    """(ours, ParlAI's): per row (tokens, score, every finished hypothesis with its score)."""
    agent.model.eval()
    out = []
    for generate in (agent._generate, lambda *a: TorchGeneratorAgent._generate(agent, *a)):
        with torch.no_grad():
            preds, searches = generate(batch_of(agent, texts), 1, max_ts)
        out.append([
            (tokens.tolist(), float(score),
             [(t.tolist(), float(s)) for t, s, _ in search.get_rescored_finished()])
            for (tokens, score, _), search in zip(preds, searches)
        ])
    return out


def _calls(agent, monkeypatch):
    seen = []
    original = fast_search.greedy_generate
    monkeypatch.setattr(fast_search, "greedy_generate", lambda *a, **k: seen.append(1) or original(*a, **k))
    return seen


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("max_ts", [40, 3])
def test_greedy_over_the_batch_gives_parlais_replies_scores_and_searches(context_models, arch, max_ts,
                                                                         monkeypatch):
    # 40 steps: every row ends with EOS, at different steps; 3: no row ends, and ParlAI
    # forces the EOS in. (ParlAI's greedy search has no minimum length.)
    agent = make_agent(context_models[arch], inference="greedy")
    calls = _calls(agent, monkeypatch)
    ours, parlai = _both(agent, CONTEXTS, max_ts)
    assert calls, "the fast path did not run"
    all_different([tokens for tokens, _, _ in ours[:3]])
    assert [tokens for tokens, _, _ in ours] == [tokens for tokens, _, _ in parlai]
    assert [score for _, score, _ in ours] == [score for _, score, _ in parlai]  # the same float32 sums
    assert [finished for _, _, finished in ours] == [finished for _, _, finished in parlai]


def test_the_batch_keeps_running_after_some_rows_end(context_models, monkeypatch):
    """Rows that picked EOS are fed EOS, as ParlAI feeds a finished search, until all end."""
    agent = make_agent(context_models["gpt2"], inference="greedy")
    ours, _ = _both(agent, CONTEXTS, 40)
    lengths = [len(tokens) for tokens, _, _ in ours]
    assert len(set(lengths)) > 1, lengths  # the rows really end at different steps
    assert all(tokens.count(agent.END_IDX) == 1 and tokens[-1] == agent.END_IDX for tokens, _, _ in ours)


@pytest.mark.parametrize("opts", [
    dict(inference="beam", beam_size=3),
    dict(inference="greedy", beam_block_ngram=2),
    dict(inference="greedy", beam_context_block_ngram=2),
    dict(inference="topk", topk=5),
])
def test_searches_that_need_a_tree_keep_parlais_loop(tiny_models, opts, monkeypatch):
    agent = make_agent(tiny_models["t5"], **opts)
    calls = _calls(agent, monkeypatch)
    agent.model.eval()
    with torch.no_grad():
        agent._generate(batch_of(agent, CONTEXTS[:2]), agent.beam_size, 5)
    assert not calls


def test_a_watched_search_keeps_parlais_loop(tiny_models, monkeypatch):
    """The serving stream replaces the agent's _treesearch_factory to watch each advance."""
    agent = make_agent(tiny_models["t5"], inference="greedy")
    advanced = []
    factory = agent._treesearch_factory

    def watched(device, verbose=False):
        search = factory(device, verbose=verbose)
        advance = search.advance
        search.advance = lambda *a: advanced.append(1) or advance(*a)
        return search

    agent._treesearch_factory = watched
    calls = _calls(agent, monkeypatch)
    agent.model.eval()
    with torch.no_grad():
        agent._generate(batch_of(agent, CONTEXTS[:2]), 1, 5)
    assert advanced and not calls


@pytest.mark.parametrize("arch", ["t5", "bart"])
@pytest.mark.parametrize("inference,beam_size", [("greedy", 1), ("beam", 3)])
def test_contexts_encoded_in_length_groups_give_the_same_search(context_models, arch, inference, beam_size,
                                                                monkeypatch):
    """Seq2seq contexts are encoded in length groups during a search; replies and scores are
    those of the whole padded batch in one encoder pass (--hf-length-groups false)."""
    from parlai_dialogft.model import length_groups

    monkeypatch.setattr(length_groups, "CPU_GROUP_COST", 0)  # these short contexts would make one group
    grouped = make_agent(context_models[arch], inference=inference, beam_size=beam_size)
    plain = make_agent(context_models[arch], inference=inference, beam_size=beam_size, hf_length_groups=False)
    passes = []
    grouped.model.hf.get_encoder().register_forward_hook(lambda _m, _a, out: passes.append(out[0].shape))
    texts = CONTEXTS[:3]
    hypotheses = []
    for agent in (grouped, plain):
        agent.model.eval()
        with torch.no_grad():
            preds, searches = agent._generate(batch_of(agent, texts), beam_size, 40)
        hypotheses.append([[(t.tolist(), float(s)) for t, s, _ in search.get_rescored_finished()]
                           for search in searches])
    assert len(passes) == 3 and len({shape[1] for shape in passes}) == 3  # one pass per context length
    all_different([row[0][0] for row in hypotheses[0]])
    assert [[t for t, _ in row] for row in hypotheses[0]] == [[t for t, _ in row] for row in hypotheses[1]]
    assert [s for row in hypotheses[0] for _, s in row] == pytest.approx(
        [s for row in hypotheses[1] for _, s in row], abs=1e-4)
    assert grouped.model.encoder_group_cost is None  # only during the search


def _watched(agent, texts, rows, max_ts, batch_wide):
    """Replies, scores and per-row (steps, end) of a search watched by the serving stream's hook,
    through the batch-wide step or (its watcher removed) ParlAI's per-row loop."""
    from parlai_dialogft.serving.streaming import SearchHook

    hook = SearchHook.on(agent)
    if not batch_wide:
        del agent.__dict__[fast_search.WATCHER]
    agent.model.eval()
    with torch.no_grad(), hook.watching(rows):
        preds, _ = agent._generate(batch_of(agent, texts), 1, max_ts)
    return ([(tokens.tolist(), float(score)) for tokens, score, _ in preds],
            [(row.channel.steps, row.ended_by, row.text.ids if row.text else None) for row in rows])


def test_the_serving_hook_ends_rows_in_the_batch_wide_step_as_in_parlais_loop(context_models, monkeypatch):
    """Rows the stream ends (a client gone, max_tokens, a stop string) end on the same step with
    the same reply and score either way; the other rows are untouched."""
    from parlai_dialogft.serving.streaming import ReplyChannel, RowState

    def rows():
        gone = ReplyChannel()
        gone.cancel()
        return [RowState(ReplyChannel(), max_tokens=2), RowState(gone), RowState(ReplyChannel()),
                RowState(ReplyChannel(), stops=["l"])]

    results = []
    for batch_wide in (True, False):
        agent = make_agent(context_models["gpt2"], inference="greedy")
        calls = _calls(agent, monkeypatch)
        results.append(_watched(agent, CONTEXTS, rows(), 40, batch_wide))
        assert bool(calls) == batch_wide
    (replies, states), (parlai_replies, parlai_states) = results
    assert replies == parlai_replies and states == parlai_states
    assert [ended for _, ended, _ in states] == ["length", "disconnect", None, "stop"]
    assert [len(tokens) for tokens, _ in replies[:2]] == [4, 2]  # BOS, two tokens, END; BOS, END
    plain = make_agent(context_models["gpt2"], inference="greedy")
    plain.model.eval()
    with torch.no_grad():
        whole, _ = plain._generate(batch_of(plain, CONTEXTS), 1, 40)
    assert replies[2][0] == whole[2][0].tolist()
    assert len(replies[3][0]) < len(whole[3][0])


def test_a_batch_wide_search_given_back_to_parlais_loop_sends_no_text_twice(context_models, monkeypatch):
    """A row scoring every token minus infinity leaves the batch-wide step for ParlAI's loop
    mid-search: the hook's counts restart, and the text already streamed is not streamed again."""
    import asyncio

    from parlai_dialogft.serving.streaming import ReplyChannel, RowState

    loop = asyncio.new_event_loop()

    def run(batch_wide):
        agent = make_agent(context_models["gpt2"], inference="greedy")
        activation, calls = agent._generation_activation, []

        def activate(score):
            logprobs = activation(score)
            calls.append(1)
            if batch_wide and len(calls) == 3:  # step 2 of the batch-wide search
                logprobs[0] = float("-inf")
            return logprobs

        agent._generation_activation = activate
        rows = [RowState(ReplyChannel(loop)) for _ in CONTEXTS]
        fast = _calls(agent, monkeypatch)
        replies, states = _watched(agent, CONTEXTS, rows, 40, batch_wide)
        loop.run_until_complete(asyncio.sleep(0))
        sent = []
        for row in rows:
            row.channel.close()
            loop.run_until_complete(asyncio.sleep(0))
            sent.append("".join(loop.run_until_complete(_drain(row.channel))))
        return bool(fast), len(calls), replies, states, sent

    try:
        given_back, parlai = run(True), run(False)
    finally:
        loop.close()
    assert given_back[0] and given_back[1] > parlai[1] > 3  # it started batch-wide, then ParlAI's loop ran
    assert given_back[2:] == parlai[2:]
    assert parlai[4][0], parlai[4]  # the row given back had streamed text before


async def _drain(channel):
    return [delta async for delta in channel.deltas()]
