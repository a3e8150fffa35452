# w2v2-10min: wav2vec 2.0 fine-tuning on Libri-light's 10-minute splits, one stage per target.
# Each target is a short call into Python (scripts/<stage>.py -> w2v2_10min/<stage>.py), where
# the logic and its tests live. `make help` lists the targets and knobs, stage by stage: it reads
# the `##@ stage`, `target: ## help` and `KNOB ?= default## help` lines of this file.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PY = $(VENV)/bin/python
SETUP_STAMP = $(VENV)/.installed
export PYTHONPATH := $(CURDIR)

MANIFESTS = $(MANIFEST_ROOT)/10min-$(SPLIT)
SUBSETS = $(subst -,_,$(EVAL_SETS))
# the knobs that name a run (a --option per key of w2v2_10min.layout.RunId, which alone makes its folder)
RUN_KNOBS = --run-root $(RUN_ROOT) --model $(MODEL) --protocol $(PROTOCOL) --split '$(SPLIT)' \
	--seed '$(SEED)' --lr '$(LR)' --lr-decay '$(LR_DECAY)' --trainer '$(TRAINER)' --rung '$(RUNG)' \
	--optim '$(OPTIM)'
# MODEL's checkpoint files: w2v2_10min.checkpoints (PRETRAINED_FILES, RELEASED_FILES) names them
RELEASED_KNOBS = --run-root $(RUN_ROOT) --released $(MODEL) --released-dir $(RELEASED_DIR) --verify-sha256
# download MODEL's released 10-minute checkpoint (refused, in one line, for a MODEL without one)
FETCH_RELEASED = $(PY) scripts/checkpoints.py --released $(MODEL) --dest $(RELEASED_DIR)
TINY_CORPUS := tiny/corpus
DEMO = MODEL=tiny PROTOCOL=tiny DATA=$(TINY_CORPUS) \
	EVAL_SETS="dev-clean dev-other test-clean test-other librivox-real" \
	MANIFEST_ROOT=$(DEMO_ROOT)/manifests RUN_ROOT=$(DEMO_ROOT) RESULTS=$(DEMO_ROOT)/results

.PHONY: help setup test test-unit demo data pretrained manifests bench-manifests pretrain-tiny tiny-pretrained finetune \
	decode decode-original sweep status compare tiny-corpus clean-demo lm tune-lm tune-lm-original \
	ladder tiny-lm tiny-transformer-lm bench-lm bench-tune bench-transformer-lm bench-trainers bench-spread bench-startup export-hf export-hf-original

help: ## list targets and knobs, stage by stage
	@awk 'function flush() { printf "%s", targets knobs; targets = ""; knobs = "" } \
		/^##@ / { flush(); printf "\n%s\n", substr($$0, 5); next } \
		/^[a-z-]+:.*## / { split($$0, a, ":.*## "); targets = targets sprintf("  %-17s %s\n", a[1], a[2]); next } \
		/^[A-Z0-9_]+ \?=/ { name = $$0; sub(/ \?=.*/, "", name); rest = $$0; sub(/^[^=]*= ?/, "", rest); \
			value = rest; sub(/##.*/, "", value); text = rest; sub(/^[^#]*## ?/, "", text); \
			knobs = knobs sprintf("    %-14s %-16s %s\n", name, "(" value ")", text) } \
		END { flush() }' $(MAKEFILE_LIST)

##@ Set-up and tests
PYTHON ?=## Python 3.11 or 3.12 that `make setup` creates VENV with (empty: python3.11 if it runs, else python3.12)
VENV ?= .venv## the virtual environment `make setup` creates and every target runs in, e.g. VENV=.venv312 beside .venv
CI ?=## true: `make test` fails a test whose system tool is missing instead of skipping it

# The Pythons that ve-fairseq 0.12.3 has wheels for; `make setup` refuses any other. SETUP_PYTHON
# is PYTHON, or else the first of python3.11 and python3.12 that runs (pyenv's shims are on PATH
# even for a version that is not selected), looked for only when `make setup` has work to do.
PYTHONS := 3.11 3.12
SETUP_PYTHON = $(or $(PYTHON),$(call runs,python3.11),$(call runs,python3.12))
runs = $(shell $(1) -c '' >/dev/null 2>&1 && echo $(1))
HOW_TO_GET_PYTHON := install Python 3.12 or 3.11 (your distribution, pyenv or uv), then: make setup PYTHON=python3.12

