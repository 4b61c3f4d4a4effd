# CityOps — two commands: `make run` serves the product, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test lint-imports test-unit test-integration test-browser init-db browser-deps fonts bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt $(VENV)/.deps
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Debian's Chromium and chromedriver for the browser tests, and a CJK font for screenshots and PDFs
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
	   || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then \
	  echo "installing chromium, chromium-driver and fonts-noto-cjk from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver fonts-noto-cjk >/dev/null; \
	fi

# a TrueType CJK font for the PDF brief (reportlab embeds TrueType outlines; Noto CJK is CFF)
fonts:
	@if [ ! -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]; then \
	  echo "installing fonts-wqy-zenhei from Debian (the PDF brief's Chinese font)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-zenhei >/dev/null; \
	fi

init-db: $(VENV)/.deps
	$(BIN)/flask --app app init-db

## make run: install, build the database (first time: pack, 460 days of demo history, demo users), serve :8050
run: fonts init-db
	$(BIN)/python app.py

## make test: the import contracts (.importlinter), then unit + integration (SQLite, and PostgreSQL/Redis
## when CITYOPS_TEST_DATABASE_URL is set) + browser. A test that hangs (a lock never granted) fails
## after 10 minutes with every thread's stack, rather than the run outliving CI's limit in silence.
test: $(VENV)/.dev-deps browser-deps fonts lint-imports
	$(BIN)/python -m pytest -q --durations=25 --timeout=600 tests

## make lint-imports: the import direction of DESIGN.md §1 (doors → domain → plumbing), as import-linter contracts
lint-imports: $(VENV)/.dev-deps
	$(BIN)/lint-imports

test-unit: $(VENV)/.dev-deps
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(VENV)/.dev-deps
	$(BIN)/python -m pytest -q tests/integration

test-browser: $(VENV)/.dev-deps browser-deps
	$(BIN)/python -m pytest -q tests/browser

bench: $(VENV)/.dev-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache
