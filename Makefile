# LeadFlow: `make up` runs everything locally, `make test` runs every test. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STACK := bash deploy/local/stack.sh
SERVICES := bash deploy/local/services.sh
WITH_STACK_ENV = eval "$$($(STACK) env)" &&
# The console's front-end packages (htmx, ECharts; axe-core for the browser tests), from npm by its lockfile.
WEB := services/console/web
VENDOR := services/console/static/vendor
WEB_STAMP := $(VENDOR)/.built

.PHONY: help venv web demo stack-up stack-down up down clean test test-unit test-faults lint token bench bench-quick docs

help:
	@echo "make up        install what is missing, start Kafka, PostgreSQL, the services, the console (http://localhost:8000) and the streams worker"
	@echo "make demo      make up, then seed two teams and a few hundred leads through the APIs; prints how to sign in"
	@echo "make down      stop the services and the stack (data is kept)"
	@echo "make test      install what is missing, start what the tests need, run unit+integration+e2e tests"
	@echo "make test-faults  kill -9 each process, Kafka and PostgreSQL under load, poison the topic; print recovery times"
	@echo "make lint      ruff + architecture checks"
	@echo "make token ROLE=rep SUB=rep-1   print a JWT for local use"
	@echo "make bench     benchmarks (make bench-quick for a smoke run)"
	@echo "make clean     stop everything and wipe local data and the virtualenv"

$(STAMP): requirements.txt requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "LeadFlow needs Python 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -c requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $@

venv: $(STAMP)

# Built when missing or when the lockfile changes; the built files and node_modules are not committed.
$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "the console's front-end needs npm (apt-get install npm)" >&2; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp $(WEB)/node_modules/htmx.org/dist/htmx.min.js $(WEB)/node_modules/echarts/dist/echarts.min.js $(VENDOR)/
	@touch $@

web: $(WEB_STAMP)
	@[ -f $(WEB)/node_modules/axe-core/axe.min.js ] || { rm -f $(WEB_STAMP); $(MAKE) --no-print-directory $(WEB_STAMP); }

stack-up:
	@$(STACK) up

stack-down:
	@$(STACK) down

up: venv web stack-up
	@$(SERVICES) start
	@echo
	@echo "LeadFlow is up. Get a token:  make token ROLE=manager SUB=mgr-1   (roles: rep manager admin integration)"

# A realistic organisation (two teams, a manager each, six reps) and a few hundred leads, through the real APIs.
demo: up
	@$(WITH_STACK_ENV) $(PY) -m services.console.demo $(DEMO_ARGS)

down:
	@$(SERVICES) stop
	@$(STACK) down

clean:
	-@$(SERVICES) stop
	@$(STACK) clean
	rm -rf $(VENV) .bench

test: venv web deploy-tools stack-up
	@$(WITH_STACK_ENV) $(PY) -m pytest tests/unit tests/integration tests/e2e

test-unit: venv
	$(PY) -m pytest tests/unit

# The fault suite SIGKILLs a broker and a database of its own (deploy/local/stack.sh in .stack/faults, on
# free ports, started by the suite), so the stack of `make up` and `make test` is neither needed nor touched.
test-faults: venv
	$(PY) -m pytest tests/faults

lint: venv
	$(VENV)/bin/ruff check shared services tests bench
	$(VENV)/bin/ruff format --check shared services tests bench
	$(PY) -m pytest -q tests/unit/test_architecture.py

token: venv
	@$(PY) -m shared.auth --sub "$${SUB:-rep-1}" --role "$${ROLE:-rep}"

docs: venv
	$(PY) -m shared.schema_docs --write

bench: venv stack-up
	@$(WITH_STACK_ENV) $(PY) -m bench $(BENCH_ARGS)

bench-quick: venv stack-up
	@$(WITH_STACK_ENV) $(PY) -m bench --quick $(BENCH_ARGS)

# Tools the deploy/ checks need (no Docker engine): docker-compose and promtool from Debian, kustomize
# built with Go into the LeadFlow cache (idempotent: installs only what is missing), then the checks.
.PHONY: deploy-tools deploy-check
# The deploy/ checks need docker-compose and promtool (Debian) and kustomize (built once with Go, cached).
deploy-tools:
	@command -v docker-compose >/dev/null && command -v promtool >/dev/null || { \
	  [ "$$(id -u)" = 0 ] || { echo "the deploy checks need docker-compose and promtool: apt-get install docker-compose prometheus (as root)" >&2; exit 1; }; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose prometheus; }
	@tools="$${LEADFLOW_CACHE:-$$HOME/.cache/leadflow}/tools"; \
	  [ "$$("$$tools/kustomize" version 2>/dev/null)" = v5.7.1 ] || { \
	    command -v go >/dev/null || { echo "the deploy checks need Go to build kustomize (or put kustomize v5 on PATH)" >&2; exit 1; }; \
	    echo "building kustomize v5.7.1 into $$tools (one-off)"; \
	    GOBIN="$$tools" go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1; }

deploy-check: venv deploy-tools
	$(PY) -m pytest -q tests/unit/test_deploy_*.py
