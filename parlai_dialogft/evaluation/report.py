"""A trained model as a Markdown report with PNG plots, for a reader who did not train it.

    parlai dialogft_report -mf /tmp/m/model -t dialogft_customer --out /tmp/m/report
    # -> /tmp/m/report/report.md, training_curves.png, validation.png, reply_lengths.png,
    #    metrics.json, summary.txt (what the command prints at the end)

The report has four parts: what was trained (base model, task, steps, decoding settings);
the curves ParlAI kept in ``MODEL.trainstats`` (:mod:`parlai_dialogft.evaluation.report_plots`); a
metric table from a fresh evaluation on the task's valid and test splits, bounded by
``max_exs``; and sample dialogues, reference and model reply side by side
(:mod:`parlai_dialogft.evaluation.report_eval`). The Markdown is UTF-8 and escapes table syntax, so
Chinese and odd characters in dialogues show as they are.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from parlai_dialogft.evaluation import report_summary
from parlai_dialogft.evaluation.report_eval import Sample, SplitResult, evaluate_split, load_generator, spread
from parlai_dialogft.evaluation.report_plots import (
    Curves,
    kept_update,
    load_curves,
    metric_mode,
    plot_loss,
    plot_reply_lengths,
    plot_validation,
)
from parlai_dialogft.evaluation.text import cjk_aware_tokenize
from parlai_dialogft.utils.errors import UserError

SPLITS = ("valid", "test")
LOSS_PNG = "training_curves.png"
VALID_PNG = "validation.png"
LENGTHS_PNG = "reply_lengths.png"
SUMMARY_TXT = "summary.txt"  # the terminal summary (report_summary), also printed by the script

#: Rows of the metric table, in order, with what each measures. Metrics a run did not
#: record (another teacher, ``--metrics`` narrowed) are left out of the table.
METRIC_ROWS = (
    ("exs", "examples evaluated"),
    ("ppl", "perplexity of the reference reply (lower is better)"),
    ("loss", "cross-entropy per reference token (lower is better)"),
    ("token_acc", "share of reference tokens predicted exactly, given the ones before"),
    ("f1", "token overlap F1 with the reference (Chinese: per character)"),
    ("bleu-1", "sentence BLEU up to 1-grams, averaged over replies, 0-1"),
    ("bleu-2", "sentence BLEU up to 2-grams, 0-1"),
    ("bleu-3", "sentence BLEU up to 3-grams, 0-1"),
    ("bleu-4", "sentence BLEU up to 4-grams, 0-1"),
    ("sacrebleu", "corpus BLEU as papers report it, 0-100"),
    ("rouge-1", "ROUGE-1 F, 0-1"),
    ("rouge-2", "ROUGE-2 F, 0-1"),
    ("rouge-L", "ROUGE-L F (longest common subsequence), 0-1"),
    ("accuracy", "reply equals the reference exactly"),
    ("dist-1", "distinct unigrams over all replies (diversity), 0-1"),
    ("dist-2", "distinct bigrams over all replies (diversity), 0-1"),
    ("len", "mean reply length in tokens"),
    ("rep", "share of a reply's bigrams that repeat (lower is better)"),
)
CONTEXT_TURNS = 3  # the last turns of a context a sample shows
MAX_CELL_CHARS = 400


class ReportError(UserError):
    """What stops a report; the message names the flag or file to fix."""


@dataclass
class ReportOptions:
    model_file: str
    task: str
    out: str
    max_exs: int = 300  # per split; a CPU generates a few hundred replies in minutes
    samples: int = 5  # sample dialogues per split
    batchsize: int = 16
    #: Whole dialogues per split instead of ``max_exs`` examples, spread over the split (a
    #: shuffle with a fixed seed): task success is scored per dialogue, and with a batch of 16
    #: the first examples of a split finish no dialogue. Task-oriented tasks only.
    dialogues: int = 0
    #: Decoding flags that replace the model's own for this evaluation, e.g.
    #: {"inference": "beam", "beam_size": 4}; empty: decode as the model was saved.
    decoding: Dict[str, Any] = field(default_factory=dict)


def check(options: ReportOptions) -> None:
    """Fail before loading anything, with one line naming the flag."""
    if not options.model_file:
        raise ReportError("-mf/--model-file is required: the model to report on")
    if not os.path.exists(options.model_file):  # a folder: a zoo:dialogft/... entry
        raise ReportError(f"-mf {options.model_file}: no such model file")
    if not os.path.isfile(options.model_file + ".opt"):
        raise ReportError(f"-mf {options.model_file}: {options.model_file}.opt is missing, so this is not a ParlAI model")
    if not options.task:
        raise ReportError("-t/--task is required: the task whose valid and test splits to evaluate")
    if not options.out:
        raise ReportError("--out is required: the folder to write the report to")
    if options.max_exs <= 0:
        raise ReportError(f"--report-max-exs {options.max_exs}: must be positive")
    if options.dialogues < 0:
        raise ReportError(f"--report-dialogues {options.dialogues}: must be positive (0: --report-max-exs examples)")
    from parlai.core.loader import load_teacher_module

    from parlai_dialogft.tod.teachers import CustomerTodParser

    for task in options.task.split(","):
        try:
            teacher = load_teacher_module(task)
        except Exception as exc:  # ParlAI raises whatever its import or lookup hit
            raise ReportError(f"-t {task}: no such task ({type(exc).__name__}: {exc})") from None
        if options.dialogues and not issubclass(teacher, CustomerTodParser):
            raise ReportError(f"--report-dialogues: -t {task} is not a task-oriented task "
                              "(e.g. dialogft_customer:end_to_end); use --report-max-exs")


def build(options: ReportOptions) -> str:
    """Evaluate, plot and write ``report.md`` under ``options.out``; returns its path."""
    check(options)
    os.makedirs(options.out, exist_ok=True)
    trained = _trained_opt(options.model_file)
    dialogues = {"n_shot": options.dialogues, "episodes_randomization_seed": 0} if options.dialogues else {}
    agent, opt = load_generator(options.model_file, options.task, options.batchsize, **dialogues, **options.decoding)
    max_exs = 10**9 if options.dialogues else options.max_exs
    results = [evaluate_split(agent, opt, split, max_exs, "dialogft_report") for split in SPLITS]

    curves = load_curves(options.model_file)
    validation_metric = trained.get("validation_metric") or "accuracy"
    plots = _plots(curves, validation_metric, trained.get("validation_metric_mode"), options.out)
    if plot_reply_lengths(_lengths(results), os.path.join(options.out, LENGTHS_PNG)):
        plots[LENGTHS_PNG] = ["len"]

    text = render(options, trained, agent.opt, curves, plots, results, validation_metric)
    path = os.path.join(options.out, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(options.out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({r.split: r.metrics for r in results}, f, indent=1, ensure_ascii=False)
    with open(os.path.join(options.out, SUMMARY_TXT), "w", encoding="utf-8") as f:
        f.write(report_summary.text(options.model_file, path, results, decoding=options.decoding,
                                    dialogues=options.dialogues))
    return path


def _lengths(results: List[SplitResult]) -> Dict[str, List[tuple]]:
    """(reference, reply) lengths in tokens as the metrics count them (Chinese: characters)."""
    return {
        r.split: [(len(cjk_aware_tokenize(s.reference)), len(cjk_aware_tokenize(s.reply))) for s in r.samples]
        for r in results
    }


def _trained_opt(model_file: str) -> dict:
    with open(model_file + ".opt", encoding="utf-8") as f:
        return json.load(f)


def _plots(curves: Optional[Curves], validation_metric: str, mode, out: str) -> Dict[str, List[str]]:
    """Which PNGs were written: {file name: the metrics drawn}."""
    if curves is None or curves.empty:
        return {}
    plots: Dict[str, List[str]] = {}
    if plot_loss(curves, os.path.join(out, LOSS_PNG)):
        plots[LOSS_PNG] = ["loss", "ppl"]
    kept = kept_update(curves, validation_metric, metric_mode(validation_metric, mode))
    drawn = plot_validation(curves, validation_metric, os.path.join(out, VALID_PNG), kept)
    if drawn:
        plots[VALID_PNG] = drawn
    return plots


# --- Markdown ----------------------------------------------------------------------------


def md_cell(text: str, keep_end: bool = False) -> str:
    """``text`` safe inside a Markdown table cell: one line, no table or HTML syntax."""
    text = str(text)
    if len(text) > MAX_CELL_CHARS:
        cut = MAX_CELL_CHARS - 1
        text = "…" + text[-cut:] if keep_end else text[:cut] + "…"
    # Backslash first: the later escapes add backslashes of their own. `*_[] would turn
    # dialogue text into code, emphasis or links; <pad> would vanish as an HTML tag.
    text = text.replace("\\", "\\\\")
    for char in "`*_[]|":
        text = text.replace(char, "\\" + char)
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, entity)
    lines = [line.strip() for line in text.splitlines()]
    return "<br>".join(line for line in lines if line) or "*(empty)*"


def format_number(name: str, value) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    if name == "exs":
        return f"{int(value):,}"
    if name in ("ppl", "sacrebleu", "len"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def render(options, trained, opt, curves, plots, results: List[SplitResult], validation_metric) -> str:
    lines = [f"# Model report: `{os.path.basename(options.model_file)}`", ""]
    lines += _summary(options, trained, opt, curves, validation_metric)
    lines += _curves_section(options, curves, plots, validation_metric)
    lines += _metrics_section(options, results)
    lines += _lengths_section(plots)
    lines += _samples_section(options, results)
    return "\n".join(lines) + "\n"


def _summary(options, trained, opt, curves, validation_metric) -> List[str]:
    rows = [
        ("model file", f"`{os.path.abspath(options.model_file)}`"),
        ("base model (`--hf-model`)", f"`{trained.get('hf_model', '?')}`"),
        ("trained on (`-t`)", f"`{trained.get('task', '?')}`"),
        ("training", _training_line(trained, curves)),
        ("weights kept", _kept_line(trained, curves, validation_metric)),
        ("evaluated on (`-t`)", f"`{options.task}`, splits {' and '.join(SPLITS)}"),
        ("decoding", f"{opt.get('inference')}, beam size {opt.get('beam_size')}, "
         f"context truncated to the last {opt.get('text_truncate')} tokens, "
         f"replies to {opt.get('label_truncate')}"),
        ("generated", datetime.datetime.now().strftime("%Y-%m-%d %H:%M") + " by `parlai dialogft_report`"),
    ]
    out = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return out + [""]


def _training_line(trained, curves) -> str:
    steps = curves.train_steps if curves else None
    parts = [f"{steps:,} updates" if steps else "updates unknown (no trainstats)"]
    parts.append(f"batch size {trained.get('batchsize')}, learning rate {trained.get('learningrate')}")
    if curves and curves.train_time_s:
        parts.append(f"{curves.train_time_s / 60:.1f} min")
    return ", ".join(parts)


def _kept_line(trained, curves, metric) -> str:
    """Which update the weights are from. train_model keeps only new bests, which a reader
    would not guess: with a metric that never improves, the first validation's weights."""
    mode = metric_mode(metric, trained.get("validation_metric_mode"))
    kept = kept_update(curves, metric, mode) if curves else None
    if kept is None:
        return f"the last update (no validation recorded `{metric}`)"
    line = f"update {int(kept):,}: the best validation `{metric}` ({mode}imised)"
    if curves.best_valid is not None:
        line += f", {format_number(metric, curves.best_valid)}"
    later = sum(1 for update in curves.valid_updates if update > kept)
    if later:
        line += f"; {later} later validation(s) did not improve it"
    if curves.train_steps and kept < curves.train_steps:
        line += (f"; train_model saves only a new best, so updates {int(kept) + 1:,} to "
                 f"{curves.train_steps:,} are not in these weights")
    return line


