# The README's two commands: `make run` and `make test`. Both set up .venv on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install dev browser run test test-fast lint clean

# torch first, pinned to the CPU wheel on local disk: an unpinned torch pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Real-browser tests use Debian's chromium (never `playwright install`: it downloads a browser).
browser:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; }

dev: $(VENV)/.dev

run: install
	$(PY) -m core prepare-sample
	$(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

test: dev browser
	$(PY) -m pytest -q

# Everyday loop (< 2 min): no full fine-tunes, large encodes, UMAP fits or browser.
test-fast: dev
	$(PY) -m pytest -q -m "not slow and not e2e"

lint: dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) workspace test-artifacts
