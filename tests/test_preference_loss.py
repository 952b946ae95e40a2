"""--pref-loss: DPO, KTO and SimPO in dialogft_agent, held to TRL and to the formulas.

The policy and the reference differ (the reference is the policy with its weights
perturbed), so that the losses are not the trivial log 2 of a policy equal to its reference.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from parlai.core.message import Message

from tests.support.agents import make_agent

PAIRS = [
    # Prompts end on punctuation and replies start a word: no BPE merge across the boundary,
    # so TRL's joint tokenization of prompt + reply equals the agent's separate one.
    ("hello , how can I help you today ?", "I need a hotel in the north .", "thanks , that is all I need ."),
    ("what time would you like to leave ?", "after five , please .", "hello ."),
    ("你好，请问有什么可以帮您？", "我想订一张明天去北京的火车票。", "好的，请问您几点出发？"),
]


def _perturbed(folder: str, out: str, seed: int, scale: float = 0.05) -> str:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    seq2seq = AutoConfig.from_pretrained(folder).is_encoder_decoder
    model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        # TRL and the agent then pad alike, and both score over the same vocabulary.
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
        model.resize_token_embeddings(len(tokenizer))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def policy_and_reference(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("pref_models")
    return {arch: (_perturbed(tiny_models[arch], str(root / f"{arch}-policy"), 1),
                   _perturbed(tiny_models[arch], str(root / f"{arch}-reference"), 2))
            for arch in ("gpt2", "t5")}


def _parlai_file(path, rows) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for prompt, chosen, rejected in rows:
            f.write(f"text:{prompt}\tlabels:{chosen}\trejected:{rejected}\tepisode_done:True\n")
    return str(path)


def _our_loss(policy: str, reference: str, data: str, cache: str, **opts) -> tuple:
    """The agent's loss on one batch of every pair: reference scored first, then the policy."""
    common = dict(task="fromfile:parlaiformat", fromfile_datapath=data, datatype="train",
                  pref_ref_cache=cache, pref_beta=0.1, **opts)
    make_agent(reference, **common)  # scores the reference, writes the cache
    agent = make_agent(policy, **common)
    observations = [agent.clone().observe(Message({"text": p, "labels": [c], "rejected": r, "episode_done": True}))
                    for p, c, r in PAIRS]
    batch = agent.batchify(observations)
    agent.model.eval()  # no dropout: TRL's side is compared in eval mode too
    with torch.no_grad():
        loss = agent.compute_loss(batch)
    return float(loss), agent


def test_dpo_loss_equals_trls_dpo_trainer_on_a_causal_model(policy_and_reference, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    policy, reference = policy_and_reference["gpt2"]
    tokenizer = AutoTokenizer.from_pretrained(policy)
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(policy),
        ref_model=AutoModelForCausalLM.from_pretrained(reference),
        args=DPOConfig(output_dir=str(tmp_path / "trl"), beta=0.1, per_device_train_batch_size=len(PAIRS),
                       report_to=[], use_cpu=True, bf16=False),  # TRL defaults to bf16
        train_dataset=Dataset.from_list([{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]),
        processing_class=tokenizer,
    )
    trainer.model.eval()
    inputs = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        theirs = float(trainer.compute_loss(trainer.model, inputs))

    ours, agent = _our_loss(policy, reference, _parlai_file(tmp_path / "pairs.txt", PAIRS), str(tmp_path / "ref.json"),
                            pref_loss="dpo", pref_sft_weight=0.0)
    assert ours != pytest.approx(math.log(2), abs=1e-3)  # policy and reference really differ
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)


def _direct_logp(folder: str, prompt: str, reply: str) -> tuple:
    """(summed log-probability, tokens) of ``reply`` after ``prompt``: plain transformers,
    one example at a time, the reply ended by EOS, a seq2seq input by EOS as the agent does."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    seq2seq = AutoConfig.from_pretrained(folder).is_encoder_decoder
    model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(folder).eval()
    context = tokenizer(prompt, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if seq2seq else [])
    target = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        if seq2seq:
            logits = model(input_ids=torch.tensor([context]), labels=torch.tensor([target])).logits[0]
        else:
            logits = model(input_ids=torch.tensor([context + target])).logits[0, len(context) - 1:-1]
    logps = torch.log_softmax(logits, -1)
    return sum(float(logps[i, t]) for i, t in enumerate(target)), len(target)


def _logps(folder: str, which: int):
    return [_direct_logp(folder, p, pair[which])[0] for p, *pair in PAIRS]


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_dpo_is_the_formula_on_whole_reply_log_probabilities(policy_and_reference, tmp_path, arch):
    """TRL's DPOTrainer is decoder-only; for seq2seq (and again for causal) the loss equals
    -log sigmoid(beta * margin) on log-probabilities computed one example at a time."""
    import torch.nn.functional as F

    policy, reference = policy_and_reference[arch]
    margins = torch.tensor([
        (pc - rc) - (pr - rr)
        for pc, rc, pr, rr in zip(_logps(policy, 0), _logps(reference, 0), _logps(policy, 1), _logps(reference, 1))
    ])
    ours, agent = _our_loss(policy, reference, _parlai_file(tmp_path / "pairs.txt", PAIRS), str(tmp_path / "ref.json"),
                            pref_loss="dpo", pref_sft_weight=0.0)
    assert ours == pytest.approx(float(-F.logsigmoid(0.1 * margins).mean()), rel=1e-5)

    # A real training step: ParlAI reports the metrics of the batch, as computed before the update.
    for module in agent.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # the formula's log-probabilities have no dropout
    acts = agent.batch_act([agent.clone().observe(Message({"text": p, "labels": [c], "rejected": r, "episode_done": True}))
                            for p, c, r in PAIRS])
    # Per-example metrics travel with the acts (a world sums them); batch ones in the report.
    report = {k: sum((a["metrics"][k] for a in acts[1:]), acts[0]["metrics"][k]).value() for k in acts[0]["metrics"]}
    report.update({k: v.value() for k, v in agent.report().items()})
    assert report["pref_loss"] == pytest.approx(ours, rel=1e-5)
    assert report["reward_acc"] == pytest.approx(float((margins > 0).float().mean()))
    assert report["reward_margin"] == pytest.approx(float(0.1 * margins.mean()), rel=1e-4)
    assert report["logps_chosen"] == pytest.approx(sum(_logps(policy, 0)) / 3, rel=1e-5)
    assert report["logps_rejected"] == pytest.approx(sum(_logps(policy, 1)) / 3, rel=1e-5)
    assert report["rewards_chosen"] - report["rewards_rejected"] == pytest.approx(report["reward_margin"], rel=1e-4)


def test_simpo_needs_no_reference_and_normalises_by_length(policy_and_reference, tmp_path):
    import torch.nn.functional as F

    policy, _ = policy_and_reference["t5"]
    chosen = [_direct_logp(policy, p, c) for p, c, _ in PAIRS]
    rejected = [_direct_logp(policy, p, r) for p, _, r in PAIRS]
    expected = torch.tensor([0.1 * (lc / nc - lr / nr) - 0.5 for (lc, nc), (lr, nr) in zip(chosen, rejected)])
    agent = make_agent(policy, task="fromfile:parlaiformat", fromfile_datapath=_parlai_file(tmp_path / "p.txt", PAIRS),
                       datatype="train", pref_loss="simpo", pref_beta=0.1, pref_simpo_gamma=0.5)
    assert agent.pref_reference is None
    batch = agent.batchify([agent.clone().observe(Message({"text": p, "labels": [c], "rejected": r, "episode_done": True}))
                            for p, c, r in PAIRS])
    agent.model.eval()
    with torch.no_grad():
        assert float(agent.compute_loss(batch)) == pytest.approx(float(-F.logsigmoid(expected).mean()), rel=1e-5)


@pytest.mark.parametrize("swap", [False, True])
def test_kto_scores_good_and_bad_replies_against_the_batch_reference_point(policy_and_reference, tmp_path, swap):
    """Both ways round, so that the batch's mean log ratio is positive once and negative
    once: the reference point is clamped at 0."""
    policy, reference = policy_and_reference["gpt2"][::-1] if swap else policy_and_reference["gpt2"]
    rows = [(p, c, True) for p, c, _ in PAIRS] + [(PAIRS[0][0], PAIRS[0][2], False)]
    data = tmp_path / "kto.txt"
    data.write_text("".join(f"text:{p}\tlabels:{c}\tdesirable:{d}\tepisode_done:True\n" for p, c, d in rows), encoding="utf-8")
    common = dict(task="fromfile:parlaiformat", fromfile_datapath=str(data), datatype="train", pref_loss="kto",
                  pref_beta=0.1, pref_ref_cache=str(tmp_path / "ref.json"), pref_kto_undesirable_weight=2.0)
    make_agent(reference, **common)
    agent = make_agent(policy, **common)
    observations = [agent.clone().observe(Message({"text": p, "labels": [c], "desirable": d, "episode_done": True}))
                    for p, c, d in rows]
    agent.model.eval()
    with torch.no_grad():
        ours = float(agent.compute_loss(agent.batchify(observations)))
    ratios = torch.tensor([_direct_logp(policy, p, c)[0] - _direct_logp(reference, p, c)[0] for p, c, _ in rows])
    z = ratios.mean().clamp(min=0)
    expected = [1 - torch.sigmoid(0.1 * (r - z)) if d else 2.0 * (1 - torch.sigmoid(0.1 * (z - r)))
                for r, (_, _, d) in zip(ratios, rows)]
    assert ours == pytest.approx(float(torch.stack(expected).mean()), rel=1e-5)


def test_the_reference_is_scored_once_and_a_resumed_run_never_rescores_it(policy_and_reference, tmp_path):
    from parlai_dialogft.utils.errors import UserError

    policy, reference = policy_and_reference["t5"]
    data = _parlai_file(tmp_path / "pairs.txt", PAIRS)
    cache = tmp_path / "ref.json"
    make_agent(reference, task="fromfile:parlaiformat", fromfile_datapath=data, datatype="train",
               pref_loss="dpo", pref_ref_cache=str(cache))
    first = json.loads(cache.read_text())["logps"]
    assert len(first) == len(PAIRS)
    # The policy's own weights never overwrite what the reference scored.
    make_agent(policy, task="fromfile:parlaiformat", fromfile_datapath=data, datatype="train",
               pref_loss="dpo", pref_ref_cache=str(cache))
    assert json.loads(cache.read_text())["logps"] == first
    # More data while resuming a checkpoint: its weights are no reference; refuse.
    more = _parlai_file(tmp_path / "more.txt", PAIRS + [("where is it ?", "in the centre .", "no .")])
    model_file = tmp_path / "m" / "model"
    model_file.parent.mkdir()
    make_agent(policy).save(str(model_file))  # a checkpoint: weights that moved off the reference
    with pytest.raises(UserError, match=r"1 example\(s\) have no reference log-probabilities"):
        make_agent(policy, task="fromfile:parlaiformat", fromfile_datapath=more, datatype="train",
                   pref_loss="dpo", pref_ref_cache=str(cache), model_file=str(model_file))


FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "preferences"


@pytest.mark.parametrize("arch, loss, data, lora_r", [
    ("t5", "dpo", "paired_conversational.jsonl", 0),
    ("gpt2", "dpo", "paired_conversational.jsonl", 4),  # LoRA: the reference is the base model
    ("t5", "kto", "unpaired_standard.jsonl", 0),
    ("qwen2", "simpo", "paired_conversational.jsonl", 0),
])
def test_parlai_train_model_learns_the_preferences_of_a_trl_file(tiny_models, tmp_path, arch, loss, data, lora_r):
    from tests.support.agents import train_briefly

    mf = tmp_path / "m" / "model"
    valid, _test = train_briefly(
        tiny_models[arch], str(mf), str(tmp_path / "data"), steps=15, task="dialogft_preferences",
        pref_datapath=str(FIXTURES / data), pref_loss=loss, pref_beta=0.5, lora_r=lora_r, learningrate=3e-3,
        batchsize=3, skip_generation=True, log_every_n_steps=1,
    )
    reports = json.loads((tmp_path / "m" / "model.trainstats").read_text())["train_reports"]
    first = reports[0]
    if loss != "kto":  # the chosen replies' likelihood at every step: displacement would show
        assert len(reports) > 1 and all("logps_chosen" in r for r in reports)
    # The file is every split: validation scores the pairs it trained on.
    assert valid["pref_loss"] < first["pref_loss"] - 0.1
    if loss == "dpo":
        assert first["pref_loss"] == pytest.approx(math.log(2), abs=0.05)  # policy == reference at first
        assert valid["reward_acc"] == 1.0
    assert (tmp_path / "m" / "model.pref_ref.json").is_file() == (loss != "simpo")


def test_the_sft_weight_adds_the_chosen_replies_per_token_nll(policy_and_reference, tmp_path):
    policy, reference = policy_and_reference["t5"]
    data = _parlai_file(tmp_path / "pairs.txt", PAIRS)
    plain, _ = _our_loss(policy, reference, data, str(tmp_path / "ref.json"), pref_loss="dpo", pref_sft_weight=0.0)
    weighted, _ = _our_loss(policy, reference, data, str(tmp_path / "ref.json"), pref_loss="dpo", pref_sft_weight=0.5)
    chosen = [_direct_logp(policy, p, c) for p, c, _ in PAIRS]
    nll_per_token = -sum(lp for lp, _ in chosen) / sum(n for _, n in chosen)
    assert weighted == pytest.approx(plain + 0.5 * nll_per_token, rel=1e-5)


def _trl_loss(policy: str, reference: str, tmp_path, **config) -> float:
    """TRL 1.16's DPOTrainer loss on one batch of every pair, in eval mode (no dropout)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(policy),
        ref_model=AutoModelForCausalLM.from_pretrained(reference),
        args=DPOConfig(output_dir=str(tmp_path / "trl"), beta=0.1, per_device_train_batch_size=len(PAIRS),
                       report_to=[], use_cpu=True, bf16=False, **config),
        train_dataset=Dataset.from_list([{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]),
        processing_class=AutoTokenizer.from_pretrained(policy),
    )
    trainer.model.eval()
    with torch.no_grad():
        return float(trainer.compute_loss(trainer.model, next(iter(trainer.get_train_dataloader()))))


def test_ipo_loss_equals_trls_ipo(policy_and_reference, tmp_path):
    policy, reference = policy_and_reference["gpt2"]
    theirs = _trl_loss(policy, reference, tmp_path, loss_type=["ipo"])
    ours, _ = _our_loss(policy, reference, _parlai_file(tmp_path / "pairs.txt", PAIRS), str(tmp_path / "ref.json"),
                        pref_loss="ipo", pref_sft_weight=0.0)
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)


def test_ipo_is_the_squared_distance_of_the_per_token_margin_to_one_over_two_beta(policy_and_reference, tmp_path):
    policy, reference = policy_and_reference["t5"]
    rows = []
    for p, c, r in PAIRS:
        (pc, nc), (pr, nr) = _direct_logp(policy, p, c), _direct_logp(policy, p, r)
        (rc, _), (rr, _) = _direct_logp(reference, p, c), _direct_logp(reference, p, r)
        rows.append(((pc - rc) / nc - (pr - rr) / nr - 1 / (2 * 0.1)) ** 2)
    ours, _ = _our_loss(policy, reference, _parlai_file(tmp_path / "pairs.txt", PAIRS), str(tmp_path / "ref.json"),
                        pref_loss="ipo", pref_sft_weight=0.0)
    assert ours == pytest.approx(sum(rows) / len(rows), rel=1e-5)


