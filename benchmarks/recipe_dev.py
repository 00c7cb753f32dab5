"""The training recipe's arms on development data only, and the one a rule fixed in advance picks as the default.

Each arm trains the default base model (LoRA, echo template, batch 16, sequences cut to 128 tokens unless the arm
says otherwise, seed 0) on a recipe mix and is scored on data the mix holds out (``echo_embeddings.training.recipe``):

- STS-B dev (all 1,500 pairs, Spearman);
- SciFact dev: the 162 held-out SciFact train claims against the whole corpus (5,183 abstracts), nDCG@10, with the
  general query instruction and with SciFact's;
- Banking77 dev: a logistic-regression probe on 8 held-out train texts per intent, tested on 8 others;
- needle dev: 60 documents of three SciFact abstracts (as ``long_peer.py`` builds them), holding the abstracts of
  the 147 held-out claims with one relevant abstract, each claim ranking all 60; nDCG@10 averaged over the
  abstract's three positions, a document scored by its best late-chunked node of 128 tokens (``SentenceSplitter``,
  overlap a fifth). The whole-document reading comes from the same pass (one span over the document).

The rule, fixed before the arms of issue 41 ran: the arm with the highest mean of STS-B dev, SciFact dev (general
instruction), Banking77 dev and needle dev wins (arms scored before needle dev existed get it on ``--resume``);
``--export`` writes its adapter as a shipped model folder. The untrained base (its zero-shot ``echo-categorize``)
is scored alike for reference. Writes ``docs/results/recipe/``: results.json, results.md and dev.png, after each
arm (an interrupted run keeps what it measured). ``--resume`` with ``--models`` goes on from results.json and the
model folders: a scored arm is kept, a trained one scored, a stopped one resumed from its last checkpoint, and a
score missing from an earlier run (needle dev) is added. Any device: CPU takes hours, one CUDA card minutes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from finetune import DATA, ROOT, ROWS_100
from long_inputs import SciFact
from long_peer import build, chunk_scores, split
from measure import device_name

from echo_embeddings import BASE_MODEL, DEFAULT_MODEL, EchoEncoder
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

MORE_ROWS = {"nli": 3600, "stsb": 1406, "scifact": 738, "banking77": 3981, "stsb-scores": 5749}
"""Every STS-B train pair, every non-development SciFact claim-abstract pair and Banking77 pair, and twice the
default's SNLI triplets: 15,474 rows, for 600 steps of 16."""

