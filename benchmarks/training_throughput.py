"""Training throughput of echo against classical on the default model, in one run: examples/s of the same rows.

Both arms train the same SNLI triplets (anchor, positive, contradiction) with the same batch, LoRA and seed for
``--steps`` steps after one warm-up step; time per step comes from the trainer's own log. Writes
``benchmarks/results/training_throughput.json``. Echo reads every text twice, so it is expected to cost about
twice the tokens; this measures what that costs a training step on this machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

from echo_embeddings.training import TrainingRow, train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.seconds: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.starts.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self.starts[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per arm, after one warm-up step")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "training_throughput.json")
    args = parser.parse_args()
    with open(DATA / "nli" / "snli-train-triplets.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for _, line in zip(range(args.batch * (args.steps + 2)), f, strict=False)]
    rows = [TrainingRow(r["anchor"], r["positive"], (r["negative"],)) for r in records]
    arms = {}
    for template in ("classical", "echo"):
        timer = StepTimer()
        train(rows, output_dir=Path(tempfile.mkdtemp()) / template, template=template, steps=args.steps + 1,
              train_batch_size=args.batch, hard_negatives=0, save_steps=10**6, callbacks=[timer])  # fmt: skip
        timed = timer.seconds[1:]  # the first step warms up kernels and allocations
        arms[template] = {
            "seconds_per_step": sum(timed) / len(timed),
            "examples_per_second": args.batch * len(timed) / sum(timed),
        }
        print(template, arms[template], flush=True)
    ratio = arms["echo"]["seconds_per_step"] / arms["classical"]["seconds_per_step"]
    result = {
        "batch": args.batch,
        "steps": args.steps,
        "rows": "SNLI triplets",
        "arms": arms,
        "echo_time_vs_classical": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
