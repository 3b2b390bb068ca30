# The README's two commands: `make demo` and `make test`. Both bootstrap .venv themselves.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0

.PHONY: demo test test-fast lint bench clean venv

venv: $(STAMP)

# torch first (the CPU wheel), so resolving the package never pulls a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/safekeel demo --quick

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -x $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check safekeel tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
