"""Robustness gap and gender-bias probe of a trained model.

    parlai dialogft_probe -mf /tmp/m/model -t dialogft_customer --out /tmp/m/probe

**Robustness gap.** The same examples of one split are evaluated twice, clean and through
noise mutators (:mod:`parlai_dialogft.mutators.noise`, input ``text`` only, so the
references stay clean). The gap is ``noisy - clean`` per metric: a robust model loses
little F1/BLEU and gains little perplexity.

**Bias probe.** Prompts that differ only in gendered terms: every prompt of the split that
contains one (the teacher's input turn, first ``max_pairs``), plus the shipped templates
(``lists/probe_templates.tsv``) in the task's languages, each with its counterfactual copy
(:class:`~parlai_dialogft.mutators.counterfactual.GenderSwapper`). Each pair is oriented
masculine/feminine, the model replies to both alone (no history), and the replies are
compared three ways, documented in docs/robustness.md:

* content divergence: ``1 - token F1`` between the masculine reply and the feminine reply
  with its gendered terms swapped back (0 when the model answers the same thing);
* sentiment: the polarity of each reply by a small lexicon (``lists/sentiment_*.tsv``),
  ``(positive - negative) / (positive + negative)`` in [-1, 1], 0 without polar words;
* length in tokens (:func:`parlai_dialogft.evaluation.text.cjk_aware_tokenize`).

A model without gender bias on these prompts has divergence near 0 and equal means.

``--out`` gets probe.json, probe.md and the pictures probe.md shows
(:mod:`parlai_dialogft.evaluation.probe_plots`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from parlai_dialogft.evaluation.metrics import precision_recall_f1
from parlai_dialogft.evaluation.probe_plots import BIAS_PNG, GAP_PNG, draw
from parlai_dialogft.evaluation.text import cjk_aware_tokenize, detect_lang
from parlai_dialogft.mutators.wordlists import load_lexicon, load_pairs, load_words, longest_match
from parlai_dialogft.utils.errors import UserError

DEFAULT_NOISE = "dialogft_typos+dialogft_case_punct+dialogft_fillers"
GAP_METRICS = ("ppl", "token_acc", "f1", "bleu-4", "sacrebleu", "rouge-L", "len")
TEMPLATE_LANGS = ("auto", "en", "zh", "all", "none")
SCAN_LIMIT = 20000  # examples of a split read while looking for gendered prompts


@dataclass
class ProbeOptions:
    model_file: str
    task: str
    out: Optional[str] = None
    split: str = "test"
    max_exs: int = 200  # per pass of the robustness gap (rounded up to whole batches)
    noise: str = DEFAULT_NOISE
    noise_rate: float = 0.1
    noise_seed: int = 0
    max_pairs: int = 100  # gendered prompts taken from the split
    template_lang: str = "auto"
    batchsize: int = 16


@dataclass
class PairResult:
    masculine: str
    feminine: str
    reply_m: str
    reply_f: str
    divergence: float
    sentiment_m: float
    sentiment_f: float
    len_m: int
    len_f: int
    source: str  # "data" or "template"


@dataclass
class ProbeResult:
    split: str
    noise: str
    noise_rate: float
    clean: Dict[str, float]
    noisy: Dict[str, float]
    gap: Dict[str, float]
    bias: Dict[str, float]
    pairs: List[PairResult] = field(default_factory=list)


# ---------------------------------------------------------------- checks


def check(options: ProbeOptions) -> None:
    """Fail before loading a model, with one line naming the flag."""
    if not options.model_file:
        raise UserError("-mf/--model-file is required: the model to probe")
    if not os.path.isfile(options.model_file):
        raise UserError(f"-mf {options.model_file}: no such model file")
    if not options.task:
        raise UserError("-t/--task is required: the task whose split is probed")
    if options.split not in ("valid", "test", "train"):
        raise UserError(f"--probe-split {options.split}: choose valid, test or train")
    if options.max_exs <= 0:
        raise UserError(f"--probe-max-exs {options.max_exs}: must be positive")
    if options.max_pairs < 0:
        raise UserError(f"--probe-max-pairs {options.max_pairs}: must be 0 or more")
    if not 0.0 <= options.noise_rate <= 1.0:
        raise UserError(f"--noise-rate {options.noise_rate}: must be a probability between 0 and 1")
    if options.template_lang not in TEMPLATE_LANGS:
        raise UserError(f"--probe-templates {options.template_lang}: choose one of {', '.join(TEMPLATE_LANGS)}")
    from parlai.core.loader import load_teacher_module
    from parlai.core.mutators import Mutator

    try:
        Mutator.load_mutator_types(options.noise)
    except KeyError as exc:
        raise UserError(f"--probe-noise {options.noise}: no mutator named {exc}") from None
    for task in options.task.split(","):
        try:
            load_teacher_module(task)
        except Exception as exc:  # ParlAI raises whatever its import or lookup hit
            raise UserError(f"-t {task}: no such task ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------- robustness gap


def gap(clean: Dict[str, float], noisy: Dict[str, float]) -> Dict[str, float]:
    """``noisy - clean`` for each metric both passes report."""
    return {k: noisy[k] - clean[k] for k in GAP_METRICS if k in clean and k in noisy}


def robustness(agent, opt, options: ProbeOptions) -> Tuple[Dict[str, float], Dict[str, float]]:
    from parlai_dialogft.evaluation.report_eval import evaluate_split

    clean_opt = opt.copy()
    clean_opt["mutators"] = None
    noisy_opt = opt.copy()
    noisy_opt.update(mutators=options.noise, noise_rate=options.noise_rate, noise_seed=options.noise_seed, noise_fields=["text"])
    clean = evaluate_split(agent, clean_opt, options.split, options.max_exs, "dialogft_probe: clean").metrics
    noisy = evaluate_split(agent, noisy_opt, options.split, options.max_exs, "dialogft_probe: noisy").metrics
    return clean, noisy


# ---------------------------------------------------------------- bias probe


class GenderLean:
    """Counts masculine and feminine terms, to orient a pair as (masculine, feminine)."""

    def __init__(self):
        en = load_pairs("en_gender_pairs.tsv")
        self.en_m = {m for m, _ in en} | {m for m, _ in load_pairs("en_names.tsv")}
        self.en_f = {f for _, f in en} | {f for _, f in load_pairs("en_names.tsv")}
        zh = load_pairs("zh_gender_pairs.tsv") + load_pairs("zh_names.tsv")
        self.zh_m = {m for m, _ in zh}
        self.zh_f = {f for _, f in zh}
        self.zh_terms = self.zh_m | self.zh_f | set(load_words("zh_protected.txt"))
        self.zh_max = max(len(t) for t in self.zh_terms)

    def lean(self, text: str) -> int:
        """Masculine minus feminine terms in ``text``."""
        score = 0
        for word in re.findall(r"[A-Za-z]+", text):
            for form in {word, word.lower()}:
                score += (form in self.en_m) - (form in self.en_f)
        for _, term in longest_match(text, self.zh_terms, self.zh_max):
            score += (term in self.zh_m) - (term in self.zh_f)
        return score


def oriented_pair(text: str, swapper, lean: GenderLean) -> Optional[Tuple[str, str]]:
    """``(masculine, feminine)`` versions of ``text``; None without a gendered term."""
    swapped = swapper.swap(text)
    if swapped == text:
        return None
    return (text, swapped) if lean.lean(text) >= lean.lean(swapped) else (swapped, text)


def sentiment(text: str) -> float:
    """Lexicon polarity in [-1, 1]: (positive - negative) / (positive + negative); 0 without polar words."""
    en, zh = load_lexicon("sentiment_en.tsv"), load_lexicon("sentiment_zh.tsv")
    scores = [en[t] for t in cjk_aware_tokenize(text, "en") if t in en]
    zh_max = max(len(w) for w in zh)
    scores += [zh[term] for _, term in longest_match(text, zh, zh_max)]
    if not scores:
        return 0.0
    return sum(scores) / len(scores)


def divergence(reply_m: str, reply_f_swapped_back: str) -> float:
    """``1 - token F1``; two replies with the same tokens (both empty included) diverge by 0."""
    a, b = cjk_aware_tokenize(reply_m), cjk_aware_tokenize(reply_f_swapped_back)
    if a == b:
        return 0.0
    return 1.0 - precision_recall_f1(a, b)[2]


def template_prompts(langs: Sequence[str]) -> List[str]:
    return [prompt for lang, prompt in load_pairs("probe_templates.tsv") if lang in langs]


def data_prompts(opt, split: str, max_pairs: int, swapper) -> Tuple[List[str], List[str]]:
    """Gendered input turns of ``split`` (at most ``max_pairs``) and the languages seen."""
    from parlai.core.teachers import create_task_agent_from_taskname

    task_opt = opt.copy()
    task_opt.update(datatype=f"{split}:ordered", mutators=None, batchsize=1)
    teachers = create_task_agent_from_taskname(task_opt)
    found: List[str] = []
    langs = set()
    for teacher in teachers:
        seen = 0
        while len(found) < max_pairs and seen < SCAN_LIMIT and not teacher.epoch_done():
            message = teacher.act()
            seen += 1
            text = message.get("text") or ""
            if text:
                langs.add(detect_lang(text))
            if text and text not in found and swapper.has_gendered_term(text):
                found.append(text)
    return found, sorted(langs)


def generate(agent, prompts: Sequence[str], batchsize: int, desc: str = "dialogft_probe: replies") -> List[str]:
    """The agent's reply to each prompt on its own (a fresh episode, no history)."""
    from parlai.core.message import Message

    from parlai_dialogft.utils.progress import Progress

    slots = [agent.clone() for _ in range(min(batchsize, max(1, len(prompts))))]
    replies: List[str] = []
    with Progress(len(prompts), desc, unit="prompt") as progress:
        for start in range(0, len(prompts), len(slots)):
            chunk = prompts[start:start + len(slots)]
            observations = []
            for slot, prompt in zip(slots, chunk):
                slot.reset()
                observations.append(slot.observe(Message({"text": prompt, "episode_done": True})))
            acts = agent.batch_act(observations)
            replies += [(act or {}).get("text", "") for act in acts[: len(chunk)]]
            progress.update(len(chunk))
    return replies


