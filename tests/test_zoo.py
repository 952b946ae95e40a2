"""The zoo's pretrained default: its recipe runs, it never reads evaluation data, and the
shipped weights are the pretrained ones (not a random init)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from parlai_dialogft.training.pretrain import Recipe, pretrain, training_messages

ZOO = "zoo:dialogft/bilingual_t5"


def _ids(datatype: str) -> set:
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    opt = ParlaiParser(True, False).parse_kwargs(task="dialogft_customer:lang=all", datatype=datatype)
    teacher = create_task_agent_from_taskname(opt)[0]
    return {(m["source"], m["dialogue_id"]) for m in (teacher.act() for _ in range(teacher.num_examples()))}


def test_pretraining_reads_no_dialogue_of_the_customer_evaluation_splits():
    seen = {(m["source"], m["dialogue_id"]) for m in training_messages("dialogft_customer:lang=all")}
    held_out = _ids("valid") | _ids("test")
    assert len(seen) > 8000 and len(held_out) > 2000
    assert not seen & held_out


# Length buckets (the default) spend minutes more at this size: ParlAI's dynamic batching.
@pytest.mark.parametrize("batching", ["groups", pytest.param("buckets", marks=pytest.mark.slow)])
def test_the_recipe_runs_end_to_end_at_tiny_size(tmp_path, monkeypatch, batching):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from parlai_dialogft.utils import progress

    stages = []
    monkeypatch.setattr(progress, "stage", lambda number, of, what: stages.append((number, of)))
    recipe = Recipe(out=str(tmp_path / "model"), vocab_size=300, d_model=32, layers=1, max_train_steps=4,
                    batchsize=8, max_texts=3000, datapath=str(tmp_path / "data"), batching=batching)
    out = pretrain(recipe)
    assert stages == [(1, 4), (2, 4), (3, 4), (4, 4)]  # each step announced: the recipe runs for an hour

    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert model.dtype == torch.float32  # stored fp16, loaded for CPU training
    from safetensors import safe_open

    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "hi</s>"
    for text in ("I need a hotel in the north.", "我想订一张去北京的火车票。"):
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    card = open(os.path.join(out, "README.md"), encoding="utf-8").read()
    for section in ("## Training data", "## Recipe", "## Metrics", "## Intended use and limits", "CC BY-SA 4.0"):
        assert section in card
    facts = json.load(open(os.path.join(out, "dialogft_card.json")))
    assert facts["recipe"]["max_train_steps"] == 4
    # The card reports each reply task, both customer-service languages included.
    assert set(facts["valid"]) == {"dialogft_chitchat/ppl", "dialogft_qa/ppl",
                                   "dialogft_customer:lang=en/ppl", "dialogft_customer:lang=zh/ppl"}
    assert "| dialogft_customer:lang=zh |" in card
    # Infilling is in the mixture; the validation that the card reports scores replies only.
    command = facts["train_model"]
    assert "mutators=dialogft_denoise" in command[command.index("-t") + 1]
    assert "mutators" not in command[command.index("--evaltask") + 1]
    # The scratch folder is named WORK, not by where this machine put it.
    assert recipe.work not in json.dumps(facts) + card
    assert command[command.index("--hf-model") + 1] == "WORK/init"


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    from parlai.core.build_data import modelzoo_path

    return modelzoo_path(str(tmp_path_factory.mktemp("zoo_data")), ZOO)


def test_the_default_hf_model_is_the_zoo_model(zoo_dir):
    from parlai.core.params import ParlaiParser

    opt = ParlaiParser(True, True).parse_kwargs(model="dialogft_agent")
    assert opt["hf_model"] == ZOO
    assert os.path.isfile(os.path.join(zoo_dir, "model.safetensors"))
    assert os.path.getsize(os.path.join(zoo_dir, "model.safetensors")) < 30e6  # "tens of MB at most"


def _reply_loss(model, tokenizer, pairs) -> float:
    losses = []
    with torch.no_grad():
        for context, reply in pairs:
            ids = tokenizer(context, return_tensors="pt").input_ids
            labels = tokenizer(reply, return_tensors="pt").input_ids
            losses.append(model(input_ids=ids, labels=labels).loss.item())
    return sum(losses) / len(losses)


def test_the_shipped_weights_are_pretrained(zoo_dir):
    """On customer-service test replies (never seen), the zoo model's loss is far below a
    random init of the same config: the weights in the package are the pretrained ones."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    pairs = [
        ("I'd like to find a restaurant for tonight.", "What kind of food would you like?"),
        ("Can you book it for two people at 7 pm?", "Your reservation is confirmed."),
        ("你好，我想找一家评分高的酒店。", "好的，请问您对价格有要求吗？"),
        ("Thanks, that's all I need.", "You're welcome. Have a great day!"),
    ]
    tokenizer = AutoTokenizer.from_pretrained(zoo_dir)
    pretrained = AutoModelForSeq2SeqLM.from_pretrained(zoo_dir).eval()
    torch.manual_seed(0)
    random_init = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(zoo_dir)).eval()
    assert _reply_loss(pretrained, tokenizer, pairs) < 0.6 * _reply_loss(random_init, tokenizer, pairs)


def test_the_shipped_card_names_no_folder_of_the_machine_that_trained_it():
    shipped = os.path.join(os.path.dirname(__file__), "..", "zoo", "dialogft", "bilingual_t5")
    for name in ("README.md", "dialogft_card.json"):
        text = open(os.path.join(shipped, name), encoding="utf-8").read()
        assert "/tmp/" not in text and "/home/" not in text and "/work/" not in text, name