def _curves_section(options, curves, plots, validation_metric) -> List[str]:
    out = ["## Training curves", ""]
    if not plots:
        out += [f"No curves: `{os.path.basename(options.model_file)}.trainstats` is missing or holds no "
                "reports (ParlAI writes it during `train_model`; copy it along with the model).", ""]
        return out
    if LOSS_PNG in plots:
        out += [f"![training and validation loss and perplexity over updates]({LOSS_PNG})", "",
                "Loss and perplexity on training batches (line) and on the validation sample "
                "(dots) over optimizer updates. Training well below validation means overfitting.", ""]
    if VALID_PNG in plots:
        out += [f"![validation metrics over updates]({VALID_PNG})", "",
                f"Validation scores over updates: {', '.join(f'`{m}`' for m in plots[VALID_PNG])}; "
                f"the dashed line marks the weights kept (best `{validation_metric}`).", ""]
    return out


def _metrics_section(options, results: List[SplitResult]) -> List[str]:
    if options.dialogues:
        scope = (f"{options.dialogues} whole dialogues of each split, spread over it "
                 f"(`--report-dialogues {options.dialogues}`; `exs` counts their turns)")
    else:
        scope = (f"the first examples of each split (`--report-max-exs {options.max_exs}`, rounded up to "
                 "whole batches; `exs` says how many)")
    out = ["## Metrics", "",
           f"A fresh evaluation of the saved model on {scope}, with the decoding above. "
           "Higher is better unless noted.", ""]
    header = "| metric | what it measures | " + " | ".join(r.split for r in results) + " |"
    out += [header, "|---|---|" + "---:|" * len(results)]
    for name, meaning in METRIC_ROWS:
        if not any(name in r.metrics for r in results):
            continue
        values = " | ".join(format_number(name, r.metrics.get(name)) for r in results)
        out.append(f"| `{name}` | {meaning} | {values} |")
    return out + [""]


