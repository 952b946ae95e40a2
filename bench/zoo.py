"""The zoo's models as a user meets them: ``parlai eval_model -mf zoo:dialogft/NAME``.

Each zoo entry, with the decoding its model file carries, on the first ``--eval-examples``
test examples of ``dialogft_customer`` in each language (file order, the same examples for
every model). The pretrained default has read only the training splits, once, among other
corpora; ``customer_t5`` is it fine-tuned on customer service. Prints the table of
customer_t5's model card; ``--write`` stores the figures in that card's
``dialogft_card.json``, from which ``python docs/figures.py`` draws the chart in docs/zoo.md.

    python bench/zoo.py                      # 200 examples per language
    python bench/zoo.py --eval-examples 500 --write
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from parlai_dialogft.utils.progress import Progress  # noqa: E402

MODELS = ("bilingual_t5", "customer_t5")
METRICS = ("ppl", "f1", "bleu-4", "rouge-L", "dist-2", "len")
CARD = os.path.join(os.path.dirname(HERE), "zoo", "dialogft", "customer_t5", "dialogft_card.json")


def evaluate(name: str, lang: str, examples: int, datapath: str) -> dict:
    from parlai.scripts.eval_model import EvalModel

    report = EvalModel.main(
        "-mf", f"zoo:dialogft/{name}", "-t", f"dialogft_customer:lang={lang}", "-dt", "test",
        "-ne", str(examples), "-bs", "16", "--dynamic-batching", "none", "--datapath", datapath,
    )
    return {key: float(report[key]) for key in METRICS if key in report}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-examples", type=int, default=200)
    parser.add_argument("--langs", nargs="+", default=["en", "zh"])
    parser.add_argument("--write", action="store_true", help="store the figures in customer_t5's card JSON")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    datapath = tempfile.mkdtemp(prefix="bench_zoo_")  # the zoo installs itself there from the package
    results = {lang: {} for lang in args.langs}
    progress = Progress(len(args.langs) * len(MODELS), "bench/zoo.py", unit="run", interval=0)
    for lang in args.langs:
        for name in MODELS:
            results[lang][name] = evaluate(name, lang, args.eval_examples, datapath)
            print(f"# {lang} {name}: {json.dumps(results[lang][name])}", flush=True)
            progress.update()
    progress.close()
    print(f"\nfirst {args.eval_examples} test examples of dialogft_customer, each model's own decoding\n")
    print("| lang | model | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---:|" * len(METRICS))
    for lang, rows in results.items():
        for name, values in rows.items():
            print(f"| {lang} | `zoo:dialogft/{name}` | " + " | ".join(f"{values[m]:.4g}" for m in METRICS) + " |")
    if args.write:
        with open(CARD, encoding="utf-8") as f:
            card = json.load(f)
        card["test"] = {"examples": args.eval_examples, "command": "python bench/zoo.py --write", **results}
        with open(CARD, "w", encoding="utf-8") as f:
            json.dump(card, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