def test_the_transformers_floor_reads_the_tokenizers_we_ship():
    """The zoo tokenizer (and every export) names TokenizersBackend, which transformers 4.x
    does not have: setup.py must not promise 4.x."""
    import re

    repo = os.path.join(os.path.dirname(__file__), "..")
    config = json.load(open(os.path.join(repo, "zoo", "dialogft", "bilingual_t5", "tokenizer_config.json")))
    floor = re.search(r'"transformers>=(\d+)', open(os.path.join(repo, "setup.py")).read())
    assert config["tokenizer_class"] == "TokenizersBackend"
    assert floor and int(floor.group(1)) >= 5


# ---------------------------------------------------------------- zoo entries as ParlAI model files

ENTRIES = ("zoo:dialogft/bilingual_t5", "zoo:dialogft/customer_t5")


def test_each_entry_is_a_model_file_naming_the_agent_and_a_hugging_face_folder(zoo_dir):
    from transformers import AutoConfig

    from parlai_dialogft.model.card import read_header

    root = os.path.dirname(zoo_dir)
    for entry in ENTRIES:
        name = entry.split("/")[-1]
        opt = json.load(open(os.path.join(root, name + ".opt")))
        assert opt["model"] == "dialogft_agent" and opt["hf_model"] == entry
        assert AutoConfig.from_pretrained(os.path.join(root, name)).is_encoder_decoder
        meta = read_header(os.path.join(root, name, "README.md"))
        assert meta["license"] == "mit" and meta["language"] == ["en", "zh"]
        assert meta["pipeline_tag"] == "text2text-generation"


def test_an_older_install_of_the_zoo_is_replaced(tmp_path):
    """Up to v3 the zoo was a folder only: its marker made ParlAI skip the build, and no
    NAME.opt was ever written."""
    from parlai.core.build_data import mark_done, modelzoo_path

    stale = tmp_path / "models" / "dialogft" / "bilingual_t5"
    stale.mkdir(parents=True)
    mark_done(str(stale), "v3")
    modelzoo_path(str(tmp_path), ZOO)
    assert (stale / "model.safetensors").is_file()
    assert (tmp_path / "models" / "dialogft" / "bilingual_t5.opt").is_file()


def test_the_customer_model_is_the_default_fine_tuned_on_customer_service(zoo_dir):
    """On customer-service test replies, customer_t5's loss is below the pretrained
    default's: the shipped weights are the fine-tuned ones."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    pairs = [
        ("I'd like to find a restaurant for tonight.", "What kind of food would you like?"),
        ("Can you book it for two people at 7 pm?", "Your reservation is confirmed."),
        ("你好，我想找一家评分高的酒店。", "好的，请问您对价格有要求吗？"),
        ("Thanks, that's all I need.", "You're welcome. Have a great day!"),
    ]
    root = os.path.dirname(zoo_dir)
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(root, "customer_t5"))
    losses = {name: _reply_loss(AutoModelForSeq2SeqLM.from_pretrained(os.path.join(root, name)).eval(), tokenizer, pairs)
              for name in ("bilingual_t5", "customer_t5")}
    assert losses["customer_t5"] < 0.9 * losses["bilingual_t5"], losses


def _parlai(args, cwd, input=None):
    from tests.support.processes import fresh_shell

    return fresh_shell(["parlai", *args], cwd, input=input, timeout=600)


def test_parlai_interactive_chats_with_a_zoo_model_right_after_install(tmp_path):
    out = _parlai(["interactive", "-mf", "zoo:dialogft/customer_t5", "-dp", str(tmp_path / "data")], tmp_path,
                  input="I need a hotel in the north of town.\n我想订一家便宜的酒店。\n[EXIT]\n")
    assert out.returncode == 0, out.stderr[-3000:]
    replies = [line for line in out.stdout.splitlines() if "[Dialogft]:" in line]
    assert len(replies) == 2 and all(len(r.split("[Dialogft]:", 1)[1].strip()) > 1 for r in replies), out.stdout[-2000:]


@pytest.mark.parametrize("args, message", [
    (["interactive", "-mf", "zoo:dialogft/nope"],
     "parlai interactive: -mf zoo:dialogft/nope: no such model; the zoo has zoo:dialogft/bilingual_t5, "
     "zoo:dialogft/customer_t5"),
    (["train_model", "-t", "dialogft_customer", "-mf", "zoo:dialogft/customer_t5"],
     "parlai train_model: -mf DATA/models/dialogft/customer_t5: a folder (a zoo model or Hugging Face folder) "
     "cannot be trained in place; to fine-tune it: --hf-model DATA/models/dialogft/customer_t5 -mf SOMEWHERE/model"),
    (["train_model", "-t", "dialogft_customer", "-m", "dialogft_agent", "--init-model", "zoo:dialogft/customer_t5",
      "-mf", "MODEL"],
     "parlai train_model: --init-model DATA/models/dialogft/customer_t5: a folder, not a ParlAI checkpoint; "
     "to start from the model in it, use --hf-model DATA/models/dialogft/customer_t5"),
])
def test_a_zoo_path_used_the_wrong_way_is_one_line(tmp_path, args, message):
    data = tmp_path / "data"
    args = [str(tmp_path / "m" / "model") if a == "MODEL" else a for a in args]
    out = _parlai([*args, "-dp", str(data)], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == message.replace("DATA", str(data))
    assert "Traceback" not in out.stderr


def test_an_unknown_zoo_name_as_hf_model_is_one_line(tmp_path):
    out = _parlai(["train_model", "-t", "dialogft_customer", "-m", "dialogft_agent", "--hf-model",
                   "zoo:dialogft/bilingual", "-mf", str(tmp_path / "m" / "model"), "-dp", str(tmp_path / "data")],
                  tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == (
        "parlai train_model: --hf-model zoo:dialogft/bilingual: no such model; the zoo has "
        "zoo:dialogft/bilingual_t5, zoo:dialogft/customer_t5")