setup: $(SETUP_STAMP) ## create VENV and install the pinned requirements (once)

$(SETUP_STAMP): requirements.txt
	@test -n "$(SETUP_PYTHON)" || { echo "error: neither python3.11 nor python3.12 runs here; $(HOW_TO_GET_PYTHON)" >&2; exit 1; }
	@v=$$($(SETUP_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
		|| { echo "error: $(SETUP_PYTHON) not found (or does not run); $(HOW_TO_GET_PYTHON)" >&2; exit 1; }; \
	case " $(PYTHONS) " in *" $$v "*) ;; *) echo "error: $(SETUP_PYTHON) is Python $$v, for which fairseq (ve-fairseq 0.12.3) has no wheel; $(HOW_TO_GET_PYTHON)" >&2; exit 1;; esac
	$(SETUP_PYTHON) -m venv $(VENV)
	grep -v '# no-deps$$' requirements.txt > $(VENV)/requirements-deps.txt
	$(VENV)/bin/pip install --quiet -r $(VENV)/requirements-deps.txt
	$(VENV)/bin/pip install --quiet --no-deps $$(grep '# no-deps$$' requirements.txt | awk '{print $$1}')
	$(PY) -c 'import fairseq, torch, soundfile; print("fairseq", fairseq.__version__, "torch", torch.__version__)'
	touch $@

TEST_JOBS ?= $(shell nproc)## test files `make test` runs at once (pytest-xdist workers, a thread each)

test: setup ## run the test suite (unit tests and the end-to-end chain on the tiny corpus)
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -q -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder tests

test-unit: setup ## the unit tests alone (no fairseq training or decoding): the developer's loop
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -q -n $(TEST_JOBS) --dist loadfile -m "not chain" tests

##@ Data: download, verify, manifests
DATA ?= data## folder holding librispeech_finetuning/ and LibriSpeech/
SPLITS ?= 0 1 2 3 4 5## folds that `make manifests` writes
SAMPLE ?=## seeds of new 10-minute samples drawn from the 9h pool, e.g. SAMPLE="1 2 3" (then SPLIT=s1); with POOL: sample seeds (default 42)
MINUTES ?= 10## audio per sample drawn from the 9h pool, in minutes
POOL ?=## train-clean-100: `make data` also fetches LibriSpeech train-clean-100 (6.3 GB); `make manifests` draws SAMPLE's samples of UTTERANCES from it (then SPLIT=c100s42)
UTTERANCES ?= 48## utterances per sample drawn from POOL (the seed's 48; another N names the split c100sSEEDnN)
EVAL_SETS ?= dev-clean dev-other test-clean test-other## LibriSpeech sets to write and decode
MANIFEST_ROOT ?= manifests## where manifests/10min-K/ are written
PRETRAINED_DIR ?= pretrained## pre-trained checkpoints (wav2vec_small.pt, ..., tiny.pt)
RELEASED_DIR ?= released## released 10-minute fine-tuned checkpoints (make decode-original)
LM ?=## LM=1: `make data` also runs `make lm`; LM=transformer: `make lm` fetches the word Transformer LM too

data: setup ## download, verify and unpack Libri-light's 10-min set, LibriSpeech dev/test, dict.ltr.txt (and POOL) into DATA
	$(PY) scripts/download.py --data $(DATA) $(if $(POOL),--pool '$(POOL)')
	$(if $(LM),@$(MAKE) --no-print-directory lm)

lm: setup ## download OpenSLR 11's 4-gram LM and lexicon into DATA (checked) and write LEXICON; LM=transformer: also the word Transformer LM (TRANSFORMER_LM, its dict.txt and lexicon)
	$(PY) scripts/download.py --data $(DATA) --lm --only 4-gram lexicon
	$(PY) scripts/lexicon.py --words $(DATA)/librispeech-lexicon.txt --out $(LEXICON)
	$(if $(filter transformer,$(LM)),$(PY) scripts/transformer_lm.py --dest $(dir $(TRANSFORMER_LM)) \
		--words $(DATA)/librispeech-lexicon.txt)

