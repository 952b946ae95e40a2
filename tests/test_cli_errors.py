"""Every entry point answers a user mistake with one line and a non-zero exit, never a traceback.

The table runs each real ``parlai`` command in a subprocess; the same table, command and
message, is in docs/robust-training.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

PARLAI = os.path.join(os.path.dirname(sys.executable), "parlai")

# (id, command line with {placeholders}, words the message must contain)
TABLE = [
    # parlai train_model
    ("train-unknown-flag", "train_model -t integration_tests -m dialogft_agent -mf {new} --hf-model {t5} --hf-modl x",
     "unrecognized arguments: --hf-modl (did you mean --hf-model?)"),
    ("train-unknown-task", "train_model -t dialogft_custmer -m dialogft_agent -mf {new} --hf-model {t5}",
     "-t dialogft_custmer: no such task (did you mean dialogft_customer?)"),
    ("train-unknown-teacher", "train_model -t dialogft_customer:Sgdd -m dialogft_agent -mf {new} --hf-model {t5}",
     "the task has no teacher 'Sgdd' (did you mean Sgd?)"),
    ("train-unknown-agent", "train_model -t integration_tests -m dialogft_agnt -mf {new}",
     "-m dialogft_agnt: no such agent (did you mean dialogft_agent?)"),
    ("train-missing-hf-model", "train_model -t integration_tests -m dialogft_agent -mf {new} --hf-model {tmp}/nope",
     "--hf-model '{tmp}/nope': no such folder"),
    ("train-vision-model", "train_model -t integration_tests -m dialogft_agent -mf {new} --hf-model {vit}",
     "model type 'vit' is neither a seq2seq nor a causal language model"),
    ("train-missing-data-file", "train_model -t dialogft_files -m dialogft_agent -mf {new} --hf-model {t5} "
     "--files-datapath {tmp}/chats.jsonl", "{tmp}/chats.jsonl: cannot read the file"),
    ("train-lora-and-freeze", "train_model -t integration_tests -m dialogft_agent -mf {new} --hf-model {t5} "
     "--lora-r 4 --hf-freeze embeddings", "--lora-r 4 with --hf-freeze embeddings"),
    ("train-teacher-bad-language", "train_model -t dialogft_customer:lang=xx -m dialogft_agent -mf {new} --hf-model {t5}",
     "--customer-lang/--customer-sources: language must be one of en, zh, all, not 'xx'"),
    ("train-model-dir-under-a-file", "train_model -t integration_tests -m dialogft_agent -mf {tmp}/a-file/m "
     "--hf-model {t5}", "-mf {tmp}/a-file/m: {tmp}/a-file is a file, not a folder"),
    # parlai eval_model
    ("eval-missing-model-file", "eval_model -mf {tmp}/nope/model -t integration_tests",
     "-mf {tmp}/nope/model: no such model file"),
    ("eval-beam-size-0", "eval_model -mf {model} -t integration_tests --inference beam --beam-size 0",
     "--beam-size 0: must be 1 or more"),
    ("eval-unknown-task", "eval_model -mf {model} -t integration_test",
     "-t integration_test: no such task (did you mean integration_tests?)"),
    # parlai interactive
    ("interactive-missing-model-file", "interactive -mf {tmp}/nope/model", "-mf {tmp}/nope/model: no such model file"),
    ("interactive-unknown-flag", "interactive -mf {model} --beam-sise 3",
     "unrecognized arguments: --beam-sise (did you mean --beam-size?)"),
    ("interactive-knowledge-without-store", "interactive -mf {model} --knowledge-retriever bm25",
     "--knowledge-retriever bm25 needs --knowledge-file"),
    ("interactive-nucleus-top-p", "interactive -mf {model} --inference nucleus --topp 1.5", "--topp 1.5: must be in (0, 1]"),
    # plugin scripts
    ("export-missing-model-file", "dialogft_export -mf {tmp}/nope/model --out {tmp}/out",
     "-mf {tmp}/nope/model: no such model file"),
    ("export-unknown-flag", "dialogft_export -mf {model} --ouy {tmp}/out",
     "unrecognized arguments: --ouy (did you mean --out?)"),
    ("report-missing-model-file", "dialogft_report -mf {tmp}/nope/model -t integration_tests --out {tmp}/r",
     "-mf {tmp}/nope/model: no such model file"),
    ("serve-missing-model-file", "dialogft_serve -mf {tmp}/nope/model", "-mf {tmp}/nope/model: no such model file"),
    ("serve-unknown-flag", "dialogft_serve -mf {model} --prot 8080", "unrecognized arguments: --prot (did you mean --port?)"),
    ("serve-missing-knowledge-file", "dialogft_serve -mf {model} --knowledge-retriever bm25 --knowledge-file {tmp}/faq.jsonl",
     "--knowledge-file {tmp}/faq.jsonl: no such file"),
    ("serve-open-host-without-keys", "dialogft_serve -mf {model} --host 0.0.0.0",
     "--host 0.0.0.0 lets other machines connect: give --serve-api-keys"),
    # human evaluation
    ("human-eval-missing-pairings", "dialogft_human_eval --he-db {tmp}/he.sqlite --he-pairings {tmp}/nope.jsonl",
     "{tmp}/nope.jsonl: no such pairings file"),
    ("human-eval-unknown-flag", "dialogft_human_eval --he-dbb {tmp}/he.sqlite",
     "unrecognized arguments: --he-dbb (did you mean --he-db?)"),
    ("human-eval-analysis-missing-db", "dialogft_human_eval_analysis --he-db {tmp}/nope.sqlite --he-out {tmp}/hea",
     "--he-db {tmp}/nope.sqlite: no such file"),
    ("human-eval-analysis-no-out", "dialogft_human_eval_analysis --he-db {tmp}/nope.sqlite",
     "--he-out is required"),
]


@pytest.fixture(scope="module")
def places(tiny_models, tmp_path_factory):
    from tests.support.agents import train_briefly

    tmp = tmp_path_factory.mktemp("cli")
    datapath = str(tmp / "data")
    model = str(tmp / "trained" / "model")
    train_briefly(tiny_models["t5"], model, datapath, steps=1)
    # A vision model's config beside a text tokenizer: loads, but cannot generate replies.
    from transformers import ViTConfig

    vit = tmp / "vit"
    shutil.copytree(tiny_models["t5"], vit)
    os.remove(vit / "config.json")
    ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8).save_pretrained(vit)
    (tmp / "a-file").write_text("not a folder")
    return dict(tmp=str(tmp), t5=tiny_models["t5"], vit=str(vit), model=model, new=str(tmp / "new" / "model"),
                datapath=datapath)


@pytest.fixture(scope="module")
def outcomes(places):
    """Every row run once, three at a time (each is a separate `parlai` process)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")

    def run(row):
        row_id, command, _ = row
        args = command.format(**places).split() + ["--datapath", places["datapath"]]
        if args[0].startswith("dialogft_") and args[0] != "dialogft_serve":
            args = args[:-2]  # export and report take only their own flags
        return row_id, subprocess.run([PARLAI, *args], capture_output=True, text=True, env=env, timeout=600)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(run, TABLE))


