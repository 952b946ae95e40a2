"""bench/preference.py builds the table of docs/preferences.md from its results.json alone."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent

ROW = {"mean": {"f1": 0.2, "bleu-4": 0.03, "dist-1": 0.05, "dist-2": 0.1, "len": 9.0, "stock": 0.4, "gold_ppl": 20.0},
       "sd": {"f1": 0.01, "bleu-4": 0.0, "dist-1": 0.0, "dist-2": 0.02, "len": 0.5, "stock": 0.05, "gold_ppl": 1.0},
       "f1_diff": {"mean": -0.004, "ci95": [-0.011, 0.003]}}


def test_the_table_is_written_between_the_markers_from_the_results(tmp_path):
    results = {"start_sha256": "ab" * 32, "settings": {
        "seeds": 3, "pool": 4000, "max_f1": 0.5, "updates": 0, "lr": 5e-05, "warmup": 20, "beta": 0.1,
        "valid_every": 25, "heldout": 300, "eval_examples": 1000}, "langs": {"en": {
            "pairs": {}, "eval_examples": 1000, "gold_stock_share": 0.02,
            "rows": {"DPO+NLL (default)": {"greedy": {**ROW, "start_kept": 1}}}}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    doc = tmp_path / "doc.md"
    doc.write_text("before\n<!-- bench/preference.py table: begin -->\nTABLE BEFORE THE RUN\n"
                   "<!-- bench/preference.py table: end -->\nafter\n")
    subprocess.run([sys.executable, str(REPO / "bench" / "preference.py"), "--out", str(tmp_path), "--table-only",
                    "--write-docs", str(doc)], check=True, capture_output=True)
    text = doc.read_text()
    assert text.startswith("before\n<!-- bench/preference.py table: begin -->\n") and text.endswith("end -->\nafter\n")
    assert "TABLE BEFORE THE RUN" not in text
    assert ("| en | DPO+NLL (default) (start kept: 1/3) | greedy | 0.200 ± 0.010 | -0.004 [-0.011, +0.003] | "
            "0.030 ± 0.000 | 0.050 ± 0.000 | 0.100 ± 0.020 | 9.0 ± 0.5 | 0.400 ± 0.050 (0.020) | "
            "20.0 ± 1.0 |") in text