pretrained: setup ## download MODEL's pre-trained checkpoint into PRETRAINED_DIR (SHA-256 recorded, then verified)
	$(PY) scripts/checkpoints.py --pretrained $(MODEL) --dest $(PRETRAINED_DIR)

manifests: setup ## write MANIFEST_ROOT/10min-K/ for each fold in SPLITS and 10min-sS/ for each seed in SAMPLE (10min-c100sS/ with POOL=train-clean-100)
	@$(PY) scripts/manifests.py --data $(DATA) --out-root $(MANIFEST_ROOT) --eval-sets $(EVAL_SETS) \
		$(if $(strip $(SPLITS)),--split $(SPLITS)) $(if $(strip $(SAMPLE)),--sample $(SAMPLE) --minutes $(MINUTES)) \
		$(if $(POOL),--pool '$(POOL)' --utterances '$(UTTERANCES)')

##@ Fine-tuning: one run is MODEL x PROTOCOL x SPLIT x SEED
MODEL ?= base## pre-trained checkpoint: base, large, vox (or tiny)
PROTOCOL ?= fairseq## fine-tuning protocol: fairseq or paper (or tiny); seed: the seed's transformers recipe (TRAINER=transformers, docs/seed-study.md)
SPLIT ?= 0## Libri-light 10-minute fold 0..5, sSEED for a drawn sample, c100sSEED for a train-clean-100 sample
SEED ?= 1## training seed
RUN_ROOT ?= runs## where runs/<model>-<protocol>/10min-K/seed-S/ are written
GPUS ?= 1## GPUs on this machine (or per SLURM job; 0: CPU); update_freq keeps the recipe's batch
MAX_TOKENS ?=## samples per GPU batch, lower to fit memory (default: the recipe's)
LR ?=## learning rate instead of the recipe's (runs go to <model>-<protocol>-lr<LR>/)
LR_DECAY ?=## linear or exponential lr decay instead of the protocol's (paper: linear, others: exponential); runs go to <model>-<protocol>-<LR_DECAY>/
TRAINER ?= fairseq## who trains the run: fairseq, or transformers (its Trainer on Wav2Vec2ForCTC, shown equal update by update; runs go to <model>-<protocol>-transformers/)
RUNG ?=## PROTOCOL=seed with the paper's value for each departure up to this rung: norm, updates, freeze, masks, dropouts, schedule, optimizer (runs go to <model>-seed+<RUNG>-.../)
OPTIM ?=## TRAINER=transformers' optimizer instead of the recipe's: adam (fairseq's), adamw (torch's) or adamw_bnb_8bit (the seed's, GPU)
FP16 ?=## true or false instead of the recipe's (recipes: true; tiny: false)
ARGS ?=## extra Hydra overrides for fairseq, e.g. ARGS='model.mask_prob=0.5'
CFG ?=## CFG=1: print the composed fairseq config and exit
WANDB_PROJECT ?= w2v2-10min## wandb project of fairseq's common.wandb_project, one run per training run in RUN/wandb/ (offline unless WANDB_MODE=online); empty: no wandb
WANDB_MODE ?=## wandb's own variable: offline unless you set online (and WANDB_ENTITY)
LAUNCHER ?= local## local; slurm: `make sweep` queues one SLURM job per run (docs/finetuning.md); submitit_local
PARTITION ?=## SLURM partition (LAUNCHER=slurm; empty: the cluster's default)
TIME_MIN ?= 1440## SLURM time limit per job, minutes (LAUNCHER=slurm); a run that needs longer is requeued and resumes
REQUEUES ?= 3## LAUNCHER=slurm: times a run's job may come back after its time limit or a requeue
SEEDS ?= 1 2 3## seeds of `make sweep`
LRS ?=## learning rates of `make sweep`, e.g. LRS="2e-5 3e-5" (default: the recipe's)
JOBS ?= 1## runs `make sweep` keeps going at once (not LAUNCHER=slurm: SLURM's scheduler decides)
FAST ?= 1## 1: same training, less work per update (w2v2_plugin, docs/speed.md); 0: fairseq's own path
SEEDED ?= 1## 1: masks and LayerDrop drawn from (SEED, update, utterance), so a SEED fixes the run and a resumed run ends as an uninterrupted one (docs/finetuning.md); 0: fairseq's own draws
CHECKPOINT_MINUTES ?= 10## FAST=1: write checkpoints at most every N minutes, at the end and at each best validation (0: as fairseq)

