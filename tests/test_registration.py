"""After installation, ParlAI's own `parlai` command finds our names with no flags or env.

These run real subprocesses in a clean environment (``env -i``), as a user's fresh shell.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support.processes import fresh_shell

REPO = Path(__file__).resolve().parents[1]


def test_importing_the_package_is_cheap(tmp_path):
    code = "import sys, parlai_dialogft; print(sorted({'torch', 'transformers', 'parlai'} & set(sys.modules)))"
    out = fresh_shell(["python", "-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_import_hook_runs_at_interpreter_start(tmp_path):
    code = "import sys; print([type(f).__name__ for f in sys.meta_path].count('DialogftFinder'))"
    out = fresh_shell(["python", "-c", code], tmp_path)
    assert out.stdout.strip() == "1"  # installed, and once even if the .pth runs twice


STOCK_CHECK = (
    "import sys, parlai.nn.lr_scheduler as lr, parlai.core.dict as d\n"
    "print([type(f).__name__ for f in sys.meta_path].count('DialogftFinder'),"
    " hasattr(lr, '_dialogft_patched'), hasattr(d, '_dialogft_patched'))"
)


def test_the_off_switch_leaves_stock_parlai_untouched(tmp_path):
    on = fresh_shell(["python", "-c", STOCK_CHECK], tmp_path)
    assert on.stdout.split() == ["1", "True", "True"], on.stderr
    off = fresh_shell(["python", "-c", STOCK_CHECK], tmp_path, env={"PARLAI_DIALOGFT_DISABLE": "1"})
    assert off.stdout.split() == ["0", "False", "False"], off.stderr
    doctor = fresh_shell(["python", "-m", "parlai_dialogft"], tmp_path, env={"PARLAI_DIALOGFT_DISABLE": "1"})
    assert "PARLAI_DIALOGFT_DISABLE is set" in doctor.stdout


@pytest.mark.parametrize("disable", ["", "1"])
def test_the_agent_loads_by_its_module_path_as_parlai_allows(tmp_path, disable):
    code = ("from parlai.core.loader import load_agent_module\n"
            "print(load_agent_module('parlai_dialogft.agents.dialogft_agent.dialogft_agent:DialogftAgent').__name__)")
    out = fresh_shell(["python", "-c", code], tmp_path, env={"PARLAI_DIALOGFT_DISABLE": disable})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "DialogftAgent"


def test_the_doctor_lists_every_patch(tmp_path):
    from parlai_dialogft.plugin.compat import PATCHES

    out = fresh_shell(["python", "-m", "parlai_dialogft"], tmp_path)
    assert out.returncode == 0, out.stderr
    listed = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("  parlai.")]
    assert listed == list(PATCHES)


def test_the_doctor_stops_quietly_when_its_reader_goes_away(tmp_path):
    # As under `| head -1`; `true` closes the pipe before the doctor writes anything, so the
    # write fails every time: no traceback, and the pipeline succeeds.
    out = fresh_shell(["bash", "-o", "pipefail", "-c", "python -m parlai_dialogft | true"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


def _doctor_without(module: str, cwd):
    """`python -m parlai_dialogft` in a fresh shell where ``module`` cannot be imported."""
    code = (
        f"import sys, runpy; sys.modules[{module!r}] = None; "
        "runpy.run_module('parlai_dialogft', run_name='__main__')"
    )
    return fresh_shell(["python", "-c", code], cwd)


def test_a_missing_parlai_is_one_line_saying_how_to_install_it(tmp_path):
    out = _doctor_without("parlai", tmp_path)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "pip install --no-deps parlai==1.7.2" in lines[0]


def test_a_broken_parlai_names_the_missing_module(tmp_path):
    out = _doctor_without("pkg_resources", tmp_path)
    assert out.returncode == 1
    assert "missing module 'pkg_resources'" in out.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_train_eval_and_chat_through_the_parlai_command(tiny_models, tmp_path):
    mf = tmp_path / "m" / "model"  # the folder does not exist yet: the agent creates it
    # No --hf-model: the default, the pretrained zoo:dialogft/bilingual_t5, which answers in words.
    train = fresh_shell(
        ["parlai", "train_model", "-t", "dialogft_customer", "-m", "dialogft_agent",
         "-mf", str(mf), "-tstep", "4", "-bs", "4",
         "-vtim", "30", "-vme", "8", "--datapath", str(tmp_path / "data")],
        tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert mf.exists() and (tmp_path / "m" / "model.hf" / "tokenizer.json").exists()

    # -mf alone: the saved opt says "dialogft_agent", and the hook resolves it again.
    evaluate = fresh_shell(
        ["parlai", "eval_model", "-mf", str(mf), "-t", "dialogft_customer", "--num-examples", "8",
         "--datapath", str(tmp_path / "data"), "--report-filename", str(tmp_path / "eval.json")],
        tmp_path,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    # The saved report: ParlAI prints JSON or, where pandas is installed, a table.
    assert json.loads((tmp_path / "eval.json").read_text())["report"]["exs"] == 8

    chat = fresh_shell(
        ["parlai", "interactive", "-mf", str(mf), "--datapath", str(tmp_path / "data")],
        tmp_path, input="I need a hotel in the north of town.\n[EXIT]\n",
    )
    assert chat.returncode == 0, chat.stderr[-3000:]
    replies = re.findall(r"\[Dialogft\]: (.*)", chat.stdout)
    assert len(replies) == 1 and re.search(r"[A-Za-z]{2}", replies[0]), chat.stdout[-2000:]

    display = fresh_shell(
        ["parlai", "display_model", "-mf", str(mf), "-t", "dialogft_customer", "-n", "1",
         "--datapath", str(tmp_path / "data")],
        tmp_path,
    )
    assert display.returncode == 0, display.stderr[-3000:]
    assert "labels:" in display.stdout and "model:" in display.stdout

    selfchat = fresh_shell(
        ["parlai", "self_chat", "-mf", str(mf), "--num-self-chats", "1", "--selfchat-max-turns", "2",
         "--outfile", str(tmp_path / "selfchat"), "--datapath", str(tmp_path / "data")],
        tmp_path,
    )
    assert selfchat.returncode == 0, selfchat.stderr[-3000:]
    assert (tmp_path / "selfchat.jsonl").exists()


@pytest.mark.slow
def test_a_regular_non_editable_install_registers_the_names(tmp_path):
    """Build a wheel-style install into a new venv that sees our dependencies but not the
    editable install (its .pth files are not processed there)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.check_output(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         "--no-deps", "--no-build-isolation", str(REPO)],
        check=True, capture_output=True, timeout=600,
    )
    installed = sorted(p.name for p in site.iterdir())
    assert "parlai_dialogft.pth" in installed
    assert not {"agents", "tasks", "zoo"} & set(installed)  # one import name only
    assert (site / "parlai_dialogft" / "agents" / "dialogft_agent" / "dialogft_agent.py").exists()
    # Data files travel too: the corpora the teachers read and the served chat page.
    assert (site / "parlai_dialogft" / "data" / "corpora" / "sgd" / "LICENSE.txt").exists()
    assert list((site / "parlai_dialogft" / "data" / "corpora" / "sgd" / "train").glob("*.json.gz"))
    assert (site / "parlai_dialogft" / "serving" / "static" / "index.html").exists()

    out = fresh_shell(["python", "-m", "parlai_dialogft"], tmp_path, python_bin=venv / "bin")
    assert out.returncode == 0, out.stderr[-3000:]
    assert str(site) in subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import parlai_dialogft; print(parlai_dialogft.__file__)"],
        capture_output=True, text=True).stdout
    assert "-m dialogft_agent    -> parlai_dialogft.agents.dialogft_agent.dialogft_agent" in out.stdout


def test_a_script_with_a_missing_dependency_costs_only_that_script(monkeypatch):
    import importlib

    from parlai_dialogft import scripts

    real_import = importlib.import_module
    imported = []

    def import_module(name, *args, **kwargs):
        if name.endswith("dialogft_report"):
            raise ImportError("No module named 'matplotlib'")
        imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.warns(UserWarning, match="parlai dialogft_report is unavailable: No module named 'matplotlib'"):
        scripts.register_all()
    assert "parlai_dialogft.scripts.dialogft_export" in imported
