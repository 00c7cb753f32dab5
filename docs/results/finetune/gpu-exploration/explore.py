"""GPU exploration for issue #15, as it ran (only reformatted since): against commit da2f16f, on the lent H200,
with OUT and DATA set. The CPU recipe (1,600 rows, batch 16, 100 steps, seed 0, fp32) with one change per config;
STS-B dev (all 1,500 pairs) picks, test/SciFact/Banking77 recorded."""

import json
import os
import random
import sys
import time
from pathlib import Path

import echo_embeddings.training.trainer as T
from echo_embeddings import EchoEncoder
from echo_embeddings.evaluation.arm import Arm
from echo_embeddings.evaluation.classification import evaluate_classification
from echo_embeddings.evaluation.retrieval import evaluate_retrieval
from echo_embeddings.evaluation.sts import evaluate_sts, load_sts
from echo_embeddings.training import recipe_rows, train

DATA = Path(os.environ.get("DATA", "/tmp/data"))
OUT = Path(os.environ["OUT"])
STEPS = int(os.environ.get("STEPS", 100))
SCALE_ROWS = float(os.environ.get("SCALE_ROWS", 1))
LIMIT = int(os.environ["LIMIT"]) if "LIMIT" in os.environ else None
DTYPE = os.environ.get("DTYPE", "float32")
EXTRA = {"pairs": 0}
_orig = T._trainer


def patched(model, rows, options, checkpoints, callbacks):
    if not EXTRA["pairs"]:
        return _orig(model, rows, options, checkpoints, callbacks)
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss, MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    datasets, prompts, routes = T._datasets(rows)
    a, b, s = load_sts(DATA / "sts" / "stsb-train.jsonl")
    idx = random.Random(0).sample(range(len(a)), EXTRA["pairs"])
    datasets["sts_scores"] = Dataset.from_dict(
        {"sentence1": [a[i] for i in idx], "sentence2": [b[i] for i in idx], "score": [s[i] / 5 for i in idx]}
    )
    mnrl = MultipleNegativesRankingLoss(model, scale=options.scale)
    loss = {name: mnrl for name in datasets if name != "sts_scores"}
    loss["sts_scores"] = CoSENTLoss(model)
    args = {
        "batch_sampler": BatchSamplers.NO_DUPLICATES,
        "dataloader_drop_last": True,
        "prompts": prompts or None,
        "router_mapping": routes,
    }
    return T.checkpoint_trainer(model, datasets, loss, options, checkpoints, callbacks, **args)


T._trainer = patched

CONFIGS = [
    ("echo", {"template": "echo", "pooling": "mean"}, 0),
    ("cat", {"template": "echo-categorize", "pooling": "mean+last"}, 0),
    ("echo+cosent800", {"template": "echo", "pooling": "mean"}, 800),
    ("cat+cosent800", {"template": "echo-categorize", "pooling": "mean+last"}, 800),
    ("echo-lr2e-3", {"template": "echo", "pooling": "mean", "learning_rate": 2e-3}, 0),
    ("cat-lr2e-3", {"template": "echo-categorize", "pooling": "mean+last", "learning_rate": 2e-3}, 0),
    ("echo+cosent1600", {"template": "echo", "pooling": "mean"}, 1600),
    ("classical+cosent800", {"template": "classical", "pooling": "mean"}, 800),
    ("classical+cosent1600", {"template": "classical", "pooling": "mean"}, 1600),
    ("echo-scale20", {"template": "echo", "pooling": "mean", "scale": 20.0}, 0),
]
only = sys.argv[1:]
rows_spec = {"nli": 600, "stsb": 600, "scifact": 150, "banking77": 250}
rows = recipe_rows(DATA, rows={k: max(1, int(v * SCALE_ROWS)) for k, v in rows_spec.items()}, seed=0)
results = {}
for name, settings, pairs in CONFIGS:
    if only and name not in only:
        continue
    EXTRA["pairs"] = int(pairs * SCALE_ROWS)
    t0 = time.time()
    folder = Path("/tmp/explore") / name
    model_settings = {k: v for k, v in settings.items() if k in ("template", "pooling")}
    train(
        rows,
        output_dir=folder,
        **settings,
        steps=STEPS,
        train_batch_size=16,
        train_max_length=128,
        eval_data=str(DATA / "sts" / "stsb-dev.jsonl"),
        eval_pairs=200,
        eval_steps=50,
        save_steps=10_000,
        dtype=DTYPE,
    )
    t1 = time.time()
    enc = EchoEncoder.from_pretrained(str(folder), dtype=DTYPE)
    arm = [Arm(enc)]
    r = {
        "train_s": t1 - t0,
        "dev": evaluate_sts(arm, DATA / "sts" / "stsb-dev.jsonl", LIMIT)[0].score,
        "test": evaluate_sts(arm, DATA / "sts" / "stsb-test.jsonl", LIMIT)[0].score,
    }
    r["scifact"] = evaluate_retrieval(arm, DATA / "retrieval" / "scifact", "test", 50 if LIMIT is None else 5, 100, 0)[
        0
    ].score
    bk = DATA / "classification" / "banking77"
    r["banking77"] = (
        evaluate_classification(arm, bk / "train.jsonl", bk / "test.jsonl", 8, 8)[0].score if LIMIT is None else None
    )
    log = json.loads((folder / "training_log.json").read_text())["log"]
    r["dev200_by_step"] = [e["eval_sts-dev_spearman_cosine"] for e in log if "eval_sts-dev_spearman_cosine" in e]
    r["eval_s"] = time.time() - t1
    results[name] = r
    print("RESULT", name, json.dumps(r), flush=True)
    (OUT / "explore.json").write_text(json.dumps(results, indent=1))