finetune: setup ## fine-tune MODEL on SPLIT with PROTOCOL and SEED (CFG=1: print the config only)
	@$(PY) scripts/finetune.py $(RUN_KNOBS) --manifests $(MANIFESTS) --pretrained-dir '$(PRETRAINED_DIR)' \
		--gpus '$(GPUS)' --max-tokens '$(MAX_TOKENS)' --fp16 '$(FP16)' \
		--launcher '$(LAUNCHER)' --partition '$(PARTITION)' --time-min '$(TIME_MIN)' \
		--wandb-project '$(WANDB_PROJECT)' --fast '$(FAST)' --seeded '$(SEEDED)' \
		--checkpoint-minutes '$(CHECKPOINT_MINUTES)' --args "$(ARGS)" $(if $(CFG),--print-config)

SWEEP_RUNS = $(foreach k,$(SPLITS),$(foreach s,$(SEEDS),$(foreach l,$(or $(LRS),default),sweep_$(k)_$(s)_$(l))))
# what a run's SLURM job passes to its own `make finetune` and `make decode` on the node
# (tests/test_status.py: every knob of those two stages but the run's own and the sweep's)
JOB_KNOBS = MODEL PROTOCOL LR_DECAY TRAINER RUNG OPTIM RUN_ROOT GPUS MAX_TOKENS FP16 ARGS WANDB_PROJECT FAST SEEDED \
	CHECKPOINT_MINUTES DATA MANIFEST_ROOT PRETRAINED_DIR EVAL_SETS DECODER DECODE_TRAIN LM_ARPA \
	LEXICON TRANSFORMER_LM TRANSFORMER_LEXICON LM_PARALLEL LM_BATCH LM_CACHE LM_FP16 BEAM \
	LM_WEIGHT WORD_SCORE LM_JOBS
sweep: setup ## fine-tune and decode every split in SPLITS x seed in SEEDS (x LRS); JOBS at once, or one SLURM job each
	@$(PY) -m w2v2_10min.knobs SPLITS='$(SPLITS)' SEEDS='$(SEEDS)' LRS='$(LRS)' JOBS='$(JOBS)'
ifeq ($(LAUNCHER),slurm)
	@$(PY) scripts/cluster.py --splits '$(SPLITS)' --seeds '$(SEEDS)' --lrs '$(LRS)' \
		--partition '$(PARTITION)' --time-min '$(TIME_MIN)' --requeues '$(REQUEUES)' \
		$(foreach knob,$(JOB_KNOBS),--knob "$(knob)=$($(knob))")
else
	$(MAKE) --no-print-directory -j$(JOBS) $(SWEEP_RUNS)
endif

LADDER ?= seed norm updates freeze masks dropouts schedule optimizer## rungs `make ladder` trains, from the seed's recipe (seed) up
ladder: setup ## the departure ladder: PROTOCOL=seed TRAINER=transformers, then one more departure returned to the paper's value per rung; fine-tune and decode each rung of LADDER for each seed in SEEDS
	@$(PY) -m w2v2_10min.knobs SEEDS='$(SEEDS)'
	@rungs="$$($(PY) -m w2v2_10min.ladder $(LADDER))"; \
	for seed in $(SEEDS); do while IFS= read -r rung; do \
		$(MAKE) --no-print-directory finetune decode PROTOCOL=seed TRAINER=transformers "$$rung" SEED=$$seed || exit 1; \
	done <<< "$$rungs"; done

status: setup ## one line per run under RUN_ROOT: queued, running (update N of M), decoded (WER), failed (log), interrupted
	@$(PY) scripts/status.py --run-root $(RUN_ROOT)

sweep_%:
	$(eval parts := $(subst _, ,$*))
	$(MAKE) --no-print-directory finetune SPLIT=$(word 1,$(parts)) SEED=$(word 2,$(parts)) $(if $(filter-out default,$(word 3,$(parts))),LR=$(word 3,$(parts)))
	$(MAKE) --no-print-directory decode SPLIT=$(word 1,$(parts)) SEED=$(word 2,$(parts)) $(if $(filter-out default,$(word 3,$(parts))),LR=$(word 3,$(parts)))