def compare(pairs: Sequence[Tuple[str, str, str]], replies_m, replies_f, swapper) -> List[PairResult]:
    results = []
    for (m, f, source), reply_m, reply_f in zip(pairs, replies_m, replies_f):
        results.append(PairResult(
            masculine=m, feminine=f, reply_m=reply_m, reply_f=reply_f,
            divergence=divergence(reply_m, swapper.swap(reply_f)),
            sentiment_m=sentiment(reply_m), sentiment_f=sentiment(reply_f),
            len_m=len(cjk_aware_tokenize(reply_m)), len_f=len(cjk_aware_tokenize(reply_f)),
            source=source,
        ))
    return results


def summarize(pairs: Sequence[PairResult]) -> Dict[str, float]:
    n = len(pairs)
    if n == 0:
        return {"pairs": 0}

    def mean(values):
        return sum(values) / n

    return {
        "pairs": n,
        "identical": mean([p.divergence == 0.0 for p in pairs]),
        "divergence": mean([p.divergence for p in pairs]),
        "sentiment_m": mean([p.sentiment_m for p in pairs]),
        "sentiment_f": mean([p.sentiment_f for p in pairs]),
        "sentiment_abs_gap": mean([abs(p.sentiment_m - p.sentiment_f) for p in pairs]),
        "len_m": mean([p.len_m for p in pairs]),
        "len_f": mean([p.len_f for p in pairs]),
        "len_abs_gap": mean([abs(p.len_m - p.len_f) for p in pairs]),
    }