def _lengths_section(plots) -> List[str]:
    if LENGTHS_PNG not in plots:
        return []
    return ["## Reply length", "", f"![model reply length against reference length]({LENGTHS_PNG})", "",
            "Each dot is one evaluated example: the reference reply's length across, the model's "
            "down (tokens as `len` counts them). Dots on the dashed line match the reference "
            "length; a flat band means replies of one length whatever was asked (stock lines), "
            "dots low on the right mean replies that stop early.", ""]


def _samples_section(options, results: List[SplitResult]) -> List[str]:
    out = ["## Sample dialogues", "",
           f"{options.samples} examples per split, evenly spaced over the evaluated ones. The context "
           f"shows the last {CONTEXT_TURNS} turns the model saw (oldest first, one per line).", ""]
    for result in results:
        out += [f"### {result.split}", ""]
        picked = spread(result.samples, options.samples)
        if not picked:
            out += ["No examples.", ""]
            continue
        out += ["| # | context | reference | model reply |", "|---:|---|---|---|"]
        out += [_sample_row(i, s) for i, s in enumerate(picked, 1)]
        out.append("")
    return out


def _sample_row(index: int, sample: Sample) -> str:
    shown = sample.context[-CONTEXT_TURNS:]
    earlier = len(sample.context) - len(shown)
    turns = [md_cell(t, keep_end=True) for t in shown]
    if earlier:
        turns.insert(0, f"*({earlier} earlier turns)*")
    return f"| {index} | {'<br>'.join(turns)} | {md_cell(sample.reference)} | {md_cell(sample.reply)} |"