##@ Decoding and report
DECODER ?= viterbi## viterbi (no LM), 4gram (KenLM) or transformer (fairseq's word Transformer LM), see docs/lm.md; outputs go to decode/ or decode-<DECODER>/
DECODE_TRAIN ?=## 1: also decode the split's own training utterances (shows learning; never a result)
LM_ARPA ?= $(DATA)/4-gram.arpa.gz## n-gram LM of DECODER=4gram (ARPA, gzipped or not; `make lm`)
LEXICON ?= $(DATA)/lexicon.ltr.lst## letter lexicon of DECODER=4gram (`make lm` writes it)
TRANSFORMER_LM ?= $(DATA)/transformer/lm_librispeech_word_transformer.pt## word LM of DECODER=transformer (fairseq checkpoint; its dict.txt, upper-cased, beside it; `make lm LM=transformer`)
TRANSFORMER_LEXICON ?= $(dir $(TRANSFORMER_LM))lexicon.ltr.lst## letter lexicon of DECODER=transformer: the words its LM knows (`make lm LM=transformer`)
LM_PARALLEL ?=## utterances DECODER=transformer searches at once, their LM states run in shared batches (default 16)
LM_BATCH ?=## LM states DECODER=transformer runs in one forward pass, at most (default 16)
LM_CACHE ?=## LM states DECODER=transformer keeps with their keys, values and scores, shared out among LM_PARALLEL searches (default 10000)
LM_FP16 ?=## 1: DECODER=transformer runs the LM in half precision (recorded; see docs/lm.md)
BEAM ?=## beam of the LM search (default: the paper's, 4-gram 1500 decoding and 500 tuning, Transformer 500 and 50)
LM_WEIGHT ?=## LM weight instead of the tuned one (with WORD_SCORE)
WORD_SCORE ?=## word insertion score instead of the tuned one (with LM_WEIGHT)
TRIALS ?= 128## trials of `make tune-lm TUNE=search` (the paper's 128), each a full decode (TUNE=rescore rescores a grid instead)
TUNE ?= search## how `make tune-lm` tunes: search (a full decode per trial, the paper's) or rescore (a few decodes, the weights searched by rescoring their beams' hypotheses; not yet shown as good: docs/lm.md)
TUNE_SET ?= dev-other## the set `make tune-lm` tunes on
LM_JOBS ?=## processes for the 4-gram search (default: all cores)
RESULTS ?= results## where `make compare` writes the report

decode: setup ## decode the run's best checkpoint on EVAL_SETS with DECODER (skipped when up to date)
	@$(PY) -m w2v2_10min.knobs SPLIT='$(SPLIT)' SEED='$(SEED)' LR='$(LR)' EVAL_SETS='$(EVAL_SETS)' \
		DECODE_TRAIN='$(DECODE_TRAIN)'
	@$(PY) scripts/decode.py $(RUN_KNOBS) --manifests $(MANIFESTS) \
		--subsets $(if $(DECODE_TRAIN),train) $(SUBSETS) --decoder $(DECODER) $(LM_ARGS)

decode-original: setup ## download MODEL's released 10-minute checkpoint and decode it the same way (the control row)
	@$(PY) -m w2v2_10min.knobs SPLIT='$(SPLIT)' EVAL_SETS='$(EVAL_SETS)'
	@$(FETCH_RELEASED)
	@$(PY) scripts/decode.py $(RELEASED_KNOBS) --pretrained-dir $(PRETRAINED_DIR) \
		--manifests $(MANIFESTS) --subsets $(SUBSETS) --decoder $(DECODER) $(LM_ARGS)

# every decoder's options and files (by Make knob); scripts/decode.py and tune_lm.py route them
# to the decoder DECODER names (w2v2_10min.decoders), which takes its own
DECODER_FILES = --files LM_ARPA=$(LM_ARPA) LEXICON=$(LEXICON) TRANSFORMER_LM=$(TRANSFORMER_LM) \
	TRANSFORMER_LEXICON=$(TRANSFORMER_LEXICON)
LM_SEARCH = $(DECODER_FILES) $(if $(BEAM),--beam $(BEAM)) $(if $(LM_JOBS),--jobs $(LM_JOBS)) \
	$(if $(LM_BATCH),--lm-batch $(LM_BATCH)) $(if $(LM_PARALLEL),--lm-parallel $(LM_PARALLEL)) \
	$(if $(LM_CACHE),--lm-cache $(LM_CACHE)) $(if $(LM_FP16),--lm-fp16)
