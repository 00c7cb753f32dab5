"""The training recipe's arms on development data only, and the one a rule fixed in advance picks as the default.

Each arm trains the default base model (LoRA, echo template, batch 16, sequences cut to 128 tokens, seed 0) on a
recipe mix and is scored on data the mix holds out (``echo_embeddings.training.recipe``):

- STS-B dev (all 1,500 pairs, Spearman);
- SciFact dev: the 162 held-out SciFact train claims against the whole corpus (5,183 abstracts), nDCG@10, with the
  general query instruction and with SciFact's;
- Banking77 dev: a logistic-regression probe on 8 held-out train texts per intent, tested on 8 others.

The rule: the arm with the highest mean of STS-B dev, SciFact dev (general instruction) and Banking77 dev wins;
``--export`` writes its adapter as a shipped model folder. The untrained base (its zero-shot ``echo-categorize``)
is scored alike for reference. Writes ``docs/results/recipe/``: results.json, results.md and dev.png, after each
arm (an interrupted run keeps what it measured). Any device: CPU takes hours, one CUDA card minutes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from finetune import DATA, ROOT, ROWS_100
from measure import device_name

from echo_embeddings import BASE_MODEL, EchoEncoder
from echo_embeddings.evaluation.arm import Arm
from echo_embeddings.evaluation.classification import evaluate_classification
from echo_embeddings.evaluation.retrieval import evaluate_retrieval
from echo_embeddings.evaluation.sts import evaluate_sts
from echo_embeddings.instructions import GENERAL_INSTRUCTION
from echo_embeddings.training import recipe_rows, train
from echo_embeddings.training.export import export_adapter
from echo_embeddings.training.recipe import (
    DEFAULT_GENERAL_SHARE,
    DEFAULT_ROWS,
    banking77_dev,
    scifact_dev_queries,
)

ARMS = {
    "300-task-general": {
        "steps": 300,
        "rows": DEFAULT_ROWS,
        "instructions": "task",
        "general_share": DEFAULT_GENERAL_SHARE,
    },
    "300-task": {"steps": 300, "rows": DEFAULT_ROWS, "instructions": "task", "general_share": 0.0},
    "100-scifact": {"steps": 100, "rows": ROWS_100, "instructions": "scifact", "general_share": 0.0},
    "100-task": {"steps": 100, "rows": ROWS_100, "instructions": "task", "general_share": 0.0},
}
"""In the order they run (the likeliest defaults first, for a run cut by ``--deadline``). ``100-scifact`` is
release 0.2's recipe (only SciFact's claims instructed) on the mix less the held-out data."""

KEYS = {
    "stsb-dev": "STS-B dev",
    "scifact-dev-general": "SciFact dev (general)",
    "scifact-dev-scifact": "SciFact dev (SciFact instr.)",
    "banking77-dev": "Banking77 dev",
}
RULE = ("stsb-dev", "scifact-dev-general", "banking77-dev")


def dev_scores(encoder: EchoEncoder, data: Path, work: Path) -> dict[str, float]:
    """The development scores of ``encoder`` (see the module's docstring)."""
    sts = evaluate_sts([Arm(encoder)], data / "sts" / "stsb-dev.jsonl")[0].score
    arms = [Arm(encoder, query_instruction="general"), Arm(encoder, query_instruction="scifact")]
    results = evaluate_retrieval(arms, data / "retrieval" / "scifact", "train", only=scifact_dev_queries(data))
    general, scifact = (r.score for r in results if r.metric == "ndcg@10")
    banking = work / "banking77-dev" / "dev.jsonl"
    if not banking.is_file():
        banking.parent.mkdir(parents=True, exist_ok=True)
        banking.write_text("".join(json.dumps(r) + "\n" for r in banking77_dev(data)), encoding="utf-8")
    accuracy = evaluate_classification([Arm(encoder)], banking, banking, 8, 8, test_skip_per_label=8)[0].score
    return {"stsb-dev": sts, "scifact-dev-general": general, "scifact-dev-scifact": scifact, "banking77-dev": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default: ../shared/data)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "recipe")
    parser.add_argument("--models", type=Path, help="keep the trained model folders here (default: a temp folder)")
    parser.add_argument("--export", type=Path, help="write the winner's adapter here (a shipped model folder)")
    parser.add_argument("--base", default=BASE_MODEL, help="the model trained (default: the default base model)")
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when there is one)")
    parser.add_argument("--dtype", default="float32", help="the weights' dtype in training and evaluation")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="scale every arm's steps (a dry run)")
    parser.add_argument("--deadline", type=float, help="start no arm after this many seconds")
    args = parser.parse_args()
    started = time.perf_counter()
    common = {"device": args.device, "dtype": args.dtype}
    work = args.models or Path(tempfile.mkdtemp(prefix="recipe-"))
    reference = EchoEncoder.from_pretrained(args.base, template="echo-categorize", **common)
    results = {
        "command": shlex.join(["python", "benchmarks/recipe_dev.py", *sys.argv[1:]]),
        "device": device_name(reference.device),
        "dtype": args.dtype,
        "zero-shot": dev_scores(reference, args.data, work),
        "arms": {},
    }
    del reference
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out, results)
    for name in args.arms:
        if args.deadline and time.perf_counter() - started > args.deadline:
            print(f"{name}: not started (past --deadline)", file=sys.stderr, flush=True)
            continue
        arm = ARMS[name]
        steps = max(1, round(arm["steps"] * args.steps_scale))
        rows = recipe_rows(args.data, rows=arm["rows"], instructions=arm["instructions"],
                           general_share=arm["general_share"])  # fmt: skip
        start = time.perf_counter()
        train(rows, output_dir=work / name, model_name=args.base, template="echo", pooling="mean",
              query_instruction=GENERAL_INSTRUCTION, steps=steps, train_batch_size=16, train_max_length=128,
              eval_data=str(args.data / "sts" / "stsb-dev.jsonl"), eval_pairs=200, eval_steps=max(1, steps // 4),
              save_steps=max(1, steps // 2), seed=0, **common)  # fmt: skip
        seconds = time.perf_counter() - start
        scores = dev_scores(EchoEncoder.from_pretrained(str(work / name), **common), args.data, work)
        log = json.loads((work / name / "training_log.json").read_text(encoding="utf-8"))["log"]
        results["arms"][name] = {**{k: v for k, v in arm.items() if k != "rows"}, "steps": steps, "mix": arm["rows"],
                                 "rows": len(rows), "training_seconds": seconds, "dev": scores, "log": log}  # fmt: skip
        print(name, {k: round(v, 2) for k, v in scores.items()}, f"{seconds:.0f} s", file=sys.stderr, flush=True)
        write(args.out, results)
    winner = max(results["arms"], key=lambda n: rule(results["arms"][n]["dev"]), default=None)
    results["winner"] = winner
    write(args.out, results)
    if winner and args.export:
        digest = export_adapter(work / winner, args.export)
        print(f"{winner}: exported to {args.export} (SHA-256 {digest})", file=sys.stderr)


def rule(scores: dict[str, float]) -> float:
    """The selection rule: the mean of STS-B dev, SciFact dev (general instruction) and Banking77 dev."""
    return sum(scores[key] for key in RULE) / len(RULE)


def write(out: Path, results: dict) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"{results['device']}, {results['dtype']}. Command: `{results['command']}`",
        "",
        "Development data only (held out of every arm's mix). Rule: the highest mean of STS-B dev, SciFact dev "
        "(general instruction) and Banking77 dev.",
        "",
        f"| arm | instructions | steps | rows | {' | '.join(KEYS.values())} | rule | training s |",
        "|---|---|---:|---:|" + "---:|" * (len(KEYS) + 2),
    ]
    zero = results["zero-shot"]
    lines.append(f"| untrained (echo-categorize) | - | 0 | 0 | {' | '.join(f'{zero[k]:.1f}' for k in KEYS)} "
                 f"| {rule(zero):.1f} | - |")  # fmt: skip
    for name, arm in results["arms"].items():
        instructions = arm["instructions"] + (f" + {arm['general_share']:.0%} general" if arm["general_share"] else "")
        cells = " | ".join(f"{arm['dev'][k]:.1f}" for k in KEYS)
        mark = " (winner)" if results.get("winner") == name else ""
        lines.append(f"| {name}{mark} | {instructions} | {arm['steps']} | {arm['rows']} | {cells} "
                     f"| {rule(arm['dev']):.1f} | {arm['training_seconds']:.0f} |")  # fmt: skip
    if "note" in results:
        lines += ["", results["note"]]
    lines += ["", "![development scores by arm](dev.png)"]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(out / "dev.png", results)


def plot(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    readings = {"untrained": results["zero-shot"], **{n: a["dev"] for n, a in results["arms"].items()}}
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(readings)
    for i, (name, scores) in enumerate(readings.items()):
        ax.bar(np.arange(len(KEYS)) + i * width, [scores[k] for k in KEYS], width, label=name)
    ax.set_xticks(np.arange(len(KEYS)) + width * (len(readings) - 1) / 2, list(KEYS.values()))
    ax.set(ylabel="score x100", title="Recipe arms on development data")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