@pytest.mark.slow
@pytest.mark.parametrize("row_id, command, message", TABLE, ids=[row[0] for row in TABLE])
def test_a_mistake_gets_one_line_and_a_failing_exit(outcomes, places, row_id, command, message):
    done = outcomes[row_id]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    # The last line: a warning from an unrelated import may come before it.
    last = done.stderr.strip().splitlines()[-1]
    assert message.format(**places) in last
    script = command.split()[0]
    assert last.startswith((f"parlai {script}: ", f"{script}: "))


def test_a_full_disk_fails_before_training_with_the_folder(tiny_models, tmp_path, monkeypatch, capsys):
    """Disk space is checked when the agent is built: no step runs, no file is written."""
    import collections

    from parlai.core.script import superscript_main

    model_file = tmp_path / "m" / "model"
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(SystemExit) as stop:
        superscript_main(["train_model", "-t", "integration_tests", "-m", "dialogft_agent",
                          "--hf-model", tiny_models["t5"], "-mf", str(model_file),
                          "--datapath", str(tmp_path / "data")])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"parlai train_model: -mf {model_file}: {model_file.parent} has 1000 B free")
    assert "a checkpoint of this model needs about" in last
    assert not model_file.exists()


def test_an_error_that_is_a_bug_keeps_its_traceback(monkeypatch):
    """Only recognised user mistakes are shortened; anything else must stay debuggable."""
    from parlai_dialogft.plugin.cli_errors import user_message

    assert user_message(ModuleNotFoundError("No module named 'numpy_extra'", name="numpy_extra")) is None
    assert user_message(ModuleNotFoundError("x", name="parlai.tasks.dialogft_customer.helpers")) is None
    assert user_message(RuntimeError("cannot reshape tensor")) is None
    assert user_message(ZeroDivisionError()) is None


def test_an_unwritable_model_folder_fails_before_training_with_the_folder(tiny_models, tmp_path, monkeypatch, capsys):
    """Permissions cannot be taken from root, so the check itself is told the folder is read-only."""
    from parlai.core.script import superscript_main

    folder = tmp_path / "read-only"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(folder) else real_access(path, mode))
    with pytest.raises(SystemExit) as stop:
        superscript_main(["train_model", "-t", "integration_tests", "-m", "dialogft_agent",
                          "--hf-model", tiny_models["t5"], "-mf", str(folder / "model"),
                          "--datapath", str(tmp_path / "data")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"parlai train_model: -mf {folder / 'model'}: the folder {folder} is not writable"
    )
    assert list(folder.iterdir()) == []