LM_ARGS = $(LM_SEARCH) $(if $(LM_WEIGHT),--lm-weight $(LM_WEIGHT)) \
	$(if $(WORD_SCORE),--word-score $(WORD_SCORE))
TUNE_LM = $(PY) scripts/tune_lm.py --decoder $(DECODER) $(LM_SEARCH) --manifests $(MANIFESTS) \
	--subset $(subst -,_,$(TUNE_SET)) --trials $(TRIALS) --tune $(TUNE)
tune-lm: setup ## tune the LM weight and word score of the run on TUNE_SET (TUNE=search, the default: the paper's 128 decodes; TUNE=rescore: a few): 4-gram (beam 500), DECODER=transformer (beam 50)
	@$(TUNE_LM) $(RUN_KNOBS)

tune-lm-original: setup ## the same for MODEL's released 10-minute checkpoint (downloaded if needed)
	@$(FETCH_RELEASED)
	@$(TUNE_LM) $(RELEASED_KNOBS)

HF_VERIFY ?= 10## utterances of each EVAL_SET that `make export-hf` checks against fairseq

export-hf: setup ## write the run's best checkpoint as a transformers model, processor and model card into RUN/hf (verified)
	@$(PY) scripts/hf_export.py $(RUN_KNOBS) --manifests $(MANIFESTS) \
		--verify-subsets $(SUBSETS) --verify-utterances $(HF_VERIFY)

export-hf-original: setup ## the same for MODEL's released 10-minute checkpoint, into RUN_ROOT/<model>-released/hf
	@$(FETCH_RELEASED)
	@$(PY) scripts/hf_export.py $(RELEASED_KNOBS) --manifests $(MANIFESTS) \
		--verify-subsets $(SUBSETS) --verify-utterances $(HF_VERIFY)

compare: setup ## gather every wer.json under RUN_ROOT into RESULTS/table9.{md,csv} and plots
	@$(PY) scripts/compare.py --run-root $(RUN_ROOT) --out $(RESULTS)

##@ Demo on the embedded tiny corpus
DEMO_ROOT ?= runs/demo## where `make demo` keeps what it makes
DEMO_SPLITS ?= 0 1 2## tiny splits `make demo` fine-tunes on
DEMO_SEEDS ?= 1 2## seeds of each of them
DEMO_JOBS ?= 2## demo runs at once, the CPU cores shared between them
DEMO_LM = LM_ARPA=$(DEMO_ROOT)/lm/4-gram.arpa.gz LEXICON=$(DEMO_ROOT)/lm/lexicon.ltr.lst \
	TRANSFORMER_LM=$(DEMO_ROOT)/lm/tiny_word_transformer.pt TRANSFORMER_LEXICON=$(DEMO_ROOT)/lm/lexicon.ltr.lst
DEMO_RUNS = $(foreach k,$(DEMO_SPLITS),$(foreach s,$(DEMO_SEEDS),demo_$(k)_$(s)))
# each of DEMO_JOBS runs at once gets its share of the cores (torch's threads, the LM search)
DEMO_THREADS = $(shell n=$$(( $$(nproc) / $(DEMO_JOBS) )); echo $$(( n > 0 ? n : 1 )))

demo: setup pretrain-tiny ## the study in miniature on the embedded tiny corpus, on CPU: DEMO_SPLITS x DEMO_SEEDS runs, decoded, ending with the report
	@$(PY) -m w2v2_10min.knobs SPLITS='$(DEMO_SPLITS)' SEEDS='$(DEMO_SEEDS)' JOBS='$(DEMO_JOBS)'
	$(MAKE) --no-print-directory manifests $(DEMO) SPLITS="$(DEMO_SPLITS)"
	$(MAKE) --no-print-directory tiny-lm $(DEMO)
	OMP_NUM_THREADS=$(DEMO_THREADS) $(MAKE) --no-print-directory -O -j$(DEMO_JOBS) \
		$(DEMO_ROOT)/lm/tiny_word_transformer.pt $(DEMO_RUNS:demo_%=demo-4gram_%) $(DEMO_RUNS) \
		LM_JOBS=$(DEMO_THREADS)
	$(MAKE) --no-print-directory compare $(DEMO)

