# The two front-door commands: `make run` (fresh machine → serving API) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install lint bench openapi verify clean-db browser

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed
	test -f .env || cp .env.example .env

## Serve on http://$(HOST):$(PORT): embedded PostgreSQL (no DATABASE_URL), migrations applied on startup.
run: install
	$(PY) -m uvicorn app.main:app --host $(HOST) --port $(PORT)

## Debian's Chromium and its driver for the browser tests (tests/web): installed when missing and root may.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else echo "browser tests need /usr/bin/chromium and /usr/bin/chromedriver: apt-get install chromium chromium-driver"; fi

## The full suite: unit, integration, concurrency, web (embedded PostgreSQL unless TEST_DATABASE_URL is set).
test: install browser
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check app tests bench scripts migrations
	$(PY) -m mypy app migrations bench

bench: install
	$(PY) bench/run.py $(BENCH_ARGS)

openapi: install
	$(PY) scripts/export_openapi.py

verify: install
	$(PY) -m app.verify

## Remove the embedded PostgreSQL's data directory (.data/postgres); refuses while it runs, unless STOP=1.
clean-db: install
	$(PY) scripts/clean_db.py $(if $(STOP),--stop)
