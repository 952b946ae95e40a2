"""`parlai dialogft_report`: curves, a metric table and sample dialogues from a trained model."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.agents import train_briefly
from tests.support.files import png_is_drawn

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory):
    """A model trained 6 updates with a validation every 2 and a train log every update."""
    root = tmp_path_factory.mktemp("report")
    mf = str(root / "m" / "model")
    train_briefly(
        tiny_models["t5"], mf, str(root / "data"), steps=6, task="dialogft_customer",
        validation_every_n_steps=2, log_every_n_steps=1,
    )
    return mf, root


@pytest.fixture(scope="module")
def report(trained):
    """The report on the Chinese customer-service splits, as report.md text and its folder."""
    from parlai_dialogft.evaluation.report import ReportOptions, build

    mf, root = trained
    out = root / "report"
    path = build(ReportOptions(mf, "dialogft_customer:lang=zh", str(out), max_exs=8, samples=3, batchsize=4))
    return open(path, encoding="utf-8").read(), out


def test_the_markdown_links_valid_png_plots(report):
    from PIL import Image

    text, out = report
    linked = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", text)
    assert linked == ["training_curves.png", "validation.png", "reply_lengths.png"]
    for name in linked:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(out / name) as image:
            image.verify()
            assert image.format == "PNG"
            assert image.size[0] >= 400 and image.size[1] >= 300
        assert png_is_drawn(out / name), name


def test_reply_lengths_are_plotted_per_split_from_the_evaluated_replies(report):
    """One dot per evaluated example, at (reference length, reply length)."""
    from parlai_dialogft.evaluation.report import _lengths
    from parlai_dialogft.evaluation.report_eval import Sample, SplitResult

    result = SplitResult("test", {}, [Sample(["hi"], "我想订酒店", "red green blue"), Sample(["hi"], "one two", "")])
    assert _lengths([result]) == {"test": [(5, 3), (2, 0)]}
    text, _ = report
    assert "## Reply length" in text and text.index("## Metrics") < text.index("## Reply length")


def test_the_metric_table_has_a_number_per_split(report):
    text, _ = report
    assert "| metric | what it measures | valid | test |" in text
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w-]+)` \| [^|]+ \| (.+) \|$", text, re.M)}
    for name in ("exs", "ppl", "loss", "token_acc", "f1", "bleu-4", "sacrebleu", "rouge-L", "dist-1", "len"):
        cells = [c.strip() for c in rows[name].split("|")]
        assert len(cells) == 2 and all(re.fullmatch(r"[\d,]+(\.\d+)?", c) for c in cells), (name, cells)
    assert rows["exs"].split("|")[0].strip() == "8"  # bounded by max_exs, a multiple of the batch


def test_samples_show_chinese_context_reference_and_reply_side_by_side(report):
    text, _ = report
    for split in ("valid", "test"):
        section = text.split(f"### {split}\n", 1)[1].split("\n\n", 1)[0].strip()
        lines = section.splitlines()
        assert lines[0] == "| # | context | reference | model reply |"
        samples = lines[2:]
        assert len(samples) == 3
        for line in samples:
            _index, context, reference, reply = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            assert CJK.search(context) and CJK.search(reference)
            assert "\ufffd" not in context + reference  # decoded as UTF-8, never mangled
            assert reply  # a reply, or "*(empty)*" when the tiny model says nothing
            # (a random tiny model's reply may itself be broken bytes, shown as they are)


def test_the_summary_says_which_update_the_weights_are_from(report):
    text, _ = report
    assert "| training | 6 updates, batch size 4" in text
    # dialogft_agent keeps the best validation ppl (minimised) by default.
    assert re.search(r"\| weights kept \| update [246]: the best validation `ppl` \(minimised\)", text)


def test_cells_escape_table_and_html_syntax():
    from parlai_dialogft.evaluation.report import md_cell

    assert md_cell("a | b <pad>\n\nc *d*") == r"a \| b &lt;pad&gt;<br>c \*d\*"
    assert md_cell("") == "*(empty)*"
    assert md_cell("你" * 1000, keep_end=True).startswith("…你")


def _run_report(*args):
    return subprocess.run(
        [sys.executable, "-m", "parlai", "dialogft_report", *args], capture_output=True, text=True, timeout=300
    )


def test_missing_model_and_bad_task_fail_with_one_line(trained, tmp_path):
    mf, _ = trained
    missing = _run_report("-mf", str(tmp_path / "nope"), "-t", "dialogft_customer", "--out", str(tmp_path / "r"))
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[-1] == f"dialogft_report: -mf {tmp_path / 'nope'}: no such model file"

    bad_task = _run_report("-mf", mf, "-t", "no_such_task", "--out", str(tmp_path / "r"))
    assert bad_task.returncode != 0
    last = bad_task.stderr.strip().splitlines()[-1]
    assert last.startswith("dialogft_report: -t no_such_task: no such task")
    assert "Traceback" not in bad_task.stderr
    assert not (tmp_path / "r").exists()


def test_the_command_ends_with_a_summary_a_newcomer_reads(trained, tmp_path):
    """Metrics each with what it means, a few exchanges, and where things are; with the
    decoding given on the command line instead of the model's own."""
    mf, _ = trained
    out = tmp_path / "r"
    done = _run_report("-mf", mf, "-t", "dialogft_customer", "--out", str(out), "--report-max-exs", "6",
                       "--report-batchsize", "3", "--inference", "beam", "--beam-size", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert done.stdout.endswith(summary)
    assert summary.startswith("Metrics on the first 6 test examples:")
    assert re.search(r"\n  f1 +\d\.\d{3}   word overlap with the reference reply", summary)
    assert re.search(r"\n  ppl +\d+\.\d   perplexity of the reference reply", summary)
    assert summary.count("\n  user:      ") == 3 and summary.count("\n  model:     ") == 3
    assert f"Model:  {mf}" in summary and f"Report: {out / 'report.md'}" in summary
    assert f"Chat:   parlai interactive -mf {mf} --inference beam --beam-size 2" in summary
    assert "| decoding | beam, beam size 2," in (out / "report.md").read_text(encoding="utf-8")
    # Not a terminal: the evaluation's progress as log lines.
    assert "dialogft_report: valid: 6/6 examples" in done.stdout


def test_the_summary_shows_task_success_and_the_round_behind_a_reply():
    from parlai_dialogft.evaluation import report_summary
    from parlai_dialogft.evaluation.report_eval import Sample, SplitResult

    sample = Sample(["I need a cheap hotel in the north"], "city centre north b and b is cheap .",
                    "city centre north b and b is a cheap guesthouse .",
                    "APICALL: api_name = find_hotel ; area = north ; pricerange = cheap",
                    "APIRESP: count = 2 ; name = city centre north b and b")
    result = SplitResult("test", {"f1": 0.4, "inform": 0.8, "success": 0.5, "jga": 0.3, "exs": 1}, [sample])
    text = report_summary.text("/tmp/m/model", "/tmp/m/report/report.md", [result], samples=1,
                               decoding={"task_db": "multiwoz"})
    lines = text.splitlines()
    assert any(line.split()[:2] == ["inform", "0.800"] for line in lines)
    assert any(line.split()[:2] == ["jga", "0.300"] for line in lines)
    call = next(i for i, line in enumerate(lines) if line.strip().startswith("call:"))
    assert "find_hotel" in lines[call] and "count = 2" in lines[call + 1] and lines[call + 2].strip().startswith("model:")
    assert text.rstrip().endswith("--task-db multiwoz")


def test_task_success_is_reported_on_whole_dialogues_spread_over_the_split(trained):
    """With a batch of 4, the first examples of a split end no dialogue; --report-dialogues
    plays each chosen dialogue to its end, so Inform is measured on every one of them."""
    from parlai_dialogft.evaluation.report import ReportOptions, build

    mf, root = trained
    out = root / "dialogues"
    build(ReportOptions(mf, "dialogft_customer:end_to_end:sources=multiwoz", str(out), batchsize=4, dialogues=3,
                        decoding={"inference": "greedy", "task_db": "multiwoz"}))
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert re.match(r"Metrics on \d+ test examples \(3 whole dialogues\):", summary)
    assert re.search(r"\n  inform +\d\.\d{3} ", summary)
    metrics = (out / "metrics.json").read_text(encoding="utf-8")
    assert metrics.count('"inform"') == 2  # valid and test


def test_whole_dialogues_are_refused_for_a_task_without_them(trained, tmp_path):
    mf, _ = trained
    done = _run_report("-mf", mf, "-t", "dialogft_customer", "--out", str(tmp_path / "r"), "--report-dialogues", "3")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith(
        "dialogft_report: --report-dialogues: -t dialogft_customer is not a task-oriented task")
