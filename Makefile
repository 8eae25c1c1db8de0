# Every target creates its own virtualenv and installs what it uses from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-min lint typecheck pytest demo fuzz clean docs bench sdist

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

# The declared dependency floors, tested: a separate virtualenv with every `>=` bound of
# pyproject.toml (runtime dependencies and the speed, cli and metrics extras) pinned to exactly
# that version (.ci/min_constraints.py) and the test tools (the `test` extra), then the suite.
# The CI job for the floors. It leaves out four protocol-logic suites that drive two sans-I/O
# endpoints through long simulations (MIN_SKIP): they call the dependencies only through the
# handshake and record code every other suite here runs too, and `make test` runs them in full.
MIN_VENV := .venv-min
MIN_SKIP := tests/core/test_rotation_sim.py tests/core/test_session_streams.py \
	tests/core/test_stateful.py tests/core/test_rangeset.py
$(MIN_VENV)/.installed: pyproject.toml .ci/min_constraints.py
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) .ci/min_constraints.py > $(MIN_VENV)/constraints.txt
	$(MIN_VENV)/bin/python -m pip install --quiet \
		--constraint $(MIN_VENV)/constraints.txt -e '.[test]'
	touch $@

test-min: $(MIN_VENV)/.installed
	$(MIN_VENV)/bin/python -m pip list --format=freeze | grep -iE '^(websockets|pynacl|msgpack|cryptography|uvloop|rich|prometheus.client)=='
	$(MIN_VENV)/bin/pytest -n 2 -p no:cacheprovider $(addprefix --ignore=,$(MIN_SKIP))

# The source distribution (with tests, vectors, docs and examples) into dist/.
sdist: $(STAMP)
	$(BIN)/python -m pip install --quiet build
	$(BIN)/python -m build --sdist --outdir dist .

demo: $(STAMP)
	$(BIN)/python -m seigr_stt demo

# Mutation fuzzing of every parser, two endpoints and a live node (fuzz/README.md).
PACKETS ?= 1000000
fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py --packets $(PACKETS)

clean:
	rm -rf $(VENV) $(MIN_VENV) dist .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m seigr_stt.bench
