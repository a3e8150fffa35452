# w2v2-10min: wav2vec 2.0 fine-tuning on Libri-light's 10-minute splits, one stage per target.
# `make help` lists the targets and the knobs with their defaults.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

# ---- knobs (make VAR=value) -------------------------------------------------------------
PYTHON ?= python3.11## Python 3.11 used to create .venv
DATA ?= data## folder holding librispeech_finetuning/ and LibriSpeech/
SPLIT ?= 0## Libri-light 10-minute fold 0..5, or sSEED for a drawn sample
SPLITS ?= 0 1 2 3 4 5## folds that `make manifests` writes
SAMPLE ?=## seeds of new 10-minute samples drawn from the 9h pool, e.g. SAMPLE="1 2 3" (then SPLIT=s1)
MINUTES ?= 10## audio per drawn sample, in minutes
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
SUBSETS = $(subst -,_,$(EVAL_SETS))
PRETRAINED_tiny := $(PRETRAINED_DIR)/tiny.pt
PRETRAINED_base := $(PRETRAINED_DIR)/wav2vec_small.pt
PRETRAINED_large := $(PRETRAINED_DIR)/libri960_big.pt
PRETRAINED_vox := $(PRETRAINED_DIR)/wav2vec_vox_new.pt
PRETRAINED = $(PRETRAINED_$(MODEL))
RELEASED_DIR ?= released## released 10-minute fine-tuned checkpoints (make decode-original)
RELEASED_base := wav2vec_small_10m.pt
RELEASED_large := wav2vec_big_10m.pt
RELEASED_vox := wav2vec_vox_10m_new.pt
# fairseq pickles its config into checkpoints and torch >= 2.6 refuses such pickles by default.
# Training only ever loads checkpoints this project made or whose checksum it verified.
FAIRSEQ_ENV := TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 HYDRA_FULL_ERROR=1

GPUS ?= 1## GPUs on this machine (or per SLURM job); update_freq keeps the recipe's batch
MAX_TOKENS ?=## samples per GPU batch, lower to fit memory (default: the recipe's)
LR ?=## learning rate instead of the recipe's (runs go to <model>-<protocol>-lr<LR>/)
FP16 ?=## true or false instead of the recipe's (recipes: true; tiny: false)
WANDB_PROJECT ?=## log to wandb through fairseq's common.wandb_project (offline unless WANDB_MODE=online)
LAUNCHER ?= local## local, or slurm / submitit_local: through Hydra's submitit launcher
PARTITION ?=## SLURM partition (LAUNCHER=slurm)
TIME_MIN ?= 1440## SLURM time limit per run, minutes (LAUNCHER=slurm)
CFG ?=## CFG=1: print the composed fairseq config and exit
SEEDS ?= 1 2 3## seeds of `make sweep`
LRS ?=## learning rates of `make sweep`, e.g. LRS="2e-5 3e-5" (default: the recipe's)
JOBS ?= 1## runs `make sweep` keeps going at once (SLURM: how many jobs to queue)

RUN_PROTOCOL = $(PROTOCOL)$(if $(LR),-lr$(LR))
RUN = $(RUN_ROOT)/$(MODEL)-$(RUN_PROTOCOL)/10min-$(SPLIT)/seed-$(SEED)
PLAN = $(PY) scripts/plan_finetune.py --model $(MODEL) --protocol $(PROTOCOL) \
	--pretrained $(PRETRAINED) --train-tsv $(MANIFESTS)/train.tsv --gpus $(GPUS) \
	$(if $(MAX_TOKENS),--max-tokens $(MAX_TOKENS)) \
	$(if $(LR),--lr $(LR)) $(if $(FP16),--fp16 $(FP16))
TRAIN = $(FAIRSEQ_ENV) WANDB_MODE=$${WANDB_MODE:-offline} WANDB_DIR=$(abspath $(RUN)) \
	WANDB_NAME=$(MODEL)-$(RUN_PROTOCOL)-10min-$(SPLIT)-seed-$(SEED) \
	$(VENV)/bin/fairseq-hydra-train --config-dir $(abspath recipes/finetune) --config-name 10min $(1) \
	pretrained=$(MODEL) protocol=$(PROTOCOL) common.seed=$(SEED) \
	task.data=$(abspath $(MANIFESTS)) model.w2v_path=$(abspath $(PRETRAINED)) \
	checkpoint.save_dir=$(abspath $(RUN))/checkpoints hydra.run.dir=$(abspath $(RUN))/hydra \
	common.tensorboard_logdir=$(abspath $(RUN))/tensorboard \
	$(if $(WANDB_PROJECT),common.wandb_project=$(WANDB_PROJECT))
LAUNCH_ARGS_slurm = hydra/launcher=submitit_slurm hydra.sweep.dir=$(abspath $(RUN))/hydra \
	hydra.launcher.gpus_per_node=$(GPUS) hydra.launcher.tasks_per_node=1 \
	hydra.launcher.timeout_min=$(TIME_MIN) $(if $(PARTITION),hydra.launcher.partition=$(PARTITION))