# one demo run: fine-tune, Viterbi (and the split's own utterances), then the 4-gram and the
# Transformer LM, each tuned (16 trials) and decoded. The Transformer LM is trained (one core)
# beside the first runs; every run's long half (fine-tuning, Viterbi, 4-gram) is started before
# any short one (the Transformer LM's), so that the cores finish together; wandb is off
# (WANDB_PROJECT=), as nobody reads the demo's wandb logs.
DEMO_KNOBS = $(DEMO) $(DEMO_LM) WANDB_PROJECT= SPLIT=$(word 1,$(subst _, ,$*)) \
	SEED=$(word 2,$(subst _, ,$*))
demo_%: demo-4gram_% $(DEMO_ROOT)/lm/tiny_word_transformer.pt
	$(MAKE) --no-print-directory tune-lm $(DEMO_KNOBS) TRIALS=16 DECODER=transformer
	$(MAKE) --no-print-directory decode $(DEMO_KNOBS) DECODER=transformer

demo-4gram_%:
	$(MAKE) --no-print-directory finetune $(DEMO_KNOBS)
	$(MAKE) --no-print-directory decode $(DEMO_KNOBS) DECODE_TRAIN=1
	$(MAKE) --no-print-directory tune-lm $(DEMO_KNOBS) TRIALS=16
	$(MAKE) --no-print-directory decode $(DEMO_KNOBS) DECODER=4gram

pretrain-tiny: $(PRETRAINED_DIR)/tiny.pt ## the committed tiny wav2vec 2.0 (tiny/pretrained/tiny.pt), copied into PRETRAINED_DIR and checked

$(PRETRAINED_DIR)/tiny.pt: tiny/pretrained/tiny.pt tiny/pretrained/tiny.pt.sha256
	mkdir -p $(PRETRAINED_DIR)
	cp tiny/pretrained/tiny.pt.sha256 $@.sha256
	cp tiny/pretrained/tiny.pt $@.part && mv $@.part $@
	cd $(PRETRAINED_DIR) && sha256sum --quiet -c tiny.pt.sha256 \
		|| { echo "error: $@ differs from tiny/pretrained/tiny.pt.sha256; git checkout tiny/pretrained" >&2; exit 1; }

tiny-pretrained: setup ## pre-train tiny/pretrained/tiny.pt again with fairseq (recipes/pretrain/tiny.yaml; ~45 min on 2 cores; needs espeak-ng, sox)
	$(PY) tiny/make_tiny_pretrained.py --corpus $(TINY_CORPUS) --work $(DEMO_ROOT)/tiny-pretrain --out tiny/pretrained

tiny-lm: setup ## the demo's 4-gram LM and lexicon from the tiny corpus's training text, into DEMO_ROOT/lm
	@$(PY) tiny/make_tiny_lm.py --corpus $(TINY_CORPUS) --out $(DEMO_ROOT)/lm
	@$(PY) scripts/lexicon.py --words $(DEMO_ROOT)/lm/words.txt --out $(DEMO_ROOT)/lm/lexicon.ltr.lst

tiny-transformer-lm: setup $(DEMO_ROOT)/lm/tiny_word_transformer.pt ## the tiny word Transformer LM (fairseq, the released LM's format) and its dict.txt, into DEMO_ROOT/lm (trained again only when its script or corpus changes)

$(DEMO_ROOT)/lm/tiny_word_transformer.pt: tiny/make_tiny_transformer_lm.py tiny/make_tiny_lm.py \
		$(shell find $(TINY_CORPUS)/librispeech_finetuning -name '*.trans.txt' 2>/dev/null) | $(SETUP_STAMP)
	@$(PY) tiny/make_tiny_transformer_lm.py --corpus $(TINY_CORPUS) --out $(DEMO_ROOT)/lm

tiny-corpus: ## regenerate tiny/corpus (needs espeak-ng, sox, pocketsphinx-testdata)
	$(PY) tiny/make_tiny_corpus.py --out $(TINY_CORPUS)

clean-demo: ## delete what `make demo` made (runs/demo, pretrained/tiny.pt)
	rm -rf $(DEMO_ROOT) $(PRETRAINED_DIR)/tiny.pt $(PRETRAINED_DIR)/tiny.pt.sha256

