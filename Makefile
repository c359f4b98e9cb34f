# Two commands for a newcomer: `make book` builds the book, `make test` runs the tests.
# `make paper` reproduces the whole book at the paper's scale (a GPU machine): every chapter through
# papermill into _build/executed/paper/ (resumable), then the book from the same cached runs.
# Both create the virtual environment (.venv) and install the pinned requirements first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
# Runs are cached here, shared by every chapter and kept between builds.
export BNLIB_CACHE ?= $(CURDIR)/.bnlib-cache

PROFILE ?= paper

.PHONY: book test venv data lint clean paper colab linkcheck

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# Real images offline: install Debian's Fashion-MNIST when no real dataset is present and we can.
data:
	@if [ -f "$(FASHION_MNIST)" ] || [ -f "$${BNLIB_DATA:-$$HOME/.cache/bnlib-data}/cifar10-uint8.pt" ]; then \
	  echo "data: real images present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "data: installing dataset-fashion-mnist (Debian)"; \
	  (apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)); \
	else \
	  echo "data: no real dataset here and apt is not usable; CIFAR-10 will be downloaded if the internet is reachable"; \
	fi

# The book's runs train first, side by side on all cores (bnlib.pool); the chapters then read them from the cache.
book: venv data
	$(BIN)/python -m bnlib.book --train
	$(BIN)/jupyter-book build . -W -n --keep-going

test: venv
	$(BIN)/ruff check bnlib tests tools chapters
	$(BIN)/python -m pytest -q

paper: venv data
	$(BIN)/python -m tools.reproduce --profile $(PROFILE)
	BNLIB_PROFILE=$(PROFILE) $(BIN)/jupyter-book build . -W -n --keep-going

# After changing repository.url in _config.yml: copy it into the chapters' Colab cells and the README.
colab: venv
	$(BIN)/python -m tools.stamp_colab

# Every internal link and anchor of the built book resolves (external ones are listed, not followed: offline).
linkcheck: venv
	$(BIN)/python -m tools.linkcheck _build/html

lint: venv
	$(BIN)/ruff check bnlib tests tools chapters

clean:
	rm -rf _build
