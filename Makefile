# Every target creates its own virtualenv and installs what it uses from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo fuzz clean docs bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict

pytest: $(STAMP)
	$(BIN)/pytest -n 2 --cov --cov-branch --cov-report=term

# The documentation site, strict: any warning (broken link, bad docstring) fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test: lint typecheck pytest docs

demo: $(STAMP)
	$(BIN)/python -m seigr_stt demo

# Mutation fuzzing of every parser, two endpoints and a live node (fuzz/README.md).
PACKETS ?= 1000000
fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --packets $(PACKETS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m seigr_stt.bench