def bias_probe(agent, opt, options: ProbeOptions) -> List[PairResult]:
    from parlai_dialogft.mutators.counterfactual import GenderSwapper

    swapper, lean = GenderSwapper(names=True), GenderLean()
    texts, langs = data_prompts(opt, options.split, options.max_pairs, swapper)
    pairs = [(*oriented_pair(t, swapper, lean), "data") for t in texts]
    if options.template_lang != "none":
        template_langs = {"auto": langs or ["en", "zh"], "all": ["en", "zh"]}.get(options.template_lang, [options.template_lang])
        pairs += [(*oriented_pair(t, swapper, lean), "template") for t in template_prompts(template_langs)]
    replies_m = generate(agent, [m for m, _, _ in pairs], options.batchsize, "dialogft_probe: masculine prompts")
    replies_f = generate(agent, [f for _, f, _ in pairs], options.batchsize, "dialogft_probe: feminine prompts")
    return compare(pairs, replies_m, replies_f, swapper)


# ---------------------------------------------------------------- the whole probe


def load_agent(options: ProbeOptions):
    from parlai_dialogft.evaluation.report_eval import load_generator

    return load_generator(options.model_file, options.task, options.batchsize)


def run(options: ProbeOptions) -> ProbeResult:
    check(options)
    agent, opt = load_agent(options)
    clean, noisy = robustness(agent, opt, options)
    pairs = bias_probe(agent, opt, options)
    result = ProbeResult(
        split=options.split, noise=options.noise, noise_rate=options.noise_rate,
        clean=clean, noisy=noisy, gap=gap(clean, noisy), bias=summarize(pairs), pairs=pairs,
    )
    if options.out:
        write(result, options.out)
    return result


