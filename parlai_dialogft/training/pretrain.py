"""The recipe behind ``zoo:dialogft/bilingual_t5``: a small English + Chinese dialogue model
pretrained from nothing on the corpora the project ships.

Four steps, each plain:

1. **Text**: every turn of the *training* splits of the shipped teachers (chit-chat,
   knowledge-grounded QA, customer service in both languages). Validation and test
   dialogues never reach the tokenizer or the model, so ``dialogft_customer``'s test split
   stays an honest evaluation set.
2. **Tokenizer and model**: a byte-level BPE tokenizer trained on that text, and a
   random-init T5 built from a config (:mod:`parlai_dialogft.model.tiny`).
3. **Pretraining**: ``parlai train_model`` with ``dialogft_agent`` on those teachers
   together; the objective is mostly the one fine-tuning uses (the next reply given the
   history), with span infilling on customer-service turns mixed in.
4. **Release**: the weights as fp16 safetensors (half the bytes; loaded back as fp32),
   the tokenizer, and a model card.

``parlai dialogft_pretrain --pretrain-out DIR`` runs it (every :class:`Recipe` field is a
``--pretrain-*`` flag); tests run it with tiny sizes so it cannot rot.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from typing import Iterator, List

#: The teachers pretraining reads, train split only. ``dialogft_qa`` is KdConv with its
#: knowledge triples in the context: the same replies, learned with grounding. Customer
#: service comes as its two languages: CrossWOZ is 8% of it, too little to learn Chinese
#: task dialogue from when it is drawn in proportion.
REPLY_TASKS = "dialogft_chitchat,dialogft_qa,dialogft_customer:lang=en,dialogft_customer:lang=zh"
#: The same customer-service turns as span infilling (:mod:`parlai_dialogft.mutators.denoise`):
#: rebuilding a turn from its masked copy teaches the decoder to read the encoder, which the
#: reply objective alone taught too slowly (v2 answered most Chinese contexts "不客气。").
DENOISE_TASKS = "dialogft_customer:lang=en:mutators=dialogft_denoise,dialogft_customer:lang=zh:mutators=dialogft_denoise"
PRETRAIN_TASKS = REPLY_TASKS + "," + DENOISE_TASKS
#: Of the draws of a new episode: a third English customer service, a sixth each of
#: chit-chat, grounded QA and Chinese customer service, a twelfth each of English and
#: Chinese span infilling (one short example per draw, where a dialogue gives several).
PRETRAIN_TASK_WEIGHTS = "2,2,4,2,1,1"

#: --pretrain-batching: how the train_model command batches. Length buckets pack short
#: examples (a span-infilling turn) many to a batch, so infilling made about a quarter of the
#: examples; batches as drawn, computed in length groups, cost 0.13 less validation loss in
#: bench/training.py's fine-tuning, but pretrained this way (same 3000 updates) the model
#: transferred worse in both languages (`docs/zoo.md`, "The pretrained default").
BATCHING = {
    "buckets": ["--dynamic-batching", "full"],
    "groups": ["--dynamic-batching", "none", "--hf-length-groups", "true"],
}


@dataclass
class Recipe:
    """Sizes and budget. The defaults made the released model; tests shrink them."""

    out: str = field(metadata={"help": "folder to write the released model into"})
    work: str = field(default="", metadata={"help": "scratch folder (default: OUT.work)"})
    vocab_size: int = field(default=8000, metadata={"help": "BPE vocabulary, shared by both languages"})
    d_model: int = field(default=256, metadata={"help": "T5 hidden size"})
    layers: int = field(default=4, metadata={"help": "encoder and decoder layers (each)"})
    max_train_steps: int = field(default=3000, metadata={"help": "pretraining budget in updates (the LR decays to 0 over it)"})
    max_train_time: float = field(default=4500.0, metadata={"help": "a cap on the budget, seconds"})
    batchsize: int = field(default=32, metadata={"help": "examples per batch (buckets: about that many)"})
    batching: str = field(default="buckets", metadata={
        "help": "buckets: ParlAI's length buckets (--dynamic-batching full; the released weights); groups: "
                "batches as drawn, computed in length groups (transferred worse: docs/zoo.md)"})
    learningrate: float = field(default=1e-3, metadata={"help": "AdamW peak learning rate"})
    max_texts: int = field(default=0, metadata={"help": "cap on tokenizer texts (0: all); tests use a few hundred"})
    datapath: str = field(default="", metadata={"help": "ParlAI --datapath (default: ParlAI's)"})
    seed: int = field(default=0, metadata={"help": "weight init and data order"})

    def __post_init__(self):
        if not self.out:
            raise ValueError("--out is required: the folder to write the model into")
        self.work = self.work or self.out.rstrip("/") + ".work"
        if self.batching not in BATCHING:
            raise ValueError(f"--pretrain-batching {self.batching}: choose {' or '.join(BATCHING)}")


def training_messages(tasks: str = REPLY_TASKS, datapath: str = "") -> Iterator[dict]:
    """Every example of the teachers' train split, cleaned as fine-tuning sees it."""
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    for task in tasks.split(","):
        kwargs = dict(task=task, datatype="train:ordered")
        if datapath:
            kwargs["datapath"] = datapath
        opt = ParlaiParser(True, False).parse_kwargs(**kwargs)
        teacher = create_task_agent_from_taskname(opt)[0]
        for _ in range(teacher.num_examples()):
            yield teacher.act()