LAUNCH_ARGS_submitit_local = hydra/launcher=submitit_local \
	hydra.sweep.dir=$(abspath $(RUN))/hydra hydra.launcher.timeout_min=$(TIME_MIN)
LAUNCH_ARGS = $(LAUNCH_ARGS_$(LAUNCHER))

# The embedded tiny corpus and where `make demo` keeps everything it makes.
TINY_CORPUS := tiny/corpus
DEMO_ROOT ?= runs/demo## where `make demo` keeps what it makes
DEMO := MODEL=tiny PROTOCOL=tiny SPLIT=0 SEED=1 DATA=$(TINY_CORPUS) \
	EVAL_SETS="dev-clean dev-other test-clean test-other librivox-real" \
	MANIFEST_ROOT=$(DEMO_ROOT)/manifests RUN_ROOT=$(DEMO_ROOT) RESULTS=$(DEMO_ROOT)/results

.PHONY: help setup test demo data pretrained manifests bench-manifests pretrain-tiny finetune decode decode-original sweep compare tiny-corpus clean-demo

help: ## list targets and knobs
	@echo "Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-16s %s\n", $$1, $$2}'
	@echo "Knobs (default):"
	@grep -E '^[A-Z0-9_]+ \?=' $(MAKEFILE_LIST) | sed -E 's/ \?= ?([^#]*)## ?(.*)/\t\1\t\2/' | awk -F'\t' '{printf "  %-14s %-22s %s\n", $$1, "(" $$2 ")", $$3}'

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
data: setup ## download, verify and unpack Libri-light's 10-min set, LibriSpeech dev/test, dict.ltr.txt into DATA
	$(PY) scripts/fetch.py --data $(DATA)

pretrained: setup ## download MODEL's pre-trained checkpoint into PRETRAINED_DIR (SHA-256 recorded, then verified)
	@test -n "$(RELEASED_$(MODEL))" || { echo "error: MODEL=$(MODEL) has no released checkpoint; choose base, large or vox" >&2; exit 1; }
	$(PY) scripts/fetch_checkpoint.py $(notdir $(PRETRAINED)) --dest $(PRETRAINED_DIR)

manifests: setup ## write MANIFEST_ROOT/10min-K/ for each fold in SPLITS and 10min-sS/ for each seed in SAMPLE
	@$(PY) scripts/manifests.py --data $(DATA) --out-root $(MANIFEST_ROOT) --eval-sets $(EVAL_SETS) \
		$(if $(strip $(SPLITS)),--split $(SPLITS)) $(if $(strip $(SAMPLE)),--sample $(SAMPLE) --minutes $(MINUTES))

bench-manifests: setup ## time manifests.py against fairseq's manifest scripts on a cached 20k-file tree
	$(PY) scripts/bench_manifests.py --tree .bench/tree

