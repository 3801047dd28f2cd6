# Two commands on a fresh machine:
#   make run    install, load the sample knowledge base, index it, serve on http://127.0.0.1:5000
#   make test   install (with the browser for UI tests and PostgreSQL) and run the test suite
PYTHON ?= python3
VENV ?= .venv
KB := $(VENV)/bin/kb
KB_HOME ?= kb_home
HOST ?= 127.0.0.1
PORT ?= 5000
ARTICLES ?= articles
SAMPLE_INCIDENTS ?= kb/sample/incidents.jsonl
export KB_HOME

.PHONY: run test test-quick install lint clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The tests also cover the optional cluster extra (kb index --cluster on a local Ray cluster).
$(VENV)/.installed-cluster: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e '.[test,cluster]'
	touch $@

# Safe to run again: imports upsert (unchanged records stay as they are), `kb index` publishes
# nothing when the store has not changed, and the demo account and the token are made once
# (their password and token are printed the first time only).
run: install
	$(KB) init
	$(KB) import articles $(ARTICLES)
	$(KB) import incidents $(SAMPLE_INCIDENTS)
	$(KB) index
	@$(KB) users create demo --role knowledge_manager --generate-password --if-missing
	@token=$$($(KB) tokens create quickstart --role integration --if-missing) && \
	  if [ -n "$$token" ]; then echo "API token for curl (role integration): $$token"; fi
	$(KB) serve --host $(HOST) --port $(PORT)

test: install $(VENV)/.installed-cluster
	bash scripts/install-browser.sh
	bash scripts/install-postgres.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	KB_REQUIRE_POSTGRES=1 $(VENV)/bin/python -m pytest

# The quick loop: unit and integration tests with the hashing embedder and fewer generated
# cases (no processes, no browser, no real model); about a minute on two cores.
test-quick: install
	$(VENV)/bin/lint-imports
	KB_FUZZ_EXAMPLES=5 KB_PROPERTY_EXAMPLES=15 $(VENV)/bin/python -m pytest -q -m "not live and not real_model"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) kb_home .pytest_cache test-artifacts
