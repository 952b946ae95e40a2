"""The pictures of docs/zoo.md, drawn from files in the repository: ``python docs/figures.py``.

* ``docs/images/customer_t5_training.png``: loss and perplexity while ``zoo:dialogft/customer_t5``
  was fine-tuned (its ParlAI trainstats, shipped beside the weights as ``training.trainstats``);
* ``docs/images/zoo_results.png``: the zoo's models on the customer-service test split, per
  language (``dialogft_card.json`` of customer_t5, written by ``python bench/zoo.py --write``).

Nothing here is measured or typed in: rerun the commands that wrote the files, then this.
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from parlai_dialogft.evaluation.report_plots import _new_figure, load_curves, plot_loss  # noqa: E402

ZOO = os.path.join(ROOT, "zoo", "dialogft", "customer_t5")
IMAGES = os.path.join(HERE, "images")
#: Overlap and diversity metrics, all in [0, 1]: one axis.
RESULT_METRICS = ("f1", "bleu-4", "rouge-L", "dist-2")


def training_curve(out: str) -> str:
    curves = load_curves(os.path.join(ZOO, "training"))
    if curves is None or not plot_loss(curves, out):
        raise SystemExit(f"{ZOO}/training.trainstats is missing or empty")
    return out


def results_chart(out: str) -> str:
    with open(os.path.join(ZOO, "dialogft_card.json"), encoding="utf-8") as f:
        test = json.load(f)["test"]
    langs = [lang for lang in ("en", "zh") if lang in test]
    fig, axes = _new_figure(len(langs))
    for ax, lang in zip(axes, langs):
        models = list(test[lang])
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            xs = [m + (i - (len(models) - 1) / 2) * width for m in range(len(RESULT_METRICS))]
            values = [test[lang][model].get(metric, float("nan")) for metric in RESULT_METRICS]
            bars = ax.bar(xs, values, width, label=f"zoo:dialogft/{model}")
            ax.bar_label(bars, fmt="%.3f", fontsize=7)
        top = max(v for model in models for v in test[lang][model].values() if isinstance(v, float)
                  and v <= 1)
        ax.set_ylim(0, top * 1.3)  # room for the legend above the bars
        ax.set_xticks(range(len(RESULT_METRICS)), RESULT_METRICS)
        ax.set_ylabel("score (higher is better)")
        ax.set_title(f"dialogft_customer:lang={lang}, first {test['examples']} test examples")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.savefig(out)
    return out


def main() -> None:
    os.makedirs(IMAGES, exist_ok=True)
    for path in (training_curve(os.path.join(IMAGES, "customer_t5_training.png")),
                 results_chart(os.path.join(IMAGES, "zoo_results.png"))):
        print(f"wrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