finetune: setup ## fine-tune MODEL on SPLIT with PROTOCOL and SEED (CFG=1: print the config only)
	@test -f $(MANIFESTS)/train.tsv || { echo "error: $(MANIFESTS)/train.tsv not found; run: make manifests DATA=..." >&2; exit 1; }
	@test -f "$(PRETRAINED)" || { echo "error: pre-trained checkpoint '$(PRETRAINED)' for MODEL=$(MODEL) not found; $(if $(filter tiny,$(MODEL)),run: make pretrain-tiny,download it: make pretrained MODEL=$(MODEL))" >&2; exit 1; }
	@$(if $(CFG),,mkdir -p $(RUN)/logs;) \
	overrides=$$($(PLAN) $(if $(CFG),,--record $(RUN)/run.json.new \
		--meta split=$(SPLIT) seed=$(SEED) launcher=$(LAUNCHER) args="$(ARGS)")); \
	if [ -n "$(CFG)" ]; then $(call TRAIN) $$overrides $(ARGS) --cfg job 2>/dev/null; exit; fi; \
	$(call TRAIN) $$overrides $(ARGS) --cfg job 2> $(RUN)/logs/compose.err > $(RUN)/config.yaml.new \
		|| { grep -vE "Warning|warn|^ |^$$|DEBUG" $(RUN)/logs/compose.err | tail -n 3 >&2; \
		     echo "error: fairseq could not compose the config; check ARGS and the recipe" >&2; exit 1; }; \
	if [ -f $(RUN)/config.yaml ] && ! cmp -s $(RUN)/config.yaml $(RUN)/config.yaml.new; then \
		rm $(RUN)/config.yaml.new $(RUN)/run.json.new; \
		echo "error: $(RUN) was made with other settings (see its config.yaml); delete it, or pick another SEED or RUN_ROOT" >&2; exit 1; fi; \
	mv $(RUN)/config.yaml.new $(RUN)/config.yaml; \
	if [ -f $(RUN)/done ]; then rm $(RUN)/run.json.new; echo "$(RUN) is finished; delete it to train again"; exit 0; fi; \
	mv $(RUN)/run.json.new $(RUN)/run.json; \
	log=$(RUN)/logs/finetune-$(NOW).log; echo "training $(RUN) (log: $$log)"; \
	$(call TRAIN,$(if $(LAUNCH_ARGS),--multirun)) $$overrides $(ARGS) $(LAUNCH_ARGS) > $$log 2>&1 \
		|| { tail -n 20 $$log >&2; echo "error: fine-tuning failed; full log: $$log; rerun the same command to resume" >&2; exit 1; }; \
	touch $(RUN)/done; \
	{ grep -hsE "\[dev_other\]\[INFO\]" $$log $(RUN)/hydra/.submitit/*/*_log.out || true; } | tail -n 1 \
		| sed -E 's/.*(num_updates [0-9]+).*(best_wer [0-9.]+).*/finished: \1, \2 on dev_other/'

decode: setup ## Viterbi-decode the run's best checkpoint on EVAL_SETS (skipped when up to date)
	@test -f $(RUN)/checkpoints/checkpoint_best.pt || { echo "error: $(RUN)/checkpoints/checkpoint_best.pt not found; run: make finetune" >&2; exit 1; }
	@todo=""; for s in $(SUBSETS); do \
		[ $(RUN)/decode/$$s/wer.json -nt $(RUN)/checkpoints/checkpoint_best.pt ] || todo="$$todo $$s"; \
	done; \
	if [ -z "$$todo" ]; then echo "$(RUN)/decode is up to date"; exit 0; fi; \
	mkdir -p $(RUN)/logs; log=$(RUN)/logs/decode-$(NOW).log; \
	$(PY) scripts/decode.py --checkpoint $(RUN)/checkpoints/checkpoint_best.pt --data $(MANIFESTS) \
		--subsets $$todo --out $(RUN)/decode \
		--meta model=$(MODEL) protocol=$(RUN_PROTOCOL) split=$(SPLIT) seed=$(SEED) 2> $$log \
		|| { tail -n 20 $$log >&2; echo "error: decoding failed; full log: $$log" >&2; exit 1; }

decode-original: setup ## download MODEL's released 10-minute checkpoint and decode it the same way (the control row)
	@test -n "$(RELEASED_$(MODEL))" || { echo "error: MODEL=$(MODEL) has no released checkpoint; choose base, large or vox" >&2; exit 1; }
	$(PY) scripts/fetch_checkpoint.py $(RELEASED_$(MODEL)) --dest $(RELEASED_DIR)
	@mkdir -p $(RUN_ROOT)/$(MODEL)-released/logs; log=$(RUN_ROOT)/$(MODEL)-released/logs/decode-$(NOW).log; \
	$(PY) scripts/decode.py --checkpoint $(RELEASED_DIR)/$(RELEASED_$(MODEL)) --verify-sha256 \
		--data $(MANIFESTS) --subsets $(SUBSETS) --out $(RUN_ROOT)/$(MODEL)-released/decode \
		--meta model=$(MODEL) protocol=released split=- seed=- 2> $$log \
		|| { tail -n 20 $$log >&2; echo "error: decoding failed; full log: $$log" >&2; exit 1; }

SWEEP_RUNS = $(foreach k,$(SPLITS),$(foreach s,$(SEEDS),$(foreach l,$(or $(LRS),default),sweep_$(k)_$(s)_$(l))))
sweep: setup ## fine-tune and decode every split in SPLITS x seed in SEEDS (x LRS); JOBS at once
	$(MAKE) --no-print-directory -j$(JOBS) $(SWEEP_RUNS)

sweep_%:
	$(eval parts := $(subst _, ,$*))
	$(MAKE) --no-print-directory finetune SPLIT=$(word 1,$(parts)) SEED=$(word 2,$(parts)) $(if $(filter-out default,$(word 3,$(parts))),LR=$(word 3,$(parts)))
	$(MAKE) --no-print-directory decode SPLIT=$(word 1,$(parts)) SEED=$(word 2,$(parts)) $(if $(filter-out default,$(word 3,$(parts))),LR=$(word 3,$(parts)))

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
	$(PY) scripts/fetch_checkpoint.py --record $@

demo: setup pretrain-tiny ## the whole chain on the embedded tiny corpus, on CPU, ending with the table
	$(MAKE) --no-print-directory manifests $(DEMO) SPLITS=0
	$(MAKE) --no-print-directory finetune $(DEMO)
	$(MAKE) --no-print-directory decode $(DEMO)
	$(MAKE) --no-print-directory compare $(DEMO)

clean-demo: ## delete what `make demo` made (runs/demo, pretrained/tiny.pt)
	rm -rf $(DEMO_ROOT) $(PRETRAINED_DIR)/tiny.pt $(PRETRAINED_DIR)/tiny-run $(PRETRAINED_DIR)/tiny-pretrain.log
