# w2v2-10min: wav2vec 2.0 fine-tuning on Libri-light's 10-minute splits, one stage per target.
# `make help` lists the targets and the knobs with their defaults.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

# ---- knobs (make VAR=value) -------------------------------------------------------------
PYTHON ?= python3.11## Python 3.11 used to create .venv
DATA ?= data## folder holding librispeech_finetuning/ and LibriSpeech/
SPLIT ?= 0## Libri-light 10-minute fold 0..5
SPLITS ?= 0 1 2 3 4 5## folds that `make manifests` writes
MODEL ?= base## pre-trained checkpoint: base, large, vox (or tiny)
PROTOCOL ?= fairseq## fine-tuning protocol: fairseq or paper (or tiny)
SEED ?= 1## training seed
EVAL_SETS ?= dev-clean dev-other test-clean test-other## LibriSpeech sets to decode
MANIFEST_ROOT ?= manifests## where manifests/10min-K/ are written
RUN_ROOT ?= runs## where runs/<model>-<protocol>/10min-K/seed-S/ are written
RESULTS ?= results## where `make compare` writes the report
PRETRAINED_DIR ?= pretrained## pre-trained checkpoints (wav2vec_small.pt, ..., tiny.pt)
ARGS ?=## extra Hydra overrides for fairseq, e.g. ARGS='model.mask_prob=0.5'

VENV := .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.installed
NOW = $(shell date +%Y%m%d-%H%M%S)
MANIFESTS = $(MANIFEST_ROOT)/10min-$(SPLIT)
RUN = $(RUN_ROOT)/$(MODEL)-$(PROTOCOL)/10min-$(SPLIT)/seed-$(SEED)
SUBSETS = $(subst -,_,$(EVAL_SETS))
PRETRAINED_tiny := $(PRETRAINED_DIR)/tiny.pt
PRETRAINED_base := $(PRETRAINED_DIR)/wav2vec_small.pt
PRETRAINED_large := $(PRETRAINED_DIR)/libri960_big.pt
PRETRAINED_vox := $(PRETRAINED_DIR)/wav2vec_vox_new.pt
PRETRAINED = $(PRETRAINED_$(MODEL))
# fairseq pickles its config into checkpoints and torch >= 2.6 refuses such pickles by default.
# Training only ever loads checkpoints this project made or whose checksum it verified.
FAIRSEQ_ENV := TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 HYDRA_FULL_ERROR=1

# The embedded tiny corpus and where `make demo` keeps everything it makes.
TINY_CORPUS := tiny/corpus
DEMO_ROOT ?= runs/demo## where `make demo` keeps what it makes
DEMO := MODEL=tiny PROTOCOL=tiny SPLIT=0 SEED=1 DATA=$(TINY_CORPUS) \
	EVAL_SETS="dev-clean dev-other test-clean test-other librivox-real" \
	MANIFEST_ROOT=$(DEMO_ROOT)/manifests RUN_ROOT=$(DEMO_ROOT) RESULTS=$(DEMO_ROOT)/results

.PHONY: help setup test demo manifests pretrain-tiny finetune decode compare tiny-corpus clean-demo

help: ## list targets and knobs
	@echo "Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-16s %s\n", $$1, $$2}'
	@echo "Knobs (default):"
	@grep -E '^[A-Z_]+ \?=' $(MAKEFILE_LIST) | sed -E 's/ \?= ?([^#]*)## ?(.*)/\t\1\t\2/' | awk -F'\t' '{printf "  %-14s %-22s %s\n", $$1, "(" $$2 ")", $$3}'

# ---- set-up ------------------------------------------------------------------------------
setup: $(SETUP_STAMP) ## create .venv and install the pinned requirements (once)