##@ Before a long run: does the recipe run and fit on this GPU (about 2 minutes)
DEVICE ?=## gpu-check: empty for the machine's CUDA GPU (fp16); cpu: the same check on the CPU in fp32 (how the tests run it, MODEL=tiny)
PRICE ?= 2.00## gpu-check: price of one GPU-hour, for the cost of one run and of the 36-run study
CHECK_UPDATES ?= 4## gpu-check: updates per path with the transformer frozen (as many again, and one, after unfreezing)
GPU_CHECK_ROOT ?= .bench/gpu-check## gpu-check: where its synthetic split, random models and short runs are kept

.PHONY: gpu-check
gpu-check: setup ## MODEL's architecture (random weights, synthetic 600 s split) at the recipe's batch on this GPU, FAST=0 and FAST=1: do they run and agree; s/update, forward and backward, peak memory, the largest MAX_TOKENS (this card, a 16 GB card), decoding speed, hours and cost of a run and of the study
	@$(FAIRSEQ_ENV) $(PY) scripts/gpu_check.py --model '$(MODEL)' --device '$(DEVICE)' --price '$(PRICE)' \
		--updates '$(CHECK_UPDATES)' --work $(GPU_CHECK_ROOT)

##@ Benchmarks (figures side by side with the reference they beat)
bench-manifests: setup ## time manifests.py against fairseq's manifest scripts on a cached 20k-file tree
	$(PY) bench/bench_manifests.py --tree .bench/tree

SHAPE ?= tiny## bench-transformer-lm's LM: tiny (the demo's) or released (untrained, of the released LM's shape)
bench-trainers: setup ## seconds per update of TRAINER=fairseq (FAST=0, FAST=1) and TRAINER=transformers side by side (MODEL=tiny|base; base: random weights, synthetic split)
	$(PY) bench/bench_trainers.py --model $(if $(filter base,$(MODEL)),base,tiny)

bench-spread: setup ## seed-to-seed spread of dev-other WER, TRAINER=fairseq beside TRAINER=transformers, the tiny recipe with its dropouts (SEEDS)
	$(PY) bench/bench_spread.py --seeds $(SEEDS)

bench-startup: setup ## time a process's start-up (import torch, fairseq) with and without w2v2_10min/startup.py
	$(PY) bench/bench_startup.py

bench-transformer-lm: setup ## fairseq's Transformer-LM decoder against DECODER=transformer on the demo run's dev_other emissions (make demo; SHAPE=released: an untrained LM of the released LM's shape, 2.2 GB, on utterances joined three by three to LibriSpeech's 19 words each; about 30 min)
	$(PY) bench/bench_transformer_lm.py --run $(DEMO_ROOT)/tiny-tiny/10min-0/seed-1 --manifests $(DEMO_ROOT)/manifests/10min-0 \
		--lexicon $(DEMO_ROOT)/lm/lexicon.ltr.lst --letters $(if $(BEAM),--beam $(BEAM)) \
		$(if $(filter released,$(SHAPE)),--released-shape --weights 0.5 0 --subsets dev_other test_other --join 3 \
		--lm-batch 16 64,--lm $(DEMO_ROOT)/lm/tiny_word_transformer.pt)

bench-tune: setup ## tune the 4-gram's weights both ways (TUNE=search and rescore) on the demo model's dev_other (60 and 200k words): weights, WER (and on held-out noisy draws), core-seconds side by side
	$(PY) bench/bench_tune.py --run $(DEMO_ROOT)/tiny-tiny/10min-0/seed-1 --manifests $(DEMO_ROOT)/manifests/10min-0 \
		--lm $(DEMO_ROOT)/lm/4-gram.arpa.gz --lexicon $(DEMO_ROOT)/lm/lexicon.ltr.lst

bench-lm: setup ## time the 4-gram search per core at beams 500 and 1500 (demo model; 60 and 200k words), estimate the real sets
	$(PY) bench/bench_lm.py --run $(DEMO_ROOT)/tiny-tiny/10min-0/seed-1 --manifests $(DEMO_ROOT)/manifests/10min-0 \
		--lm $(DEMO_ROOT)/lm/4-gram.arpa.gz --lexicon $(DEMO_ROOT)/lm/lexicon.ltr.lst
