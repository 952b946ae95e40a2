# The README's three commands. Each installs first when needed, so every one of them works
# alone on a fresh clone.
#
#   make install   .venv with torch (CPU), ParlAI 1.7.2 and this package (editable)
#   make demo      fine-tune the default model on dialogft_customer, evaluate, show replies
#   make test      the test suite without the end-to-end runs marked slow (under 15 minutes)
#   make test-all  everything, slow end-to-end runs included (what CI runs)
#   Both run the tests in a random order (pytest-randomly), saying the seed at the end:
#   make test PYTEST_ARGS="--randomly-seed=N" reruns that order, -p no:randomly the file order.
#   make bench     the benchmarks behind the README's figures, one after the other (bench/README.md)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= /tmp/dialogft_demo
DEMO_MINUTES ?= 4
# A briefly trained model repeats itself under greedy search; beam with trigram blocking reads better.
DEMO_DECODING ?= --inference beam --beam-size 4 --beam-block-ngram 3
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-k agent".
PYTEST_ARGS ?=
# Where torch comes from, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# for the CPU-only build on a machine whose pip would fetch the CUDA one (README: Which torch).
TORCH_PIP_ARGS ?=

.PHONY: install demo test test-all bench clean

install: $(VENV)/.installed

# torch first: with 2.13.0 in place (the CPU build where pip is set up for it, or through
# TORCH_PIP_ARGS), nothing later pulls another torch.
# ParlAI's own pins (numpy 1.x, torchtext, ...) do not resolve on this stack, so it goes in
# last, --no-deps (pip then leaves its unmet pins alone); setup.py lists what it really imports.
$(VENV)/.installed: setup.py pyproject.toml parlai_dialogft.pth
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps parlai==1.7.2
	touch $@

# The demo keeps ParlAI's full logs in files and shows what a newcomer reads: training
# progress, then the report's summary (metrics with what they mean, sample exchanges).
demo: SHELL := /bin/bash
demo: .SHELLFLAGS := -o pipefail -c
demo: install
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	@echo "Fine-tuning zoo:dialogft/bilingual_t5 on dialogft_customer for $(DEMO_MINUTES) minutes (full log: $(DEMO_DIR)/train.log)"
	$(BIN)/parlai train_model -t dialogft_customer -m dialogft_agent -mf $(DEMO_DIR)/model \
		--max-train-time $$(( $(DEMO_MINUTES) * 60 )) -bs 16 -vtim 120 -vme 200 -ltim 30 \
		--validation-metric ppl --validation-metric-mode min --save-after-valid true \
		2>&1 | tee $(DEMO_DIR)/train.log | { grep --line-buffered -E " time:[0-9]+s |new best" || true; }
	@echo "Evaluating on 200 test examples (full log: $(DEMO_DIR)/report.log)"
	$(BIN)/parlai dialogft_report -mf $(DEMO_DIR)/model -t dialogft_customer --out $(DEMO_DIR)/report \
		--report-max-exs 200 $(DEMO_DECODING) 2>&1 | tee $(DEMO_DIR)/report.log | { grep --line-buffered "dialogft_report: " || true; }
	@echo && cat $(DEMO_DIR)/report/summary.txt
	@echo "Logs:   $(DEMO_DIR)/train.log, $(DEMO_DIR)/report.log"

test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# One at a time: each benchmark owns every core while it runs. The commands and settings are
# those of the README's figures; serving.py starts (and stops) the server it measures.
bench: install
	$(BIN)/python bench/training.py --arch t5 --examples 320 --seeds 2
	$(BIN)/python bench/training.py --arch gpt2 --examples 128 --seeds 2 --rows group_by_length sft_padding_free sft_packing ours
	$(BIN)/python bench/profile_step.py --arch t5 --steps 4
	$(BIN)/python bench/generation.py --arch t5
	$(BIN)/python bench/serving.py --start
	$(BIN)/python bench/zoo.py --write
	$(BIN)/python docs/figures.py
	$(BIN)/python bench/preference.py

clean:
	rm -rf $(VENV) build dist *.egg-info
