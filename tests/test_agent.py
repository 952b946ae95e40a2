"""dialogft_agent on tiny T5, BART, GPT-2, Llama and Qwen2 models built locally.

The specs: a batch decodes like its examples alone; the KV cache changes nothing but
speed; our search equals ``model.generate``; the loss covers the reply and its EOS only.
The decoding specs run on models trained to answer each test sentence with the next
(``context_models``), and first check that the contexts get different replies: on a model
that says the same whatever it reads, "equal" would prove nothing.
"""

from __future__ import annotations

import pytest
import torch
from parlai.core.message import Message

from tests.support.agents import all_different, finished, make_agent, same_hypotheses, search
from tests.support.agents import batch_of as _batch

ARCHS = ["t5", "bart", "gpt2", "llama", "qwen2"]
CONTEXTS = [
    "hello , how can I help you today ?",
    "我想订一张明天去北京的火车票。",
    "can you find me a cheap hotel in the centre ? I would like to book a table for two at seven .",
]
MAX_TS = 40  # long enough for every reply of the context models to end with EOS


def _search(agent, texts, beam_size=1):
    return search(agent, texts, beam_size, MAX_TS)

MIN_LEN = 4  # random-init models may say EOS at once; make every search take a few steps


def _agent(tiny_models, arch, **opts):
    torch.manual_seed(0)
    return make_agent(tiny_models[arch], beam_min_length=MIN_LEN, **opts)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("inference,beam_size", [("greedy", 1), ("beam", 3)])
def test_a_batch_decodes_like_each_example_alone(context_models, arch, inference, beam_size):
    agent = _agent(context_models, arch, inference=inference, beam_size=beam_size)
    batched = all_different(_search(agent, CONTEXTS, beam_size))
    alone = [_search(agent, [text], beam_size)[0] for text in CONTEXTS]
    assert batched == alone
    same_hypotheses(finished(agent, CONTEXTS, beam_size, MAX_TS),
                    [finished(agent, [text], beam_size, MAX_TS)[0] for text in CONTEXTS])


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("inference,beam_size", [("greedy", 1), ("beam", 3)])
def test_cached_decoding_equals_recomputing_the_prefix(context_models, arch, inference, beam_size):
    agent = _agent(context_models, arch, inference=inference, beam_size=beam_size)
    cached = all_different(_search(agent, CONTEXTS, beam_size))
    cached_hypotheses = finished(agent, CONTEXTS, beam_size, MAX_TS)
    steps = []
    original = agent.model.decoder

    def uncached_decoder(decoder_input, encoder_states, incr_state=None):
        steps.append(decoder_input.size(1))
        return original(decoder_input, encoder_states, None)  # whole prefix, every step

    agent.model.decoder = uncached_decoder
    agent.model.reorder_decoder_incremental_state = lambda state, inds: None
    assert _search(agent, CONTEXTS, beam_size) == cached
    assert steps == list(range(1, len(steps) + 1))  # the whole prefix, growing each step
    same_hypotheses(finished(agent, CONTEXTS, beam_size, MAX_TS), cached_hypotheses)


@pytest.mark.parametrize("arch", ARCHS)
def test_cached_steps_feed_one_token(context_models, arch):
    agent = _agent(context_models, arch, inference="beam", beam_size=1)  # honours MIN_LEN
    fed = []
    original = agent.model.hf.forward

    def spy(*args, **kwargs):
        ids = kwargs.get("decoder_input_ids", kwargs.get("input_ids"))
        fed.append(ids.size(1))
        return original(*args, **kwargs)

    agent.model.hf.forward = spy
    _search(agent, CONTEXTS[:1])
    assert len(fed) > 2 and set(fed[1:]) == {1}


