"""Rows/s of echo on a local Ray with 1 and 2 actors against one process's ``encode``, same texts, one run.

On a 2-core machine Ray adds overhead and each actor gets one core (Ray sets one thread per actor CPU), so the
point is scaling out: per-actor efficiency = rows/s per actor / rows/s of one actor. Writes
benchmarks/results/ray_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyarrow as pa
import ray

from echo_embeddings import EchoEncoder
from echo_embeddings.ray import embed_dataset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=5000, help="STS-B train sentences to embed (default 5000)")
    parser.add_argument("--model", default=None, help="model (default: SmolLM2-135M-Instruct)")
    args = parser.parse_args()

    texts = []
    with open(DATA / "sts" / "stsb-train.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.extend([row["sentence1"], row["sentence2"]])
    texts = texts[: args.texts]

    encoder = EchoEncoder.from_pretrained(args.model)
    encoder.encode(texts[:8])
    start = time.perf_counter()
    encoder.encode(texts)
    results = {"texts": len(texts), "single_process_rows_per_s": len(texts) / (time.perf_counter() - start)}

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    table = pa.table({"id": list(range(len(texts))), "text": texts})
    for actors in (1, 2):
        ds = ray.data.from_arrow(table).repartition(8 * actors)
        start = time.perf_counter()
        count = embed_dataset(ds, model_name=args.model, concurrency=actors).materialize().count()
        seconds = time.perf_counter() - start
        assert count == len(texts)
        results[f"ray_{actors}_actor_rows_per_s"] = len(texts) / seconds
    ray.shutdown()
    one, two = results["ray_1_actor_rows_per_s"], results["ray_2_actor_rows_per_s"]
    results["ray_1_actor_vs_single_process"] = one / results["single_process_rows_per_s"]
    results["ray_2_actors_vs_single_process"] = two / results["single_process_rows_per_s"]
    results["per_actor_efficiency_2_actors"] = two / 2 / one
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray_scaling.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
