"""Rows/s of echo on a local Ray with 1 and 2 actors against one process's ``encode``: same texts, one run.

Each actor reserves one CPU, and Ray gives it one thread per reserved CPU, while the single process uses every
core. On a 2-core machine Ray can only add overhead; what the run shows is how it scales out:
per-actor efficiency = (rows/s with 2 actors / 2) / rows/s with 1 actor. A last arm gives one actor both CPUs,
the same threads as the single process, so the difference is Ray's own overhead. The rows come from memory in several
blocks (no read or repartition tasks), because actors that hold every CPU of a small local Ray leave none for them.
Timings include each actor's model load. Writes benchmarks/results/ray_scaling.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
from pathlib import Path

import pyarrow as pa
import ray
import torch

from echo_embeddings import EchoEncoder
from echo_embeddings.evaluation.sts import load_sts
from echo_embeddings.ray_data import embed_dataset, split_errors

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
BLOCK_ROWS = 250


def stsb_train_sentences(n: int) -> list[str]:
    first, second, _ = load_sts(DATA / "sts" / "stsb-train.jsonl")
    return [text for pair in zip(first, second, strict=True) for text in pair][:n]


@ray.remote
class TorchThreads:
    """Reports the threads torch uses in an actor (Ray sets OMP_NUM_THREADS from the actor's CPU reservation)."""

    def get(self) -> int:
        return torch.get_num_threads()


def actor_threads(cpus: int) -> int:
    actor = TorchThreads.options(num_cpus=cpus).remote()
    threads = ray.get(actor.get.remote())
    ray.kill(actor)
    return threads


def ray_rows_per_second(texts: list[str], model: str | None, actors: int, cpus_per_actor: int = 1) -> float:
    table = pa.table({"id": list(range(len(texts))), "text": texts})
    blocks = [table.slice(start, BLOCK_ROWS) for start in range(0, len(texts), BLOCK_ROWS)]
    start = time.perf_counter()
    embedded = embed_dataset(
        ray.data.from_arrow(blocks), model_name=model, concurrency=actors, num_cpus=cpus_per_actor
    ).materialize()
    seconds = time.perf_counter() - start
    good, bad = split_errors(embedded)
    if good.count() != len(texts) or bad.count() != 0:
        raise RuntimeError(f"{actors} actor(s): {good.count()} embedded + {bad.count()} errors != {len(texts)} rows")
    return len(texts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=5000, help="STS-B train sentences to embed (default 5000)")
    parser.add_argument("--model", default=None, help="model (default: SmolLM2-135M-Instruct)")
    args = parser.parse_args()
    texts = stsb_train_sentences(args.texts)

    encoder = EchoEncoder.from_pretrained(args.model)
    encoder.encode(texts[:8])  # warm-up: first-call allocations, the prefix cache
    start = time.perf_counter()
    encoder.encode(texts)
    single = len(texts) / (time.perf_counter() - start)
    threads = torch.get_num_threads()
    del encoder
    gc.collect()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    threads_by_cpus = {cpus: actor_threads(cpus) for cpus in (1, 2)}
    one = ray_rows_per_second(texts, args.model, 1)
    two = ray_rows_per_second(texts, args.model, 2)
    one_on_both_cpus = ray_rows_per_second(texts, args.model, 1, cpus_per_actor=2)
    ray.shutdown()

    results = {
        "machine": {
            "platform": platform.platform(),
            "single_process_threads": threads,
            "torch_threads_by_actor_cpus": threads_by_cpus,
        },
        "texts": len(texts),
        "rows_per_second": {
            "single_process": single,
            "ray_1_actor": one,
            "ray_2_actors": two,
            "ray_1_actor_2_cpus": one_on_both_cpus,
        },
        "ray_1_actor_vs_single_process": one / single,
        "ray_2_actors_vs_single_process": two / single,
        "per_actor_efficiency_2_actors": two / 2 / one,
        "ray_overhead_same_threads": 1 - one_on_both_cpus / single,
    }
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "ray_scaling.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
