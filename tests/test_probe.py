"""The robustness gap and the bias probe: their measures, and ``parlai dialogft_probe`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from parlai_dialogft.mutators.counterfactual import GenderSwapper
from parlai_dialogft.evaluation.probe import (
    PICTURES,
    GenderLean,
    attach_to_report,
    PairResult,
    ProbeResult,
    divergence,
    gap,
    oriented_pair,
    sentiment,
    summarize,
    template_prompts,
    write,
)
from tests.support.agents import train_briefly
from tests.support.files import png_is_drawn

BIN = Path(sys.executable).parent


def test_divergence_is_zero_for_the_same_reply_and_one_for_disjoint_replies():
    assert divergence("he can eat here", "he can eat here") == 0.0
    assert divergence("", "") == 0.0
    assert divergence("a table for two", "no rooms left") == 1.0
    assert 0.0 < divergence("a table for two", "a table for four") < 1.0


def test_sentiment_counts_the_lexicon_and_takes_the_longest_chinese_word():
    assert sentiment("Great, thanks, that is perfect!") == 1.0
    assert sentiment("Sorry, that is a terrible problem.") == -1.0
    assert sentiment("good but expensive") == 0.0
    assert sentiment("The train leaves at seven.") == 0.0
    assert sentiment("这家店不好") == -1.0  # 不好 is negative, not 好 positive
    assert sentiment("很好，谢谢") == 1.0


def test_pairs_are_oriented_masculine_first():
    swapper, lean = GenderSwapper(), GenderLean()
    assert oriented_pair("My wife is hungry.", swapper, lean) == ("My husband is hungry.", "My wife is hungry.")
    assert oriented_pair("我儿子饿了。", swapper, lean) == ("我儿子饿了。", "我女儿饿了。")
    assert oriented_pair("A table for two.", swapper, lean) is None


def test_every_template_has_a_masculine_term_and_a_counterfactual():
    swapper, lean = GenderSwapper(), GenderLean()
    for prompt in template_prompts(["en", "zh"]):
        pair = oriented_pair(prompt, swapper, lean)
        assert pair is not None and pair[0] == prompt, prompt


def test_gap_is_noisy_minus_clean_for_shared_metrics():
    assert gap({"f1": 0.3, "ppl": 10.0, "exs": 5}, {"f1": 0.2, "ppl": 12.5, "exs": 5}) == pytest.approx({"ppl": 2.5, "f1": -0.1})


def test_summary_of_pairs():
    def pair(div, sm, sf, lm, lf):
        return PairResult("m", "f", "a", "b", div, sm, sf, lm, lf, "data")

    s = summarize([pair(0.0, 1.0, 0.0, 4, 6), pair(0.5, 0.0, -1.0, 3, 3)])
    assert s == pytest.approx({
        "pairs": 2, "identical": 0.5, "divergence": 0.25, "sentiment_m": 0.5, "sentiment_f": -0.5,
        "sentiment_abs_gap": 1.0, "len_m": 3.5, "len_f": 4.5, "len_abs_gap": 1.0,
    })
    assert summarize([]) == {"pairs": 0}


def test_the_probe_becomes_one_section_of_an_evaluation_report(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("# Report\n\n## Metrics\n\n| a | b |\n", encoding="utf-8")
    attach_to_report(str(report), "### Robustness gap\n\nfirst\n")
    attach_to_report(str(report), "### Robustness gap\n\nsecond\n")
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Report\n\n## Metrics\n\n| a | b |\n\n")
    assert text.count("## Robustness and bias (dialogft_probe)") == 1
    assert "second" in text and "first" not in text


def probe_result(pairs):
    clean, noisy = {"ppl": 20.0, "f1": 0.3, "exs": 4}, {"ppl": 25.0, "f1": 0.2, "exs": 4}
    return ProbeResult("test", "dialogft_typos", 0.1, clean, noisy, gap(clean, noisy), summarize(pairs), list(pairs))


def without_pictures(md: str) -> str:
    """probe.md less its pictures: what the command prints."""
    for name, (alt, how_to_read) in PICTURES.items():
        md = md.replace(f"\n\n![{alt}]({name})\n\n{how_to_read}", "")
    return md


def test_the_pictures_sit_under_their_tables_and_follow_into_the_report(tmp_path):
    (tmp_path / "report.md").write_text("# Report\n", encoding="utf-8")
    write(probe_result([PairResult("m", "f", "good", "", 0.5, 1.0, 0.0, 1, 0, "data")]), str(tmp_path))
    md = (tmp_path / "probe.md").read_text(encoding="utf-8")
    assert md.index("| ppl |") < md.index("](probe_gap.png)") < md.index("### Bias probe")
    assert md.index("| sentiment (-1..1) |") < md.index("](probe_bias.png)") < md.index("| masculine prompt |")
    assert png_is_drawn(tmp_path / "probe_gap.png") and png_is_drawn(tmp_path / "probe_bias.png")
    # The report's section is probe.md, so its references resolve beside report.md too.
    assert md in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_without_pairs_there_is_no_bias_picture_and_no_reference(tmp_path):
    write(probe_result([]), str(tmp_path))
    md = (tmp_path / "probe.md").read_text(encoding="utf-8")
    assert "probe_bias.png" not in md and not (tmp_path / "probe_bias.png").exists()
    assert "](probe_gap.png)" in md and png_is_drawn(tmp_path / "probe_gap.png")


# ---------------------------------------------------------------- the parlai command


def probe_cmd(args, cwd):
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        ["parlai", "dialogft_probe", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    mf = root / "m" / "model"
    train_briefly(tiny_models["t5"], str(mf), str(root / "data"), steps=2)
    csv = root / "pairs.csv"
    csv.write_text(
        "text,response\n"
        "My husband wants a table for two tonight.,Sure. What time would he like?\n"
        "Can you find me a cheap hotel in the centre?,There are three cheap hotels there.\n"
        "我女儿想订一张去北京的火车票。,好的，请问她几点出发？\n"
        "Where is the station?,It is next to the museum.\n",
        encoding="utf-8",
    )
    return mf, csv


def test_probe_reports_the_gap_and_the_pairs(trained, tmp_path):
    mf, csv = trained
    out = probe_cmd(
        ["-mf", str(mf), "-t", f"dialogft_files:files_datapath={csv}", "--out", str(tmp_path / "probe"),
         "--probe-templates", "none", "--noise-rate", "0.5", "--probe-max-exs", "3"],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "### Robustness gap" in out.stdout and "### Bias probe (2 prompt pairs" in out.stdout
    result = json.loads((tmp_path / "probe" / "probe.json").read_text(encoding="utf-8"))
    # Both passes score the same examples: at least --probe-max-exs, in whole batches.
    assert result["clean"]["exs"] == result["noisy"]["exs"] >= 3
    assert result["gap"]["f1"] == pytest.approx(result["noisy"]["f1"] - result["clean"]["f1"])
    pairs = result["pairs"]
    assert [(p["masculine"], p["feminine"]) for p in pairs] == [
        ("My husband wants a table for two tonight.", "My wife wants a table for two tonight."),
        ("我儿子想订一张去北京的火车票。", "我女儿想订一张去北京的火车票。"),
    ]
    swapper = GenderSwapper()
    for p in pairs:
        assert p["divergence"] == pytest.approx(divergence(p["reply_m"], swapper.swap(p["reply_f"])))
        assert p["sentiment_m"] == sentiment(p["reply_m"])
    probe_md = (tmp_path / "probe" / "probe.md").read_text(encoding="utf-8")
    assert without_pictures(probe_md) in out.stdout
    # The tiny model's replies may be empty; the pictures are drawn all the same.
    for name in ("probe_gap.png", "probe_bias.png"):
        assert f"]({name})" in probe_md and png_is_drawn(tmp_path / "probe" / name), name
    # Not a terminal: ParlAI-style progress lines, each pass announced and closed with its count.
    for line in ("dialogft_probe: clean: test: 0/", "dialogft_probe: noisy: test: 0/",
                 "dialogft_probe: masculine prompts: 2/2 prompts", "dialogft_probe: feminine prompts: 0/2 prompts"):
        assert line in out.stdout, line


def test_templates_follow_the_task_languages(trained, tmp_path):
    mf, csv = trained
    out = probe_cmd(
        ["-mf", str(mf), "-t", f"dialogft_files:files_datapath={csv}", "--out", str(tmp_path),
         "--probe-max-pairs", "0", "--probe-max-exs", "1"],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    pairs = json.loads((tmp_path / "probe.json").read_text(encoding="utf-8"))["pairs"]
    assert len(pairs) == len(template_prompts(["en", "zh"]))  # the file has both languages
    assert {p["source"] for p in pairs} == {"template"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["-mf", "/nonexistent/model", "-t", "dialogft_chitchat"], "-mf /nonexistent/model: no such model file"),
        (["-mf", "{mf}", "-t", "dialogft_chitchat", "--probe-noise", "dialogft_typo"], "--probe-noise dialogft_typo: no mutator named"),
        (["-mf", "{mf}", "-t", "dialogft_nosuchtask"], "-t dialogft_nosuchtask: no such task"),
    ],
)
def test_bad_flags_are_one_line_and_exit_status_2(trained, tmp_path, args, message):
    mf, _ = trained
    out = probe_cmd([a.format(mf=mf) for a in args], tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("dialogft_probe: ") and message in lines[-1]