def _hf_generate(agent, texts, beam_size):
    batch = _batch(agent, texts)
    hf = agent.model.hf
    mask = batch.text_vec.ne(agent.NULL_IDX)
    kwargs = dict(
        max_new_tokens=MAX_TS, do_sample=False, num_beams=beam_size,
        # ParlAI's greedy search ignores --beam-min-length; its beam search honours it.
        min_new_tokens=MIN_LEN if beam_size > 1 else 0,
        eos_token_id=agent.END_IDX, pad_token_id=agent.NULL_IDX,
    )
    if beam_size > 1:
        kwargs.update(length_penalty=0.0, early_stopping="never")
    with torch.no_grad():
        out = hf.generate(input_ids=batch.text_vec, attention_mask=mask, **kwargs)
    if agent.dict.is_seq2seq:
        new = out[:, 1:]  # drop the decoder start token
    else:
        new = out[:, batch.text_vec.size(1):]
    return [[t for t in row.tolist()] for row in new]


def _same_prefix(parlai, hf):
    """ParlAI forces END as the last token when none came within MAX_TS; HF pads after END."""
    if len(parlai) >= MAX_TS:  # forced: compare what was really searched
        return parlai[:-1] == hf[: len(parlai) - 1]
    return parlai == hf[: len(parlai)]


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_model_generate(context_models, arch):
    agent = _agent(context_models, arch)
    ours = all_different(_search(agent, CONTEXTS))
    theirs = _hf_generate(agent, CONTEXTS, 1)
    assert all(_same_prefix(o, t) for o, t in zip(ours, theirs)), (ours, theirs)


@pytest.mark.parametrize("arch", ARCHS)
def test_beam_equals_model_generate(context_models, arch):
    agent = _agent(context_models, arch, inference="beam", beam_size=3, beam_length_penalty=0.0)
    ours = all_different(_search(agent, CONTEXTS, 3))
    theirs = _hf_generate(agent, CONTEXTS, 3)
    assert all(_same_prefix(o, t) for o, t in zip(ours, theirs)), (ours, theirs)


@pytest.mark.parametrize("arch", ["t5", "gpt2", "llama"])
def test_loss_covers_the_reply_and_its_eos_but_not_the_context(tiny_models, arch):
    agent = _agent(tiny_models, arch)
    agent.model.eval()
    context, reply = "hello , how can I help you today ?", "a table for two ."
    copy = agent.clone()
    batch = agent.batchify([copy.observe(Message({"text": context, "labels": [reply], "episode_done": True}))])
    label = batch.label_vec[0].tolist()
    assert label[-1] == agent.END_IDX and agent.END_IDX != agent.NULL_IDX
    with torch.no_grad():
        scores, _preds, _ = agent.model(*agent._model_input(batch), ys=batch.label_vec)
        # The same log-probabilities computed by hand with plain transformers.
        hf = agent.model.hf
        ctx = batch.text_vec
        if agent.dict.is_seq2seq:
            dec_in = torch.tensor([[agent.dict.decoder_start_id] + label[:-1]])
            ref = hf(input_ids=ctx, decoder_input_ids=dec_in).logits
        else:
            full = torch.cat([ctx, batch.label_vec], dim=1)
            ref = hf(input_ids=full).logits[:, ctx.size(1) - 1 : -1]
    assert scores.shape[1] == len(label)  # one score per reply token, EOS included
    torch.testing.assert_close(scores, ref, atol=1e-4, rtol=1e-4)
    loss_tokens = batch.label_vec.ne(agent.NULL_IDX).sum().item()
    assert loss_tokens == len(label)  # nothing from the context is in the loss


def test_decoder_only_contexts_are_left_padded(tiny_models):
    agent = _agent(tiny_models, "gpt2")
    batch = _batch(agent, ["hi", "I would like to book a table for two at seven ."])
    assert batch.text_vec[0, 0].item() == agent.NULL_IDX
    assert batch.text_vec[0, -1].item() != agent.NULL_IDX


