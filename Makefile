# The few commands people need. `make demo` and `make test` set everything up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup demo test lint format bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# the main job on the built-in grid city: no data needed
demo: setup
	$(BIN)/robotaxi simulate --city grid --fleet 20 --hours 0.5 --seed 7 --out runs/demo --overwrite

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# the suite on every core (at most 4 workers; each test file on one worker, so its module
# fixtures start once; files handed out longest first, see tests/conftest.py), then the tests
# that cannot share a run with xdist's workers
test: lint
	$(BIN)/pytest -q -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder -m "not serial"
	$(BIN)/pytest -q -m serial

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# benchmarks write their results to benchmarks/results/
bench: setup
	$(PY) benchmarks/bench_fleet.py

clean:
	rm -rf runs .cache .pytest_cache .mypy_cache .ruff_cache
