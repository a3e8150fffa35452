# w2v2-10min: wav2vec 2.0 fine-tuning on Libri-light's 10-minute splits, one stage per target.
# `make help` lists the targets and the knobs with their defaults.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.installed

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
