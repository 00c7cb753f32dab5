"""The ablations' results as files: results.json, results.md (a table per section) and three plots (prompt
variance as box plots, copies x pooled copy as a heat map, scores by model size as lines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .ablation_plan import SECTIONS

TASKS = {"sts": "STS-B", "retrieval": "SciFact nDCG@10", "classification": "Banking77 acc."}


def write_ablations(out: Path, results: dict[str, Any], command: str) -> None:
    """Write the files; ``command`` is the latest run's (``results["runs"][-1]``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {**results, "runs": [*results["runs"][:-1], {"command": command, **results["runs"][-1]}]}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")
    _plot_prompts(out / "prompts.png", results)
    _plot_copies(out / "copies.png", results)
    _plot_models(out / "models.png", results)


def _sections(run: dict[str, Any]) -> str:
    return "every section" if tuple(run["sections"]) == SECTIONS else ", ".join(run["sections"])


def markdown(results: dict[str, Any]) -> str:
    sizes = results["sizes"]
    lines = [
        f"Model: `{results['model']}`. Command: "
        + "; then ".join(
            f"`{run['command']}` ({_sections(run)}: {run['seconds'] / 60:.0f} min)" for run in results["runs"]
        )
        + ".",
        "",
        f"Development sets: STS-B dev (first {sizes['sts_pairs']} pairs, Spearman), SciFact train (first "
        f"{sizes['queries']} judged queries, their abstracts + {sizes['corpus_others']} others, nDCG@10), Banking77 "
        f"train (probe fit on {sizes['per_intent']} texts per intent, scored on the next {sizes['per_intent']}). "
        f"Test sets: STS-B test (all), SciFact test (first {sizes['test_queries']} queries, their abstracts + "
        f"{sizes['test_corpus_others']} others), "
        f"Banking77 ({sizes['test_per_intent']} train / {sizes['test_per_intent']} test texts per intent).",
        "",
        "## Prompt sensitivity (development sets)",
        "",
        "| strategy | prompts | STS-B mean | min | max | SciFact mean | min | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy in dict.fromkeys(row["strategy"] for row in results["prompts"]):
        rows = [row for row in results["prompts"] if row["strategy"] == strategy]
        cells = []
        for task in ("sts", "retrieval"):
            values = [row["scores"][task] for row in rows]
            cells += [f"{sum(values) / len(values):.1f}", f"{min(values):.1f}", f"{max(values):.1f}"]
        lines.append(f"| {strategy} | {len(rows)} | {' | '.join(cells)} |")
    lines += [
        "",
        "Every prompt, by development score:",
        "",
        "| prompt | pooling | STS-B | SciFact |",
        "|---|---|---:|---:|",
    ]
    for row in results["prompts"]:
        lines.append(f"| `{_show(row['template'])}` | {row['pooling']} | {_scores(row, ('sts', 'retrieval'))} |")
    lines += ["", "## Copies x pooled copy (STS-B dev Spearman)", ""]
    lines += ["| copies | " + " | ".join(f"pool {k}" for k in (1, 2, 3, 4, "last")) + " |", "|---" * 6 + "|"]
    for copies in range(1, 5):
        found = {row["pooled"]: row for row in results["copies"] if row["copies"] == copies}
        cells = [f"{found[k]['scores']['sts']:.1f}" if k in found else "" for k in (1, 2, 3, 4, "last")]
        lines.append(f"| {copies} | " + " | ".join(cells) + " |")
    lines += ["", "## Bidirectional attention, no training (development sets)", ""]
    lines += ["| template | attention | STS-B | SciFact |", "|---|---|---:|---:|"]
    for row in results["bidirectional"]:
        name = row["label"].split(",")[0]
        lines.append(f"| {name} | {row['attention']} | {_scores(row, ('sts', 'retrieval'))} |")
    structures = list(dict.fromkeys(row["structure"] for row in results["toy"]))
    lines += ["", "## Section-3 toy triples (accuracy)", ""]
    lines += ["| template | pooling | " + " | ".join(structures) + " |", "|---|---" + "|---:" * len(structures) + "|"]
    for key in dict.fromkeys((row["template"], row["pooling"]) for row in results["toy"]):
        found = {row["structure"]: row for row in results["toy"] if (row["template"], row["pooling"]) == key}
        cells = [f"{found[s]['accuracy']:.0f} (n={found[s]['n']})" for s in structures]
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    candidates = results["candidates"]
    lines += ["", "## Echo + summary token candidates", "", "Development sets:", ""]
    lines += ["| template | pattern | pooling | " + " | ".join(TASKS.values()) + " |", "|---|---|---|---:|---:|---:|"]
    for name, row in candidates["dev"].items():
        lines.append(f"| {name} | `{_show(row['template'])}` | {row['pooling']} | {_scores(row, TASKS)} |")
    if candidates["chosen"]:
        verdict = f"Chosen on development data: **{candidates['chosen']}** (beats echo and PromptEOL on both)."
    else:
        verdict = (
            "No candidate beats both echo and PromptEOL on development STS and retrieval; "
            f"the best on both together, {candidates['best']}, goes on to the test sets."
        )
    lines += ["", verdict, "", "Test sets:", ""]
    lines += ["| template | " + " | ".join(TASKS.values()) + " |", "|---|---:|---:|---:|"]
    for name, row in candidates["test"].items():
        lines.append(f"| {name} | {_scores(row, TASKS)} |")
    lines += ["", "## Model size and family (test sets)", ""]
    lines += ["| model | parameters | template | " + " | ".join(TASKS.values()) + " |", "|---|---:|---|---:|---:|---:|"]
    for model, found in results["models"].items():
        for name, row in found.items():
            if name != "parameters":
                lines.append(f"| {model} | {found['parameters'] / 1e6:.0f}M | {name} | {_scores(row, TASKS)} |")
    return "\n".join(lines) + "\n"


def _show(template: str) -> str:
    return template.replace("\n", "\\n").replace("|", "\\|")


def _scores(row: dict, tasks: Any) -> str:
    return " | ".join(f"{row['scores'][task]:.1f}" for task in tasks)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, title: str | None = None) -> None:
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)


