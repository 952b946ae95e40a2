"""--pref-loss unlikelihood: MLE on the gold reply, -log(1 - p) on the rejected reply's overused
and repeated n-grams (ParlAI's projects/dialogue_unlikelihood), checked by hand."""

from __future__ import annotations

import math

import pytest
import torch
from parlai.core.message import Message

from tests.support.agents import make_agent


def test_an_ngram_is_overused_when_the_model_says_it_more_than_people_do():
    from parlai_dialogft.training.unlikelihood import NgramUsage

    usage = NgramUsage(n=2, window=1)
    # Model bigrams: (1,2) twice, (2,3), (2,4): shares .5, .25, .25. Gold: (1,2) twice, (2,5), (2,8).
    usage.add(model_replies=[[1, 2, 3], [1, 2, 4]], gold_replies=[[1, 2, 5], [1, 2, 8]])
    assert usage.overused(0.2) == {(2, 3), (2, 4)}  # (1,2): .5 - .5 = 0
    assert usage.overused(0.3) == set()
    # The window holds one batch: the next replaces it.
    usage.add(model_replies=[[7, 7]], gold_replies=[[1, 2]])
    assert usage.overused(0.2) == {(7, 7)}


def test_the_penalised_tokens_repeat_the_context_or_the_reply_or_an_overused_ngram_after_the_gold_prefix():
    from parlai_dialogft.training.unlikelihood import penalised

    # Bigrams of the reply: (5,6) no; (6,7) overused; (7,8) and (8,9) in the context.
    assert penalised([5, 6, 7, 8, 9], gold=[1], context=[3, 7, 8, 9, 4], overused={(6, 7)}, n=2) == [
        False, True, True, True, True]
    # The first two tokens are the gold's own start: never pushed down.
    assert penalised([5, 6, 7, 8, 9], gold=[5, 6, 2], context=[3, 7, 8, 9, 4], overused={(6, 7)}, n=2) == [
        False, False, True, True, True]
    # (5,6) again at the end: a repeat within the reply.
    assert penalised([5, 6, 7, 5, 6], gold=[1], context=[], overused=set(), n=2) == [False, False, False, True, True]


def test_the_penalty_is_minus_log_one_minus_p():
    from parlai_dialogft.training.unlikelihood import loss, token_penalty

    p = torch.tensor([[0.5, 0.9, 0.2]])
    assert token_penalty(p.log())[0].tolist() == pytest.approx([math.log(2), -math.log(0.1), -math.log(0.8)], rel=1e-5)
    gold = torch.tensor([[math.log(0.5), math.log(0.25)], [math.log(0.125), 0.0]])
    total, _per_example, counts = loss(gold, torch.tensor([[True, True], [True, False]]), p.log().repeat(2, 1),
                                      torch.tensor([[True, False, True], [False, False, False]]), alpha=2.0)
    nll = (math.log(2) + math.log(4) + math.log(8)) / 3
    assert float(total) == pytest.approx(nll + 2.0 * (math.log(2) - math.log(0.8)) / 2, rel=1e-5)
    assert counts.tolist() == [2, 0]


def _token_logps(folder: str, prompt: str, reply: str):
    """Log-probability of each token of ``reply`` (EOS appended) after ``prompt``, by plain
    transformers, one example at a time, the seq2seq input ended by EOS as the agent does."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    context = tokenizer(prompt, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    target = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([context]), labels=torch.tensor([target])).logits[0]
    return torch.log_softmax(logits, -1)[torch.arange(len(target)), torch.tensor(target)]


def _peaked(folder: str, out: str) -> str:
    """The tiny model with its weights scaled up: a random-init model gives every token nearly the
    same probability, and then a mean over the wrong tokens equals the mean over the right ones."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(2.0 * torch.randn(p.shape, generator=generator))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return out


COPY = "i need a hotel in the north of the town ."


@pytest.mark.parametrize("rejected, threshold", [
    (COPY, 1.0),  # copies the context: every 4-gram repeats it; nothing can be overused at threshold 1
    ("thank you for calling , goodbye .", 0.0),  # every 4-gram overused: the gold replies have none of them
])
def test_the_agents_loss_on_a_toy_batch_is_the_hand_computed_one(tiny_models, tmp_path, rejected, threshold):
    """A pair beside a plain example: every token of the rejected reply but its END is penalised,
    either as a context repeat or as overused; the plain example adds only its gold NLL."""
    folder = _peaked(tiny_models["t5"], str(tmp_path / "peaked"))
    pair = {"text": COPY, "labels": ["where would you like to stay ?"], "rejected": rejected, "episode_done": True}
    plain = {"text": "hello there", "labels": ["hi , how can i help ?"], "episode_done": True}

    def ours(alpha: float) -> float:
        agent = make_agent(folder, datatype="train", pref_loss="unlikelihood", pref_ul_alpha=alpha,
                           pref_ul_threshold=threshold)
        batch = agent.batchify([agent.clone().observe(Message(m)) for m in (pair, plain)])
        agent.is_training = True  # as batch_act sets it for a batch with labels: the n-gram shares count it
        agent.model.eval()
        with torch.no_grad():
            return float(agent.compute_loss(batch))

    gold = torch.cat([_token_logps(folder, m["text"], m["labels"][0]) for m in (pair, plain)])
    penalised = _token_logps(folder, COPY, rejected)[:-1]  # END is never penalised
    assert len(penalised) >= 4 and float(penalised.exp().std()) > 0.1 * float(penalised.exp().mean())
    assert ours(0.0) == pytest.approx(float(-gold.mean()), rel=1e-5)
    # alpha large, so that the penalty of these rare tokens stands out of the float32 NLL
    assert ours(100.0) - ours(0.0) == pytest.approx(100 * float((-torch.log(1 - penalised.exp())).mean()), rel=1e-3)
