"""Evaluation results: one record per (task, dataset, template, metric), saved as JSON, Markdown and a bar chart."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Result:
    task: str
    dataset: str
    template: str
    pooling: str
    metric: str
    score: float
    n: int
    seconds: float
    texts_per_second: float


def write_report(out_dir: Path, model: str, results: list[Result], command: str) -> None:
    """``results.json``, ``results.md`` (a table, with the command that made it) and ``results.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"model": model, "command": command, "results": [asdict(r) for r in results]}
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (out_dir / "results.md").write_text(markdown_table(model, results, command), encoding="utf-8")
    plot(out_dir / "results.png", model, results)


def markdown_table(model: str, results: list[Result], command: str) -> str:
    lines = [
        f"Model: `{model}`",
        "",
        f"Command: `{command}`",
        "",
        "| task | dataset | template | pooling | metric | score | n | seconds | texts/s |",
        "|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.task} | {r.dataset} | {r.template} | {r.pooling} | {r.metric} | {r.score:.2f} | {r.n} "
            f"| {r.seconds:.1f} | {r.texts_per_second:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(path: Path, model: str, results: list[Result]) -> None:
    """Grouped bars: one group per dataset and metric, one bar per template."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(f"{r.dataset}\n{r.metric}" for r in results))
    templates = list(dict.fromkeys(r.template for r in results))
    width = 0.8 / len(templates)
    fig, ax = plt.subplots(figsize=(max(7.5, 1.6 * len(groups) * max(1, len(templates) / 3) + 2), 4.5))
    for i, template in enumerate(templates):
        scores = {f"{r.dataset}\n{r.metric}": r.score for r in results if r.template == template}
        xs = [g + (i - (len(templates) - 1) / 2) * width for g in range(len(groups))]
        heights = [scores.get(group, 0.0) for group in groups]
        bars = ax.bar(xs, heights, width, label=template)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("score (x100)")
    ax.set_ylim(0, max(100.0 if any(r.score > 90 for r in results) else 0.0, 1.1 * max(r.score for r in results)))
    ax.set_title(f"Echo vs baselines, zero-shot: {model}", fontsize=10)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
