"""Knowledge: the same model fine-tuned and evaluated with no, retrieved or gold knowledge.

For each task (``dialogft_qa:speaker=second``: KdConv, the answering side; and
``dialogft_customer:lang=zh``: CrossWOZ) and each ``knowledge`` mode (none, retrieved, gold),
``parlai train_model`` fine-tunes ``zoo:dialogft/customer_t5`` for the same number of updates
(``--steps``, batch 8, a budget in work, so a busy machine changes nothing but the wall time), then
``parlai eval_model`` scores the first ``--eval-examples`` test examples in file order, with the
same mode. Retrieval is BM25 over the task's store (``kdconv`` triples, the ``crosswoz``
database), top ``--top-k``, the query being the turn and the reply before it. Prints the
table of docs/knowledge.md: F1, BLEU-4, knowledge F1, recall@k (retrieved rows), entity-exists share
(CrossWOZ).

    python bench/knowledge.py                          # 120 updates per run, 200 test examples
    python bench/knowledge.py --steps 100 --eval-examples 100 --tasks qa

``--retrieval N`` measures retrieval alone instead: a store of N documents (distinct turns of
the shipped corpora, Chinese and English, as a user's JSONL file), the index built cold, then
loaded from its disk cache, then queried with 1,000 other turns, one at a time (as the agent
does, per turn) and in one batch (as a teacher does):

    python bench/knowledge.py --retrieval 100000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

#: A model that already writes customer-service replies (CrossWOZ among them): a few hundred
#: updates then teach it to use the knowledge lines, not to speak.
ZOO = "zoo:dialogft/customer_t5"
TASKS = {
    "qa": "dialogft_qa:speaker=second",
    "customer-zh": "dialogft_customer:lang=zh",
}
MODES = ("none", "retrieved", "gold")
#: Greedy (the agent's default; beam search would cost more than training on a shared 2-core
#: CPU), with trigram blocking: a briefly trained model otherwise repeats itself to the limit.
DECODING = ["--inference", "greedy", "--beam-block-ngram", "3", "--beam-min-length", "2"]
#: Database records and triples make long contexts: room for three of them and the turn.
TRUNCATE = ["--text-truncate", "384", "--truncate", "384"]
BATCH = "8"


def finetune(task: str, model_file: str, steps: int, top_k: int, datapath: str) -> None:
    from parlai.scripts.train_model import TrainModel

    TrainModel.main(
        "-t", task, "-m", "dialogft_agent", "--hf-model", ZOO, "-mf", model_file,
        "-bs", BATCH, "--max-train-steps", str(steps), "--seed", "0", "--knowledge-top-k", str(top_k), *TRUNCATE,
        # No model selection: the weights after the last update; the closing evaluation kept small.
        "-vstep", str(steps), "-vme", "16", "--skip-generation", "true", "--datapath", datapath,
    )


def evaluate(task: str, model_file: str, examples: int, top_k: int, datapath: str) -> dict:
    from parlai.scripts.eval_model import EvalModel

    report = EvalModel.main(
        "-mf", model_file, "-t", task, "-dt", "test", "-ne", str(examples), "-bs", "16",
        "--dynamic-batching", "none", "--knowledge-top-k", str(top_k), *TRUNCATE,
        "--skip-generation", "false", *DECODING, "--datapath", datapath,
    )
    return {key: float(value) for key, value in report.items() if isinstance(value, (int, float)) or hasattr(value, "value")}


def retrieval_benchmark(entries: int, top_k: int, queries: int = 1000) -> None:
    """Index build, cache load and queries/s for a store of ``entries`` documents."""
    import random
    import time
    from pathlib import Path

    from parlai_dialogft.data.readers import chitchat, task_oriented
    from parlai_dialogft.knowledge.retriever import BM25Retriever
    from parlai_dialogft.knowledge.stores import load_store

    turns = sorted({turn.text for readers in (task_oriented.READERS, chitchat.READERS)
                    for read in readers.values() for split in read().values() for c in split for turn in c.turns
                    if turn.text.strip()})
    random.Random(0).shuffle(turns)
    if len(turns) < entries + queries:
        raise SystemExit(f"--retrieval {entries}: the corpora have {len(turns)} distinct turns")
    work = Path(tempfile.mkdtemp(prefix="bench_retrieval_"))
    store_file = work / "documents.jsonl"
    with open(store_file, "w", encoding="utf-8") as f:
        for text in turns[:entries]:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    asked = turns[entries: entries + queries]

    start = time.perf_counter()
    store = load_store(str(store_file))
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    cold = BM25Retriever(store, work / "cache")
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    warm = BM25Retriever(store, work / "cache")
    load_s = time.perf_counter() - start
    assert warm.loaded_from_cache and not cold.loaded_from_cache
    warm.search(asked[0], top_k)  # first-call set-up out of the timing
    start = time.perf_counter()
    one_by_one = [warm.search(q, top_k) for q in asked]
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = warm.search_many(asked, top_k)
    batch_s = time.perf_counter() - start
    assert [[e for e, _ in hits] for hits in batched] == one_by_one
    zh = sum(1 for q in asked if any("\u4e00" <= ch <= "\u9fff" for ch in q))
    print(f"\nstore: {len(store):,} entries ({entries:,} documents), {queries:,} queries ({zh} Chinese), top {top_k}\n")
    print("| step | time |")
    print("|---|---|")
    print(f"| read and cut the JSONL store | {read_s:.2f} s |")
    print(f"| build the BM25 index (cold) and save it | {build_s:.2f} s |")
    print(f"| load the index from its cache | {load_s:.2f} s |")
    print(f"| queries one at a time | {queries / single_s:,.0f} queries/s ({1000 * single_s / queries:.2f} ms each) |")
    print(f"| queries in one batch | {queries / batch_s:,.0f} queries/s |")


def cell(values: dict, key: str) -> str:
    return f"{values[key]:.4f}" if key in values else "—"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--steps", type=int, default=120, help="training updates per run (batch 8)")
    parser.add_argument("--eval-examples", type=int, default=200)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--out", default="", help="folder for models and results.json (a rerun reuses both)")
    parser.add_argument("--retrieval", type=int, default=0, metavar="N",
                        help="only time retrieval on a store of N documents (queries/s, index build and load)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.retrieval:
        return retrieval_benchmark(args.retrieval, args.top_k)

    from parlai.core.params import ParlaiParser

    datapath = ParlaiParser(True, False).parse_kwargs()["datapath"]
    work = args.out or tempfile.mkdtemp(prefix="bench_knowledge_")
    results_path = os.path.join(work, "results.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    recall = f"knowledge_recall@{args.top_k}"
    for name in args.tasks:
        for mode in args.modes:
            key = f"{name} {mode}"
            if key in results:
                continue
            task = f"{TASKS[name]}:knowledge={mode}"
            model_file = os.path.join(work, f"{name}-{mode}", "model")
            if not os.path.exists(model_file):
                finetune(task, model_file, args.steps, args.top_k, datapath)
            scores = evaluate(task, model_file, args.eval_examples, args.top_k, datapath)
            results[key] = {k: scores[k] for k in ("f1", "bleu-4", "knowledge_f1", recall, "entity_exists", "exs") if k in scores}
            print(f"# {key}: {json.dumps(results[key])}", flush=True)
            with open(results_path, "w") as f:
                json.dump(results, f, indent=1)

    print(f"\n{args.steps} updates of batch {BATCH} per run from {ZOO}; first {args.eval_examples} test examples, "
          f"greedy with trigram blocking; BM25 top {args.top_k}; contexts cut to their last 384 tokens\n")
    print(f"| task | knowledge | F1 | BLEU-4 | knowledge F1 | recall@{args.top_k} | entity exists |")
    print("|---|---|---|---|---|---|---|")
    for key, values in results.items():
        name, mode = key.rsplit(" ", 1)
        print(f"| {TASKS[name]} | {mode} | {cell(values, 'f1')} | {cell(values, 'bleu-4')} | "
              f"{cell(values, 'knowledge_f1')} | {cell(values, recall)} | {cell(values, 'entity_exists')} |")


if __name__ == "__main__":
    main()
