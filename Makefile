# Two commands work on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
WORKSPACE ?= data
PORT ?= 8501
# 127.0.0.1: only this machine. Serving a team: README, "Serving the app to a team".
ADDRESS ?= 127.0.0.1

.PHONY: run test install demo bench lint clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	@if [ -z "$$(ls $(WORKSPACE)/tables/conversations 2>/dev/null)" ]; then \
		echo "Building the demo workspace in $(WORKSPACE)/ ..."; \
		$(BIN)/brightrun demo --workspace $(WORKSPACE); \
	fi

run: demo
	BRIGHTRUN_WORKSPACE=$(WORKSPACE) $(BIN)/python -m brightrun.ui.serve --server.port $(PORT) --server.address $(ADDRESS)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/bench_workspace.py

clean-demo:
	rm -rf $(WORKSPACE)/tables $(WORKSPACE)/documents $(WORKSPACE)/locks $(WORKSPACE)/quarantine