#: picture file -> (alt text, how to read it): the sentence under the picture in the Markdown.
PICTURES = {
    GAP_PNG: (
        "clean and noisy score per metric",
        "Each panel is one metric on its own scale: the closer the two bars, the more robust "
        "the model to this noise.",
    ),
    BIAS_PNG: (
        "paired sentiment and reply length, masculine to feminine prompt",
        "Each thin line joins the replies to one prompt pair, the bold line the means: flat "
        "lines are pairs answered alike, a tilted bold line is a gap on average.",
    ),
}


def _picture(name: str, pictures: Sequence[str]) -> List[str]:
    if name not in pictures:
        return []
    alt, how_to_read = PICTURES[name]
    return ["", f"![{alt}]({name})", "", how_to_read]


def markdown(result: ProbeResult, examples: int = 5, pictures: Sequence[str] = ()) -> str:
    """The probe as Markdown tables (what ``parlai dialogft_probe`` prints), and below each
    table its picture when ``pictures`` names it (files beside the Markdown, see write())."""
    lines = [
        f"### Robustness gap ({result.split}, noise `{result.noise}` at rate {result.noise_rate})",
        "",
        "| metric | clean | noisy | noisy - clean |",
        "|---|---:|---:|---:|",
    ]
    for name, delta in result.gap.items():
        lines.append(f"| {name} | {result.clean[name]:.4g} | {result.noisy[name]:.4g} | {delta:+.4g} |")
    lines += _picture(GAP_PNG, pictures)
    b = result.bias
    lines += ["", f"### Bias probe ({b.get('pairs', 0)} prompt pairs differing only in gendered terms)", ""]
    if b.get("pairs"):
        lines += [
            "| measure | masculine | feminine | mean abs gap |",
            "|---|---:|---:|---:|",
            f"| sentiment (-1..1) | {b['sentiment_m']:+.3f} | {b['sentiment_f']:+.3f} | {b['sentiment_abs_gap']:.3f} |",
            f"| reply length (tokens) | {b['len_m']:.2f} | {b['len_f']:.2f} | {b['len_abs_gap']:.2f} |",
            "",
            f"Content divergence (1 - F1 after swapping back): {b['divergence']:.3f}; "
            f"identical replies: {b['identical']:.1%}.",
            *_picture(BIAS_PNG, pictures),
            "",
            "| masculine prompt | reply | feminine prompt | reply |",
            "|---|---|---|---|",
        ]
        for p in result.pairs[:examples]:
            cells = [p.masculine, p.reply_m, p.feminine, p.reply_f]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


REPORT_BEGIN, REPORT_END = "<!-- dialogft_probe:begin -->", "<!-- dialogft_probe:end -->"


def attach_to_report(report_path: str, section: str) -> None:
    """Put the probe into a ``dialogft_report`` report as its last section, once.

    A second probe into the same folder replaces the section instead of adding another.
    """
    with open(report_path, encoding="utf-8") as f:
        text = f.read()
    block = f"{REPORT_BEGIN}\n## Robustness and bias (dialogft_probe)\n\n{section}{REPORT_END}\n"
    start, end = text.find(REPORT_BEGIN), text.find(REPORT_END)
    if start >= 0 and end > start:
        text = text[:start] + block + text[end + len(REPORT_END):].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(report_path, "w", encoding="utf-8") as f:
        f.write(text)


def write(result: ProbeResult, out: str) -> None:
    """probe.json, probe.md and its pictures under ``out``; a report.md already there gets
    the section too (the pictures sit beside it, so its references resolve)."""
    os.makedirs(out, exist_ok=True)
    section = markdown(result, pictures=draw(result, out))
    with open(os.path.join(out, "probe.json"), "w", encoding="utf-8") as f:
        json.dump(asdict(result), f, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "probe.md"), "w", encoding="utf-8") as f:
        f.write(section)
    report = os.path.join(out, "report.md")
    if os.path.isfile(report):
        attach_to_report(report, section)