def test_the_sft_weight_equals_trls_sft_loss_term(policy_and_reference, tmp_path):
    """TRL 1.16 spells RPO's rpo_alpha as loss_type=["sigmoid", "sft"] with loss_weights=[1, alpha]."""
    policy, reference = policy_and_reference["gpt2"]
    theirs = _trl_loss(policy, reference, tmp_path, loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5])
    ours, _ = _our_loss(policy, reference, _parlai_file(tmp_path / "pairs.txt", PAIRS), str(tmp_path / "ref.json"),
                        pref_loss="dpo", pref_sft_weight=0.5)
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)


def test_dpo_adds_the_chosen_nll_by_default(policy_and_reference, tmp_path):
    policy, reference = policy_and_reference["t5"]
    data = _parlai_file(tmp_path / "pairs.txt", PAIRS)
    plain, _ = _our_loss(policy, reference, data, str(tmp_path / "ref.json"), pref_loss="dpo", pref_sft_weight=0.0)
    default, _ = _our_loss(policy, reference, data, str(tmp_path / "ref.json"), pref_loss="dpo")
    chosen = [_direct_logp(policy, p, c) for p, c, _ in PAIRS]
    assert default == pytest.approx(plain - sum(lp for lp, _ in chosen) / sum(n for _, n in chosen), rel=1e-5)


SFT_ONLY = [("where is the museum ?", "it is in the centre ."), ("book it for two , please .", "done , for two people .")]


def test_a_mixed_batch_trains_preference_rows_and_reference_rows_each_on_its_own_loss(policy_and_reference, tmp_path):
    """Pairs beside plain (context, reply) examples: each pair adds its DPO loss, each plain row
    its reference NLL per token, each a share of the batch as large as its rows'."""
    import torch.nn.functional as F

    policy, reference = policy_and_reference["t5"]
    data = _parlai_file(tmp_path / "pairs.txt", PAIRS)
    common = dict(task="fromfile:parlaiformat", fromfile_datapath=data, datatype="train", pref_loss="dpo",
                  pref_ref_cache=str(tmp_path / "ref.json"), pref_beta=0.1, pref_sft_weight=0.0)
    make_agent(reference, **common)
    agent = make_agent(policy, **common, learningrate=1e-3)
    messages = ([{"text": p, "labels": [c], "rejected": r, "episode_done": True} for p, c, r in PAIRS]
                + [{"text": p, "labels": [c], "episode_done": True} for p, c in SFT_ONLY])
    observations = [agent.clone().observe(Message(m)) for m in messages]
    batch = agent.batchify(observations)
    assert batch.pref_rows.tolist() == [True] * len(PAIRS) + [False] * len(SFT_ONLY)
    agent.model.eval()
    with torch.no_grad():
        ours = float(agent.compute_loss(batch))
    margins = torch.tensor([(pc - rc) - (pr - rr) for pc, rc, pr, rr in zip(
        _logps(policy, 0), _logps(reference, 0), _logps(policy, 1), _logps(reference, 1))])
    plain = [_direct_logp(policy, p, c) for p, c in SFT_ONLY]
    nll = -sum(lp for lp, _ in plain) / sum(n for _, n in plain)
    size = len(PAIRS) + len(SFT_ONLY)
    expected = float(-F.logsigmoid(0.1 * margins).sum()) / size + nll * len(SFT_ONLY) / size
    assert ours == pytest.approx(expected, rel=1e-5)

    # One update moves both: the pairs' margin and the plain rows' likelihood rise.
    def measured():
        agent.model.eval()
        with torch.no_grad():
            (chosen, rejected), _, _, _ = agent._replies_logps(batch, [batch.label_vec, batch.rejected_vec])
        return float((chosen - rejected)[: len(PAIRS)].mean()), float(chosen[len(PAIRS):].sum())

    margin_before, plain_before = measured()
    for module in agent.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for _ in range(3):
        agent.batch_act(observations)
    margin_after, plain_after = measured()
    assert margin_after > margin_before
    assert plain_after > plain_before