def test_a_tokenizer_without_pad_gets_one_distinct_from_eos(tiny_models):
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tiny_models["gpt2"]).pad_token is None
    agent = _agent(tiny_models, "gpt2")
    assert agent.NULL_IDX != agent.END_IDX
    assert agent.model.hf.get_input_embeddings().num_embeddings == len(agent.dict)


def test_decoder_only_context_is_truncated_to_leave_room_for_the_reply(tiny_models):
    agent = _agent(tiny_models, "gpt2", text_truncate=1000, label_truncate=100)
    assert agent.text_truncate == 512 - 100
    long_text = " ".join(["hello"] * 2000)
    batch = _batch(agent, [long_text])
    assert batch.text_vec.size(1) == 412


def test_seq2seq_context_is_truncated_to_the_position_table(tiny_models):
    agent = _agent(tiny_models, "bart", text_truncate=5000)  # tiny BART has 512 positions
    batch = _batch(agent, [" ".join(["hello"] * 2000)])
    assert batch.text_vec.size(1) == 512
    assert batch.text_vec[0, -1].item() == agent.END_IDX  # the EOS suffix survives truncation


def test_a_reply_longer_than_the_window_is_refused(tiny_models):
    from parlai_dialogft.model.hf_loading import HFLoadError

    with pytest.raises(HFLoadError, match="--label-truncate 600"):
        _agent(tiny_models, "gpt2", label_truncate=600)


def test_a_model_that_cannot_generate_is_refused(tmp_path):
    from transformers import ViTConfig

    from parlai_dialogft.model.hf_loading import HFLoadError

    ViTConfig().save_pretrained(tmp_path)
    with pytest.raises(HFLoadError, match="neither a seq2seq nor a causal"):
        make_agent(str(tmp_path))


@pytest.mark.parametrize(
    "source,message",
    [
        ("/nonexistent/model/dir", "no such folder"),
        ("no-such-org/no-such-model-xyz", "cannot load the config"),
    ],
)
def test_unknown_models_get_a_clear_error(source, message):
    from parlai_dialogft.model.hf_loading import HFLoadError

    with pytest.raises(HFLoadError, match=message):
        make_agent(source)


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_bf16_autocast_runs_the_forward_pass_in_bfloat16(tiny_models, arch):
    agent = _agent(tiny_models, arch, hf_bf16=True)
    batch = _batch(agent, ["hello , how can I help you today ?"], labels=["a table for two ."])
    seen = []
    original = agent.model.hf.forward
    agent.model.hf.forward = lambda *a, **k: seen.append(out := original(*a, **k)) or out
    loss = agent.compute_loss(batch)
    assert seen and seen[0].logits.dtype == torch.bfloat16
    assert torch.isfinite(loss) and next(agent.model.hf.parameters()).dtype == torch.float32


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_a_reply_without_tokens_adds_no_loss_and_is_reported(tiny_models, arch, monkeypatch):
    from parlai_dialogft.agents.dialogft_agent import dialogft_agent

    warnings = []
    monkeypatch.setattr(dialogft_agent.logging, "warning", warnings.append)
    agent = _agent(tiny_models, arch)
    batch = _batch(agent, ["hello", "hi there"], labels=["", "a table for two ."])
    empty, real = batch.label_vec.tolist()
    assert set(empty) == {agent.NULL_IDX}  # no loss from the empty reply, not even EOS
    assert agent.END_IDX in real
    assert len(warnings) == 1 and "whose reply has no tokens" in warnings[0] and "''" in warnings[0]

    agent.model.eval()
    with torch.no_grad():
        both = agent.compute_loss(batch)
        alone = agent.clone().compute_loss(_batch(agent, ["hi there"], labels=["a table for two ."]))
    assert torch.allclose(both, alone, atol=1e-6)


def test_validation_defaults_keep_the_best_perplexity(tiny_models):
    agent = _agent(tiny_models, "t5")
    assert agent.opt["validation_metric"] == "ppl" and agent.opt["validation_metric_mode"] == "min"
