"""`parlai dialogft_export`: a trained model as a folder that transformers alone loads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from parlai.core.agents import create_agent_from_model_file
from parlai.core.message import Message

from tests.support.agents import all_different, batch_of, search, train_briefly

CONTEXTS = ["hello , how can I help you today ?", "我想订一张明天去北京的火车票。"]


def _exported_logits(folder, agent, batch):
    """Logits of the exported folder, loaded by plain transformers, on the agent's batch."""
    return _logits_on(_load_exported(folder), batch)


def _logits_on(model, batch):
    """Logits of a transformers (or peft) model on a ParlAI batch, teacher-forced on its labels."""
    labels = batch.label_vec
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            start = torch.full_like(labels[:, :1], model.config.decoder_start_token_id)
            return model(input_ids=batch.text_vec, decoder_input_ids=torch.cat([start, labels[:, :-1]], 1)).logits
        full = torch.cat([batch.text_vec, labels], dim=1)
        return model(input_ids=full).logits[:, batch.text_vec.size(1) - 1 : -1]


def _load_exported(folder):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    seq2seq = AutoConfig.from_pretrained(folder).is_encoder_decoder
    return (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(folder).eval()


def _until_end(tokens, end_idx, max_ts):
    """``generate``'s new tokens as ParlAI's search reports them: up to END, which ParlAI
    forces as the ``max_ts``-th token when the reply has not ended by then."""
    tokens = tokens[: tokens.index(end_idx) + 1] if end_idx in tokens else tokens
    return tokens if tokens[-1:] == [end_idx] and len(tokens) <= max_ts else tokens[: max_ts - 1] + [end_idx]


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_exported_folder_gives_the_same_logits(tiny_models, tmp_path, arch):
    from parlai_dialogft.model.export import export

    mf = str(tmp_path / "m" / "model")
    train_briefly(tiny_models[arch], mf, str(tmp_path / "data"))
    out = export(mf, str(tmp_path / "hf"))

    agent = create_agent_from_model_file(mf)
    agent.model.eval()
    batch = batch_of(agent, CONTEXTS[:1], labels=["a table for two ."])
    with torch.no_grad():
        ours, _preds, _ = agent.model(*agent._model_input(batch), ys=batch.label_vec)
    torch.testing.assert_close(_exported_logits(out, agent, batch), ours, atol=1e-5, rtol=1e-5)


DECODING = {
    "greedy": dict(inference="greedy"),
    # A penalty of 0: ParlAI and transformers divide by different length terms otherwise.
    # A minimum longer than the natural replies, so that it binds.
    "beam": dict(inference="beam", beam_size=3, beam_min_length=30, beam_length_penalty=0.0),
    "beam, blocking": dict(inference="beam", beam_size=3, beam_min_length=3, beam_length_penalty=0.0,
                           beam_block_ngram=2, beam_context_block_ngram=3),
}


@pytest.mark.parametrize("arch, setting", [
    ("t5", "greedy"), ("gpt2", "greedy"), ("qwen2", "greedy"),
    ("t5", "beam"), ("bart", "beam"), ("gpt2", "beam"), ("llama", "beam"),
    ("t5", "beam, blocking"), ("bart", "beam, blocking"),
])
def test_generate_on_the_exported_folder_replies_like_the_agent(context_models, tmp_path, arch, setting):
    from transformers import AutoTokenizer

    from parlai_dialogft.model.export import export

    mf = str(tmp_path / "m" / "model")
    # A small step size: the weights move off the context model, its replies stay context-dependent.
    train_briefly(context_models[arch], mf, str(tmp_path / "data"), learningrate=1e-5, **DECODING[setting])
    out = export(mf, str(tmp_path / "hf"))
    agent = create_agent_from_model_file(mf)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = _load_exported(out)
    assert tokenizer.pad_token_id == agent.NULL_IDX == model.generation_config.pad_token_id

    max_ts = 40
    beam_size = DECODING[setting].get("beam_size", 1)
    replies = all_different(search(agent, CONTEXTS, beam_size=beam_size, max_ts=max_ts))  # batched: padded contexts
    for text, reply in zip(CONTEXTS, replies):
        ids = torch.tensor([batch_of(agent, [text]).text_vec[0].tolist()])
        with torch.no_grad():
            generated = model.generate(input_ids=ids)  # the exported generation config alone
        new = generated[0, 1:] if model.config.is_encoder_decoder else generated[0, ids.size(1) :]
        assert _until_end(new.tolist(), agent.END_IDX, max_ts) == reply


LORA = dict(lora_r=4, lora_alpha=8.0, lora_dropout=0.0)


def _peft_on_base(folder):
    """The adapter folder on its base as a user loads it: the base from adapter_config.json,
    grown to the tokenizer's size when training added a pad token, then PeftModel."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    base_name = PeftConfig.from_pretrained(folder).base_model_name_or_path
    seq2seq = AutoConfig.from_pretrained(base_name).is_encoder_decoder
    base = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(base_name).eval()
    rows = len(AutoTokenizer.from_pretrained(folder))
    if rows > base.get_input_embeddings().num_embeddings:
        base.resize_token_embeddings(rows, mean_resizing=False)
    return base, lambda: PeftModel.from_pretrained(base, folder).eval()


# gpt2: the agent adds a pad token, so the adapter must carry the grown embeddings.
@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_the_adapter_folder_on_its_base_gives_the_same_logits(tiny_models, tmp_path, arch):
    from safetensors import safe_open

    from parlai_dialogft.model.export import export

    mf = str(tmp_path / "m" / "model")
    train_briefly(tiny_models[arch], mf, str(tmp_path / "data"), **LORA)
    out = export(mf, str(tmp_path / "adapter"), adapter=True)
    assert not (tmp_path / "adapter" / "model.safetensors").exists()
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == tiny_models[arch]
    with safe_open(str(tmp_path / "adapter" / "adapter_model.safetensors"), "pt") as f:
        embeddings_saved = any("lora_" not in key for key in f.keys())
    assert embeddings_saved == (arch == "gpt2")

    agent = create_agent_from_model_file(mf)
    agent.model.eval()
    batch = batch_of(agent, CONTEXTS[:1], labels=["a table for two ."])
    with torch.no_grad():
        ours, _preds, _ = agent.model(*agent._model_input(batch), ys=batch.label_vec)
    base, with_adapter = _peft_on_base(out)
    assert not torch.allclose(_logits_on(base, batch), ours, atol=1e-3)  # the adapter is what differs
    torch.testing.assert_close(_logits_on(with_adapter(), batch), ours, atol=1e-5, rtol=1e-5)


# Steps enough for the adapters to change the context model's replies, few enough to keep them context-dependent.
@pytest.mark.parametrize("arch, steps", [("t5", 3), ("gpt2", 10)])
def test_generate_on_the_adapter_folder_replies_like_the_agent(context_models, tmp_path, arch, steps):
    from transformers import GenerationConfig

    from parlai_dialogft.model.export import export

    mf = str(tmp_path / "m" / "model")
    train_briefly(context_models[arch], mf, str(tmp_path / "data"), steps=steps, **LORA)
    out = export(mf, str(tmp_path / "adapter"), adapter=True)
    agent = create_agent_from_model_file(mf)
    generation = GenerationConfig.from_pretrained(out)
    base, with_adapter = _peft_on_base(out)
    max_ts = 40

    def replies_of(model):
        found = []
        for text in CONTEXTS:
            ids = torch.tensor([batch_of(agent, [text]).text_vec[0].tolist()])
            with torch.no_grad():
                generated = model.generate(input_ids=ids, generation_config=generation)
            new = generated[0, 1:] if model.config.is_encoder_decoder else generated[0, ids.size(1) :]
            found.append(_until_end(new.tolist(), agent.END_IDX, max_ts))
        return found

    replies = all_different(search(agent, CONTEXTS, max_ts=max_ts))
    assert replies_of(base) != replies  # the adapters are what the replies depend on
    assert replies_of(with_adapter()) == replies


def test_the_adapter_card_has_peft_in_its_header_and_its_example_runs(tiny_models, tmp_path):
    import re

    from parlai_dialogft.model.card import read_header
    from parlai_dialogft.model.export import export

    mf = str(tmp_path / "m" / "model")
    train_briefly(tiny_models["gpt2"], mf, str(tmp_path / "data"), steps=1, **LORA)
    out = export(mf, str(tmp_path / "adapter"), adapter=True)
    meta = read_header(str(tmp_path / "adapter" / "README.md"))
    assert meta["library_name"] == "peft" and "lora" in meta["tags"]
    example = re.search(r"```python\n(.*?)```", open(tmp_path / "adapter" / "README.md", encoding="utf-8").read(), re.S)
    assert "resize_token_embeddings(" in example.group(1)  # gpt2 got a pad token
    run = subprocess.run([sys.executable, "-c", example.group(1).replace("FOLDER", out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr


def test_a_zoo_base_is_named_by_its_zoo_name_and_the_card_loads_it_from_the_package():
    from parlai_dialogft.model.export import adapter_base, adapter_use
    from parlai_dialogft.zoo.dialogft.build import SHIPPED

    assert adapter_base("zoo:dialogft/bilingual_t5") == "zoo:dialogft/bilingual_t5"
    assert adapter_base("t5-small") == "t5-small"  # a hub id
    text = adapter_use("zoo:dialogft/bilingual_t5", True)
    assert 'from_pretrained(SHIPPED / "bilingual_t5")' in text
    assert (SHIPPED / "bilingual_t5" / "config.json").is_file()


CONVERSATION = ["hello , I need a table for tonight .", "sure , for how many people ?", "two , please . 谢谢！"]


@pytest.mark.parametrize("arch, delimiter", [("t5", "\n"), ("gpt2", "\n"), ("bart", "\n"), ("bart", " | ")])
def test_the_exported_chat_template_rebuilds_the_agents_context(tiny_models, tmp_path, arch, delimiter):
    """vLLM, TGI and `transformers serve` build prompts with apply_chat_template: on the
    export, a conversation renders to the text the agent feeds the model and, with the
    default newline delimiter, to the very same ids. (The agent tokenizes turn by turn; a
    delimiter ending in a space makes byte-level BPE attach it to the next word.)"""
    from transformers import AutoTokenizer

    from parlai_dialogft.model.chat_format import to_messages
    from parlai_dialogft.model.export import export

    mf = str(tmp_path / "m" / "model")
    train_briefly(tiny_models[arch], mf, str(tmp_path / "data"), steps=1, delimiter=delimiter)
    tokenizer = AutoTokenizer.from_pretrained(export(mf, str(tmp_path / "hf")))
    agent = create_agent_from_model_file(mf)
    for user, model_reply in zip(CONVERSATION[::2], CONVERSATION[1::2]):
        agent.observe(Message({"text": user, "episode_done": False}))
        agent.self_observe(Message({"text": model_reply}))
    obs = agent.observe(Message({"text": CONVERSATION[-1], "episode_done": False}))

    messages = to_messages(CONVERSATION)
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == obs["full_text"] + (tokenizer.eos_token if agent.dict.text_suffix else "")
    assert delimiter.join(CONVERSATION) in text
    if delimiter == "\n":
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        assert ids == obs["text_vec"].tolist()


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_the_export_card_has_the_hub_header_and_its_example_runs(tiny_models, tmp_path, arch):
    import re

    from parlai_dialogft.model.card import read_header
    from parlai_dialogft.model.export import export

    mf = str(tmp_path / "m" / "model")
    train_briefly(tiny_models[arch], mf, str(tmp_path / "data"), steps=1, task="dialogft_customer:lang=zh")
    out = export(mf, str(tmp_path / "hf"))
    meta = read_header(str(tmp_path / "hf" / "README.md"))
    assert meta["language"] == ["zh"]
    assert meta["pipeline_tag"] == ("text2text-generation" if arch == "t5" else "text-generation")
    assert {"license", "tags", "library_name"} <= set(meta) and "parlai" in meta["tags"]
    example = re.search(r"```python\n(.*?)```", open(tmp_path / "hf" / "README.md", encoding="utf-8").read(), re.S)
    run = subprocess.run([sys.executable, "-c", example.group(1).replace("FOLDER", out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr


def test_the_generation_config_decodes_as_the_agent_was_set_to():
    from parlai_dialogft.model.export import decoding

    assert decoding({"inference": "greedy", "label_truncate": 32}) == dict(
        num_beams=1, do_sample=False, temperature=1.0, top_k=50, top_p=1.0, max_new_tokens=32
    )
    beam = decoding({"inference": "beam", "beam_size": 4, "beam_block_ngram": 3, "beam_min_length": 5,
                     "beam_length_penalty": 0.65, "beam_context_block_ngram": 2, "label_truncate": 32})
    assert {k: beam[k] for k in ("num_beams", "do_sample", "no_repeat_ngram_size", "min_new_tokens",
                                 "length_penalty", "early_stopping", "encoder_no_repeat_ngram_size")} == dict(
        num_beams=4, do_sample=False, no_repeat_ngram_size=3, min_new_tokens=5, length_penalty=0.65,
        early_stopping="never", encoder_no_repeat_ngram_size=2)
    causal = decoding({"inference": "beam", "beam_size": 2, "beam_context_block_ngram": 2}, seq2seq=False)
    assert "encoder_no_repeat_ngram_size" not in causal  # no decoder-only equivalent
    nucleus = decoding({"inference": "nucleus", "topp": 0.8, "temperature": 0.7})
    assert (nucleus["do_sample"], nucleus["top_p"], nucleus["top_k"], nucleus["temperature"]) == (True, 0.8, 0, 0.7)


def _run_export(*args):
    return subprocess.run(
        [sys.executable, "-m", "parlai", "dialogft_export", *args], capture_output=True, text=True, timeout=300
    )


def test_a_missing_model_file_is_one_line_and_a_failing_exit(tmp_path):
    missing = _run_export("-mf", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert missing.returncode != 0
    # The last line, not all of stderr: another script's import warning may come first.
    assert missing.stderr.strip().splitlines()[-1] == f"dialogft_export: -mf {tmp_path / 'nope'}: no such model file"
    assert "Traceback" not in missing.stderr


def test_a_model_of_another_agent_is_refused(tmp_path):
    from parlai_dialogft.model.export import ExportError, export

    other = tmp_path / "other"
    other.write_text("x")
    (tmp_path / "other.opt").write_text(json.dumps({"model": "transformer/generator"}))
    with pytest.raises(ExportError, match="trained with -m transformer/generator, not dialogft_agent"):
        export(str(other), str(tmp_path / "out"))


def test_export_does_not_overwrite_a_folder_unless_asked(tmp_path):
    from parlai_dialogft.model.export import ExportError, export

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    model = tmp_path / "model"
    model.write_text("x")
    (tmp_path / "model.opt").write_text(json.dumps({"model": "dialogft_agent"}))
    with pytest.raises(ExportError, match="exists and is not empty"):
        export(str(model), str(tmp_path / "out"))
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_an_adapter_export_of_a_model_without_adapters_is_one_line_naming_the_flag(tmp_path):
    model = tmp_path / "model"
    model.write_text("x")
    (tmp_path / "model.opt").write_text(json.dumps({"model": "dialogft_agent", "lora_r": 0}))
    run = _run_export("-mf", str(model), "--out", str(tmp_path / "out"), "--export-adapter", "true")
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        f"dialogft_export: --export-adapter true: -mf {model} was trained without LoRA adapters "
        "(--lora-r 0); export it without --export-adapter"
    )
    assert not (tmp_path / "out").exists()