def _plot_prompts(path: Path, results: dict[str, Any]) -> None:
    plt = _pyplot()
    strategies = list(dict.fromkeys(row["strategy"] for row in results["prompts"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, task in zip(axes, ("sts", "retrieval"), strict=True):
        values = [[r["scores"][task] for r in results["prompts"] if r["strategy"] == s] for s in strategies]
        ax.boxplot(values, tick_labels=strategies)
        ax.set(title=f"{TASKS[task]} (dev), one point per prompt", ylabel="score x100")
        ax.grid(alpha=0.3)
    _save(fig, path, f"Prompt sensitivity: {results['model']}")


def _plot_copies(path: Path, results: dict[str, Any]) -> None:
    import numpy as np

    plt = _pyplot()
    columns = [1, 2, 3, 4, "last"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    grid = np.full((4, len(columns)), np.nan)
    for row in results["copies"]:
        grid[row["copies"] - 1, columns.index(row["pooled"])] = row["scores"]["sts"]
    image = ax.imshow(grid, cmap="viridis")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xticks(range(len(columns)), [f"pool {c}" for c in columns])
    ax.set_yticks(range(4), [f"{c} copies" for c in range(1, 5)])
    ax.set_title(f"{TASKS['sts']} (dev Spearman)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    _save(fig, path, f"Copies x pooled copy: {results['model']}")


def _plot_models(path: Path, results: dict[str, Any]) -> None:
    plt = _pyplot()
    models = sorted(results["models"].items(), key=lambda item: item[1]["parameters"])
    sizes = [found["parameters"] / 1e6 for _, found in models]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (task, title) in zip(axes, TASKS.items(), strict=True):
        for name in ("echo", "classical", "prompteol"):
            ax.plot(sizes, [found[name]["scores"][task] for _, found in models], marker="o", label=name)
        ax.set(title=f"{title} (test)", xlabel="parameters (millions)", ylabel="score x100")
        ax.set_xticks(sizes, [f"{size:.0f}M" for size in sizes])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)
