"""``echo-embeddings eval``: templates scored on STS, BEIR retrieval and the toy triples, and the paper's ablations."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import EchoConfig
from ..errors import ConfigError
from ..evaluation.ablation_plan import SECTIONS, Sizes
from ..shipped import BASE_MODEL
from . import report
from .options import SETTING_OPTIONS, encoder_from, model_options, positive_int, run_options, setting_option


def register(commands: Any) -> None:
    """Add ``eval`` and its tasks (``sts``, ``retrieval``, ``toy``, ``ablations``) to the command line."""
    evaluate = commands.add_parser(
        "eval",
        help="evaluate templates",
        description="Evaluate templates: sts, retrieval, toy (scores per template), ablations (the paper's).",
    )
    tasks = evaluate.add_subparsers(dest="task", required=True)
    sts = tasks.add_parser(
        "sts",
        help="STS: Spearman of cosine similarity x100",
        description="STS JSONL files with sentence1, sentence2, score; Spearman of cosine similarity x100.",
    )
    sts.add_argument(
        "--data", type=Path, action="append", required=True,
        help="STS JSONL file, or mteb/stsbenchmark-sts from the Hugging Face Hub (repeatable)",
    )  # fmt: skip
    sts.add_argument("--limit", type=positive_int, default=None, help="use the first N pairs of each file")
    retrieval = tasks.add_parser(
        "retrieval",
        help="BEIR retrieval: nDCG@10 and Recall@100 x100",
        description="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv). With --corpus-limit N, the corpus "
        "is every document relevant to the evaluated queries plus N others drawn with --seed (deterministic).",
    )
    retrieval.add_argument("--data", type=Path, required=True, help="BEIR dataset folder, or mteb/scifact (Hub)")
    retrieval.add_argument("--split", default="test", help="qrels split (default: test)")
    retrieval.add_argument("--limit", type=positive_int, default=None, help="evaluate the first N judged queries")
    retrieval.add_argument(
        "--corpus-limit", type=positive_int, default=None, help="sub-corpus: relevant docs + N others"
    )
    retrieval.add_argument("--seed", type=int, default=0, help="seed for the sub-corpus draw")
    toy = tasks.add_parser(
        "toy",
        help="the paper's Section 3 triples",
        description="JSONL triples q, s+, s-, structure: accuracy of cos(q, s+) > cos(q, s-) per structure.",
    )
    toy.add_argument("--data", type=Path, required=True, help="triples JSONL file")
    for task in (sts, retrieval, toy):
        model_options(task, repeat_template=True)
        run_options(task)
        task.add_argument("--out", type=Path, required=True, help="folder for results.json, .md and .png")
        task.add_argument(
            "--compute-matched",
            action="store_true",
            help="also run each echo template on the first half of each text's tokens (same tokens as classical)",
        )
        task.set_defaults(run=run)
    _register_ablations(tasks)


def _register_ablations(tasks: Any) -> None:
    ablations = tasks.add_parser(
        "ablations",
        help="the paper's ablations and echo + summary-token candidates, in one run",
        description="On one model: prompt sensitivity (8 echo, classical and PromptEOL wordings), 1-4 copies x "
        "pooled copy, the bidirectional baseline, the toy triples, and echo + summary-token candidates chosen on "
        "development data then scored on the test sets; --other-model adds echo/classical/PromptEOL test scores of "
        "more models. DATA: the evaluation data folder (sts/, retrieval/scifact/, classification/banking77/).",
    )
    ablations.add_argument(
        "--data",
        type=Path,
        required=True,
        help="evaluation data folder, or 'hub' for the sets from the Hugging Face Hub",
    )
    ablations.add_argument("--toy", type=Path, required=True, help="toy triples JSONL file")
    for name in ("model_name", "device"):
        kwargs = setting_option(name, EchoConfig.model_fields[name])
        if name == "model_name":  # the paper's ablations read untrained models
            kwargs.update(default=BASE_MODEL, help=f"the model, read zero-shot. Default: {BASE_MODEL}")
        ablations.add_argument(SETTING_OPTIONS[name], **kwargs)
    ablations.add_argument("--other-model", action="append", default=[], help="another model to compare (repeatable)")
    ablations.add_argument("--out", type=Path, required=True, help="folder for results.json, .md and the plots")
    ablations.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="run only these (default: all); the others keep their rows from OUT/results.json, which must hold an "
        "earlier run of the same model and sizes",
    )
    for name, default in asdict(Sizes()).items():
        ablations.add_argument(
            "--" + name.replace("_", "-"), type=positive_int, default=default, help=f"default: {default}"
        )
    ablations.set_defaults(run=run_ablations)


def run(args: argparse.Namespace) -> None:
    """Score every ``--template`` on the task's data; write results.json, .md and a plot to ``--out`` and print the
    table."""
    from ..files import check_output_folder

    check_output_folder(args.out)  # before minutes of computing, not after
    from ..evaluation.arm import Arm
    from ..evaluation.report import markdown_table, write_report
    from ..hub_data import resolve_data

    data = [resolve_data(d) for d in args.data] if isinstance(args.data, list) else [resolve_data(args.data)]
    show_progress = not args.quiet
    arms = []
    for template in args.template or [None]:
        encoder = encoder_from(args, template=template)  # every template shares the one loaded model
        arms.append(Arm(encoder))
        if args.compute_matched and encoder.template.document.count("text") > 1:
            arms.append(Arm(encoder, compute_matched=True))
    if args.task == "sts":
        from ..evaluation.sts import evaluate_sts

        results = [r for path in data for r in evaluate_sts(arms, path, args.limit, show_progress)]
    elif args.task == "retrieval":
        from ..evaluation.retrieval import evaluate_retrieval

        results = evaluate_retrieval(arms, data[0], args.split, args.limit, args.corpus_limit, args.seed, show_progress)
    else:
        from ..evaluation.toy import evaluate_toy

        results = evaluate_toy(arms, data[0])
    model = arms[0].encoder.model_name
    write_report(args.out, model, results, args.command_line)
    print(markdown_table(model, results, args.command_line))


def run_ablations(args: argparse.Namespace) -> None:
    """Run the ablations' sections on ``--model`` and write results.json, .md and the plots to ``--out``."""
    from ..evaluation.ablations import run_ablations
    from ..evaluation.ablations_report import write_ablations
    from ..files import check_output_folder
    from ..hub_data import resolve_data

    check_output_folder(args.out)  # before an hour of computing, not after
    data = resolve_data(args.data)
    sizes = Sizes(**{name: getattr(args, name) for name in asdict(Sizes())})
    earlier = None
    if set(args.sections) != set(SECTIONS):
        previous = args.out / "results.json"
        if not previous.is_file():
            raise ConfigError(f"--sections {' '.join(args.sections)} updates {previous}, which does not exist: "
                             "run every section first")  # fmt: skip
        earlier = json.loads(previous.read_text(encoding="utf-8"))
    results = run_ablations(
        args.model_name, data=data, triples=args.toy, sizes=sizes, other_models=args.other_model,
        device=args.device, sections=args.sections, earlier=earlier, progress=report,
    )  # fmt: skip
    write_ablations(args.out, results, args.command_line)
    report(f"wrote {args.out / 'results.md'}")