ARMS = {
    "300-task-general": {
        "steps": 300,
        "rows": DEFAULT_ROWS,
        "instructions": "task",
        "general_share": DEFAULT_GENERAL_SHARE,
    },
    "300-task-general-512": {
        "steps": 300,
        "rows": DEFAULT_ROWS,
        "instructions": "task",
        "general_share": DEFAULT_GENERAL_SHARE,
        "train_max_length": 512,
        "mini_batch_size": 4,
    },
    "300-task-general-late": {
        "steps": 300,
        "rows": {**DEFAULT_ROWS, "scifact-late": 450},
        "instructions": "task",
        "general_share": DEFAULT_GENERAL_SHARE,
        "train_max_length": 5120,
        "mini_batch_size": 4,
    },
    "300-task-general-hn2": {
        "steps": 300,
        "rows": DEFAULT_ROWS,
        "instructions": "task",
        "general_share": DEFAULT_GENERAL_SHARE,
        "mining_model": DEFAULT_MODEL,
        "hard_negatives": 2,
    },
    "600-task-general-more-rows": {
        "steps": 600,
        "rows": MORE_ROWS,
        "instructions": "task",
        "general_share": DEFAULT_GENERAL_SHARE,
    },
    "300-task-general-gemma": {
        "steps": 300,
        "rows": DEFAULT_ROWS,
        "instructions": "task",
        "general_share": DEFAULT_GENERAL_SHARE,
        "base": str(ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"),
    },
    "300-task": {"steps": 300, "rows": DEFAULT_ROWS, "instructions": "task", "general_share": 0.0},
    "100-scifact": {"steps": 100, "rows": ROWS_100, "instructions": "scifact", "general_share": 0.0},
    "100-task": {"steps": 100, "rows": ROWS_100, "instructions": "task", "general_share": 0.0},
}
"""In the order they run (the likeliest defaults first, for a run cut by ``--deadline``). ``300-task-general`` is
the shipped default's recipe (its export is the default model, which stands for it when a score is added later);
the others change one thing: ``-512`` trains on sequences of 512 tokens instead of 128 (whole SciFact abstracts,
most of them); ``-late`` adds 450 rows of late-chunked spans (``scifact-late``: a claim's abstract pooled inside a
text of three abstracts, the other two its negatives; sequences of up to 5,120 tokens hold the longest text, 2,501
tokens read twice); ``-hn2`` takes two hard negatives per row mined by the trained default (a second round) instead
of one by the untrained base; ``-more-rows`` draws every row the sources hold but SNLI's (``MORE_ROWS``) for 600
steps; ``-gemma`` trains Gemma-3-270m (``make gemma``) instead of SmolLM2-135M. The long-sequence arms compute their
batch of 16 in mini-batches of 4 (``mini_batch_size``: the same gradients, GradCache): whole, a batch of 512-token
rows outgrew a 24 GB machine's memory at step 29. ``100-scifact`` is release 0.2's recipe (only SciFact's claims
instructed) on the mix less the held-out data. Not built yet: distillation from all-MiniLM-L6-v2 as an auxiliary
loss (the trainer would need a second loss over the batch's similarities)."""


TRAIN_MAX_LENGTH = 128
"""The training sequence length of an arm that names none."""

KEYS = {
    "stsb-dev": "STS-B dev",
    "scifact-dev-general": "SciFact dev (general)",
    "scifact-dev-scifact": "SciFact dev (SciFact instr.)",
    "banking77-dev": "Banking77 dev",
    "needle-dev": "needle dev (late 128)",
    "needle-dev-whole": "needle dev (whole)",
}
RULE = ("stsb-dev", "scifact-dev-general", "banking77-dev", "needle-dev")
NEEDLE_DOCUMENTS = 60
NEEDLE_NODE = 128


def dev_scores(encoder: EchoEncoder, data: Path, work: Path, keys: Iterable[str] = KEYS) -> dict[str, float]:
    """The development scores ``keys`` of ``encoder`` (see the module's docstring)."""
    keys = set(keys)
    scores = {}
    if "stsb-dev" in keys:
        scores["stsb-dev"] = evaluate_sts([Arm(encoder)], data / "sts" / "stsb-dev.jsonl")[0].score
    if keys & {"scifact-dev-general", "scifact-dev-scifact"}:
        arms = [Arm(encoder, query_instruction="general"), Arm(encoder, query_instruction="scifact")]
        results = evaluate_retrieval(arms, data / "retrieval" / "scifact", "train", only=scifact_dev_queries(data))
        scores["scifact-dev-general"], scores["scifact-dev-scifact"] = (
            r.score for r in results if r.metric == "ndcg@10"
        )
    if "banking77-dev" in keys:
        banking = work / "banking77-dev" / "dev.jsonl"
        if not banking.is_file():
            banking.parent.mkdir(parents=True, exist_ok=True)
            banking.write_text("".join(json.dumps(r) + "\n" for r in banking77_dev(data)), encoding="utf-8")
        scores["banking77-dev"] = evaluate_classification([Arm(encoder)], banking, banking, 8, 8,
                                                          test_skip_per_label=8)[0].score  # fmt: skip
    if keys & {"needle-dev", "needle-dev-whole"}:
        scores.update(needle_dev(encoder, data))
    return scores


def needle_dev(encoder: EchoEncoder, data: Path) -> dict[str, float]:
    """nDCG@10 on the needle development documents, late-chunked at 128 tokens and whole, from one pass."""
    corpus = SciFact(data / "retrieval" / "scifact", "train", scifact_dev_queries(data))
    claims, documents, where = build(corpus, NEEDLE_DOCUMENTS, 0)
    nodes = split(documents, NEEDLE_NODE)
    spans = [[(0, len(doc))] + [(s, e) for d, s, e in nodes if d == i] for i, doc in enumerate(documents)]
    vectors = encoder.encode_chunks(documents, spans, show_progress=True)
    queries = encoder.encode_queries([corpus.claims[c] for c in claims], instruction=GENERAL_INSTRUCTION)
    late = chunk_scores(queries, np.concatenate([v[1:] for v in vectors]), nodes, claims, where, 0.0, hits=False)
    whole = chunk_scores(queries, np.stack([v[0] for v in vectors]), [(d, 0, 0) for d in range(len(documents))],
                         claims, where, 0.0, hits=False)  # fmt: skip
    return {"needle-dev": _mean_position(late), "needle-dev-whole": _mean_position(whole)}


def _mean_position(scores: dict) -> float:
    return float(np.mean(list(scores["ndcg@10 by position"].values())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default: ../shared/data)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "recipe")
    parser.add_argument("--models", type=Path, help="keep the trained model folders here (default: a temp folder)")
    parser.add_argument("--resume", action="store_true", help="go on from --out's results.json and --models' folders")
    parser.add_argument("--export", type=Path, help="write the winner's adapter here (a shipped model folder)")
    parser.add_argument("--base", default=BASE_MODEL, help="the model trained (default: the default base model)")
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda when there is one)")
    parser.add_argument("--dtype", default="float32", help="the weights' dtype in training and evaluation")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="scale every arm's steps (a dry run)")
    parser.add_argument("--deadline", type=float, help="start no arm after this many seconds")
    parser.add_argument("--report", action="store_true", help="only rewrite results.md and the plot from results.json")
    args = parser.parse_args()
    if args.report:
        write(args.out, json.loads((args.out / "results.json").read_text(encoding="utf-8")))
        return
    if args.resume and not args.models:
        parser.error("--resume needs --models: the folder the stopped run kept its models in")
    started = time.perf_counter()
    common = {"device": args.device, "dtype": args.dtype}
    work = args.models or Path(tempfile.mkdtemp(prefix="recipe-"))
    command = shlex.join(["python", "benchmarks/recipe_dev.py", *sys.argv[1:]])
    path = args.out / "results.json"
    if args.resume and path.is_file():
        results = json.loads(path.read_text(encoding="utf-8"))
        results.setdefault("runs", [results.pop("command", None)]).append(command)
        for arm in [results["zero-shot"], *results["arms"].values()]:  # a results.json of one device and dtype
            arm.setdefault("device", results.get("device"))
            arm.setdefault("dtype", results.get("dtype"))
    else:
        results = {"runs": [command], "zero-shot": {}, "arms": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    missing = [k for k in KEYS if k not in results["zero-shot"]]
    if missing:
        reference = EchoEncoder.from_pretrained(args.base, template="echo-categorize", **common)
        results["zero-shot"].update(dev_scores(reference, args.data, work, missing))
        key = "added on" if "device" in results["zero-shot"] else "device"
        results["zero-shot"][key] = device_name(reference.device)
        del reference
        write(args.out, results)
    for name, arm in results["arms"].items():  # scores added since the arm was scored
        missing = [k for k in KEYS if k not in arm["dev"]]
        folder = work / name if (work / name / "modules.json").is_file() else None
        if missing and (folder or name == "300-task-general"):
            encoder = EchoEncoder.from_pretrained(str(folder) if folder else DEFAULT_MODEL, **common)
            arm["dev"].update(dev_scores(encoder, args.data, work, missing))
            arm.setdefault("added on", device_name(encoder.device))
            write(args.out, results)
    for name in args.arms:
        if name in results["arms"]:
            continue
        if args.deadline and time.perf_counter() - started > args.deadline:
            print(f"{name}: not started (past --deadline)", file=sys.stderr, flush=True)
            continue
        base = ARMS[name].get("base")
        if base and not Path(base).exists():
            print(f"{name}: not started ({base} is missing: make gemma)", file=sys.stderr, flush=True)
            continue
        results["arms"][name] = run_arm(name, args, work, common)
        write(args.out, results)
    ruled = {name: rule(arm["dev"]) for name, arm in results["arms"].items()}
    winner = max((n for n, v in ruled.items() if v is not None), key=ruled.__getitem__, default=None)
    results["winner"] = winner
    write(args.out, results)
    if winner and args.export and (work / winner / "modules.json").is_file():
        digest = export_adapter(work / winner, args.export)
        print(f"{winner}: exported to {args.export} (SHA-256 {digest})", file=sys.stderr)
    elif winner and args.export:
        print(f"{winner} wins; its model is not in {work} (trained by an earlier run): not exported", file=sys.stderr)


def run_arm(name: str, args: argparse.Namespace, work: Path, common: dict) -> dict:
    """Train arm ``name`` into ``work / name`` (or resume it, or take it as trained) and score it."""
    arm = ARMS[name]
    steps = max(1, round(arm["steps"] * args.steps_scale))
    folder = work / name
    rows = recipe_rows(args.data, rows=arm["rows"], instructions=arm["instructions"],
                       general_share=arm["general_share"])  # fmt: skip
    options = {key: arm[key] for key in ("mining_model", "hard_negatives", "mini_batch_size") if key in arm}
    start = time.perf_counter()
    resume = args.resume and (folder / "checkpoints").is_dir()  # then training_seconds counts this run's part only
    if not (folder / "modules.json").is_file():
        train(rows, output_dir=folder, model_name=arm.get("base", args.base), template="echo", pooling="mean",
              query_instruction=GENERAL_INSTRUCTION, steps=steps, train_batch_size=16,
              train_max_length=arm.get("train_max_length", TRAIN_MAX_LENGTH),
              eval_data=str(args.data / "sts" / "stsb-dev.jsonl"), eval_pairs=200, eval_steps=max(1, steps // 4),
              save_steps=max(1, steps // 12), seed=0, resume=resume, **options, **common)  # fmt: skip
    seconds = time.perf_counter() - start
    encoder = EchoEncoder.from_pretrained(str(folder), **common)
    scores = dev_scores(encoder, args.data, work)
    log = json.loads((folder / "training_log.json").read_text(encoding="utf-8"))["log"]
    print(name, {k: round(v, 2) for k, v in scores.items()}, f"{seconds:.0f} s", file=sys.stderr, flush=True)
    return {**{k: v for k, v in arm.items() if k != "rows"}, "steps": steps, "mix": arm["rows"], "rows": len(rows),
            "device": device_name(encoder.device), "dtype": args.dtype, "training_seconds": seconds, "resumed": resume,
            "dev": scores, "log": log}  # fmt: skip


def rule(scores: dict[str, float]) -> float | None:
    """The selection rule: the mean of the RULE scores (None while one is missing)."""
    if any(key not in scores for key in RULE):
        return None
    return sum(scores[key] for key in RULE) / len(RULE)


def write(out: Path, results: dict) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    runs = "; ".join(f"`{run}`" for run in results["runs"] if run)
    lines = [
        f"Commands: {runs}",
        "",
        "Development data only (held out of every arm's mix). Rule: the highest mean of "
        f"{', '.join(KEYS[k] for k in RULE)}.",
        "",
        f"| arm | {' | '.join(KEYS.values())} | rule |",
        "|---|" + "---:|" * (len(KEYS) + 1),
    ]

    def cells(scores: dict) -> str:
        value = rule(scores)
        shown = [f"{scores[k]:.1f}" if k in scores else "-" for k in KEYS] + ["-" if value is None else f"{value:.1f}"]
        return " | ".join(shown)

    zero = results["zero-shot"]
    lines.append(f"| untrained (echo-categorize) | {cells(zero)} |")
    for name, arm in results["arms"].items():
        mark = " (winner)" if results.get("winner") == name else ""
        lines.append(f"| {name}{mark} | {cells(arm['dev'])} |")
    lines += [
        "",
        "| arm | instructions | steps | sequence tokens | rows | trained on | training s |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for name, arm in results["arms"].items():
        instructions = arm["instructions"] + (f" + {arm['general_share']:.0%} general" if arm["general_share"] else "")
        length = arm.get("train_max_length", TRAIN_MAX_LENGTH)
        lines.append(f"| {name} | {instructions} | {arm['steps']} | {length} | {arm['rows']} "
                     f"| {arm['device']}, {arm['dtype']} | {arm['training_seconds']:.0f} |")  # fmt: skip
    everything = {"untrained": zero, **results["arms"]}
    added = [f"{name}'s on {arm['added on']}" for name, arm in everything.items() if "added on" in arm]
    if added:
        lines += ["", f"Needle dev scores added later: {', '.join(added)} (the default model stands for "
                      "300-task-general: it is that arm's export)."]  # fmt: skip
    pending = [name for name in ARMS if name not in results["arms"]]
    if pending:
        lines += ["", f"Arms defined but not yet run: {', '.join(pending)} (`recipe_dev.py`'s ARMS says what each "
                      "changes)."]  # fmt: skip
    if "note" in results:
        lines += ["", results["note"]]
    lines += ["", "![development scores by arm](dev.png)"]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(out / "dev.png", results)


def plot(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    readings = {"untrained": results["zero-shot"], **{n: a["dev"] for n, a in results["arms"].items()}}
    readings = {name: {k: scores.get(k, 0.0) for k in KEYS} for name, scores in readings.items()}
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
