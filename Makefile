# The everyday commands. `make demo` and `make test` each install what they need first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo serve test test-fast reliability lint format clean-data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Main job on the embedded default: seed, simulate, features, train, register, serve.
demo: $(STAMP)
	$(BIN)/fitrec demo

serve: $(STAMP)
	$(BIN)/fitrec serve

## Static checks, then the whole test suite (uses DATABASE_URL / REDIS_URL when set, as CI does).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
# The dashboard's browser test drives Debian's chromium (no download at test time).
	command -v chromium >/dev/null || (S=$$([ "$$(id -u)" = 0 ] || echo sudo); $$S apt-get update && $$S apt-get install -y chromium)
	$(BIN)/pytest -q

## On demand, not in CI: fuzz, faults under load, security checks, a 10-minute soak; prints one table.
reliability: $(STAMP)
	$(BIN)/fitrec check reliability

test-fast: $(STAMP)
	$(BIN)/pytest -q -m unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-data:
	rm -rf $${FITREC_DATA_DIR:-fitrec-data}