def training_texts(tasks: str = REPLY_TASKS, datapath: str = "", limit: int = 0) -> Iterator[str]:
    """Every turn (context and reply) of :func:`training_messages`: the tokenizer's text."""
    count = 0
    for message in training_messages(tasks, datapath):
        for text in [message.get("text", "")] + list(message.get("labels", [])):
            if text:
                yield text
                count += 1
                if limit and count >= limit:
                    return


def build_initial_model(recipe: Recipe) -> str:
    """Tokenizer trained on the pretraining text, random-init T5: the folder pretraining starts from."""
    from parlai_dialogft.model.tiny import build_tiny_model

    init_dir = os.path.join(recipe.work, "init")
    texts = list(training_texts(datapath=recipe.datapath, limit=recipe.max_texts))
    build_tiny_model(
        init_dir, "t5", texts, vocab_size=recipe.vocab_size, d_model=recipe.d_model,
        layers=recipe.layers, seed=recipe.seed,
    )
    return init_dir


def train_args(recipe: Recipe, init_dir: str) -> List[str]:
    """The ``parlai train_model`` command line of step 3 (also printed into the model card)."""
    args = [
        "-t", PRETRAIN_TASKS, "--multitask-weights", PRETRAIN_TASK_WEIGHTS,
        # ParlAI's final validation scores replies only (the card's figures come from
        # validation_ppl, each task on fixed examples).
        "--evaltask", REPLY_TASKS,
        "-m", "dialogft_agent", "--hf-model", init_dir,
        "-mf", os.path.join(recipe.work, "pretrain", "model"),
        "-bs", str(recipe.batchsize), *BATCHING[recipe.batching],
        "-lr", str(recipe.learningrate), "--lr-scheduler", "linear", "--warmup-updates", str(min(200, recipe.max_train_steps // 10)),
        "--text-truncate", "128", "--label-truncate", "48", "--gradient-clip", "1.0",
        "--max-train-time", str(recipe.max_train_time), "--max-train-steps", str(recipe.max_train_steps),
        # Validation generates replies (slow on a CPU) and selects nothing here: only at the end.
        "-vtim", str(10 * max(recipe.max_train_time, 1)), "-vme", "200", "-vmt", "ppl", "-vmm", "min",
        "--skip-generation", "true", "--save-after-valid", "false",
        "--seed", str(recipe.seed),
    ]
    if recipe.datapath:
        args += ["--datapath", recipe.datapath]
    return args


def release(model_file: str, out: str, card: dict) -> str:
    """``out``: the pretrained model as a save_pretrained folder, fp16 on disk, with its card."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from parlai_dialogft.model.export import export

    staging = out.rstrip("/") + ".staging"
    export(model_file, staging, overwrite=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(staging, dtype=torch.float32)
    os.makedirs(out, exist_ok=True)
    # fp16 halves the bytes in git; the config still says float32, so from_pretrained
    # (dtype="auto" included) gives the fp32 model that CPU training wants.
    model.half().save_pretrained(out)
    config = json.load(open(os.path.join(out, "config.json")))
    config["dtype"] = "float32"
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=2)
    for name in os.listdir(staging):
        if name.startswith(("tokenizer", "special_tokens", "generation_config", "chat_template")):
            shutil.copy(os.path.join(staging, name), os.path.join(out, name))
    shutil.rmtree(staging)
    card["parameters"] = sum(p.numel() for p in model.parameters())
    with open(os.path.join(out, "dialogft_card.json"), "w", encoding="utf-8") as f:
        json.dump(card, f, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(model_card(card))
    return out


def model_card(card: dict) -> str:
    """The model card (README.md of the released folder), from the recipe and its reports."""
    recipe = card["recipe"]
    valid = card.get("valid", {})
    rows = "\n".join(f"| {key[:-len('/ppl')]} | {value:.1f} |" for key, value in valid.items() if key.endswith("/ppl"))
    from parlai_dialogft.model.card import HUB_DATASETS, header

    top = header(license="mit", languages=["en", "zh"], seq2seq=True, tags=["t5", "customer-service"],
                 datasets=HUB_DATASETS.values())
    return top + CARD.format(
        parameters=f"{card['parameters'] / 1e6:.1f}M", command=" ".join(card["train_model"]), rows=rows,
        updates=card.get("updates", recipe["max_train_steps"]), valid_examples=CARD_VALID_EXAMPLES,
        batches=(f"about {recipe['batchsize']} examples each (ParlAI dynamic batching)" if recipe.get("batching", "buckets") == "buckets"
                 else f"{recipe['batchsize']} examples each (computed in length groups)"),
        infilling_share=(": quickly batched, it made about a quarter of the examples in a sample of the first batches"
                         if recipe.get("batching", "buckets") == "buckets" else ""),
        **{k: recipe[k] for k in ("vocab_size", "d_model", "layers", "max_train_steps", "max_train_time",
                                  "batchsize", "learningrate")},
    )


CARD = """# zoo:dialogft/bilingual_t5

A small English + Chinese dialogue model: T5 architecture, {parameters} parameters
({layers}+{layers} layers, d_model {d_model}), byte-level BPE tokenizer with {vocab_size} tokens
trained on the same text. Pretrained from random weights by `parlai_dialogft.training.pretrain`
(`parlai dialogft_pretrain`) on the corpora shipped with parlai_dialogft. It is the default
`--hf-model` of `dialogft_agent`, so `parlai train_model -t dialogft_customer -m dialogft_agent`
fine-tunes a pretrained model with no hub and no download. It is also a ParlAI model file:
`parlai interactive -mf zoo:dialogft/bilingual_t5` chats with it as pretrained (for a model
fine-tuned on customer service, `zoo:dialogft/customer_t5`).

## Training data

The **training splits only** of the shipped teachers (see `docs/data.md` for counts, splits
and cleaning): `dialogft_chitchat` (Topical-Chat, ChatterBot en/zh, KdConv),
`dialogft_qa` (KdConv with knowledge triples) and `dialogft_customer` in both languages (SGD,
Taskmaster-4, MultiWOZ 2.1, CrossWOZ). No validation or test dialogue of any teacher was
seen by the tokenizer or the model, so `dialogft_customer`'s test split is a fair
evaluation set. Note that the customer-service *training* split is part of pretraining:
fine-tuning on it continues from a model that has read it once.

Each dataset keeps its licence (`parlai_dialogft/data/corpora/*/README.md`): SGD CC BY-SA 4.0,
Taskmaster-4 CC BY 4.0, MultiWOZ MIT (ConvLab-2 Apache 2.0), CrossWOZ Apache 2.0,
Topical-Chat CDLA-Sharing 1.0, KdConv Apache 2.0, ChatterBot BSD-3-Clause. Please cite them.
The weights are released under the project's MIT licence; none of the data licences
puts obligations on trained models, and attribution is given here.

## Recipe

Objective: the next reply given the dialogue history (what fine-tuning optimises), and
span infilling on customer-service turns (a turn with about a quarter of its words or
characters masked in, the whole turn out; `--mutators dialogft_denoise`), which teaches the
decoder to read the encoder. Infilling gets one in six of the draws of a new episode; an
infilling episode is one short example, where a dialogue gives several{infilling_share}.
{updates} updates of {batches}, AdamW,
peak learning rate {learningrate} with linear decay planned over {max_train_steps} updates; the
run stops at whichever of {max_train_steps} updates or {max_train_time:g} seconds comes first,
on a 2-core x86 CPU (AVX2). `WORK` is the recipe's scratch folder (`--pretrain-work`):

```
{command}
```

## Metrics

Perplexity on the first {valid_examples} validation examples of each task (`parlai eval_model`;
byte-level BPE tokens, so not comparable with other tokenizers):

| task | ppl |
|---|---|
{rows}

Fine-tuned on `dialogft_customer` versus the same model trained from scratch: see the
"From scratch or from the zoo" section of the project's `docs/zoo.md` (`python bench/transfer.py`).

## Intended use and limits

- For: the offline default of parlai_dialogft, demos, tests, teaching, and a quick start
  for fine-tuning on customer-service or chit-chat data in English or Chinese.
- Not for: production use or any decision about people. It is tiny and trained for minutes:
  replies are short, generic and often wrong about facts; it knows nothing beyond the
  shipped corpora, which are crowd-sourced dialogues with their own biases (see
  `parlai dialogft_probe` for the bias probe).
- Byte-level tokens can make a reply end in a broken UTF-8 fragment (shown as "\ufffd").
- Stored in fp16 to halve its size; load it as fp32 (the default) for CPU training.
"""


#: Validation examples per task in the card's perplexities.
CARD_VALID_EXAMPLES = 200


def validation_ppl(model_file: str, datapath: str = "") -> dict:
    """Perplexity of each reply task on its first validation examples (``parlai eval_model``).

    Each task on its own and on the same examples whatever the model's batching, so the
    card's rows compare across releases.
    """
    from parlai.scripts.eval_model import EvalModel

    # In file order: dynamic batching would choose which examples are the first N by length.
    args = ["-mf", model_file, "-t", REPLY_TASKS, "-dt", "valid", "-ne", str(CARD_VALID_EXAMPLES),
            "--dynamic-batching", "none", "--skip-generation", "true", "-bs", "32"]
    report = EvalModel.main(*args, *(["--datapath", datapath] if datapath else []))
    return {key: float(value) for key, value in report.items() if key.endswith("/ppl")}


def pretrain(recipe: Recipe) -> str:
    """Run the whole recipe; returns the released folder."""
    from parlai.scripts.train_model import TrainModel

    from parlai_dialogft.utils.progress import stage

    stage(1, 4, f"a {recipe.vocab_size}-token tokenizer and a random-init T5 (d_model {recipe.d_model}, "
                f"{recipe.layers}+{recipe.layers} layers) in {os.path.join(recipe.work, 'init')}")
    init_dir = build_initial_model(recipe)
    args = train_args(recipe, init_dir)
    stage(2, 4, f"pretraining with parlai train_model: up to {recipe.max_train_steps} updates or "
                f"{recipe.max_train_time:g} s (ParlAI logs its progress)")
    valid, _test = TrainModel.main(*args)
    stage(3, 4, f"validation perplexity of each reply task on its first {CARD_VALID_EXAMPLES} examples")
    card = {
        # The scratch folder is the machine's, not the recipe's: the card says WORK.
        "recipe": {**asdict(recipe), "work": "WORK"},
        "train_model": ["parlai", "train_model", *(arg.replace(recipe.work, "WORK") for arg in args)],
        "valid": validation_ppl(os.path.join(recipe.work, "pretrain", "model"), recipe.datapath),
        "updates": int(valid["total_train_updates"]),
    }
    stage(4, 4, f"the release (fp16 weights, tokenizer, model card) in {recipe.out}")
    return release(os.path.join(recipe.work, "pretrain", "model"), recipe.out, card)
