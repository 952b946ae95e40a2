"""`parlai dialogft_export`: a trained model as a folder that transformers alone loads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from parlai.core.agents import create_agent_from_model_file

from conftest import batch_of, search, train_briefly

CONTEXTS = ["hello , how can I help you today ?", "我想订一张明天去北京的火车票。"]


def _exported_logits(folder, agent, batch):
    """Logits of the exported folder, loaded by plain transformers, on the agent's batch."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    config = AutoConfig.from_pretrained(folder)
    seq2seq = config.is_encoder_decoder
    model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(folder).eval()
    labels = batch.label_vec
    with torch.no_grad():
        if seq2seq:
            start = torch.full_like(labels[:, :1], config.decoder_start_token_id)
            return model(input_ids=batch.text_vec, decoder_input_ids=torch.cat([start, labels[:, :-1]], 1)).logits
        full = torch.cat([batch.text_vec, labels], dim=1)
        return model(input_ids=full).logits[:, batch.text_vec.size(1) - 1 : -1]


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_exported_folder_gives_the_same_logits_and_replies(tiny_models, tmp_path, arch):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    from parlai_dialogft.export import export

    mf = str(tmp_path / "m" / "model")
    train_briefly(tiny_models[arch], mf, str(tmp_path / "data"))
    out = export(mf, str(tmp_path / "hf"))

    agent = create_agent_from_model_file(mf)
    agent.model.eval()
    batch = batch_of(agent, CONTEXTS[:1], labels=["a table for two ."])
    with torch.no_grad():
        ours, _preds, _ = agent.model(*agent._model_input(batch), ys=batch.label_vec)
    torch.testing.assert_close(_exported_logits(out, agent, batch), ours, atol=1e-5, rtol=1e-5)

    # Greedy replies: transformers' generate on the folder equals the agent's search.
    tokenizer = AutoTokenizer.from_pretrained(out)
    auto = AutoModelForSeq2SeqLM if arch == "t5" else AutoModelForCausalLM
    model = auto.from_pretrained(out).eval()
    for text, reply in zip(CONTEXTS, search(agent, CONTEXTS, max_ts=8)):
        ids = torch.tensor([batch_of(agent, [text]).text_vec[0].tolist()])
        with torch.no_grad():
            generated = model.generate(input_ids=ids, max_new_tokens=8, do_sample=False)
        new = generated[0, 1:] if arch == "t5" else generated[0, ids.size(1):]
        assert new.tolist()[: len(reply) - 1] == reply[:-1]  # reply's last is END or forced END
    assert tokenizer.pad_token_id == agent.NULL_IDX


def _run_export(*args):
    return subprocess.run(
        [sys.executable, "-m", "parlai", "dialogft_export", *args], capture_output=True, text=True, timeout=300
    )


def test_export_refuses_bad_input_with_one_line(tmp_path):
    missing = _run_export("-mf", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[-1] == f"dialogft_export: -mf {tmp_path / 'nope'}: no such model file"

    other = tmp_path / "other"
    other.write_text("x")
    (tmp_path / "other.opt").write_text(json.dumps({"model": "transformer/generator"}))
    wrong = _run_export("-mf", str(other), "--out", str(tmp_path / "out"))
    assert "trained with -m transformer/generator, not dialogft_agent" in wrong.stderr


def test_export_does_not_overwrite_a_folder_unless_asked(tmp_path):
    from parlai_dialogft.export import ExportError, export

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    model = tmp_path / "model"
    model.write_text("x")
    (tmp_path / "model.opt").write_text(json.dumps({"model": "dialogft_agent"}))
    with pytest.raises(ExportError, match="exists and is not empty"):
        export(str(model), str(tmp_path / "out"))
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