$(SETUP_STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=/path/to/python3.11" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: $(PYTHON) is not Python 3.11; pass PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	grep -v '# no-deps$$' requirements.txt > $(VENV)/requirements-deps.txt
	$(VENV)/bin/pip install --quiet -r $(VENV)/requirements-deps.txt
	$(VENV)/bin/pip install --quiet --no-deps $$(grep '# no-deps$$' requirements.txt | awk '{print $$1}')
	$(PY) -c 'import fairseq, torch, soundfile; print("fairseq", fairseq.__version__, "torch", torch.__version__)'
	touch $@

test: setup ## run the test suite (unit tests and the end-to-end chain on the tiny corpus)
	$(VENV)/bin/pytest -q tests

# ---- the pipeline ------------------------------------------------------------------------
manifests: setup ## write $(MANIFEST_ROOT)/10min-K/ for each fold in SPLITS from DATA
	@for k in $(SPLITS); do \
		$(PY) scripts/manifests.py --data $(DATA) --split $$k --out $(MANIFEST_ROOT)/10min-$$k \
			--eval-sets $(EVAL_SETS); \
	done

finetune: setup ## fine-tune MODEL on SPLIT with PROTOCOL and SEED into RUN_ROOT
	@test -f $(MANIFESTS)/train.tsv || { echo "error: $(MANIFESTS)/train.tsv not found; run: make manifests DATA=..." >&2; exit 1; }
	@test -f "$(PRETRAINED)" || { echo "error: pre-trained checkpoint '$(PRETRAINED)' for MODEL=$(MODEL) not found; $(if $(filter tiny,$(MODEL)),run: make pretrain-tiny,download it with make pretrained MODEL=$(MODEL))" >&2; exit 1; }
	@if [ -f $(RUN)/done ]; then echo "$(RUN) is finished; delete it to train again"; exit 0; fi; \
	mkdir -p $(RUN)/logs; log=$(RUN)/logs/finetune-$(NOW).log; echo "training $(RUN), log: $$log"; \
	$(FAIRSEQ_ENV) $(VENV)/bin/fairseq-hydra-train --config-dir recipes/finetune --config-name 10min \
		pretrained=$(MODEL) protocol=$(PROTOCOL) common.seed=$(SEED) \
		task.data=$(abspath $(MANIFESTS)) model.w2v_path=$(abspath $(PRETRAINED)) \
		checkpoint.save_dir=$(abspath $(RUN))/checkpoints hydra.run.dir=$(abspath $(RUN))/hydra \
		$(ARGS) > $$log 2>&1 || { tail -n 20 $$log >&2; echo "error: fine-tuning failed; full log: $$log" >&2; exit 1; }; \
	touch $(RUN)/done; grep -E "\[dev_other\]\[INFO\]" $$log | tail -n 1 | sed -E 's/.*(num_updates [0-9]+).*(wer [0-9.]+).*/final validation: \1, dev_other \2/'

decode: setup ## Viterbi-decode the run's best checkpoint on EVAL_SETS (skipped when up to date)
	@test -f $(RUN)/checkpoints/checkpoint_best.pt || { echo "error: $(RUN)/checkpoints/checkpoint_best.pt not found; run: make finetune" >&2; exit 1; }
	@todo=""; for s in $(SUBSETS); do \
		[ $(RUN)/decode/$$s/wer.json -nt $(RUN)/checkpoints/checkpoint_best.pt ] || todo="$$todo $$s"; \
	done; \
	if [ -z "$$todo" ]; then echo "$(RUN)/decode is up to date"; exit 0; fi; \
	mkdir -p $(RUN)/logs; log=$(RUN)/logs/decode-$(NOW).log; \
	$(PY) scripts/decode.py --checkpoint $(RUN)/checkpoints/checkpoint_best.pt --data $(MANIFESTS) \
		--subsets $$todo --out $(RUN)/decode \
		--meta model=$(MODEL) protocol=$(PROTOCOL) split=$(SPLIT) seed=$(SEED) 2> $$log \
		|| { tail -n 20 $$log >&2; echo "error: decoding failed; full log: $$log" >&2; exit 1; }

compare: setup ## gather every wer.json under RUN_ROOT into RESULTS/table9.{md,csv}
	$(PY) scripts/compare.py --runs $(RUN_ROOT) --out $(RESULTS)

# ---- the embedded tiny corpus and model ---------------------------------------------------
tiny-corpus: ## regenerate tiny/corpus (needs espeak-ng, sox, pocketsphinx-testdata)
	python3 scripts/make_tiny_corpus.py --out $(TINY_CORPUS)

pretrain-tiny: $(PRETRAINED_DIR)/tiny.pt ## pre-train the tiny wav2vec 2.0 on the tiny corpus (cached)

$(PRETRAINED_DIR)/tiny.pt: recipes/pretrain/tiny.yaml | $(SETUP_STAMP)
	$(PY) scripts/manifests.py --data $(TINY_CORPUS) --pretrain --out $(DEMO_ROOT)/manifests/pretrain
	rm -rf $(PRETRAINED_DIR)/tiny-run && mkdir -p $(PRETRAINED_DIR)
	$(FAIRSEQ_ENV) $(VENV)/bin/fairseq-hydra-train --config-dir recipes/pretrain --config-name tiny \
		task.data=$(abspath $(DEMO_ROOT))/manifests/pretrain \
		checkpoint.save_dir=$(abspath $(PRETRAINED_DIR))/tiny-run \
		hydra.run.dir=$(abspath $(PRETRAINED_DIR))/tiny-run/hydra > $(PRETRAINED_DIR)/tiny-pretrain.log 2>&1 \
		|| { tail -n 20 $(PRETRAINED_DIR)/tiny-pretrain.log >&2; exit 1; }
	mv $(PRETRAINED_DIR)/tiny-run/checkpoint_last.pt $@

demo: setup pretrain-tiny ## the whole chain on the embedded tiny corpus, on CPU, ending with the table
	$(MAKE) --no-print-directory manifests $(DEMO) SPLITS=0
	$(MAKE) --no-print-directory finetune $(DEMO)
	$(MAKE) --no-print-directory decode $(DEMO)
	$(MAKE) --no-print-directory compare $(DEMO)

clean-demo: ## delete what `make demo` made (runs/demo, pretrained/tiny.pt)
	rm -rf $(DEMO_ROOT) $(PRETRAINED_DIR)/tiny.pt $(PRETRAINED_DIR)/tiny-run $(PRETRAINED_DIR)/tiny-pretrain.log
